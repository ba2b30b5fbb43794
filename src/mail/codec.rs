//! The encodings a text part travels in, both ways: quoted-printable,
//! base64, format=flowed (RFC 3676), charsets (via encoding_rs), and
//! RFC 2047 encoded words for a header.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

/// Base64 as readers decode it: padding optional, trailing bits ignored.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// A part's Content-Transfer-Encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transfer {
    /// 7bit, 8bit or binary: the bytes as they are.
    Identity,
    QuotedPrintable,
    Base64,
}

impl Transfer {
    pub fn parse(value: Option<&str>) -> Option<Transfer> {
        match value.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
            None | Some("7bit" | "8bit" | "binary" | "") => Some(Transfer::Identity),
            Some("quoted-printable") => Some(Transfer::QuotedPrintable),
            Some("base64") => Some(Transfer::Base64),
            Some(_) => None,
        }
    }
}

pub fn decode_transfer(t: Transfer, raw: &[u8]) -> Option<Vec<u8>> {
    match t {
        Transfer::Identity => Some(raw.to_vec()),
        Transfer::QuotedPrintable => Some(qp_decode(raw)),
        Transfer::Base64 => {
            // As readers do: characters outside the alphabet are skipped,
            // and what follows padding is ignored.
            let mut clean: Vec<u8> = raw
                .iter()
                .copied()
                .filter(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/')
                .collect();
            if clean.len() % 4 == 1 {
                clean.pop();
            }
            LENIENT.decode(clean).ok()
        }
    }
}

pub fn encode_transfer(t: Transfer, data: &[u8]) -> Vec<u8> {
    match t {
        Transfer::Identity => data.to_vec(),
        Transfer::QuotedPrintable => qp_encode(data),
        Transfer::Base64 => {
            let text = B64.encode(data);
            let mut out = Vec::with_capacity(text.len() + text.len() / 38);
            for chunk in text.as_bytes().chunks(76) {
                out.extend_from_slice(chunk);
                out.extend_from_slice(b"\r\n");
            }
            out
        }
    }
}

/// Quoted-printable decoding (RFC 2045 6.7): soft breaks joined, `=XX` decoded.
pub fn qp_decode(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        if b != b'=' {
            out.push(b);
            i += 1;
            continue;
        }
        let rest = &raw[i + 1..];
        if rest.starts_with(b"\r\n") {
            i += 3;
        } else if rest.starts_with(b"\n") {
            i += 2;
        } else if rest.len() >= 2 && rest[0].is_ascii_hexdigit() && rest[1].is_ascii_hexdigit() {
            let hex = std::str::from_utf8(&rest[..2]).unwrap_or("00");
            out.push(u8::from_str_radix(hex, 16).unwrap_or(b'?'));
            i += 3;
        } else {
            out.push(b'=');
            i += 1;
        }
    }
    out
}

/// Quoted-printable encoding with lines of at most 76 characters.
pub fn qp_encode(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 10);
    for (n, line) in data.split(|&b| b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if n > 0 {
            out.extend_from_slice(b"\r\n");
        }
        let mut len = 0;
        for (i, &b) in line.iter().enumerate() {
            let last = i + 1 == line.len();
            let literal =
                (b == b' ' || b == b'\t') && !last || (33..=126).contains(&b) && b != b'=';
            let enc: Vec<u8> = if literal {
                vec![b]
            } else {
                format!("={b:02X}").into_bytes()
            };
            if len + enc.len() > 75 {
                out.extend_from_slice(b"=\r\n");
                len = 0;
            }
            out.extend_from_slice(&enc);
            len += enc.len();
        }
    }
    out
}

/// Whether some line is longer than RFC 5322 allows (998 octets).
pub fn has_long_line(data: &[u8]) -> bool {
    data.split(|&b| b == b'\n').any(|l| l.len() > 999)
}

/// The encoding for a charset label (unknown or absent: UTF-8).
pub fn charset(label: Option<&str>) -> &'static encoding_rs::Encoding {
    label
        .and_then(|l| encoding_rs::Encoding::for_label(l.trim().as_bytes()))
        .unwrap_or(encoding_rs::UTF_8)
}

