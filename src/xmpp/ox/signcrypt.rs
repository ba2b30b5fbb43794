//! XEP-0373 / XEP-0374: the `<signcrypt>` element, sealed into the base64
//! text of `<openpgp xmlns='urn:xmpp:openpgp:0'>`, and opened again.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::{DecodePaddingMode, general_purpose};
use sequoia_openpgp::policy::Policy;
use sequoia_openpgp::{Cert, Fingerprint};

use super::{
    CLIENT_NS, HINTS_NS, Incoming, OX_NS, OxError, eme_hint, fallback_body, format_datetime,
    parse_datetime,
};
use super::{open, seal_to};
use crate::openpgp::open::Verdict;
use crate::xmpp::framer::{Element, Limits, Node, NsContext, parse_stanza_in, serialize};
use crate::xmpp::identity::bare_jid;

/// The fallback `<body>` of an OX message.
pub const FALLBACK_BODY: &str = "This message is encrypted with OpenPGP for XMPP \
(XEP-0373), and your client cannot decrypt it. Use a client that supports \
OpenPGP for XMPP to read it.";

/// Longest random padding, in characters.
const MAX_RPAD: usize = 200;

/// The content of a `<signcrypt>` element, less its random padding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signcrypt {
    /// Bare JIDs of the intended recipients (`<to jid='…'/>`), lowercased.
    pub to: Vec<String>,
    /// When the sender says the message was written (`<time stamp='…'/>`;
    /// sotto writes whole seconds). Read as [`super::parse_datetime`] reads
    /// it; `None` when the signcrypt has no `<time/>` or a stamp no reading
    /// makes sense of: sotto does not judge the time, so neither makes a
    /// message unreadable.
    pub time: Option<SystemTime>,
    /// The `<payload>` children: `<body xmlns='jabber:client'>`, XHTML-IM
    /// `<html/>`, `<x xmlns='jabber:x:oob'>`…
    pub payload: Vec<Element>,
}

/// An opened `<openpgp/>` whose signature verified by the sender's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub signcrypt: Signcrypt,
    /// Fingerprint of the sender certificate that made the signature.
    pub signer: Fingerprint,
    /// The signed `<signcrypt/>` as it was decrypted, random padding
    /// included: two messages never share it, a replayed one does.
    pub signed: Vec<u8>,
}

impl Signcrypt {
    /// A signcrypt for `to` written now (truncated to the second).
    pub fn new(to: Vec<String>, payload: Vec<Element>) -> Self {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Signcrypt {
            to,
            time: Some(UNIX_EPOCH + Duration::from_secs(secs)),
            payload,
        }
    }

    /// The `<signcrypt xmlns='urn:xmpp:openpgp:0'>` element, with a fresh
    /// random `<rpad/>` (see [`rpad`]).
    pub fn to_element(&self) -> Element {
        let mut sc = Element::new("signcrypt", OX_NS);
        for jid in &self.to {
            let mut to = Element::new("to", OX_NS);
            to.set_attr("jid", jid.as_str());
            sc.children.push(Node::Element(to));
        }
        if let Some(stamp) = self.time {
            let mut time = Element::new("time", OX_NS);
            time.set_attr("stamp", format_datetime(stamp));
            sc.children.push(Node::Element(time));
        }
        let mut pad = Element::new("rpad", OX_NS);
        let text = rpad();
        if !text.is_empty() {
            pad.children.push(Node::Text(text));
        }
        sc.children.push(Node::Element(pad));
        let mut payload = Element::new("payload", OX_NS);
        payload
            .children
            .extend(self.payload.iter().cloned().map(Node::Element));
        sc.children.push(Node::Element(payload));
        sc
    }

