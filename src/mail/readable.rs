//! What a MIME part is to the programs that show, index or open it as
//! text — and so to link scanners —, and its content with the URLs
//! rewritten in its own syntax: plain text (format=flowed joined), HTML,
//! CSV, iCalendar, vCard. A calendar or vCard sotto cannot read line by
//! line is read as plain text. Bytes are decoded in the part's charset and
//! written back in it. Messages (`.eml`, `message/*`) are told apart here
//! and rewritten by `rewrite`, which walks them.

use mail_parser::{MessagePart, MimeHeaders};

use super::{codec, contentline, csv, ical, vcard};
use crate::links::{LinkRewriter, html};

/// The syntax a part is read in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Syntax {
    Plain,
    Html,
    /// A table (CSV, or tab-separated when `tabs`): URLs end with their field.
    Table {
        tabs: bool,
    },
    Calendar,
    VCard,
    /// A whole message (`.eml`, `message/*`).
    Message,
}

/// How a readable part is read and written back.
#[derive(Debug, Clone)]
pub struct Reading {
    pub syntax: Syntax,
    charset: Option<String>,
    flowed: bool,
    delsp: bool,
    /// No charset declared and not UTF-8: read as Windows-1252, which
    /// gives every byte back (parts sotto always read, the body's
    /// text/plain and text/html, keep their way: UTF-8 with replacement
    /// characters, as mail-parser shows them).
    guess_charset: bool,
}

/// The syntax a file name's extension says, for a part whose type does not.
fn by_extension(name: &str) -> Option<Syntax> {
    let ext = name.rsplit_once('.')?.1.trim().to_ascii_lowercase();
    Some(match ext.as_str() {
        "txt" | "md" => Syntax::Plain,
        "csv" => Syntax::Table { tabs: false },
        "tsv" => Syntax::Table { tabs: true },
        "html" | "htm" => Syntax::Html,
        "ics" => Syntax::Calendar,
        "vcf" => Syntax::VCard,
        "eml" => Syntax::Message,
        _ => return None,
    })
}

impl Reading {
    /// How `part` is read; `None` for a part no reader shows as text
    /// (images, PDFs, archives… unless named as text).
    pub fn of(part: &MessagePart<'_>) -> Option<Reading> {
        let attachment = part
            .content_disposition()
            .is_some_and(|d| d.ctype().eq_ignore_ascii_case("attachment"));
        let ct = part.content_type();
        let (ctype, sub) = match ct {
            Some(ct) => (
                ct.ctype().to_ascii_lowercase(),
                ct.subtype().unwrap_or("plain").to_ascii_lowercase(),
            ),
            None => ("text".to_string(), "plain".to_string()),
        };
        let by_type = match (ctype.as_str(), sub.as_str()) {
            ("text", "html") => Some(Syntax::Html),
            ("text", "csv") => Some(Syntax::Table { tabs: false }),
            ("text", "tab-separated-values") => Some(Syntax::Table { tabs: true }),
            ("text", "calendar" | "x-vcalendar") | ("application", "ics") => Some(Syntax::Calendar),
            ("text", "vcard" | "x-vcard" | "directory") => Some(Syntax::VCard),
            ("message", _) => Some(Syntax::Message),
            _ => None,
        };
        let syntax = by_type
            .or_else(|| part.attachment_name().and_then(by_extension))
            .or_else(|| (ctype == "text").then_some(Syntax::Plain))?;
        let always_read = !attachment && ctype == "text" && (sub == "plain" || sub == "html");
        let is = |name: &str, value: &str| {
            ct.and_then(|c| c.attribute(name))
                .is_some_and(|v| v.eq_ignore_ascii_case(value))
        };
        Some(Reading {
            syntax,
            charset: ct.and_then(|c| c.attribute("charset")).map(str::to_string),
            flowed: syntax == Syntax::Plain && is("format", "flowed"),
            delsp: is("delsp", "yes"),
            guess_charset: !always_read,
        })
    }

    /// The URLs of `text` (decoded) rewritten; `None` when nothing changed.
    fn rewrite(&self, text: &str, rw: &LinkRewriter) -> Option<(String, usize)> {
        let lines = |r: Result<Option<(String, usize)>, contentline::Unparsable>| match r {
            Ok(done) => done,
            Err(_) => Some((rw.rewrite_text(text)?, 1)),
        };
        match self.syntax {
            Syntax::Html => html::rewrite(text, rw),
            Syntax::Table { tabs } => csv::rewrite(text, csv::delimiter(text, tabs), rw),
            Syntax::Calendar => lines(ical::rewrite(text, rw)),
            Syntax::VCard => lines(vcard::rewrite(text, rw)),
            Syntax::Plain | Syntax::Message if self.flowed => {
                let plain = codec::unflow(text, self.delsp);
                let new = rw.rewrite_text(&plain)?;
                Some((codec::reflow(&new, self.delsp), 1))
            }
            Syntax::Plain | Syntax::Message => Some((rw.rewrite_text(text)?, 1)),
        }
    }