/// Bytes in `enc` to text; `None` if they are not valid in it (then the
/// part cannot be re-encoded faithfully).
pub fn to_text(enc: &'static encoding_rs::Encoding, bytes: &[u8]) -> Option<String> {
    let (text, had_errors) = enc.decode_without_bom_handling(bytes);
    (!had_errors).then(|| text.into_owned())
}

/// Text back to `enc`; unmappable characters become HTML references.
/// UTF-16 stays UTF-16 (encoding_rs, made for the web, writes UTF-8 there).
pub fn from_text(enc: &'static encoding_rs::Encoding, text: &str) -> Vec<u8> {
    if enc == encoding_rs::UTF_16LE {
        return text.encode_utf16().flat_map(u16::to_le_bytes).collect();
    }
    if enc == encoding_rs::UTF_16BE {
        return text.encode_utf16().flat_map(u16::to_be_bytes).collect();
    }
    let (bytes, _, _) = enc.output_encoding().encode(text);
    bytes.into_owned()
}

/// Whether `enc` is UTF-16: its text never has a run of ASCII bytes, so
/// ASCII in its bytes is a lie that only a scanner reads.
pub fn is_utf16(enc: &'static encoding_rs::Encoding) -> bool {
    enc == encoding_rs::UTF_16LE || enc == encoding_rs::UTF_16BE
}

/// Bytes as a scanner that ignores the charset reads them: one character
/// per byte (Latin-1), so [`from_bytes_view`] gives the same bytes back.
pub fn bytes_view(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

/// [`bytes_view`] back to bytes; a character beyond Latin-1 (in a marker
/// or a rewritten URL) becomes `?`.
pub fn from_bytes_view(text: &str) -> Vec<u8> {
    text.chars()
        .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?'))
        .collect()
}

/// format=flowed: joins soft-broken lines of the same quote depth
/// (RFC 3676 4.2), undoing space-stuffing. Logical lines end in `\n` and
/// keep their quote marks as `> ` (one space after the marks).
pub fn unflow(text: &str, delsp: bool) -> String {
    let mut out = String::with_capacity(text.len());
    let (body, trailing) = match text.strip_suffix("\r\n") {
        Some(b) => (b, true),
        None => (text, false),
    };
    // The quote depth of the logical line being joined, if it is open.
    let mut open: Option<usize> = None;
    for line in body.split("\r\n") {
        let depth = line.len() - line.trim_start_matches('>').len();
        let rest = &line[depth..];
        let rest = rest.strip_prefix(' ').unwrap_or(rest);
        if open.is_some_and(|d| d != depth) {
            out.push('\n');
            open = None;
        }
        if open.is_none() && depth > 0 {
            out.push_str(&">".repeat(depth));
            out.push(' ');
        }
        let soft = rest.ends_with(' ') && rest != "-- ";
        if soft {
            out.push_str(if delsp { &rest[..rest.len() - 1] } else { rest });
            open = Some(depth);
        } else {
            out.push_str(rest);
            out.push('\n');
            open = None;
        }
    }
    if !trailing && out.ends_with('\n') {
        out.pop();
    }
    out
}

/// format=flowed again: logical lines wrapped at 76 columns with soft
/// breaks after spaces (with delsp=yes, an extra space that the reader
/// deletes), quote marks repeated, stuffed where needed.
pub fn reflow(text: &str, delsp: bool) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 20);
    let lines: Vec<&str> = text.split('\n').collect();
    for (n, line) in lines.iter().enumerate() {
        let depth = line.len() - line.trim_start_matches('>').len();
        let body = &line[depth..];
        let body = if depth > 0 {
            body.strip_prefix(' ').unwrap_or(body)
        } else {
            body
        };
        let prefix = if depth > 0 {
            format!("{} ", ">".repeat(depth))
        } else {
            String::new()
        };
        let mut rest = body;
        loop {
            let stuff = depth == 0
                && (rest.starts_with(' ') || rest.starts_with("From ") || rest.starts_with('>'));
            let room = 76usize
                .saturating_sub(prefix.len() + usize::from(stuff))
                .max(20);
            // Break only after a space, never inside a word: a URL stays on
            // one line even where that line is long.
            let cut = if rest.len() <= room {
                rest.len()
            } else {
                match rest[..floor_char(rest, room)].rfind(' ') {
                    Some(sp) if sp > 0 => sp + 1,
                    _ => rest.find(' ').map_or(rest.len(), |sp| sp + 1),
                }
            };
            out.push_str(&prefix);
            if stuff {
                out.push(' ');
            }
            out.push_str(&rest[..cut]);
            rest = &rest[cut..];
            if rest.is_empty() {
                break;
            }
            if delsp {
                out.push(' ');
            }
            out.push_str("\r\n");
        }
        if n + 1 < lines.len() {
            out.push_str("\r\n");
        }
    }
    out
}

