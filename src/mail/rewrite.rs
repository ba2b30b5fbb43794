//! Rewriting the links of a message that stays readable: every part a
//! mail client shows, indexes or offers to open as text — the body's
//! text/plain and text/html, any text/* part or attachment, calendars,
//! vCards, parts named `.txt` `.html` `.htm` `.md` `.csv` `.ics` `.vcf`
//! whatever their type (see `readable`) — is decoded as its reader would
//! see it (transfer encoding, charset, format=flowed), rewritten in its own
//! syntax, and re-encoded the way it came; the Subject too. Forwarded
//! messages (message/rfc822, `.eml`, any message/* type, whatever their
//! disposition: readers show them as messages) are rewritten the same way,
//! their Subject included, however deep; a transfer-encoded one (or one
//! mail-parser did not parse in place) is decoded, rewritten and encoded
//! again, up to `MAX_ENCODED_DEPTH` deep, and read as plain text below
//! that. Everything else — parts no reader shows as text, boundaries,
//! headers but the Subject, the lines of a calendar or vCard without a
//! URL — stays byte for byte.

use mail_parser::{Encoding, Message, MessageParser, MessagePart, MimeHeaders, PartType};

use super::Parsed;
use super::codec::{self, Transfer};
use super::readable::{Reading, Syntax};
use crate::links::LinkRewriter;

/// How many transfer-encoded message/rfc822 levels are decoded and
/// rewritten (mail-parser itself parses three).
const MAX_ENCODED_DEPTH: usize = 3;

/// What the rewrite did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Report {
    /// Parts (and the Subject) that changed.
    pub parts: usize,
    /// URLs rewritten in them.
    pub urls: usize,
}

/// Replaces `start..end` of a message with new bytes.
type Edit = (usize, usize, Vec<u8>);

/// Rewrites the links in `message`; `None` when nothing changed.
pub fn rewrite_links(message: &[u8], rw: &LinkRewriter) -> Option<(Vec<u8>, Report)> {
    rewrite_message(message, rw, 0)
}

/// [`rewrite_links`] of a message whose header was already read: it is not
/// split again, and the MIME structure is parsed once.
pub fn rewrite_parsed(message: &Parsed, rw: &LinkRewriter) -> Option<(Vec<u8>, Report)> {
    if !message.has_header() {
        return rewrite_headerless(message.bytes(), rw);
    }
    rewrite_with_header(message.bytes(), rw, 0)
}

/// [`rewrite_links`] of a message `depth` transfer encodings down.
fn rewrite_message(message: &[u8], rw: &LinkRewriter, depth: usize) -> Option<(Vec<u8>, Report)> {
    if super::split(message).fields.is_empty() {
        // No header at all: the whole message is what a reader sees.
        return rewrite_headerless(message, rw);
    }
    rewrite_with_header(message, rw, depth)
}

/// The Subjects and readable parts of a message with a header, from one
/// parse: every edit is found in the same bytes and made in one pass.
fn rewrite_with_header(
    message: &[u8],
    rw: &LinkRewriter,
    depth: usize,
) -> Option<(Vec<u8>, Report)> {
    let msg = MessageParser::default().parse(message)?;
    let subjects: Vec<Edit> = messages(&msg)
        .into_iter()
        .filter_map(|m| subject_edit(message, m, rw))
        .collect();
    let mut edits: Vec<Edit> = Vec::new();
    let mut report = Report::default();
    for part in messages(&msg).into_iter().flat_map(|m| &m.parts) {
        let done = match &part.body {
            // Its parts are among the parts walked here.
            PartType::Message(_) if part.encoding == Encoding::None => None,
            PartType::Multipart(_) => None,
            // (A part with an encoding problem — e.g. no closing boundary —
            // is still shown by readers: it is rewritten too.)
            _ => readable_part_edit(message, part, rw, depth, &subjects),
        };
        if let Some((edit, r)) = done {
            edits.push(edit);
            report.parts += r.parts;
            report.urls += r.urls;
        }
    }
    if edits.is_empty() && subjects.is_empty() {
        return None;
    }
    report.parts += subjects.len();
    report.urls += subjects.len();
    // A part edit that rewrites its header (see `with_transfer_encoding`)
    // already carries the new Subject; `apply` then leaves the Subject's
    // own edit out, as it overlaps.
    edits.extend(subjects);
    Some((apply(message, edits), report))
}

/// `msg` and every message nested in it without a transfer encoding (whose
/// parts' offsets are into the same bytes), without recursion.
fn messages<'a, 'x>(msg: &'a Message<'x>) -> Vec<&'a Message<'x>> {
    let mut out = vec![msg];
    let mut i = 0;
    while let Some(m) = out.get(i).copied() {
        for part in &m.parts {
            if let PartType::Message(inner) = &part.body
                && part.encoding == Encoding::None
            {
                out.push(inner);
            }
        }
        i += 1;
    }
    out
}

