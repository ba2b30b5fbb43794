//! OpenPGP for XMPP: the building blocks the proxy calls to encrypt a chat
//! message on its way out and to open one on its way in.
//!
//! - `signcrypt`: XEP-0373 / XEP-0374. A `<signcrypt>` element (`<to/>`,
//!   `<time/>`, random `<rpad/>`, `<payload>`) as a binary OpenPGP message,
//!   signed and encrypted, base64 in `<openpgp xmlns='urn:xmpp:openpgp:0'>`.
//! - `datetime`: XEP-0082 dates, written strictly and read liberally.
//! - `legacy`: XEP-0027. The body alone, encrypted, as ASCII armour without
//!   its header and footer lines, in `<x xmlns='jabber:x:encrypted'>`.
//!
//! Plain functions over elements and bytes: no sockets, no key lookups, no
//! policy. Public-key operations are CPU work: the caller runs them off the
//! async threads (`spawn_blocking`). Certificates come in already chosen
//! (recipients' from the key store, the user's own from [`crate::openpgp::identities`]).

mod datetime;
mod legacy;
mod signcrypt;
#[cfg(test)]
mod tests;

use sequoia_openpgp::Cert;
use sequoia_openpgp::policy::Policy;

use crate::openpgp::open::{OpenError, Opened, Opening, Sender};
use crate::openpgp::seal::{CryptError, seal, seal_binary, signing_keypair};

pub use datetime::{format_datetime, parse_datetime};
pub use legacy::{LegacyOpened, legacy_decrypt, legacy_encrypt, legacy_message_children};
pub use signcrypt::{Signcrypt, Verified, decrypt, encrypt, message_children, rpad};

/// Namespace of XEP-0373 (`<openpgp/>`, `<signcrypt/>` and its children).
pub const OX_NS: &str = "urn:xmpp:openpgp:0";
/// Namespace of XEP-0027's `<x/>` holding the encrypted body.
pub const LEGACY_NS: &str = "jabber:x:encrypted";
/// Namespace of XEP-0380's `<encryption/>` hint.
pub const EME_NS: &str = "urn:xmpp:eme:0";
/// Namespace of XEP-0334's processing hints (`<store/>`, `<no-store/>`).
pub const HINTS_NS: &str = "urn:xmpp:hints";
/// Namespace of message bodies on a client-to-server stream.
pub const CLIENT_NS: &str = super::framer::CLIENT_NS;

/// Why a message could not be encrypted, or why an incoming one was not
/// accepted. Anything but [`OxError::NoRecipients`] and
/// [`OxError::OpenPgp`] on the way out means "deliver the stanza as it came".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OxError {
    /// No certificate given has a valid transport-encryption key.
    #[error("no recipient has a usable encryption key")]
    NoRecipients,
    /// The text is not base64 (or not the XEP-0027 armour body).
    #[error("not valid base64")]
    Base64,
    /// The decoded bytes are not an OpenPGP message, or it is corrupt
    /// (e.g. the integrity check failed), or encrypting failed.
    #[error("OpenPGP: {0}")]
    OpenPgp(String),
    /// The message is not encrypted at all.
    #[error("the message is not encrypted")]
    NotEncrypted,
    /// None of the user's keys can decrypt the message.
    #[error("the message is not encrypted to this user's key")]
    NotForUs,
    /// The decrypted content is larger than allowed.
    #[error("the decrypted content is larger than {limit} bytes")]
    TooLarge { limit: usize },
    /// The message carries no signature.
    #[error("the message is not signed")]
    NoSignature,
    /// The signature was made by a key none of the sender's certificates has.
    #[error("the message is signed by an unknown key")]
    UnknownSigner,
    /// The signature does not verify (or the signing key is not valid).
    #[error("the signature does not verify")]
    BadSignature,
    /// The signature verifies, but the signer's certificate has no valid
    /// user ID `xmpp:<sender>`.
    #[error("the signer's certificate is not {expected}'s")]
    SignerMismatch { expected: String },
    /// The decrypted content is not a well-formed `<signcrypt>` element.
    #[error("malformed signcrypt element: {0}")]
    MalformedSigncrypt(String),
    /// No `<to/>` of the signcrypt element names the expected recipient.
    #[error("the signcrypt element is not addressed to {expected}")]
    RecipientMismatch { expected: String },
}

