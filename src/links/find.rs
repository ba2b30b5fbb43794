//! Finding the URLs a reader would see in text: linkify, limited to http,
//! https and ftp (never `javascript:` or `data:`) and bare `www.` hosts,
//! plus what it misses — bracketed IPv6 hosts, and URLs in angle brackets
//! wrapped across lines (RFC 3986 appendix C).

use std::ops::Range;

use linkify::{LinkFinder, LinkKind};

/// One URL found in a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Where it is in the text (for a wrapped URL: the whole span, brackets excluded).
    pub span: Range<usize>,
    /// The URL itself (whitespace of a wrap removed).
    pub url: String,
}

const SCHEMES: [&str; 3] = ["http://", "https://", "ftp://"];

fn has_scheme(s: &str) -> bool {
    SCHEMES
        .iter()
        .any(|p| s.len() >= p.len() && s[..p.len()].eq_ignore_ascii_case(p))
}

/// Beyond ASCII, letters and digits only (IRIs): typographic quotes and
/// dashes around a URL are the sentence's.
fn url_char(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || "-._~:/?#[]@!$&'()*+,;=%".contains(c)
        || (!c.is_ascii() && c.is_alphanumeric())
}

/// Whether `text` may hold a URL at all (a cheap test before the scan).
pub fn may_contain(text: &str) -> bool {
    text.contains("://")
        || text
            .as_bytes()
            .windows(4)
            .any(|w| w.eq_ignore_ascii_case(b"www."))
}

/// Every URL in `text`, in order, not overlapping.
pub fn find(text: &str) -> Vec<Found> {
    let mut out: Vec<Found> = Vec::new();
    if !may_contain(text) {
        return out;
    }
    wrapped_in_brackets(text, &mut out);
    with_scheme(text, &mut out);
    let mut finder = LinkFinder::new();
    finder.kinds(&[LinkKind::Url]).url_must_have_scheme(false);
    for link in finder.links(text) {
        let s = link.as_str();
        let ok = has_scheme(s) || (s.len() > 4 && s[..4].eq_ignore_ascii_case("www."));
        // linkify also takes `example.com` in `user@example.com`: not a link.
        let after_at = text[..link.start()].ends_with('@');
        if ok && !after_at {
            push(
                &mut out,
                Found {
                    span: link.start()..link.end(),
                    url: s.to_string(),
                },
            );
        }
    }
    out.sort_by_key(|f| f.span.start);
    out
}

/// Adds `f` unless it overlaps something found already.
fn push(out: &mut Vec<Found>, f: Found) {
    if !out
        .iter()
        .any(|o| o.span.start < f.span.end && f.span.start < o.span.end)
    {
        out.push(f);
    }
}

/// `<https://example.com/long/\r\n   path>`: a URL in angle brackets may be
/// wrapped; the wrap's whitespace is not part of it.
fn wrapped_in_brackets(text: &str, out: &mut Vec<Found>) {
    let mut from = 0;
    while let Some(i) = text[from..].find('<') {
        let start = from + i + 1;
        from = start;
        let rest = &text[start..];
        if !has_scheme(rest) {
            continue;
        }
        let Some(close) = rest.find('>') else { break };
        let inner = &rest[..close];
        if !inner.contains(['\r', '\n']) || close > 4096 {
            continue;
        }
        if inner.chars().all(|c| url_char(c) || c.is_whitespace()) {
            let url: String = inner.chars().filter(|c| !c.is_whitespace()).collect();
            push(
                out,
                Found {
                    span: start..start + close,
                    url,
                },
            );
        }
    }
}

/// Every `http://`, `https://` and `ftp://` URL, including what linkify
/// does not take whole: bracketed IPv6 hosts (`http://[2001:db8::1]:8080/`)
/// and userinfo with escapes (`https://user:p%26ss@host/`).
fn with_scheme(text: &str, out: &mut Vec<Found>) {
    let mut from = 0;
    while let Some(i) = text[from..].find("://") {
        let sep = from + i;
        from = sep + 3;
        let start = text[..sep]
            .char_indices()
            .rev()
            .find(|(_, c)| !c.is_ascii_alphabetic())
            .map_or(0, |(p, c)| p + c.len_utf8());
        if !has_scheme(&text[start..]) || text[..start].ends_with(|c: char| c.is_alphanumeric()) {
            continue;
        }
        let len = text[start..]
            .find(|c: char| !url_char(c))
            .unwrap_or(text.len() - start);
        let end = trim_end(&text[start..start + len]) + start;
        if end > sep + 3 {
            push(
                out,
                Found {
                    span: start..end,
                    url: text[start..end].to_string(),
                },
            );
            from = end.max(from);
        }
    }
}

/// Length of `url` without what belongs to the sentence around it:
/// trailing punctuation, and closing brackets that were not opened inside.
fn trim_end(url: &str) -> usize {
    let mut end = url.len();
    loop {
        let s = &url[..end];
        let Some(last) = s.chars().last() else {
            return 0;
        };
        let drop = match last {
            '.' | ',' | ';' | ':' | '!' | '?' | '\'' | '"' | '*' => true,
            ')' => s.matches('(').count() < s.matches(')').count(),
            ']' => s.matches('[').count() < s.matches(']').count(),
            _ => false,
        };
        if !drop {
            return end;
        }
        end -= last.len_utf8();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn urls(t: &str) -> Vec<String> {
        find(t).into_iter().map(|f| f.url).collect()
    }

    #[test]
    fn schemes_and_www() {
        assert_eq!(
            urls(
                "see https://a.example/x?y=1, ftp://f.example/f and www.b.example/p. Mail me: me@c.example"
            ),
            vec![
                "https://a.example/x?y=1",
                "ftp://f.example/f",
                "www.b.example/p"
            ]
        );
        assert!(urls("javascript:alert(1) data:text/html,hi mailto:x@y.example").is_empty());
        assert_eq!(urls("(https://x.example/a)."), vec!["https://x.example/a"]);
    }

    #[test]
    fn ipv6_and_wrapped() {
        assert_eq!(
            urls("go to http://[2001:db8::1]:8080/admin?session=abc."),
            vec!["http://[2001:db8::1]:8080/admin?session=abc"]
        );
        let t = "Download <https://dl.example/very/long/\r\n   path?sig=1> now";
        let f = find(t);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].url, "https://dl.example/very/long/path?sig=1");
        assert_eq!(
            &t[f[0].span.clone()],
            "https://dl.example/very/long/\r\n   path?sig=1"
        );
    }
}