/// `message` with `edits` made; an edit overlapping an earlier one is left out.
fn apply(message: &[u8], mut edits: Vec<Edit>) -> Vec<u8> {
    edits.sort_by_key(|e| e.0);
    let mut out = Vec::with_capacity(message.len() + 1024);
    let mut last = 0;
    for (start, end, bytes) in edits {
        if start < last {
            continue;
        }
        out.extend_from_slice(&message[last..start]);
        out.extend_from_slice(&bytes);
        last = end;
    }
    out.extend_from_slice(&message[last..]);
    out
}

/// A message without a header, read as plain text (UTF-8, else Windows-1252).
fn rewrite_headerless(message: &[u8], rw: &LinkRewriter) -> Option<(Vec<u8>, Report)> {
    let enc = if std::str::from_utf8(message).is_ok() {
        encoding_rs::UTF_8
    } else {
        encoding_rs::WINDOWS_1252
    };
    let text = codec::to_text(enc, message)?;
    let new = rw.rewrite_text(&text)?;
    Some((codec::from_text(enc, &new), Report { parts: 1, urls: 1 }))
}

/// A message in a part (forwarded in base64 or quoted-printable, or an
/// `.eml` attachment): decoded, rewritten, encoded the same way again.
fn message_part_edit(
    part: &MessagePart<'_>,
    raw: &[u8],
    transfer: Transfer,
    bytes: &[u8],
    rw: &LinkRewriter,
    depth: usize,
) -> Option<(Edit, Report)> {
    let (new, report) = rewrite_message(bytes, rw, depth + 1)?;
    let encoded = same_ending(codec::encode_transfer(transfer, &new), raw);
    Some((
        (part.offset_body as usize, part.offset_end as usize, encoded),
        report,
    ))
}

/// `encoded` ending as `raw` did (the CRLF before a boundary belongs to
/// the boundary).
fn same_ending(mut encoded: Vec<u8>, raw: &[u8]) -> Vec<u8> {
    let ends_crlf = raw.ends_with(b"\r\n");
    while encoded.ends_with(b"\r\n") && !ends_crlf {
        encoded.truncate(encoded.len() - 2);
    }
    if ends_crlf && !encoded.ends_with(b"\r\n") {
        encoded.extend_from_slice(b"\r\n");
    }
    encoded
}

/// A readable part with its URLs rewritten in its syntax, re-encoded as
/// it came.
fn readable_part_edit(
    message: &[u8],
    part: &MessagePart<'_>,
    rw: &LinkRewriter,
    depth: usize,
    subjects: &[Edit],
) -> Option<(Edit, Report)> {
    let mut reading = Reading::of(part)?;
    if let PartType::Message(_) = part.body {
        // (A digest's parts are messages without saying so.)
        reading.syntax = Syntax::Message;
    }
    let (start, end) = (part.offset_body as usize, part.offset_end as usize);
    let raw = message.get(start..end)?;
    let transfer = Transfer::parse(part.content_transfer_encoding())?;
    let bytes = codec::decode_transfer(transfer, raw)?;
    if reading.syntax == Syntax::Message {
        if depth < MAX_ENCODED_DEPTH {
            return message_part_edit(part, raw, transfer, &bytes, rw, depth);
        }
        // Deeper than sotto decodes messages: its text is still read.
        reading.syntax = Syntax::Plain;
    }
    let (data, urls) = reading.rewrite_bytes(&bytes, rw)?;
    // Longer lines than the part may carry as it is (a redirect link for a
    // long signed URL): it travels quoted-printable instead.
    let switch = transfer == Transfer::Identity && codec::has_long_line(&data);
    let transfer = if switch {
        Transfer::QuotedPrintable
    } else {
        transfer
    };
    let encoded = same_ending(codec::encode_transfer(transfer, &data), raw);
    let report = Report { parts: 1, urls };
    if switch {
        let header_start = part.offset_header as usize;
        let mut head =
            with_transfer_encoding(message, header_start..start, "quoted-printable", subjects);
        head.extend_from_slice(&encoded);
        Some(((header_start, end, head), report))
    } else {
        Some(((start, end, encoded), report))
    }
}

/// The part header at `range` of `message` (fields and the blank line)
/// with its Content-Transfer-Encoding set to `value`, and a Subject field
/// that one of `subjects` rewrites written rewritten.
fn with_transfer_encoding(
    message: &[u8],
    range: std::ops::Range<usize>,
    value: &str,
    subjects: &[Edit],
) -> Vec<u8> {
    let header = &message[range.clone()];
    let parts = super::split(header);
    let mut out = Vec::with_capacity(header.len() + 48);
    for f in parts
        .fields
        .iter()
        .filter(|f| !f.is("content-transfer-encoding"))
    {
        let at = range.start + (f.raw.as_ptr() as usize - header.as_ptr() as usize);
        match subjects.iter().find(|e| e.0 == at) {
            Some((_, _, new)) => out.extend_from_slice(new),
            None => out.extend_from_slice(f.raw),
        }
    }
    out.extend_from_slice(format!("Content-Transfer-Encoding: {value}\r\n\r\n").as_bytes());
    out
}

