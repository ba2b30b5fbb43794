//! XEP-0027 (legacy OpenPGP): the body alone, encrypted, as ASCII armour
//! with the armour header and footer lines and armour headers removed, in
//! `<x xmlns='jabber:x:encrypted'>`. For recipients whose clients speak
//! nothing newer; it protects only the body and has no recipient binding.

use sequoia_openpgp::policy::Policy;
use sequoia_openpgp::{Cert, Fingerprint};

use super::signcrypt::decode_base64;
use super::{Incoming, LEGACY_NS, OxError, eme_hint, fallback_body};
use super::{open, seal_to};
use crate::openpgp::open::Verdict;
use crate::xmpp::framer::{Element, Node};

/// The fallback `<body>` of an XEP-0027 message.
pub const LEGACY_FALLBACK_BODY: &str = "This message is encrypted with legacy \
OpenPGP (XEP-0027), and your client cannot decrypt it. Use a client that \
supports OpenPGP to read it.";

/// An opened XEP-0027 message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyOpened {
    /// The body, as text (invalid UTF-8 replaced).
    pub body: String,
    /// The sender certificate whose signature verified, if the message was
    /// signed by a known key of the sender (XEP-0027 messages usually are
    /// not signed).
    pub signer: Option<Fingerprint>,
}

/// Encrypts `body` to every valid transport-encryption key of `recipients`
/// (include the sender's own certificate), signed by `signer` if given, and
/// returns XEP-0027's text: the armour's base64 lines (checksum line
/// included) without the `-----BEGIN/END PGP MESSAGE-----` lines and headers.
pub fn legacy_encrypt(
    body: &str,
    recipients: &[Cert],
    signer: Option<&Cert>,
    policy: &dyn Policy,
) -> Result<String, OxError> {
    let armored = seal_to(body.as_bytes(), recipients, signer, policy, true)?;
    let text = String::from_utf8_lossy(&armored);
    Ok(armor_lines(&text).join("\n"))
}

/// The elements of an outgoing XEP-0027 message, after its addressing: the
/// `<x xmlns='jabber:x:encrypted'>` holding `text`, a fallback `<body>` and
/// the XEP-0380 hint.
pub fn legacy_message_children(text: String) -> Vec<Element> {
    let mut x = Element::new("x", LEGACY_NS);
    x.children.push(Node::Text(text));
    vec![
        x,
        fallback_body(LEGACY_FALLBACK_BODY),
        eme_hint(LEGACY_NS, Some("Legacy OpenPGP")),
    ]
}

/// Opens the text of an `<x xmlns='jabber:x:encrypted'>` element (a whole
/// armoured message is accepted too) with the user's key.
///
/// An unsigned message, or one signed by a key not among
/// `how.sender_certs`, opens with `signer: None`; a signature that fails, or
/// one by a certificate without user ID `xmpp:<how.sender>`, is an error.
/// `how.recipient` is not checked: the format does not name recipients.
pub fn legacy_decrypt(text: &str, how: &Incoming<'_>) -> Result<LegacyOpened, OxError> {
    let binary = legacy_binary(text, how.max_bytes)?;
    let opened = open(&binary, how)?;
    let signer = match opened.verdict {
        Verdict::Good(fpr) => Some(fpr),
        Verdict::Unsigned | Verdict::UnknownSigner => None,
        Verdict::Bad => return Err(OxError::BadSignature),
        Verdict::Mismatch => {
            return Err(OxError::SignerMismatch {
                expected: how.sender.to_owned(),
            });
        }
    };
    Ok(LegacyOpened {
        body: String::from_utf8_lossy(&opened.plaintext).into_owned(),
        signer,
    })
}

/// The binary OpenPGP message in XEP-0027's text (or a whole armour), at
/// most `max_bytes`.
pub(super) fn legacy_binary(text: &str, max_bytes: usize) -> Result<Vec<u8>, OxError> {
    let mut lines = armor_lines(text);
    // The CRC-24 checksum line; integrity comes from the encryption itself.
    if lines.last().is_some_and(|l| l.starts_with('=')) {
        lines.pop();
    }
    decode_base64(&lines.concat(), max_bytes)
}

/// The base64 lines (and checksum line) of an armoured message, or of
/// XEP-0027's stripped form (then taken as it is): no armour header or footer
/// lines, no armour headers, no empty lines.
fn armor_lines(text: &str) -> Vec<&str> {
    let mut lines: Vec<&str> = text.lines().map(str::trim).collect();
    if let Some(begin) = lines.iter().position(|l| l.starts_with("-----BEGIN")) {
        lines.drain(..=begin);
        // Armour headers (`Comment: …`) run up to the first empty line.
        if lines
            .iter()
            .take_while(|l| !l.is_empty())
            .all(|l| l.contains(": "))
        {
            let headers = lines.iter().take_while(|l| !l.is_empty()).count();
            lines.drain(..headers);
        }
    }
    if let Some(end) = lines.iter().position(|l| l.starts_with("-----END")) {
        lines.truncate(end);
    }
    lines.retain(|l| !l.is_empty());
    lines
}
