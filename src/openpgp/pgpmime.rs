//! PGP/MIME (RFC 3156) with header protection (RFC 9788): the original
//! content entity, byte for byte, with the message's header fields copied
//! into it, encrypted once to every recipient; outside, only what transport
//! needs and an obscured Subject.
//!
//! The Cryptographic Payload is marked as RFC 9788 says (`hp="cipher"`)
//! and, for clients written before it, `protected-headers="v1"`; it records
//! every non-structural field of the outer header section in an `HP-Outer`
//! field (the obscured Subject included), so a reader can tell what was
//! hidden from what was merely absent (RFC 9788 section 2.2).
//!
//! Plain functions over bytes: no sockets, no key lookups. The caller runs
//! them off the async threads. Plaintext stays in memory.

use sequoia_openpgp::Cert;
use sequoia_openpgp::crypto::KeyPair;
use sequoia_openpgp::policy::Policy;

use super::seal::{CryptError, armor_into, seal_binary};
use crate::mail::{Field, Split, split};

/// Header fields left readable outside the encryption: trace fields, what
/// delivery and threading need, and the sender's Autocrypt key. Everything else travels inside only.
const OUTER: &[&str] = &[
    "received",
    "return-path",
    "from",
    "sender",
    "to",
    "cc",
    "date",
    "message-id",
    "in-reply-to",
    "references",
    // Autocrypt Level 1: correspondents learn the sender's key from the
    // outer header.
    "autocrypt",
];

/// Trace fields are the transport's, not the author's: not copied inside.
const TRACE: &[&str] = &["received", "return-path"];

/// The obscured Subject outside: RFC 9788's `hcp_baseline` value. Readers
/// that know header protection (Thunderbird, Delta Chat, ...) show the real
/// one from inside; others show this.
pub const OBSCURED_SUBJECT: &str = "[...]";

/// The outer Subject field when it is obscured.
const OBSCURED_FIELD: Field<'static> = Field {
    name: "Subject",
    raw: b"Subject: [...]\r\n",
};

/// How to encrypt one message.
pub struct Options<'a> {
    /// Hide recipient key IDs (wildcard), e.g. because of Bcc recipients.
    pub hide_recipients: bool,
    /// Replace the outer Subject with [`OBSCURED_SUBJECT`].
    pub protect_subject: bool,
    /// Sign with this key pair (the organisation's signing key).
    pub signer: Option<KeyPair>,
    pub policy: &'a dyn Policy,
}

/// Encrypts `message` (CRLF line endings) to every certificate in `certs`
/// and returns the PGP/MIME message to relay.
///
/// # Security
/// The result carries, readable, only the `OUTER` fields and the Subject
/// (obscured unless told otherwise); all other fields and the content are
/// inside the OpenPGP message. With `hide_recipients`, the PKESK packets carry
/// wildcard key IDs so no recipient learns another's key.
pub fn encrypt_mail(
    message: &[u8],
    certs: &[Cert],
    opts: Options<'_>,
) -> Result<Vec<u8>, CryptError> {
    encrypt_split(&split(message), certs, opts)
}

/// [`encrypt_mail`] of a message already split (e.g. by
/// [`crate::mail::Parsed`]), so the header is not read again.
pub fn encrypt_split(
    parts: &Split<'_>,
    certs: &[Cert],
    opts: Options<'_>,
) -> Result<Vec<u8>, CryptError> {
    let outer = outer_fields(&parts.fields, opts.protect_subject);
    let inner = inner_entity(&parts.fields, parts.body, &outer);
    let binary = seal_binary(
        &inner,
        certs,
        opts.hide_recipients,
        opts.signer,
        opts.policy,
    )?;
    let mut head = Vec::new();
    for f in &outer {
        head.extend_from_slice(f.raw);
    }
    Ok(wrap(&head, &binary))
}

