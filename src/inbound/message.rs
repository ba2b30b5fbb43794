//! What the inbound path does to a message's bytes (no I/O, no keys): drop
//! record fields someone else wrote, find the OpenPGP message in PGP/MIME
//! or inline PGP, and build what the mailbox gets from the decrypted
//! content, its protected header fields shown (RFC 9788).

use mail_parser::{MessageParser, MimeHeaders, PartType};

use crate::mail::{Field, crlf, split};

/// The field sotto adds to what it decrypted, and removes from every
/// message that arrives (nobody else may write it).
pub const RECORD: &str = "X-Sotto-Inbound";

/// `message` without any `X-Sotto-Inbound` field in its header; `None` if
/// it had none (the bytes stay as they are).
pub fn strip_record(message: &[u8]) -> Option<Vec<u8>> {
    let s = split(message);
    if !s.fields.iter().any(|f| f.is(RECORD)) {
        return None;
    }
    let mut out = Vec::with_capacity(message.len());
    for f in s.fields.iter().filter(|f| !f.is(RECORD)) {
        out.extend_from_slice(f.raw);
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(s.body);
    Some(out)
}

/// Where the OpenPGP message is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sealed {
    /// PGP/MIME (RFC 3156): the encrypted part's content (armoured).
    PgpMime(Vec<u8>),
    /// Inline PGP in a single `text/plain` body: the armoured block, and
    /// the body around it.
    Inline {
        before: Vec<u8>,
        armored: Vec<u8>,
        after: Vec<u8>,
    },
}

/// The OpenPGP message `message` carries, if it is PGP/MIME or a
/// `text/plain` body holding one armoured PGP message.
/// Whether `message` really holds ciphertext (PGP/MIME or inline PGP
/// whose armour is an encrypted OpenPGP message), not only looks so.
pub fn is_ciphertext(message: &[u8]) -> bool {
    match sealed(message) {
        Some(Sealed::PgpMime(a)) => crate::openpgp::open::is_encrypted(&a),
        Some(Sealed::Inline { armored, .. }) => crate::openpgp::open::is_encrypted(&armored),
        None => false,
    }
}

