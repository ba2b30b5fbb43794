//! A message as IMAP shows it: its MIME tree with the byte ranges that
//! FETCH sections name (RFC 9051 section 6.4.5), its BODYSTRUCTURE and its
//! ENVELOPE. sotto computes these from the plaintext of a message it
//! opened, so that every FETCH item a client asks for agrees with the
//! decrypted message rather than with the ciphertext the server holds.

use std::num::NonZeroU32;

use imap_codec::imap_types::body::{
    BasicFields, Body, BodyStructure, Disposition, Language, Location, MultiPartExtensionData,
    SinglePartExtensionData, SpecificFields,
};
use imap_codec::imap_types::core::{IString, NString, Vec1};
use imap_codec::imap_types::envelope::{Address, Envelope};
use imap_codec::imap_types::fetch::Section;
use mail_parser::{HeaderValue, MessageParser, MimeHeaders};

/// Multipart nesting beyond this is shown as an opaque part.
const MAX_DEPTH: usize = 32;

/// One MIME entity: its header (with the blank line that ends it), its
/// body, and what the body holds.
#[derive(Debug)]
pub struct Entity<'a> {
    /// The header fields and the blank line after them.
    pub header: &'a [u8],
    pub body: &'a [u8],
    /// `type`, `subtype` as the header writes them.
    ctype: (String, String),
    /// The header, parsed once (structure and envelope read it again).
    headers: Option<mail_parser::Message<'a>>,
    kind: Kind<'a>,
    /// The body ends with a close delimiter (its own, or that of the
    /// message it encapsulates) and nothing after it. The line end after
    /// that delimiter, which RFC 2046 gives to the enclosing delimiter, is
    /// then counted in this part, as Dovecot counts it.
    closed: bool,
}