    /// Reads a `<signcrypt>` element as other clients write it.
    ///
    /// Required: the root `<signcrypt>` (namespace `urn:xmpp:openpgp:0`, or
    /// none), at least one `<to jid/>` and a `<payload>`. Liberal in the
    /// rest: the signcrypt's own children may be in its namespace (prefixed
    /// or not), in none (a prefixed root with unprefixed children) or in
    /// `jabber:client`; a `<to/>` without a JID, `<rpad/>` (any number) and
    /// unknown elements and text are ignored; the first `<time/>` whose stamp
    /// reads counts (see [`Signcrypt::time`]); the children of every
    /// `<payload>` are the payload, and one in the OX namespace or in none
    /// (a client that forgot `xmlns='jabber:client'` on its `<body>`) is
    /// read as `jabber:client`.
    pub fn from_element(sc: &Element) -> Result<Self, OxError> {
        let bad = |why: &str| OxError::MalformedSigncrypt(why.to_owned());
        if sc.name != "signcrypt" || !(sc.ns == OX_NS || sc.ns.is_empty()) {
            return Err(bad(
                "the root is not <signcrypt xmlns='urn:xmpp:openpgp:0'>",
            ));
        }
        let mut to = Vec::new();
        let mut time = None;
        let mut payload: Option<Vec<Element>> = None;
        let own = |e: &&Element| e.ns == OX_NS || e.ns.is_empty() || e.ns == CLIENT_NS;
        for child in sc.elements().filter(own) {
            match child.name.as_str() {
                "to" => {
                    if let Some(jid) = ox_attr(child, "jid").map(bare_jid)
                        && !jid.is_empty()
                    {
                        to.push(jid);
                    }
                }
                "time" if time.is_none() => time = ox_attr(child, "stamp").and_then(parse_datetime),
                "payload" => payload
                    .get_or_insert_with(Vec::new)
                    .extend(child.elements().cloned().map(in_client_ns)),
                // <rpad/>, and whatever later versions or other clients add.
                _ => {}
            }
        }
        if to.is_empty() {
            return Err(bad("no <to jid/>"));
        }
        Ok(Signcrypt {
            to,
            time,
            payload: payload.ok_or_else(|| bad("no <payload/>"))?,
        })
    }
}

/// The value of attribute `name` of an element of the signcrypt, written
/// unqualified (as XEP-0373 has it) or qualified with the OX namespace.
fn ox_attr<'a>(el: &'a Element, name: &str) -> Option<&'a str> {
    el.attr(name).or_else(|| {
        el.attrs
            .iter()
            .find(|(k, _)| {
                k.strip_prefix('{')
                    .and_then(|k| k.strip_prefix(OX_NS))
                    .and_then(|k| k.strip_prefix('}'))
                    == Some(name)
            })
            .map(|(_, v)| v.as_str())
    })
}

/// A payload element in the OX namespace or in none, moved (with the
/// descendants that share its namespace) to `jabber:client`, where a
/// message's content lives; others unchanged.
fn in_client_ns(mut el: Element) -> Element {
    if el.ns == OX_NS || el.ns.is_empty() {
        let from = std::mem::take(&mut el.ns);
        rename_ns(&mut el, &from);
    }
    el
}

fn rename_ns(el: &mut Element, from: &str) {
    el.ns = CLIENT_NS.to_owned();
    for child in &mut el.children {
        if let Node::Element(e) = child
            && e.ns == from
        {
            rename_ns(e, from);
        }
    }
}

/// Random padding text: a random length from 0 to 200 characters of random
/// base64 characters, so the ciphertext's length says less about the body's.
pub fn rpad() -> String {
    let mut raw = [0u8; MAX_RPAD * 3 / 4 + 3];
    if sequoia_openpgp::crypto::random(&mut raw).is_err() {
        return String::new();
    }
    let len = usize::from(u16::from_le_bytes([raw[0], raw[1]])) % (MAX_RPAD + 1);
    let mut text = general_purpose::STANDARD_NO_PAD.encode(&raw[2..]);
    text.truncate(len);
    text
}

/// Serializes `signcrypt` (fresh `<rpad/>`), signs it with `sender`'s key (a
/// certificate with usable secret signing key) and encrypts it to every valid
/// transport-encryption key of `recipients`; returns the base64 text of the
/// binary OpenPGP message, for `<openpgp xmlns='urn:xmpp:openpgp:0'>`.
///
/// # Security
/// Include the sender's own certificate in `recipients` (XEP-0373 wants the
/// sender able to read their own messages, e.g. from the archive). Key IDs
/// of recipients are visible in the message, as clients expect.
pub fn encrypt(
    signcrypt: &Signcrypt,
    recipients: &[Cert],
    sender: &Cert,
    policy: &dyn Policy,
) -> Result<String, OxError> {
    let xml = serialize(&signcrypt.to_element());
    let binary = seal_to(&xml, recipients, Some(sender), policy, false)?;
    Ok(STANDARD.encode(binary))
}