pub fn sealed(message: &[u8]) -> Option<Sealed> {
    let parsed = MessageParser::default().parse(message)?;
    let root = parsed.root_part();
    let ct = root.content_type()?;
    let kind = format!(
        "{}/{}",
        ct.ctype().to_ascii_lowercase(),
        ct.subtype().unwrap_or_default().to_ascii_lowercase()
    );
    match kind.as_str() {
        "multipart/encrypted" => {
            let PartType::Multipart(children) = &root.body else {
                return None;
            };
            // The second part holds the message (RFC 3156 section 4).
            let part = parsed.part(*children.get(1)?)?;
            let armored = part.contents().to_vec();
            contains_armor(&armored).then_some(Sealed::PgpMime(armored))
        }
        "text/plain" => {
            let body = root.contents();
            let begin = find(body, b"-----BEGIN PGP MESSAGE-----")?;
            let end_marker = b"-----END PGP MESSAGE-----";
            let end = begin + find(&body[begin..], end_marker)? + end_marker.len();
            Some(Sealed::Inline {
                before: body[..begin].to_vec(),
                armored: body[begin..end].to_vec(),
                after: body[end..].to_vec(),
            })
        }
        _ => None,
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn contains_armor(b: &[u8]) -> bool {
    find(b, b"-----BEGIN PGP MESSAGE-----").is_some()
}

fn is_content(f: &Field<'_>) -> bool {
    f.name.len() >= 8 && f.name[..8].eq_ignore_ascii_case("content-")
}

/// Fields of the decrypted part that are not shown to the reader: the
/// RFC 9788 record of the outer header, Autocrypt gossip (keys, read by
/// sotto), and sotto's own fields, which only sotto writes (a sender who
/// protects an `X-Sotto-Inbound` field would forge sotto's record).
fn is_internal(f: &Field<'_>) -> bool {
    f.is("hp-outer")
        || f.is("autocrypt-gossip")
        || f.is("mime-version")
        || f.is(RECORD)
        || f.is(crate::openpgp::pgpmime::STORED_WHOLE)
}

/// What the mailbox gets for a PGP/MIME message whose encrypted part
/// decrypted to `plaintext` (a MIME entity): `record` first, the outer
/// header without its MIME fields, each field the decrypted part protects
/// (RFC 9788 / "protected headers v1": any field but `Content-*` in its
/// header) replacing the outer one of that name (the obscured Subject
/// among them), then the decrypted part's MIME fields and body.
pub fn delivered_pgp_mime(outer: &[u8], plaintext: &[u8], record: &str) -> Vec<u8> {
    let plaintext = crlf(plaintext);
    let inner = split(&plaintext);
    let outer = split(outer);
    let protected: Vec<&Field<'_>> = inner
        .fields
        .iter()
        .filter(|f| !is_content(f) && !is_internal(f))
        .collect();
    let mut out = Vec::with_capacity(outer.body.len() + plaintext.len() + 1024);
    out.extend_from_slice(format!("{RECORD}: {record}\r\n").as_bytes());
    for f in &outer.fields {
        let replaced = protected.iter().any(|p| p.is(f.name));
        if !replaced && !is_content(f) && !f.is("mime-version") && !is_internal(f) {
            out.extend_from_slice(f.raw);
        }
    }
    for f in &protected {
        out.extend_from_slice(f.raw);
    }
    out.extend_from_slice(b"MIME-Version: 1.0\r\n");
    let mut has_type = false;
    for f in inner.fields.iter().filter(|f| is_content(f)) {
        has_type |= f.is("content-type");
        out.extend_from_slice(f.raw);
    }
    if !has_type {
        out.extend_from_slice(b"Content-Type: text/plain; charset=utf-8\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(inner.body);
    out
}

/// What the mailbox gets for an inline-PGP message: `record` first, the
/// header as it came, and the body with the armoured block replaced by
/// `plaintext`.
pub fn delivered_inline(
    outer: &[u8],
    before: &[u8],
    plaintext: &[u8],
    after: &[u8],
    record: &str,
) -> Vec<u8> {
    let outer = split(outer);
    let mut out = Vec::with_capacity(outer.body.len() + plaintext.len() + 256);
    out.extend_from_slice(format!("{RECORD}: {record}\r\n").as_bytes());
    for f in outer.fields.iter().filter(|f| !f.is(RECORD)) {
        // The body is now the plaintext as decrypted: 8bit, not encoded.
        if f.is("content-transfer-encoding") {
            out.extend_from_slice(b"Content-Transfer-Encoding: 8bit\r\n");
        } else {
            out.extend_from_slice(f.raw);
        }
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&crlf(before));
    out.extend_from_slice(&crlf(plaintext));
    out.extend_from_slice(&crlf(after));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUTER: &[u8] = b"Received: from x\r\nFrom: <bob@o.example>\r\nTo: <alice@example.org>\r\nSubject: [...]\r\nX-Sotto-Inbound: decrypted; forged\r\nMIME-Version: 1.0\r\nContent-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\";\r\n boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n\r\n--b1\r\nContent-Type: application/octet-stream\r\n\r\n-----BEGIN PGP MESSAGE-----\r\n\r\nwcBM\r\n-----END PGP MESSAGE-----\r\n\r\n--b1--\r\n";

    #[test]
    fn forged_records_are_removed() {
        let clean = strip_record(OUTER).unwrap();
        assert!(!String::from_utf8_lossy(&clean).contains("forged"));
        assert!(strip_record(&clean).is_none());
    }

    #[test]
    fn protected_sotto_fields_are_not_shown() {
        let inner = b"X-Sotto-Inbound: decrypted; signature=good; forged\r\nSubject: real\r\n\
X-Sotto-Stored: whole\r\nContent-Type: text/plain\r\n\r\nbody\r\n";
        let out = delivered_pgp_mime(OUTER, inner, "decrypted; key=K");
        let out = String::from_utf8_lossy(&out);
        assert!(
            out.starts_with("X-Sotto-Inbound: decrypted; key=K\r\n"),
            "{out}"
        );
        assert_eq!(out.matches("X-Sotto-Inbound").count(), 1, "{out}");
        assert!(
            !out.contains("X-Sotto-Stored") && out.contains("Subject: real"),
            "{out}"
        );
    }

    #[test]
    fn pgp_mime_and_inline_are_found() {
        match sealed(OUTER) {
            Some(Sealed::PgpMime(a)) => assert!(a.starts_with(b"-----BEGIN PGP MESSAGE-----")),
            other => panic!("{other:?}"),
        }
        let inline = b"From: a@b\r\nContent-Type: text/plain\r\n\r\nhi\r\n-----BEGIN PGP MESSAGE-----\r\n\r\nabc\r\n-----END PGP MESSAGE-----\r\nbye\r\n";
        match sealed(inline) {
            Some(Sealed::Inline {
                before,
                armored,
                after,
            }) => {
                assert_eq!(before, b"hi\r\n");
                assert!(armored.ends_with(b"-----END PGP MESSAGE-----"));
                assert_eq!(after, b"\r\nbye\r\n");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(sealed(b"From: a@b\r\n\r\nplain\r\n"), None);
    }

    #[test]
    fn protected_fields_replace_the_outer_ones() {
        let inner = b"Content-Type: text/plain; charset=utf-8; protected-headers=\"v1\"; hp=\"cipher\"\nSubject: real plans\nFrom: <bob@o.example>\nHP-Outer: Subject: [...]\nAutocrypt-Gossip: addr=c@d; keydata=AAAA\n\nbody\n";
        let out = delivered_pgp_mime(OUTER, inner, "decrypted; signature=none");
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("X-Sotto-Inbound: decrypted; signature=none\r\nReceived: from x\r\nTo: <alice@example.org>\r\n"), "{text}");
        assert!(text.contains("Subject: real plans\r\n"));
        assert!(!text.contains("[...]"));
        assert!(!text.contains("forged"));
        assert!(!text.contains("HP-Outer") && !text.contains("Autocrypt-Gossip"));
        assert_eq!(text.matches("From:").count(), 1);
        assert!(text.contains(
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8; protected-headers"
        ));
        assert!(text.ends_with("\r\n\r\nbody\r\n"));
    }
}