#[derive(Debug)]
enum Kind<'a> {
    Leaf,
    Multi(Vec<Entity<'a>>),
    /// message/rfc822 (or global): the encapsulated message.
    Message(Box<Entity<'a>>),
}

impl<'a> Entity<'a> {
    /// Reads a whole message.
    pub fn message(bytes: &'a [u8]) -> Entity<'a> {
        Entity::parse(bytes, ("text", "plain"), 0)
    }

    fn parse(bytes: &'a [u8], default: (&str, &str), depth: usize) -> Entity<'a> {
        let (header, body) = split_header(bytes);
        let parsed = MessageParser::default().parse_headers(header);
        let ctype = parsed
            .as_ref()
            .and_then(|m| m.content_type())
            .map(|ct| {
                (
                    ct.ctype().to_string(),
                    ct.subtype().unwrap_or("").to_string(),
                )
            })
            .unwrap_or((default.0.to_string(), default.1.to_string()));
        let boundary = parsed
            .as_ref()
            .and_then(|m| m.content_type())
            .and_then(|ct| ct.attribute("boundary"))
            .map(str::to_string);
        let mut closed = false;
        let kind = if depth >= MAX_DEPTH {
            Kind::Leaf
        } else if ctype.0.eq_ignore_ascii_case("multipart") {
            let child_default = if ctype.1.eq_ignore_ascii_case("digest") {
                ("message", "rfc822")
            } else {
                ("text", "plain")
            };
            let (parts, at_end) = boundary
                .map(|b| split_multipart(body, b.as_bytes()))
                .unwrap_or_default();
            closed = at_end;
            Kind::Multi(
                parts
                    .into_iter()
                    .map(|(s, e)| {
                        let mut child = Entity::parse(&body[s..e], child_default, depth + 1);
                        if child.closed && body[e..].starts_with(b"\r\n") {
                            child.take_line_end(body);
                        }
                        child
                    })
                    .collect(),
            )
        } else if ctype.0.eq_ignore_ascii_case("message")
            && (ctype.1.eq_ignore_ascii_case("rfc822") || ctype.1.eq_ignore_ascii_case("global"))
        {
            let inner = Entity::parse(body, ("text", "plain"), depth + 1);
            closed = inner.closed;
            Kind::Message(Box::new(inner))
        } else {
            Kind::Leaf
        };
        Entity {
            header,
            body,
            ctype,
            headers: parsed,
            kind,
            closed,
        }
    }

    /// Extends this entity's body (and that of the message it
    /// encapsulates) over the two bytes after it in `parent`, which holds
    /// it: the CRLF after a nested close delimiter. Done in place, never by
    /// parsing again (which would cost twice per nesting level).
    fn take_line_end(&mut self, parent: &'a [u8]) {
        let start = self.body.as_ptr() as usize - parent.as_ptr() as usize;
        let end = (start + self.body.len() + 2).min(parent.len());
        self.body = &parent[start..end];
        if let Kind::Message(inner) = &mut self.kind {
            inner.take_line_end(parent);
        }
    }

    /// The entity that part number `path` names, counted from this message.
    fn part(&self, path: &[NonZeroU32]) -> Option<&Entity<'a>> {
        let mut cur = self;
        // `cur` is a message: its parts are its multipart children, or
        // itself (part 1) when it is not multipart.
        let mut in_message = true;
        for n in path {
            let i = n.get() as usize;
            cur = match &cur.kind {
                Kind::Multi(children) => children.get(i - 1)?,
                Kind::Message(inner) if !in_message => match &inner.kind {
                    Kind::Multi(children) => children.get(i - 1)?,
                    _ if i == 1 => inner,
                    _ => return None,
                },
                _ if i == 1 && in_message => cur,
                _ => return None,
            };
            in_message = false;
        }
        Some(cur)
    }

    /// The message whose header and text `path` names (the message itself
    /// without a path, else an encapsulated message/rfc822 part).
    fn message_at(&self, path: Option<&[NonZeroU32]>) -> Option<&Entity<'a>> {
        match path {
            None => Some(self),
            Some(p) => match &self.part(p)?.kind {
                Kind::Message(inner) => Some(inner),
                _ => None,
            },
        }
    }

    /// The bytes of `BODY[section]` (`None` for the whole message); `None`
    /// when the section does not exist (the client gets NIL).
    pub fn section(&self, whole: &'a [u8], section: Option<&Section<'_>>) -> Option<Vec<u8>> {
        let Some(section) = section else {
            return Some(whole.to_vec());
        };
        let path = |p: &Option<imap_codec::imap_types::fetch::Part>| {
            p.as_ref().map(|p| p.0.as_ref().to_vec())
        };
        match section {
            Section::Part(p) => Some(self.part(p.0.as_ref())?.body.to_vec()),
            Section::Header(p) => Some(self.message_at(path(p).as_deref())?.header.to_vec()),
            Section::Text(p) => Some(self.message_at(path(p).as_deref())?.body.to_vec()),
            Section::Mime(p) => Some(self.part(p.0.as_ref())?.header.to_vec()),
            Section::HeaderFields(p, names) | Section::HeaderFieldsNot(p, names) => {
                let keep = matches!(section, Section::HeaderFields(..));
                let m = self.message_at(path(p).as_deref())?;
                let names: Vec<Vec<u8>> = names
                    .as_ref()
                    .iter()
                    .map(|n| n.as_ref().to_ascii_lowercase())
                    .collect();
                let mut out = Vec::new();
                for f in crate::mail::split(m.header).fields {
                    let wanted = names
                        .iter()
                        .any(|n| n == f.name.as_bytes().to_ascii_lowercase().as_slice());
                    if wanted == keep {
                        out.extend_from_slice(f.raw);
                    }
                }
                out.extend_from_slice(b"\r\n");
                Some(out)
            }
        }
    }

    /// BODYSTRUCTURE (`extended`) or BODY.
    pub fn structure(&self, extended: bool) -> BodyStructure<'static> {
        let headers = self.headers.as_ref();
        let params = |ct: Option<&mail_parser::ContentType<'_>>| -> Vec<(IString<'static>, IString<'static>)> {
            ct.and_then(|c| c.attributes())
                .unwrap_or_default()
                .iter()
                .filter_map(|a| {
                    Some((
                        istring(a.name.as_bytes())?,
                        istring(a.value.as_bytes())?,
                    ))
                })
                .collect()
        };
        let disposition = || -> Option<Disposition<'static>> {
            let language = headers.map(|h| h.content_language());
            let language: Vec<IString<'static>> = match language {
                Some(HeaderValue::Text(t)) => istring(t.as_bytes()).into_iter().collect(),
                Some(HeaderValue::TextList(l)) => {
                    l.iter().filter_map(|t| istring(t.as_bytes())).collect()
                }
                _ => Vec::new(),
            };
            let location = nstring(headers.and_then(|h| h.content_location()));
            Some(Disposition {
                disposition: headers
                    .and_then(|h| h.content_disposition())
                    .and_then(|d| Some((istring(d.ctype().as_bytes())?, params(Some(d))))),
                tail: Some(Language {
                    language,
                    tail: Some(Location {
                        location,
                        extensions: Vec::new(),
                    }),
                }),
            })
        };
        if let Kind::Multi(children) = &self.kind {
            let bodies: Vec<BodyStructure<'static>> =
                children.iter().map(|c| c.structure(extended)).collect();
            let bodies = Vec1::try_from(bodies).unwrap_or_else(|_| {
                // A multipart without parts: shown as one empty text part,
                // as servers do.
                Vec1::from(Entity::message(b"\r\n").structure(extended))
            });
            return BodyStructure::Multi {
                bodies,
                subtype: string(&self.ctype.1),
                extension_data: extended.then(|| MultiPartExtensionData {
                    parameter_list: params(headers.and_then(|h| h.content_type())),
                    tail: disposition(),
                }),
            };
        }
        let mut parameter_list = params(headers.and_then(|h| h.content_type()));
        if parameter_list.is_empty() && self.ctype.0.eq_ignore_ascii_case("text") {
            parameter_list.push((string("charset"), string("us-ascii")));
        }
        let encoding = headers
            .and_then(|h| h.content_transfer_encoding())
            .unwrap_or("7bit");
        let basic = BasicFields {
            parameter_list,
            id: nstring(
                headers
                    .and_then(|h| h.content_id())
                    .map(|i| format!("<{i}>"))
                    .as_deref(),
            ),
            description: nstring(headers.and_then(|h| h.content_description())),
            content_transfer_encoding: string(encoding),
            size: u32::try_from(self.body.len()).unwrap_or(u32::MAX),
        };
        let lines = lines(self.body);
        let specific = match &self.kind {
            Kind::Message(inner) => SpecificFields::Message {
                envelope: Box::new(inner.envelope()),
                body_structure: Box::new(inner.structure(extended)),
                number_of_lines: lines,
            },
            _ if self.ctype.0.eq_ignore_ascii_case("text") => SpecificFields::Text {
                subtype: string(&self.ctype.1),
                number_of_lines: lines,
            },
            _ => SpecificFields::Basic {
                r#type: string(&self.ctype.0),
                subtype: string(&self.ctype.1),
            },
        };
        BodyStructure::Single {
            body: Body { basic, specific },
            extension_data: extended.then(|| SinglePartExtensionData {
                md5: NString(None),
                tail: disposition(),
            }),
        }
    }

    /// ENVELOPE of this message's header.
    pub fn envelope(&self) -> Envelope<'static> {
        let split = crate::mail::split(self.header);
        let raw = |name: &str| -> NString<'static> {
            let value = split.fields.iter().find(|f| f.is(name)).map(|f| {
                let unfolded: Vec<u8> = f
                    .value()
                    .iter()
                    .copied()
                    .filter(|b| *b != b'\r' && *b != b'\n')
                    .collect();
                unfolded.trim_ascii().to_vec()
            });
            value
                .and_then(|v| NString::try_from(v).ok())
                .unwrap_or(NString(None))
        };
        let parsed = &self.headers;
        let addresses = |name: &str| -> Vec<Address<'static>> {
            let Some(m) = parsed.as_ref() else {
                return Vec::new();
            };
            let raw = split
                .fields
                .iter()
                .find(|f| f.is(name))
                .map(|f| String::from_utf8_lossy(f.raw).replace("\r\n", ""))
                .unwrap_or_default();
            match m.header(name) {
                Some(HeaderValue::Address(a)) => address_list(a, &raw),
                _ => Vec::new(),
            }
        };
        let from = addresses("From");
        let or_from =
            |list: Vec<Address<'static>>| if list.is_empty() { from.clone() } else { list };
        Envelope {
            date: raw("Date"),
            subject: raw("Subject"),
            sender: or_from(addresses("Sender")),
            reply_to: or_from(addresses("Reply-To")),
            from: from.clone(),
            to: addresses("To"),
            cc: addresses("Cc"),
            bcc: addresses("Bcc"),
            in_reply_to: raw("In-Reply-To"),
            message_id: raw("Message-ID"),
        }
    }
}