    /// The part's content (transfer-decoded) with its URLs rewritten;
    /// `None` when nothing changed. A message is read as plain text here
    /// (what `rewrite` does past its depth limit).
    pub fn rewrite_bytes(&self, bytes: &[u8], rw: &LinkRewriter) -> Option<(Vec<u8>, usize)> {
        let mut enc = codec::charset(self.charset.as_deref());
        if self.charset.is_none() && self.guess_charset && std::str::from_utf8(bytes).is_err() {
            enc = encoding_rs::WINDOWS_1252;
        }
        if codec::is_utf16(enc)
            && let Some((bom, _)) = encoding_rs::Encoding::for_bom(bytes)
        {
            // Readers follow the byte order mark of a UTF-16 part.
            enc = bom;
        }
        // Bytes invalid in the declared charset: read as the reader would,
        // with replacement characters, rather than leave the part's URLs.
        let text = codec::to_text(enc, bytes)
            .unwrap_or_else(|| enc.decode_without_bom_handling(bytes).0.into_owned());
        let declared = self
            .rewrite(&text, rw)
            .map(|(new, n)| (codec::from_text(enc, &new), n));
        if !codec::is_utf16(enc) {
            return declared;
        }
        // ASCII bytes under a UTF-16 label: readers see CJK, a provider's
        // scanner the URLs. Those go too (rewritten output is UTF-16, so
        // nothing is rewritten twice).
        let (data, n) = declared.clone().unwrap_or_else(|| (bytes.to_vec(), 0));
        match rw.rewrite_text(&codec::bytes_view(&data)) {
            Some(new) => Some((codec::from_bytes_view(&new), n + 1)),
            None => declared,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_parser::MessageParser;

    fn reading(headers: &str) -> Option<Reading> {
        let m = format!(
            "Subject: x\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n{headers}\r\n\r\nbody\r\n--b--\r\n"
        );
        let msg = MessageParser::default().parse(m.as_bytes()).unwrap();
        Reading::of(&msg.parts[1])
    }

    #[test]
    fn types_and_names_say_how_a_part_is_read() {
        for (headers, want) in [
            ("Content-Type: text/plain", Some(Syntax::Plain)),
            (
                "Content-Type: text/plain\r\nContent-Disposition: attachment",
                Some(Syntax::Plain),
            ),
            ("Content-Type: text/enriched", Some(Syntax::Plain)),
            (
                "Content-Type: text/x-diff; name=a.patch",
                Some(Syntax::Plain),
            ),
            ("Content-Type: text/html; name=a.txt", Some(Syntax::Html)),
            (
                "Content-Type: text/calendar; method=REQUEST",
                Some(Syntax::Calendar),
            ),
            ("Content-Type: application/ics", Some(Syntax::Calendar)),
            ("Content-Type: text/x-vcard", Some(Syntax::VCard)),
            ("Content-Type: text/directory", Some(Syntax::VCard)),
            (
                "Content-Type: message/delivery-status",
                Some(Syntax::Message),
            ),
            (
                "Content-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"Invite.ICS\"",
                Some(Syntax::Calendar),
            ),
            (
                "Content-Type: application/octet-stream; name=card.vcf",
                Some(Syntax::VCard),
            ),
            (
                "Content-Type: application/octet-stream; name=fwd.eml",
                Some(Syntax::Message),
            ),
            (
                "Content-Type: text/plain; name=page.htm",
                Some(Syntax::Html),
            ),
            (
                "Content-Type: image/png; name=notes.md",
                Some(Syntax::Plain),
            ),
            (
                "Content-Type: application/vnd.ms-excel; name=data.csv",
                Some(Syntax::Table { tabs: false }),
            ),
            (
                "Content-Type: text/tab-separated-values",
                Some(Syntax::Table { tabs: true }),
            ),
            ("Content-Type: application/pdf; name=report.pdf", None),
            ("Content-Type: application/octet-stream; name=txt", None),
            ("Content-Type: image/png", None),
        ] {
            assert_eq!(reading(headers).map(|r| r.syntax), want, "{headers}");
        }
    }

    #[test]
    fn undeclared_charsets_keep_every_byte() {
        let rw = crate::links::test_rewriter(crate::policy::LinkMode::Strip);
        let r = reading("Content-Type: application/octet-stream; name=a.txt").unwrap();
        let mut bytes: Vec<u8> = (0..=255u8).filter(|b| !b.is_ascii_alphanumeric()).collect();
        bytes.extend_from_slice(b" https://a.example/x ");
        let (out, _) = r.rewrite_bytes(&bytes, &rw).unwrap();
        let mut want: Vec<u8> = (0..=255u8).filter(|b| !b.is_ascii_alphanumeric()).collect();
        want.extend_from_slice(b" [link removed] ");
        assert_eq!(out, want);
    }
}
