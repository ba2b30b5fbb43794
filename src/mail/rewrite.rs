//! Rewriting the links of a message that stays readable: each text/plain
//! and text/html part (attachments excepted) is decoded as its reader would
//! see it (transfer encoding, charset, format=flowed), rewritten, and
//! re-encoded the way it came; the Subject too. Everything else — other
//! parts, boundaries, headers — stays byte for byte.

use mail_parser::{MessageParser, MimeHeaders, PartType};

use super::codec::{self, Transfer};
use crate::links::{LinkRewriter, html};

/// What the rewrite did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Report {
    /// Parts (and the Subject) that changed.
    pub parts: usize,
    /// URLs rewritten in them.
    pub urls: usize,
}

/// Rewrites the links in `message`; `None` when nothing changed.
pub fn rewrite_links(message: &[u8], rw: &LinkRewriter) -> Option<(Vec<u8>, Report)> {
    if super::split(message).fields.is_empty() {
        // No header at all: the whole message is what a reader sees.
        return rewrite_headerless(message, rw);
    }
    let msg = MessageParser::default().parse(message)?;
    // The Subject first: a part's header edit may cover the same bytes.
    if let Some((start, end, field)) = subject_edit(message, msg.subject(), rw) {
        let mut changed = Vec::with_capacity(message.len() + 256);
        changed.extend_from_slice(&message[..start]);
        changed.extend_from_slice(&field);
        changed.extend_from_slice(&message[end..]);
        let (out, mut report) = rewrite_parts(&changed, rw).unwrap_or((changed, Report::default()));
        report.parts += 1;
        report.urls += 1;
        return Some((out, report));
    }
    rewrite_parts(message, rw)
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

/// Rewrites the readable parts' links; `None` when nothing changed.
fn rewrite_parts(message: &[u8], rw: &LinkRewriter) -> Option<(Vec<u8>, Report)> {
    let msg = MessageParser::default().parse(message)?;
    let mut edits: Vec<(usize, usize, Vec<u8>)> = Vec::new();
    let mut report = Report::default();
    for part in &msg.parts {
        // (A part with an encoding problem — e.g. no closing boundary — is
        // still shown by readers: it is rewritten too.)
        if !matches!(part.body, PartType::Text(_) | PartType::Html(_)) {
            continue;
        }
        if part
            .content_disposition()
            .is_some_and(|d| d.ctype().eq_ignore_ascii_case("attachment"))
        {
            continue;
        }
        let (subtype, charset, flowed, delsp) = match part.content_type() {
            Some(ct) if ct.ctype().eq_ignore_ascii_case("text") => {
                let sub = ct.subtype().unwrap_or("plain").to_ascii_lowercase();
                let flowed = ct
                    .attribute("format")
                    .is_some_and(|f| f.eq_ignore_ascii_case("flowed"));
                let delsp = ct
                    .attribute("delsp")
                    .is_some_and(|d| d.eq_ignore_ascii_case("yes"));
                (
                    sub,
                    ct.attribute("charset").map(str::to_string),
                    flowed,
                    delsp,
                )
            }
            Some(_) => continue,
            None => ("plain".to_string(), None, false, false),
        };
        if subtype != "plain" && subtype != "html" {
            continue;
        }
        let (start, end) = (part.offset_body as usize, part.offset_end as usize);
        let Some(raw) = message.get(start..end) else {
            continue;
        };
        let Some(transfer) = Transfer::parse(part.content_transfer_encoding()) else {
            continue;
        };
        let Some(bytes) = codec::decode_transfer(transfer, raw) else {
            continue;
        };
        let enc = codec::charset(charset.as_deref());
        // Bytes invalid in the declared charset: read as the reader would,
        // with replacement characters, rather than leave the part's URLs.
        let text = codec::to_text(enc, &bytes)
            .unwrap_or_else(|| enc.decode_without_bom_handling(&bytes).0.into_owned());
        let (new_text, urls) = if subtype == "html" {
            match html::rewrite(&text, rw) {
                Some(x) => x,
                None => continue,
            }
        } else if flowed {
            let plain = codec::unflow(&text, delsp);
            match rw.rewrite_text(&plain) {
                Some(new) => (codec::reflow(&new, delsp), 1),
                None => continue,
            }
        } else {
            match rw.rewrite_text(&text) {
                Some(new) => (new, 1),
                None => continue,
            }
        };
        let data = codec::from_text(enc, &new_text);
        // Longer lines than the part may carry as it is (a redirect link
        // for a long signed URL): it travels quoted-printable instead.
        let switch = transfer == Transfer::Identity && codec::has_long_line(&data);
        let transfer = if switch {
            Transfer::QuotedPrintable
        } else {
            transfer
        };
        let mut encoded = codec::encode_transfer(transfer, &data);
        // The part keeps the shape of its ending (the CRLF before a
        // boundary belongs to the boundary).
        let ends_crlf = raw.ends_with(b"\r\n");
        while encoded.ends_with(b"\r\n") && !ends_crlf {
            encoded.truncate(encoded.len() - 2);
        }
        if ends_crlf && !encoded.ends_with(b"\r\n") {
            encoded.extend_from_slice(b"\r\n");
        }
        report.parts += 1;
        report.urls += urls;
        if switch {
            let header_start = part.offset_header as usize;
            let mut head =
                with_transfer_encoding(&message[header_start..start], "quoted-printable");
            head.extend_from_slice(&encoded);
            edits.push((header_start, end, head));
        } else {
            edits.push((start, end, encoded));
        }
    }
    if edits.is_empty() {
        return None;
    }
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
    Some((out, report))
}

/// A part header (fields and the blank line) with its
/// Content-Transfer-Encoding set to `value`.
fn with_transfer_encoding(header: &[u8], value: &str) -> Vec<u8> {
    let parts = super::split(header);
    let mut out = Vec::with_capacity(header.len() + 48);
    for f in parts
        .fields
        .iter()
        .filter(|f| !f.is("content-transfer-encoding"))
    {
        out.extend_from_slice(f.raw);
    }
    out.extend_from_slice(format!("Content-Transfer-Encoding: {value}\r\n\r\n").as_bytes());
    out
}

/// The new Subject field when the decoded Subject holds a URL.
fn subject_edit(
    message: &[u8],
    subject: Option<&str>,
    rw: &LinkRewriter,
) -> Option<(usize, usize, Vec<u8>)> {
    let new = rw.rewrite_text(subject?)?;
    let parts = super::split(message);
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
        let m = b"Subject: hi\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nGo to https://ex=\r\nample.com/r?token=3D1 now\r\n--b\r\nContent-Type: text/plain; name=x.txt\r\nContent-Disposition: attachment\r\n\r\nhttps://attached.example/\r\n--b--\r\n";
        let (out, report) = rewrite_links(m, &strip()).unwrap();
        let text = String::from_utf8_lossy(&out);
        assert!(
            text.contains("Go to [link removed] now\r\n--b\r\n"),
            "{text}"
        );
        assert!(
            text.contains("https://attached.example/"),
            "attachments stay: {text}"
        );
        assert_eq!(report.parts, 1);
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
}