/// The mailbox copy of `message` (CRLF) kept by the IMAP proxy: the whole
/// message, every byte, is the encrypted payload, so that decrypting gives
/// it back exactly; outside, the `OUTER` fields (threading, delivery), the
/// obscured Subject and `X-Sotto-Stored: whole` saying so. Signed by
/// `owner` (the mailbox owner's identity, secret parts usable): a copy is
/// taken as sotto's own, and shown whole, only with that signature.
pub fn encrypt_whole(
    message: &[u8],
    owner: &Cert,
    policy: &dyn Policy,
) -> Result<Vec<u8>, CryptError> {
    let parts = split(message);
    let signer = super::seal::signing_keypair(owner, policy)?;
    let public = owner.clone().strip_secret_key_material();
    let binary = seal_binary(message, &[public], false, Some(signer), policy)?;
    let mut head = Vec::new();
    for f in outer_fields(&parts.fields, true) {
        head.extend_from_slice(f.raw);
    }
    head.extend_from_slice(format!("{STORED_WHOLE}: whole\r\n").as_bytes());
    Ok(wrap(&head, &binary))
}

/// What a mailbox keeps of `message` for its owner: the message itself if
/// it really is ciphertext (to them or anyone: a PGP/MIME or inline PGP
/// message whose armour parses as an encrypted OpenPGP message; a label
/// alone is not enough), else [`encrypt_whole`].
pub fn mailbox_copy(
    message: Vec<u8>,
    owner: &Cert,
    policy: &dyn Policy,
) -> Result<Vec<u8>, CryptError> {
    if crate::inbound::message::is_ciphertext(&message) {
        return Ok(message);
    }
    encrypt_whole(&message, owner, policy)
}

/// The field [`encrypt_whole`] adds outside.
pub const STORED_WHOLE: &str = "X-Sotto-Stored";

/// A PGP/MIME message: the header fields `head` (raw, CRLF), then the
/// multipart/encrypted structure around the armoured `binary`.
fn wrap(head: &[u8], binary: &[u8]) -> Vec<u8> {
    let boundary = boundary();
    let mut out = Vec::with_capacity(binary.len() * 4 / 3 + 2048);
    out.extend_from_slice(head);
    out.extend_from_slice(b"MIME-Version: 1.0\r\n");
    out.extend_from_slice(
        format!(
            "Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\";\r\n boundary=\"{boundary}\"\r\n\r\n"
        )
        .as_bytes(),
    );
    out.extend_from_slice(b"This is an OpenPGP/MIME encrypted message (RFC 4880 and 3156)\r\n");
    out.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
    out.extend_from_slice(
        b"Content-Type: application/pgp-encrypted\r\nContent-Description: PGP/MIME version identification\r\n\r\nVersion: 1\r\n\r\n",
    );
    out.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
    out.extend_from_slice(
        b"Content-Type: application/octet-stream; name=\"encrypted.asc\"\r\n\
          Content-Description: OpenPGP encrypted message\r\n\
          Content-Disposition: inline; filename=\"encrypted.asc\"\r\n\r\n",
    );
    armor_into(binary, "\r\n", &mut out);
    out.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    out
}

/// The non-structural header fields of the outer message, raw (folding
/// kept): the `OUTER` fields as they came, and the Subject obscured (or as
/// it came when `protect_subject` is off).
pub fn outer_fields<'a>(fields: &[Field<'a>], protect_subject: bool) -> Vec<Field<'a>> {
    let mut out: Vec<Field<'a>> = fields
        .iter()
        .filter(|f| (f.is("subject") && !protect_subject) || OUTER.iter().any(|n| f.is(n)))
        .cloned()
        .collect();
    if protect_subject {
        out.push(OBSCURED_FIELD);
    }
    out
}