/// The elements of an outgoing OX message, after its addressing: the
/// `<openpgp/>` holding `base64`, a fallback `<body>`, the XEP-0380 hint and
/// the `<store/>` hint XEP-0373 asks for (so the server archives it).
pub fn message_children(base64: String) -> Vec<Element> {
    let mut openpgp = Element::new("openpgp", OX_NS);
    openpgp.children.push(Node::Text(base64));
    vec![
        openpgp,
        fallback_body(FALLBACK_BODY),
        eme_hint(OX_NS, Some("OpenPGP for XMPP")),
        Element::new("store", HINTS_NS),
    ]
}

/// Opens the base64 text of an `<openpgp/>` element: decrypts it with the
/// user's key, requires a good signature by one of `how.sender_certs` that
/// carries the user ID `xmpp:<how.sender>`, reads the `<signcrypt>` (as
/// liberally as [`Signcrypt::from_element`] says) and, if `how.recipient`
/// is given, requires a `<to/>` naming it (bare JIDs, compared without
/// regard to case).
///
/// # Security
/// Hostile input is expected: every failure is an [`OxError`], never a
/// panic, and at most `how.max_bytes` are decrypted. Strict only where it
/// protects the user: encryption, the sender's signature, the recipient.
/// The time stamp is returned if readable, never judged: replay windows are
/// the caller's decision.
pub fn decrypt(base64: &str, how: &Incoming<'_>) -> Result<Verified, OxError> {
    let binary = decode_base64(base64, how.max_bytes)?;
    let opened = open(&binary, how)?;
    let signer = match opened.verdict {
        Verdict::Good(fpr) => fpr,
        Verdict::Mismatch => {
            return Err(OxError::SignerMismatch {
                expected: how.sender.to_owned(),
            });
        }
        Verdict::Bad => return Err(OxError::BadSignature),
        Verdict::UnknownSigner => return Err(OxError::UnknownSigner),
        Verdict::Unsigned => return Err(OxError::NoSignature),
    };
    let signcrypt = parse_signcrypt(&opened.plaintext, how.max_bytes)?;
    if let Some(me) = how.recipient {
        // Both sides bare and lowercased (`to` is, from `from_element`).
        let me = bare_jid(me);
        if !signcrypt.to.contains(&me) {
            return Err(OxError::RecipientMismatch { expected: me });
        }
    }
    Ok(Verified {
        signcrypt,
        signer,
        signed: opened.plaintext,
    })
}

/// Decodes base64 that may be split across lines, padded or not, refusing
/// text that would decode to more than `max_bytes`.
pub(super) fn decode_base64(text: &str, max_bytes: usize) -> Result<Vec<u8>, OxError> {
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let compact: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if compact.len() / 4 * 3 > max_bytes.saturating_add(3) {
        return Err(OxError::TooLarge { limit: max_bytes });
    }
    let bytes = LENIENT.decode(&compact).map_err(|_| OxError::Base64)?;
    if bytes.is_empty() {
        return Err(OxError::Base64);
    }
    Ok(bytes)
}

/// Reads the decrypted signcrypt: one element, with what serializers put
/// around it tolerated (a byte order mark, an XML declaration, whitespace,
/// trailing NUL bytes from C strings). Prefixes resolve from what the text
/// declares alone: no namespace is in scope before it.
fn parse_signcrypt(plaintext: &[u8], max_bytes: usize) -> Result<Signcrypt, OxError> {
    let mut xml = plaintext;
    if let Some(rest) = xml.strip_prefix("\u{FEFF}".as_bytes()) {
        xml = rest;
    }
    while let Some(rest) = xml.strip_suffix(b"\0") {
        xml = rest;
    }
    let start = xml
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(xml.len());
    if xml[start..].starts_with(b"<?xml") {
        let end = xml
            .windows(2)
            .position(|w| w == b"?>")
            .ok_or_else(|| OxError::MalformedSigncrypt("unterminated XML declaration".into()))?;
        xml = &xml[end + 2..];
    }
    let limits = Limits {
        max_stanza_bytes: max_bytes,
        ..Limits::default()
    };
    let nothing_in_scope = NsContext {
        default_ns: String::new(),
        prefixes: Vec::new(),
    };
    let element = parse_stanza_in(xml, &nothing_in_scope, &limits)
        .map_err(|e| OxError::MalformedSigncrypt(e.to_string()))?;
    Signcrypt::from_element(&element)
}