/// The header (with its ending blank line) and the body of an entity.
fn split_header(bytes: &[u8]) -> (&[u8], &[u8]) {
    if bytes.starts_with(b"\r\n") {
        return (&bytes[..2], &bytes[2..]);
    }
    match bytes.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(i) => (&bytes[..i + 4], &bytes[i + 4..]),
        None => (bytes, &bytes[bytes.len()..]),
    }
}

/// The parts of a multipart body as ranges: between the delimiter lines of
/// `boundary`, each without the CRLF that belongs to the next delimiter;
/// and whether the close delimiter is the body's last line.
fn split_multipart(body: &[u8], boundary: &[u8]) -> (Vec<(usize, usize)>, bool) {
    let mut delimiter = b"--".to_vec();
    delimiter.extend_from_slice(boundary);
    let mut parts = Vec::new();
    let mut start: Option<usize> = None;
    let mut pos = 0;
    while pos < body.len() {
        let line_end = body[pos..]
            .windows(2)
            .position(|w| w == b"\r\n")
            .map_or(body.len(), |i| pos + i + 2);
        let line = &body[pos..line_end];
        if let Some(rest) = line.strip_prefix(delimiter.as_slice()) {
            let close = rest.starts_with(b"--");
            let rest = if close { &rest[2..] } else { rest };
            if rest.trim_ascii().is_empty() {
                if let Some(s) = start {
                    // The CRLF before the delimiter belongs to it.
                    parts.push((s, pos.saturating_sub(2).max(s)));
                }
                if close {
                    return (parts, !line.ends_with(b"\n"));
                }
                start = Some(line_end);
            }
        }
        pos = line_end;
    }
    // No close delimiter: the last part runs to the end.
    if let Some(s) = start {
        parts.push((s, body.len()));
    }
    (parts, false)
}

