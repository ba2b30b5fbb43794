//! URLs in CSS (`style` attributes and `<style>` elements): `url(…)`
//! values, and strings (`@import "…"`, `image-set("…")`, `content: "…"`,
//! which a reader may load or see). CSS escapes (`https\3a //…`) are
//! decoded before URLs are looked for; the forms a browser accepts are
//! those of [`find::browser_url`]. Comments are skipped; everything that
//! holds no URL stays byte for byte.

use super::html::decode_entities;
use super::{LinkRewriter, Rewritten, find};

/// Rewrites the URLs in `css`; `None` when nothing changed.
pub fn rewrite(css: &str, rw: &LinkRewriter) -> Option<String> {
    let bytes = css.as_bytes();
    let mut out = String::with_capacity(css.len());
    let mut last = 0;
    let mut changed = false;
    let mut i = 0;
    while i < bytes.len() {
        let (end, new) = match bytes[i] {
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                let end = css[i + 2..].find("*/").map_or(css.len(), |e| i + 2 + e + 2);
                (end, None)
            }
            b'"' | b'\'' => {
                let (end, value) = string(css, i);
                (end, rewrite_string(&value, rw))
            }
            b'u' | b'U' if is_url_function(css, i) => {
                let (end, value) = url_function(css, i + 4);
                (end, rewrite_url_value(&value, rw))
            }
            _ => (i + 1, None),
        };
        if let Some(new) = new {
            out.push_str(&css[last..i]);
            out.push_str(&new);
            last = end;
            changed = true;
        }
        // Never backwards, and always on a character boundary: every end
        // is at an ASCII delimiter or the end of the text.
        i = end.max(i + 1);
        while !css.is_char_boundary(i) {
            i += 1;
        }
    }
    if !changed {
        return None;
    }
    out.push_str(&css[last..]);
    Some(out)
}

/// `url(` at `i`, not inside a longer name (`myurl(`).
fn is_url_function(css: &str, i: usize) -> bool {
    css.as_bytes()
        .get(i..i + 4)
        .is_some_and(|w| w.eq_ignore_ascii_case(b"url("))
        && !css[..i].ends_with(|c: char| c.is_alphanumeric() || c == '-' || c == '_')
}

/// The string starting with a quote at `start`: where it ends (after the
/// closing quote, or at an unescaped newline or the end) and its value,
/// escapes decoded.
fn string(css: &str, start: usize) -> (usize, String) {
    let quote = css.as_bytes()[start];
    let mut raw_end = css.len();
    let mut end = css.len();
    let mut escaped = false;
    for (at, b) in css.bytes().enumerate().skip(start + 1) {
        match b {
            _ if escaped => escaped = false,
            b'\\' => escaped = true,
            b'\n' => {
                (raw_end, end) = (at, at);
                break;
            }
            _ if b == quote => {
                (raw_end, end) = (at, at + 1);
                break;
            }
            _ => {}
        }
    }
    (end, unescape(&css[start + 1..raw_end]))
}

/// After `url(` at `from`: where the function ends (after its `)`) and its
/// value, quoted or not, escapes decoded.
fn url_function(css: &str, from: usize) -> (usize, String) {
    let rest = &css[from..];
    let lead = rest.len() - rest.trim_start().len();
    let at = from + lead;
    if matches!(css.as_bytes().get(at), Some(b'"' | b'\'')) {
        let (end, value) = string(css, at);
        let close = css[end..].find(')').map_or(css.len(), |c| end + c + 1);
        return (close, value);
    }
    let mut escaped = false;
    for (off, b) in css.bytes().enumerate().skip(at) {
        match b {
            _ if escaped => escaped = false,
            b'\\' => escaped = true,
            b')' => return (off + 1, unescape(css[at..off].trim_end())),
            _ => {}
        }
    }
    (css.len(), unescape(css[at..].trim_end()))
}

/// CSS escapes decoded: `\3a ` (one to six hex digits and one optional
/// space) is `:`, `\` before a newline continues the line, `\x` is `x`.
fn unescape(s: &str) -> String {
    if !s.contains('\\') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let mut hex = String::new();
        while hex.len() < 6
            && let Some(h) = chars.next_if(char::is_ascii_hexdigit)
        {
            hex.push(h);
        }
        if hex.is_empty() {
            match chars.next() {
                Some('\n') | None => {}
                Some(other) => out.push(other),
            }
            continue;
        }
        let _ = chars.next_if(|c| c.is_ascii_whitespace());
        let code = u32::from_str_radix(&hex, 16).unwrap_or(0);
        out.push(match char::from_u32(code) {
            Some(c) if code != 0 => c,
            _ => char::REPLACEMENT_CHARACTER,
        });
    }
    out
}

/// A CSS string holding `s`, in double quotes.
fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\n' => out.push_str("\\a "),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// What a browser would open for a value (character references decoded
/// too, as a scanner might).
fn url_of(value: &str) -> Option<String> {
    find::browser_url(&decode_entities(value))
}

/// A `url(…)` value: rewritten, or `none` where the URL goes.
fn rewrite_url_value(value: &str, rw: &LinkRewriter) -> Option<String> {
    match rw.rewrite_url(&url_of(value)?) {
        Rewritten::Kept => None,
        Rewritten::Url(u) => Some(format!("url({})", quoted(&u))),
        Rewritten::Removed => Some("none".to_string()),
    }
}

/// A string: a whole URL is rewritten as one (the marker where it goes);
/// URLs in other text as text.
fn rewrite_string(value: &str, rw: &LinkRewriter) -> Option<String> {
    let new = match url_of(value) {
        Some(url) => match rw.rewrite_url(&url) {
            Rewritten::Kept => return None,
            Rewritten::Url(u) => u,
            Rewritten::Removed => rw.marker.clone(),
        },
        None => rw.rewrite_text(value)?,
    };
    Some(quoted(&new))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LinksConfig;
    use crate::policy::LinkMode;

    fn rw(mode: LinkMode) -> LinkRewriter {
        LinkRewriter::new(mode, &LinksConfig::default(), None)
    }

    #[test]
    fn escapes_decode() {
        assert_eq!(
            unescape(r"https\3a //a\2e example/\)x\"),
            "https://a.example/)x"
        );
        assert_eq!(unescape(r"\0 \110000x"), "\u{fffd}\u{fffd}x");
    }

    #[test]
    fn urls_strings_and_comments() {
        let css = r#"@import "https://a.example/i.css"; .md\:flex{background:URL( 'https://b.example/x(1).png' )} /* https://c.example/ */ p{content:'see https://d.example/'} q{background:url(https\3a //e.example/e)}"#;
        let out = rewrite(css, &rw(LinkMode::Strip)).unwrap();
        assert_eq!(
            out,
            r#"@import "[link removed]"; .md\:flex{background:none} /* https://c.example/ */ p{content:"see [link removed]"} q{background:none}"#
        );
        let out = rewrite(css, &rw(LinkMode::Defang)).unwrap();
        assert!(
            out.starts_with(r#"@import "hxxps://a[.]example/i.css";"#),
            "{out}"
        );
        assert!(
            out.contains(r#"url("hxxps://b[.]example/x(1).png")"#),
            "{out}"
        );
        assert!(rewrite(".a{color:red} .b\\:c{x:'plain'}", &rw(LinkMode::Strip)).is_none());
        assert!(
            rewrite(
                "myurl(https://f.example/) 'unterminated",
                &rw(LinkMode::Keep)
            )
            .is_none()
        );
    }
}
