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

use std::io::Write;

use sequoia_openpgp::Cert;
use sequoia_openpgp::cert::Preferences;
use sequoia_openpgp::cert::amalgamation::ValidAmalgamation;
use sequoia_openpgp::crypto::KeyPair;
use sequoia_openpgp::policy::Policy;
use sequoia_openpgp::serialize::stream::{Encryptor, LiteralWriter, Message, Recipient, Signer};

use crate::mail::{Field, Split, split};

/// Header fields left readable outside the encryption: trace fields and what
/// delivery and threading need. Everything else travels inside only.
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

/// Why a message could not be encrypted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CryptError {
    #[error("no recipient has a usable encryption key")]
    NoRecipients,
    #[error("OpenPGP: {0}")]
    OpenPgp(String),
}

impl From<sequoia_openpgp::Error> for CryptError {
    fn from(e: sequoia_openpgp::Error) -> Self {
        CryptError::OpenPgp(e.to_string())
    }
}

fn pgp<T>(r: sequoia_openpgp::Result<T>) -> Result<T, CryptError> {
    r.map_err(|e| CryptError::OpenPgp(e.to_string()))
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
    let boundary = boundary();
    let mut out = Vec::with_capacity(binary.len() * 4 / 3 + 2048);
    for f in &outer {
        out.extend_from_slice(f.raw);
    }
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
    armor_into(&binary, "\r\n", &mut out);
    out.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    Ok(out)
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

/// Encrypts (and optionally signs) `data` to the transport-encryption keys
/// of `certs`, ASCII-armoured (lines end in LF).
pub fn seal(
    data: &[u8],
    certs: &[Cert],
    hide: bool,
    signer: Option<KeyPair>,
    policy: &dyn Policy,
) -> Result<Vec<u8>, CryptError> {
    let binary = seal_binary(data, certs, hide, signer, policy)?;
    let mut out = Vec::with_capacity(binary.len() * 4 / 3 + 128);
    armor_into(&binary, "\n", &mut out);
    Ok(out)
}

/// ASCII armour of an OpenPGP message (RFC 9580 6.2), lines ending in
/// `eol`, appended to `out`: 64 base64 characters a line, then the CRC-24
/// footer (optional in RFC 9580, but GnuPG 2.2 misreads the end of an
/// armour without one when the base64 has no padding). Written here rather
/// than by Sequoia's streaming armourer, which cost about 5% of sotto's CPU
/// under load (perf).
pub fn armor_into(binary: &[u8], eol: &str, out: &mut Vec<u8>) {
    use base64::Engine;
    let engine = &base64::engine::general_purpose::STANDARD;
    let b64 = engine.encode(binary);
    out.extend_from_slice(b"-----BEGIN PGP MESSAGE-----");
    out.extend_from_slice(eol.as_bytes());
    out.extend_from_slice(eol.as_bytes());
    for line in b64.as_bytes().chunks(64) {
        out.extend_from_slice(line);
        out.extend_from_slice(eol.as_bytes());
    }
    out.push(b'=');
    out.extend_from_slice(engine.encode(&crc24(binary).to_be_bytes()[1..]).as_bytes());
    out.extend_from_slice(eol.as_bytes());
    out.extend_from_slice(b"-----END PGP MESSAGE-----");
    out.extend_from_slice(eol.as_bytes());
}

/// Encrypts (and optionally signs) `data` to the transport-encryption keys
/// of `certs`: the binary OpenPGP message.
pub fn seal_binary(
    data: &[u8],
    certs: &[Cert],
    hide: bool,
    signer: Option<KeyPair>,
    policy: &dyn Policy,
) -> Result<Vec<u8>, CryptError> {
    let mut recipients: Vec<Recipient<'_>> = Vec::new();
    for cert in certs {
        let vc = pgp(cert.with_policy(policy, None))?;
        for ka in vc
            .keys()
            .supported()
            .alive()
            .revoked(false)
            .for_transport_encryption()
        {
            let r: Recipient<'_> = if hide {
                Recipient::new(ka.valid_cert().features(), None, ka.key())
            } else {
                ka.into()
            };
            recipients.push(r);
        }
    }
    if recipients.is_empty() {
        return Err(CryptError::NoRecipients);
    }
    let mut sink = Vec::with_capacity(data.len() + 1024);
    let message = Message::new(&mut sink);
    let message = pgp(Encryptor::for_recipients(message, recipients).build())?;
    let message = match signer {
        Some(kp) => pgp(Signer::new(message, kp).and_then(|s| s.build()))?,
        None => message,
    };
    let mut literal = pgp(LiteralWriter::new(message).build())?;
    literal
        .write_all(data)
        .map_err(|e| CryptError::OpenPgp(e.to_string()))?;
    pgp(literal.finalize())?;
    Ok(sink)
}

fn boundary() -> String {
    let mut bytes = [0u8; 12];
    sequoia_openpgp::crypto::random(&mut bytes).ok();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("sotto-{hex}")
}

/// The signing key pair of an organisation key (a TSK with an unencrypted
/// signing-capable secret key).
pub fn signing_keypair(tsk: &Cert, policy: &dyn Policy) -> Result<KeyPair, CryptError> {
    let ka = pgp(tsk.with_policy(policy, None))?
        .keys()
        .secret()
        .supported()
        .alive()
        .revoked(false)
        .for_signing()
        .next()
        .ok_or_else(|| {
            CryptError::OpenPgp("the signing key has no usable secret signing key".into())
        })?;
    pgp(ka.key().clone().into_keypair())
}

#[cfg(test)]
mod tests {
    use super::*;

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

/// CRC-24 of RFC 9580 6.1.1, table-driven.
fn crc24(data: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut t = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut crc = (i as u32) << 16;
            let mut bit = 0;
            while bit < 8 {
                crc <<= 1;
                if crc & 0x100_0000 != 0 {
                    crc ^= 0x186_4CFB;
                }
                bit += 1;
            }
            t[i] = crc & 0xFF_FFFF;
            i += 1;
        }
        t
    };
    let mut crc: u32 = 0xB7_04CE;
    for &b in data {
        crc = ((crc << 8) ^ TABLE[(((crc >> 16) as u8) ^ b) as usize]) & 0xFF_FFFF;
    }
    crc
}

#[cfg(test)]
mod armor_tests {
    #[test]
    fn crc24_matches_the_rfc_check_value() {
        // CRC-24/OPENPGP of "123456789".
        assert_eq!(super::crc24(b"123456789"), 0x21CF02);
    }
}
