//! Reading a message's header without changing a byte of it: the header
//! split into raw fields (folded lines kept), the body as it is, and the
//! parsed values sotto needs (recipients in To/Cc, Content-Type), read with
//! mail-parser.

pub mod codec;
pub mod contentline;
pub mod csv;
pub mod ical;
pub mod readable;
pub mod rewrite;
pub mod vcard;

use mail_parser::{MessageParser, MimeHeaders};

/// One header field, exactly as it was: `Name: value\r\n` with folds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field<'a> {
    pub name: &'a str,
    pub raw: &'a [u8],
}

impl Field<'_> {
    pub fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
    }

    /// The value as written: everything after the colon, folds included.
    pub fn value(&self) -> &[u8] {
        let colon = self.raw.iter().position(|b| *b == b':');
        &self.raw[colon.map_or(self.raw.len(), |c| c + 1)..]
    }

    /// `Content-*` fields describe the content entity, not the message.
    pub fn is_content(&self) -> bool {
        self.name.len() > 8 && self.name[..8].eq_ignore_ascii_case("content-")
    }
}

/// A message split into its header fields and its body.
#[derive(Debug)]
pub struct Split<'a> {
    pub fields: Vec<Field<'a>>,
    /// Everything after the blank line that ends the header.
    pub body: &'a [u8],
    /// The header block (without the blank line), for parsing values.
    pub header: &'a [u8],
}

/// Splits `message` (CRLF line endings) into fields and body. Lines that are
/// not fields (no colon) end the header, as mail readers treat them.
pub fn split(message: &[u8]) -> Split<'_> {
    let mut fields: Vec<Field<'_>> = Vec::new();
    let mut pos = 0;
    while pos < message.len() {
        let line_end = match find_crlf(&message[pos..]) {
            Some(i) => pos + i + 2,
            None => message.len(),
        };
        let line = &message[pos..line_end];
        if line == b"\r\n" {
            return Split {
                fields,
                body: &message[line_end..],
                header: &message[..pos],
            };
        }
        if (line[0] == b' ' || line[0] == b'\t')
            && let Some(last) = fields.last_mut()
        {
            let start = last.raw.as_ptr() as usize - message.as_ptr() as usize;
            last.raw = &message[start..line_end];
            pos = line_end;
            continue;
        }
        let colon = line.iter().position(|&b| b == b':');
        let name = colon
            .and_then(|c| std::str::from_utf8(&line[..c]).ok())
            .map(str::trim_end);
        match name {
            Some(n) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_graphic()) => {
                fields.push(Field { name: n, raw: line });
                pos = line_end;
            }
            // Not a header line: the body starts here, with no blank line.
            _ => {
                return Split {
                    fields,
                    body: &message[pos..],
                    header: &message[..pos],
                };
            }
        }
    }
    Split {
        fields,
        body: &message[message.len()..],
        header: message,
    }
}

fn find_crlf(b: &[u8]) -> Option<usize> {
    b.windows(2).position(|w| w == b"\r\n")
}

/// What sotto needs to know from a header.
#[derive(Debug, Default, Clone)]
pub struct HeaderInfo {
    /// Addresses in To and Cc, lower-cased.
    pub visible_rcpts: Vec<String>,
    /// `type/subtype`, lower-cased; `text/plain` when absent.
    pub content_type: String,
    /// The `protocol` parameter of a multipart/encrypted or S/MIME type.
    pub protocol: Option<String>,
    pub smime_type: Option<String>,
}

/// Parses the values sotto needs from a header block.
pub fn info(header: &[u8]) -> HeaderInfo {
    let mut block = header.to_vec();
    block.extend_from_slice(b"\r\n");
    let Some(msg) = MessageParser::default().parse_headers(&block) else {
        return HeaderInfo {
            content_type: "text/plain".into(),
            ..Default::default()
        };
    };
    let mut visible = Vec::new();
    for list in [msg.to(), msg.cc()].into_iter().flatten() {
        for addr in list.iter() {
            if let Some(a) = addr.address() {
                visible.push(a.to_lowercase());
            }
        }
    }
    let (content_type, protocol, smime_type) = match msg.content_type() {
        Some(ct) => (
            format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or("")).to_lowercase(),
            ct.attribute("protocol").map(str::to_lowercase),
            ct.attribute("smime-type").map(str::to_lowercase),
        ),
        None => ("text/plain".to_string(), None, None),
    };
    HeaderInfo {
        visible_rcpts: visible,
        content_type,
        protocol,
        smime_type,
    }
}

/// A message read once on its way through the pipeline: its bytes, where
/// each header field and the body are, and the header values sotto needs.
/// Stages take this rather than the bytes, so none splits the header or
/// parses its values again ([`Parsed::split`] rebuilds the view from the
/// positions found once, without scanning).
#[derive(Debug)]
pub struct Parsed {
    bytes: Vec<u8>,
    /// Per field: where its name ends and its raw bytes (`start..end`).
    fields: Vec<(usize, usize, usize)>,
    header_end: usize,
    body_start: usize,
    /// The values read from the header, once asked for.
    info: std::sync::OnceLock<HeaderInfo>,
}

