//! The framer's glue to rxml, shared with the element parser
//! ([`parse_stanza_in`](super::parse_stanza_in)): the parser options with
//! sotto's token limit, the mapping of rxml's errors to [`FrameError`]s,
//! and the byte-level scanning of a start tag rxml has accepted (qualified
//! name, attributes as written, attribute values unescaped). Sans-IO; never
//! panics on input.

use rxml::Options;

use super::{FrameError, TOKEN_LIMIT};

pub(in crate::xmpp) fn parser_options() -> Options {
    Options {
        max_token_length: TOKEN_LIMIT,
        ..Options::default()
    }
}

/// Maps an rxml error to ours; `consumed` is what the parser read since the
/// last frame, up to and including the offending byte.
pub(in crate::xmpp) fn map_rxml_error(e: rxml::Error, consumed: &[u8]) -> FrameError {
    use rxml::Error as E;
    match e {
        E::RestrictedXml("comments") => FrameError::Comment,
        E::RestrictedXml("processing instructions") => FrameError::ProcessingInstruction,
        E::RestrictedXml("only utf-8 encoding is allowed") => FrameError::UnsupportedEncoding,
        E::RestrictedXml("long name or reference") => {
            FrameError::TokenTooLong { limit: TOKEN_LIMIT }
        }
        E::RestrictedXml(what) => FrameError::RestrictedXml(what),
        E::UndeclaredEntity => FrameError::EntityReference,
        E::InvalidUtf8Byte(_) => FrameError::InvalidUtf8,
        E::InvalidEof(_) => FrameError::UnexpectedEof,
        // rxml stops right at the byte after `<!` that is neither `-` nor
        // `[`: `<!DOCTYPE`, `<!ENTITY` and the like.
        E::InvalidSyntax(_) => match consumed {
            [.., b'<', b'!', b'D'] => FrameError::Doctype,
            [.., b'<', b'!', b] if b.is_ascii_uppercase() => FrameError::MarkupDeclaration,
            _ => FrameError::NotWellFormed(e.to_string()),
        },
        other => FrameError::NotWellFormed(other.to_string()),
    }
}

pub(in crate::xmpp) fn is_xml_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

pub(in crate::xmpp) fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Splits a start tag that rxml has accepted into its qualified name and its
/// attributes (name, value as written between the quotes), calling
/// `on_attr` for each. Bytes before the first `<` (whitespace rxml counts
/// into a root element) are skipped. Never panics, whatever the bytes.
pub(in crate::xmpp) fn scan_start_tag<'a>(
    tag: &'a [u8],
    mut on_attr: impl FnMut(&'a [u8], &'a [u8]),
) -> &'a [u8] {
    let Some(lt) = tag.iter().position(|&b| b == b'<') else {
        return &[];
    };
    let at = |i: usize| tag.get(i).copied();
    let mut i = lt + 1;
    let name_start = i;
    while at(i).is_some_and(|b| !is_xml_space(b) && b != b'/' && b != b'>') {
        i += 1;
    }
    let name = &tag[name_start..i];
    loop {
        while at(i).is_some_and(is_xml_space) {
            i += 1;
        }
        if matches!(at(i), None | Some(b'/') | Some(b'>')) {
            break;
        }
        let attr_start = i;
        while at(i).is_some_and(|b| b != b'=' && !is_xml_space(b)) {
            i += 1;
        }
        let attr = &tag[attr_start..i];
        while at(i).is_some_and(|b| b == b'=' || is_xml_space(b)) {
            i += 1;
        }
        let Some(quote @ (b'\'' | b'"')) = at(i) else {
            break;
        };
        i += 1;
        let value_start = i;
        while at(i).is_some_and(|b| b != quote) {
            i += 1;
        }
        let value = &tag[value_start..i];
        i += 1;
        on_attr(attr, value);
    }
    name
}

/// Unescapes an attribute value that rxml has accepted: the five predefined
/// entities, character references, and attribute-value normalization of
/// literal tabs and line ends.
pub(super) fn unescape_attr(value: &[u8]) -> String {
    let value = String::from_utf8_lossy(value);
    let mut out = String::with_capacity(value.len());
    let mut rest: &str = &value;
    while let Some(i) = rest.find(['&', '\t', '\n', '\r']) {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        match rest.as_bytes()[i] {
            b'&' => {
                let decoded = after.split_once(';').and_then(|(reference, tail)| {
                    let c = match reference {
                        "lt" => Some('<'),
                        "gt" => Some('>'),
                        "amp" => Some('&'),
                        "apos" => Some('\''),
                        "quot" => Some('"'),
                        _ => {
                            if let Some(hex) = reference.strip_prefix("#x") {
                                u32::from_str_radix(hex, 16).ok().and_then(char::from_u32)
                            } else if let Some(dec) = reference.strip_prefix('#') {
                                dec.parse().ok().and_then(char::from_u32)
                            } else {
                                None
                            }
                        }
                    };
                    c.map(|c| (c, tail))
                });
                match decoded {
                    Some((c, tail)) => {
                        out.push(c);
                        rest = tail;
                    }
                    None => {
                        out.push('&');
                        rest = after;
                    }
                }
            }
            b'\r' => {
                out.push(' ');
                rest = after.strip_prefix('\n').unwrap_or(after);
            }
            _ => {
                out.push(' ');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}