impl From<CryptError> for OxError {
    fn from(e: CryptError) -> Self {
        match e {
            CryptError::NoRecipients => OxError::NoRecipients,
            other => OxError::OpenPgp(other.to_string()),
        }
    }
}

impl From<OpenError> for OxError {
    fn from(e: OpenError) -> Self {
        match e {
            OpenError::NotEncrypted => OxError::NotEncrypted,
            OpenError::NotForUs => OxError::NotForUs,
            OpenError::TooLarge { limit } => OxError::TooLarge { limit },
            OpenError::OpenPgp(why) => OxError::OpenPgp(why),
        }
    }
}

/// Signs `data` with `signer`'s signing key and encrypts it to every valid
/// transport-encryption key of `recipients`; armoured if `armor`, else the
/// binary OpenPGP message.
fn seal_to(
    data: &[u8],
    recipients: &[Cert],
    signer: Option<&Cert>,
    policy: &dyn Policy,
    armor: bool,
) -> Result<Vec<u8>, OxError> {
    let keypair = signer.map(|tsk| signing_keypair(tsk, policy)).transpose()?;
    if armor {
        return Ok(seal(data, recipients, false, keypair, policy)?);
    }
    Ok(seal_binary(data, recipients, false, keypair, policy)?)
}

/// Decrypts the binary message `message` for `how` (see
/// [`crate::openpgp::open::open`]); the sender is `how.sender`'s bare JID.
fn open(message: &[u8], how: &Incoming<'_>) -> Result<Opened, OxError> {
    let sender = super::identity::bare_jid(how.sender);
    let opening = Opening {
        tsk: how.tsk,
        sender: Sender::Jid(&sender),
        sender_certs: how.sender_certs,
        max_bytes: how.max_bytes,
        policy: how.policy,
    };
    Ok(crate::openpgp::open::open(message, &opening)?)
}

/// What the proxy knows about an incoming encrypted message: whose key opens
/// it and who is supposed to have sent it.
pub struct Incoming<'a> {
    /// The local user's key, secret parts usable ([`crate::openpgp::identities::IdentityKey::secret`]).
    pub tsk: &'a Cert,
    /// The sender's bare JID (the stanza's `from`, resource removed).
    pub sender: &'a str,
    /// Certificates the sender may have signed with (e.g. from PEP).
    pub sender_certs: &'a [Cert],
    /// The local user's bare JID, checked against the `<to/>` elements; `None`
    /// leaves that check to the caller.
    pub recipient: Option<&'a str>,
    /// Largest decrypted content accepted, in bytes (e.g. the stanza limit).
    pub max_bytes: usize,
    pub policy: &'a dyn Policy,
}

/// Whether the text of an `<openpgp/>` element (or, with `legacy`, of an
/// XEP-0027 `<x/>`) is a message encrypted to one of `tsk`'s keys (or to
/// hidden recipients): a look at its first packets, no public-key work, so
/// callers can skip everything else (key lookups) for messages that cannot
/// be for the user.
pub fn addressed_to(text: &str, legacy: bool, tsk: &Cert, max_bytes: usize) -> bool {
    let binary = if legacy {
        legacy::legacy_binary(text, max_bytes)
    } else {
        signcrypt::decode_base64(text, max_bytes)
    };
    binary.is_ok_and(|b| crate::openpgp::open::addressed_to(&b, tsk))
}

/// The fallback `<body>` of an encrypted message, for clients that cannot
/// read it.
fn fallback_body(text: &str) -> super::framer::Element {
    let mut body = super::framer::Element::new("body", CLIENT_NS);
    body.children
        .push(super::framer::Node::Text(text.to_owned()));
    body
}

/// XEP-0380's `<encryption namespace='…'/>` hint.
fn eme_hint(namespace: &str, name: Option<&str>) -> super::framer::Element {
    let mut hint = super::framer::Element::new("encryption", EME_NS);
    hint.set_attr("namespace", namespace);
    if let Some(name) = name {
        hint.set_attr("name", name);
    }
    hint
}