impl Parsed {
    /// Splits the header (its values are read when first asked for).
    pub fn new(bytes: Vec<u8>) -> Parsed {
        let base = bytes.as_ptr() as usize;
        let (fields, header_end, body_start) = {
            let s = split(&bytes);
            let at = |b: &[u8]| b.as_ptr() as usize - base;
            let fields = s
                .fields
                .iter()
                .map(|f| (f.name.len(), at(f.raw), at(f.raw) + f.raw.len()))
                .collect();
            let header_end = at(s.header) + s.header.len();
            let body_start = at(s.body);
            (fields, header_end, body_start)
        };
        Parsed {
            bytes,
            fields,
            header_end,
            body_start,
            info: std::sync::OnceLock::new(),
        }
    }

    /// The values sotto needs from the header, read once.
    pub fn info(&self) -> &HeaderInfo {
        self.info
            .get_or_init(|| info(&self.bytes[..self.header_end]))
    }

    /// The fields and body, as [`split`] gives them.
    pub fn split(&self) -> Split<'_> {
        let b = &self.bytes;
        let fields = self
            .fields
            .iter()
            .map(|&(name_len, start, end)| {
                let raw = &b[start..end];
                let name = std::str::from_utf8(&raw[..name_len]).unwrap_or_default();
                Field { name, raw }
            })
            .collect();
        Split {
            fields,
            body: &b[self.body_start..],
            header: &b[..self.header_end],
        }
    }

    /// Whether the message has a header at all (readers show a message
    /// without one as plain text).
    pub fn has_header(&self) -> bool {
        !self.fields.is_empty()
    }

    /// Whether the message is already encrypted (see [`already_encrypted`]).
    pub fn already_encrypted(&self) -> bool {
        already_encrypted(self.info(), &self.bytes[self.body_start..])
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

/// Bare LF line endings made CRLF, existing CRLF left alone (input typed
/// on a terminal, other implementations' plaintext).
pub fn crlf(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() + input.len() / 32);
    for (i, &b) in input.iter().enumerate() {
        if b == b'\n' && (i == 0 || input[i - 1] != b'\r') {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}

/// Whether the message is already encrypted: PGP/MIME, S/MIME enveloped, or
/// an inline PGP message; such mail passes unchanged.
pub fn already_encrypted(info: &HeaderInfo, body: &[u8]) -> bool {
    match info.content_type.as_str() {
        "multipart/encrypted" => true,
        "application/pkcs7-mime" | "application/x-pkcs7-mime" => info
            .smime_type
            .as_deref()
            .is_none_or(|t| t.contains("enveloped")),
        "text/plain" => {
            let start = body
                .iter()
                .position(|b| !b.is_ascii_whitespace())
                .unwrap_or(body.len());
            body[start..].starts_with(b"-----BEGIN PGP MESSAGE-----")
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folded_fields_stay_whole() {
        let m = b"Subject: a\r\n long\r\nTo: b@x\r\n\r\nbody\r\n";
        let s = split(m);
        assert_eq!(s.fields.len(), 2);
        assert_eq!(s.fields[0].raw, b"Subject: a\r\n long\r\n");
        assert_eq!(s.fields[1].name, "To");
        assert_eq!(s.body, b"body\r\n");
    }

    #[test]
    fn no_blank_line_and_no_header() {
        let m: &[u8] = b"From: a@x\r\nSubject: one\r\n two\r\nTo: b@y\r\n\r\nbody\r\n";
        let p = Parsed::new(m.to_vec());
        let (a, b) = (split(m), p.split());
        assert_eq!(a.fields, b.fields);
        assert_eq!((a.body, a.header), (b.body, b.header));
        assert_eq!(p.info().visible_rcpts, vec!["b@y".to_string()]);
        assert!(!p.already_encrypted());
        let s = split(b"just text\r\n");
        assert!(s.fields.is_empty());
        assert_eq!(s.body, b"just text\r\n");
        let s = split(b"Subject: x\r\n");
        assert_eq!(s.fields.len(), 1);
        assert_eq!(s.body, b"");
    }

    #[test]
    fn recipients_and_type() {
        let i = info(b"To: Bob <Bob@Example.org>, carol@x.org\r\nCc: \"D\" <d@y.org>\r\nContent-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=x");
        assert_eq!(
            i.visible_rcpts,
            vec!["bob@example.org", "carol@x.org", "d@y.org"]
        );
        assert_eq!(i.content_type, "multipart/encrypted");
        assert!(already_encrypted(&i, b""));
    }

    #[test]
    fn inline_pgp_is_recognised() {
        let i = info(b"Subject: x");
        assert!(already_encrypted(
            &i,
            b"\r\n-----BEGIN PGP MESSAGE-----\r\n..."
        ));
        assert!(!already_encrypted(&i, b"hello"));
    }
}