/// The new Subject field of `msg` (the message or one nested in it, whose
/// header is in `message`) when its decoded Subject holds a URL.
fn subject_edit(message: &[u8], msg: &Message<'_>, rw: &LinkRewriter) -> Option<Edit> {
    let new = rw.rewrite_text(msg.subject()?)?;
    let root = msg.parts.first()?;
    let header = message.get(root.offset_header as usize..root.offset_body as usize)?;
    let parts = super::split(header);
    let field = parts.fields.iter().find(|f| f.is("subject"))?;
    let start = field.raw.as_ptr() as usize - message.as_ptr() as usize;
    let value = codec::encode_words(&new);
    Some((
        start,
        start + field.raw.len(),
        format!("Subject: {value}\r\n").into_bytes(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LinksConfig;
    use crate::policy::LinkMode;

    fn strip() -> LinkRewriter {
        LinkRewriter::new(LinkMode::Strip, &LinksConfig::default(), None)
    }

    #[test]
    fn only_readable_parts_change() {
        let m = b"Subject: hi\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nGo to https://ex=\r\nample.com/r?token=3D1 now\r\n--b\r\nContent-Type: text/plain; name=x.txt\r\nContent-Disposition: attachment\r\n\r\nhttps://attached.example/\r\n--b\r\nContent-Type: application/pdf; name=x.pdf\r\nContent-Disposition: attachment\r\n\r\n/URI (https://pdf.example/)\r\n--b--\r\n";
        let (out, report) = rewrite_links(m, &strip()).unwrap();
        let text = String::from_utf8_lossy(&out);
        assert!(
            text.contains("Go to [link removed] now\r\n--b\r\n"),
            "{text}"
        );
        assert!(
            text.contains("attachment\r\n\r\n[link removed]\r\n--b\r\n"),
            "text attachments are read: {text}"
        );
        assert!(
            text.contains("/URI (https://pdf.example/)"),
            "other attachments stay: {text}"
        );
        assert_eq!(report.parts, 2);
        assert!(rewrite_links(b"Subject: none\r\n\r\nno links\r\n", &strip()).is_none());
        let (out, _) = rewrite_links(b"no header https://a.example/x\r\n", &strip()).unwrap();
        assert_eq!(out, b"no header [link removed]\r\n");
    }

    #[test]
    fn subject_and_charset() {
        let m = b"Subject: =?UTF-8?Q?see_https://s.example/x?=\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: 8bit\r\n\r\nCaf\xe9 https://l.example/p \xfc\r\n";
        let (out, report) = rewrite_links(m, &strip()).unwrap();
        assert_eq!(report.parts, 2);
        assert!(out.ends_with(b"Caf\xe9 [link removed] \xfc\r\n"));
        assert!(!String::from_utf8_lossy(&out).contains("s.example"));
    }

    #[test]
    fn utf16_parts_stay_utf16() {
        let mut m = b"Subject: u\r\nContent-Type: text/plain; charset=utf-16\r\n\r\n".to_vec();
        let text = "\u{feff}Caf\u{e9} https://l.example/p ok";
        let be: Vec<u8> = text.encode_utf16().flat_map(u16::to_be_bytes).collect();
        m.extend_from_slice(&be);
        let (out, _) = rewrite_links(&m, &strip()).unwrap();
        let body = &out[out.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4..];
        let (back, bad) = encoding_rs::UTF_16BE.decode_without_bom_handling(body);
        assert!(!bad);
        assert_eq!(back, "\u{feff}Caf\u{e9} [link removed] ok");
    }

    #[test]
    fn subject_kept_rewritten_when_the_part_header_is_rewritten_too() {
        // A single-part message whose rewritten body needs quoted-printable:
        // the part's header (the message's own) is written again, and must
        // carry the rewritten Subject, from the same parse.
        let long = format!("https://l.example/{}", "x".repeat(1200));
        let m = format!(
            "Subject: see https://s.example/x\r\nContent-Type: text/plain\r\n\r\nshort\r\n{long}\r\n"
        );
        let defang = LinkRewriter::new(LinkMode::Defang, &LinksConfig::default(), None);
        let (out, report) = rewrite_links(m.as_bytes(), &defang).unwrap();
        let text = String::from_utf8_lossy(&out);
        assert!(
            text.starts_with("Subject: see hxxps://s[.]example/x\r\n"),
            "{text}"
        );
        assert!(
            text.contains("Content-Transfer-Encoding: quoted-printable\r\n"),
            "{text}"
        );
        assert!(!text.contains("https://"), "{text}");
        assert_eq!(report.parts, 2);
        let parsed = Parsed::new(m.into_bytes());
        assert_eq!(rewrite_parsed(&parsed, &defang).unwrap().0, out);
    }

    #[test]
    fn nested_subjects_and_parts() {
        let m = b"Subject: outer\r\nContent-Type: message/rfc822\r\n\r\nSubject: see https://s.example/inner\r\n\r\nand https://b.example/inner\r\n";
        let (out, report) = rewrite_links(m, &strip()).unwrap();
        assert_eq!(
            out,
            b"Subject: outer\r\nContent-Type: message/rfc822\r\n\r\nSubject: see [link removed]\r\n\r\nand [link removed]\r\n"
        );
        assert_eq!(report.parts, 2);
    }
}