fn lines(body: &[u8]) -> u32 {
    // Line feeds, as Dovecot counts them.
    let n = body.iter().filter(|b| **b == b'\n').count();
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn istring(bytes: &[u8]) -> Option<IString<'static>> {
    IString::try_from(bytes.to_vec()).ok()
}

fn string(s: &str) -> IString<'static> {
    istring(s.as_bytes()).unwrap_or_else(|| {
        IString::try_from(String::from("X")).expect("a plain atom is a valid string")
    })
}

fn nstring(s: Option<&str>) -> NString<'static> {
    NString(s.and_then(|s| istring(s.as_bytes())))
}

/// An address list as ENVELOPE writes it: groups open with a member whose
/// host is NIL and close with one whose mailbox and host are NIL.
/// `raw` is the field as written: a display name in encoded words is
/// shown as written (as servers show it), not decoded.
fn address_list(a: &mail_parser::Address<'_>, raw: &str) -> Vec<Address<'static>> {
    let one = |addr: &mail_parser::Addr<'_>| -> Address<'static> {
        let full = addr.address.as_deref().unwrap_or("");
        let (local, host) = full.rsplit_once('@').unwrap_or((full, ""));
        let name = match raw_phrase(raw, full) {
            Some(p) if p.contains("=?") => Some(p),
            _ => addr.name.as_deref().map(|n| {
                if n.is_ascii() {
                    n.to_string()
                } else {
                    crate::mail::codec::encode_words(n)
                }
            }),
        };
        Address {
            name: nstring(name.as_deref()),
            adl: NString(None),
            mailbox: nstring(Some(local)),
            host: nstring((!host.is_empty()).then_some(host)),
        }
    };
    match a {
        mail_parser::Address::List(list) => list.iter().map(one).collect(),
        mail_parser::Address::Group(groups) => {
            let mut out = Vec::new();
            for g in groups {
                match &g.name {
                    Some(name) => {
                        out.push(Address {
                            name: NString(None),
                            adl: NString(None),
                            mailbox: nstring(Some(name)),
                            host: NString(None),
                        });
                        out.extend(g.addresses.iter().map(one));
                        out.push(Address {
                            name: NString(None),
                            adl: NString(None),
                            mailbox: NString(None),
                            host: NString(None),
                        });
                    }
                    None => out.extend(g.addresses.iter().map(one)),
                }
            }
            out
        }
    }
}

/// The display name written before `<address>` in a raw address field,
/// unquoted.
fn raw_phrase(raw: &str, address: &str) -> Option<String> {
    if address.is_empty() {
        return None;
    }
    let lower = raw.to_ascii_lowercase();
    let at = lower.find(&format!("<{}>", address.to_ascii_lowercase()))?;
    let before = &raw[..at];
    let mut quoted = false;
    let mut start = 0;
    for (i, c) in before.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' | ':' if !quoted => start = i + 1,
            _ => {}
        }
    }
    let phrase = before[start..].trim();
    let phrase = phrase
        .strip_prefix('"')
        .and_then(|p| p.strip_suffix('"'))
        .unwrap_or(phrase);
    (!phrase.is_empty()).then(|| phrase.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(path: &[u32]) -> Vec<NonZeroU32> {
        path.iter().map(|p| NonZeroU32::new(*p).unwrap()).collect()
    }

    const MIXED: &[u8] = b"From: A <a@example.org>\r\nSubject: Hi\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\npreamble\r\n--b1\r\nContent-Type: text/plain\r\n\r\nfirst\r\n--b1\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\ninner body\r\n--b1--\r\nepilogue\r\n";

    #[test]
    fn sections_follow_the_mime_tree() {
        let m = Entity::message(MIXED);
        assert_eq!(m.part(&n(&[1])).unwrap().body, b"first");
        assert_eq!(
            m.part(&n(&[1])).unwrap().header,
            b"Content-Type: text/plain\r\n\r\n"
        );
        assert_eq!(
            m.part(&n(&[2])).unwrap().body,
            b"Subject: inner\r\n\r\ninner body"
        );
        let inner = m.message_at(Some(&n(&[2]))).unwrap();
        assert_eq!(inner.header, b"Subject: inner\r\n\r\n");
        assert_eq!(inner.body, b"inner body");
        // 2.1: the encapsulated message is not multipart, so its part 1 is
        // its body.
        assert_eq!(m.part(&n(&[2, 1])).unwrap().body, b"inner body");
        assert!(m.part(&n(&[3])).is_none());
        assert!(m.part(&n(&[1, 1])).is_none());
    }

    /// Nested multiparts whose close delimiters follow each other: parsed
    /// once each (it was twice per level, 2^depth in all).
    #[test]
    fn nested_close_delimiters_parse_in_linear_time() {
        let depth = 30;
        let mut m = String::new();
        for i in 0..depth {
            m.push_str(&format!(
                "Content-Type: multipart/mixed; boundary=\"b{i}\"\r\n\r\n--b{i}\r\n"
            ));
        }
        m.push_str("Content-Type: text/plain\r\n\r\nleaf");
        for i in (0..depth).rev() {
            m.push_str(&format!("\r\n--b{i}--"));
        }
        m.push_str("\r\n");
        let e = Entity::message(m.as_bytes());
        let _ = e.structure(true);
        let leaf = e.part(&n(&vec![1u32; depth])).unwrap();
        assert_eq!(leaf.body, b"leaf");
        // Each level's part ends with the close delimiter below it and the
        // line end after it.
        let outer = e.part(&n(&[1])).unwrap();
        assert!(
            outer.body.ends_with(b"--b1--\r\n"),
            "{:?}",
            String::from_utf8_lossy(outer.body)
        );
    }

    #[test]
    fn a_single_part_message_is_its_own_part_one() {
        let m = Entity::message(b"Subject: x\r\n\r\nbody\r\n");
        assert_eq!(m.part(&n(&[1])).unwrap().body, b"body\r\n");
        assert!(m.part(&n(&[2])).is_none());
    }

    #[test]
    fn header_fields_keep_raw_lines() {
        let m = Entity::message(MIXED);
        let names = Vec1::from(imap_codec::imap_types::core::AString::try_from("subject").unwrap());
        let got = m
            .section(MIXED, Some(&Section::HeaderFields(None, names)))
            .unwrap();
        assert_eq!(got, b"Subject: Hi\r\n\r\n");
    }

    #[test]
    fn envelope_reads_the_header() {
        let m = Entity::message(MIXED);
        let e = m.envelope();
        assert_eq!(e.subject, NString::try_from("Hi").unwrap());
        assert_eq!(e.from.len(), 1);
        assert_eq!(e.sender, e.from);
        assert_eq!(e.from[0].host, NString::try_from("example.org").unwrap());
    }
}