/// The Cryptographic Payload: the content's own `Content-*` fields (the
/// Content-Type marked `hp="cipher"` and `protected-headers="v1"`), the
/// message's other fields, an `HP-Outer` field for each of `outer` (the
/// outer message's non-structural fields, see [`outer_fields`]) but the
/// trace fields, then the body unchanged.
pub fn inner_entity(fields: &[Field<'_>], body: &[u8], outer: &[Field<'_>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 2048);
    let mut has_type = false;
    for f in fields.iter().filter(|f| f.is_content()) {
        if f.is("content-type") {
            has_type = true;
            let raw = f.raw.strip_suffix(b"\r\n").unwrap_or(f.raw);
            out.extend_from_slice(raw);
            out.extend_from_slice(HP_PARAMETERS);
        } else {
            out.extend_from_slice(f.raw);
        }
    }
    if !has_type {
        out.extend_from_slice(b"Content-Type: text/plain; charset=us-ascii");
        out.extend_from_slice(HP_PARAMETERS);
    }
    for f in fields
        .iter()
        .filter(|f| !f.is_content() && !f.is("mime-version"))
    {
        if !TRACE.iter().any(|n| f.is(n)) {
            out.extend_from_slice(f.raw);
        }
    }
    // Trace fields were added in transit before sotto, not exposed by the
    // composer: RFC 9788 gives them no HP-Outer.
    for f in outer.iter().filter(|f| !TRACE.iter().any(|n| f.is(n))) {
        out.extend_from_slice(b"HP-Outer: ");
        out.extend_from_slice(f.raw);
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

/// What the Cryptographic Payload's Content-Type gets (folded onto a line
/// of its own): RFC 9788's marker, and the older one Thunderbird and
/// Enigmail-era clients read.
const HP_PARAMETERS: &[u8] = b";\r\n protected-headers=\"v1\"; hp=\"cipher\"\r\n";

fn boundary() -> String {
    let mut bytes = [0u8; 12];
    sequoia_openpgp::crypto::random(&mut bytes).ok();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("sotto-{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only real ciphertext is kept as it came; a message that is merely
    /// labelled encrypted is encrypted.
    #[test]
    fn a_mailbox_copy_trusts_ciphertext_not_labels() {
        use sequoia_openpgp::cert::CertBuilder;
        let policy = sequoia_openpgp::policy::StandardPolicy::new();
        let (owner, _) = CertBuilder::general_purpose(Some("<alice@example.org>"))
            .generate()
            .unwrap();
        let plain = b"Subject: s\r\n\r\nwords\r\n".to_vec();
        let sealed = mailbox_copy(plain.clone(), &owner, &policy).unwrap();
        assert!(!String::from_utf8_lossy(&sealed).contains("words"));
        assert_eq!(
            mailbox_copy(sealed.clone(), &owner, &policy).unwrap(),
            sealed
        );
        let fake = b"Subject: s\r\nMIME-Version: 1.0\r\nContent-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n--b\r\nContent-Type: application/octet-stream\r\n\r\n-----BEGIN PGP MESSAGE-----\r\n\r\nsecret words in clear\r\n-----END PGP MESSAGE-----\r\n--b--\r\n".to_vec();
        let stored = mailbox_copy(fake, &owner, &policy).unwrap();
        assert!(!String::from_utf8_lossy(&stored).contains("secret words"));
    }

    #[test]
    fn inner_entity_keeps_body_and_protects_headers() {
        let msg = b"Received: from x\r\nFrom: a@x\r\nTo: b@y\r\nSubject: secret\r\n plans\r\nContent-Type: text/plain;\r\n charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\nMIME-Version: 1.0\r\n\r\nbody \xc3\xa9\r\n";
        let s = split(msg);
        assert_eq!(
            OBSCURED_FIELD.raw,
            format!("Subject: {OBSCURED_SUBJECT}\r\n").as_bytes()
        );
        let outer = outer_fields(&s.fields, true);
        let inner = inner_entity(&s.fields, s.body, &outer);
        let text = String::from_utf8_lossy(&inner);
        assert!(
            text.starts_with(
                "Content-Type: text/plain;\r\n charset=utf-8;\r\n protected-headers=\"v1\"; hp=\"cipher\"\r\n"
            ),
            "{text}"
        );
        assert!(text.contains("Subject: secret\r\n plans\r\n"));
        // One HP-Outer for each outer field the composer exposes, the
        // obscured Subject included; none for trace or structural fields.
        assert!(text.contains("HP-Outer: From: a@x\r\n"));
        assert!(text.contains("HP-Outer: To: b@y\r\n"));
        assert!(!text.contains("HP-Outer: Received"));
        assert!(text.contains("HP-Outer: Subject: [...]\r\n"));
        assert!(!text.contains("HP-Outer: Content"));
        assert!(!text.contains("HP-Outer: MIME"));
        assert_eq!(text.matches("HP-Outer:").count(), outer.len() - 1);
        assert!(!text.contains("\r\nReceived"));
        assert!(inner.ends_with(b"\r\n\r\nbody \xc3\xa9\r\n"));
    }
}