fn floor_char(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i.max(1)
}

/// A header value as RFC 2047 encoded words (UTF-8, base64), folded.
pub fn encode_words(value: &str) -> String {
    if value.is_ascii() && value.len() < 900 && !value.contains("=?") {
        return value.to_string();
    }
    let mut words = Vec::new();
    let mut chunk = String::new();
    for c in value.chars() {
        if chunk.len() + c.len_utf8() > 45 {
            words.push(format!("=?UTF-8?B?{}?=", B64.encode(chunk.as_bytes())));
            chunk.clear();
        }
        chunk.push(c);
    }
    if !chunk.is_empty() {
        words.push(format!("=?UTF-8?B?{}?=", B64.encode(chunk.as_bytes())));
    }
    words.join("\r\n ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qp_round_trip() {
        let text = "caf\u{e9} = fun https://example.com/a?b=1&c=2 with a long line that goes on and on beyond the seventy-six column limit of quoted printable\r\nnext";
        let enc = qp_encode(text.as_bytes());
        assert!(
            enc.split(|&b| b == b'\n').all(|l| l.len() <= 77),
            "{}",
            String::from_utf8_lossy(&enc)
        );
        assert_eq!(qp_decode(&enc), text.as_bytes());
        assert_eq!(
            qp_decode(b"https://ex=\r\nample.com/?a=3Db"),
            b"https://example.com/?a=b"
        );
    }

    #[test]
    fn flowed_round_trip() {
        let raw = "See https://example.com/a/very/long/ \r\npath?x=1 for more.\r\n>quoted\r\n From me\r\n";
        let plain = unflow(raw, false);
        assert_eq!(
            plain,
            "See https://example.com/a/very/long/ path?x=1 for more.\n> quoted\nFrom me\n"
        );
        let d = unflow("https://example.com/a/ve \r\nry/long\r\n", true);
        assert_eq!(d, "https://example.com/a/very/long\n");
        let long = "word ".repeat(40);
        let back = reflow(&long, false);
        assert!(back.split("\r\n").all(|l| l.len() <= 77));
        assert_eq!(unflow(&back, false), long);
    }

    #[test]
    fn utf16_stays_utf16_and_bytes_view_round_trips() {
        let text = "caf\u{e9} https://a.example/";
        for enc in [encoding_rs::UTF_16LE, encoding_rs::UTF_16BE] {
            assert!(is_utf16(enc));
            let bytes = from_text(enc, text);
            assert_eq!(bytes.len(), 2 * text.chars().count());
            assert_eq!(to_text(enc, &bytes).as_deref(), Some(text));
        }
        assert!(!is_utf16(encoding_rs::UTF_8));
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(from_bytes_view(&bytes_view(&all)), all);
        assert_eq!(from_bytes_view("a\u{2192}b"), b"a?b");
    }

    #[test]
    fn words() {
        assert_eq!(encode_words("plain"), "plain");
        let w = encode_words("Grüße https://x.example/");
        assert!(w.starts_with("=?UTF-8?B?"));
    }
}
