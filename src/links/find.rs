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
    // By bytes, never slicing: `s` may hold a multi-byte character there.
    SCHEMES.iter().any(|p| {
        s.as_bytes()
            .get(..p.len())
            .is_some_and(|b| b.eq_ignore_ascii_case(p.as_bytes()))
    })
}

/// What IDNA (UTS 46) maps to a label separator: ideographic, fullwidth
/// and halfwidth ideographic full stops. Browsers open `a\u{3002}example`
/// as `a.example`.
const DOTS: [char; 3] = ['\u{3002}', '\u{ff0e}', '\u{ff61}'];
/// What IDNA deletes: a soft hyphen is invisible and leaves the host whole.
const SOFT_HYPHEN: char = '\u{ad}';

/// Beyond ASCII, letters and digits only (IRIs): typographic quotes and
/// dashes around a URL are the sentence's. Also what IDNA maps to a dot or
/// deletes, since a browser reads on past it.
fn url_char(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || "-._~:/?#[]@!$&'()*+,;=%".contains(c)
        || (!c.is_ascii() && c.is_alphanumeric())
        || DOTS.contains(&c)
        || c == SOFT_HYPHEN
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
    let mut out = Spans::default();
    if !may_contain(text) {
        return Vec::new();
    }
    wrapped_in_brackets(text, &mut out);
    with_scheme(text, &mut out);
    www_with_idna_dots(text, &mut out);
    let mut finder = LinkFinder::new();
    finder.kinds(&[LinkKind::Url]).url_must_have_scheme(false);
    for link in finder.links(text) {
        let s = link.as_str();
        let www = s.len() > 4 && s.as_bytes()[..4].eq_ignore_ascii_case(b"www.");
        // linkify also takes `example.com` in `user@example.com`: not a link.
        let after_at = text[..link.start()].ends_with('@');
        if (has_scheme(s) || www) && !after_at {
            push(
                &mut out,
                Found {
                    span: link.start()..link.end(),
                    url: s.to_string(),
                },
            );
        }
    }
    out.0.into_values().collect()
}

/// Found URLs by start, never overlapping.
#[derive(Default)]
struct Spans(std::collections::BTreeMap<usize, Found>);

/// Adds `f` unless it overlaps something found already. Spans do not
/// overlap, so only the last one starting before `f` ends can (log n).
fn push(out: &mut Spans, f: Found) {
    let overlaps = out
        .0
        .range(..f.span.end)
        .next_back()
        .is_some_and(|(_, o)| o.span.end > f.span.start);
    if !overlaps {
        out.0.insert(f.span.start, f);
    }
}

/// `<https://example.com/long/\r\n   path>`: a URL in angle brackets may be
/// wrapped; the wrap's whitespace is not part of it. However long: each
/// scan ends at the first character that is neither URL nor whitespace (at
/// the latest the next `<`), so the scans never overlap and the search is
/// linear.
fn wrapped_in_brackets(text: &str, out: &mut Spans) {
    let mut from = 0;
    while let Some(i) = text[from..].find('<') {
        let start = from + i + 1;
        from = start;
        let rest = &text[start..];
        if !has_scheme(rest) {
            continue;
        }
        let mut wrapped = false;
        let mut close = None;
        for (at, c) in rest.char_indices() {
            if c == '>' {
                close = Some(at);
                break;
            }
            if !(url_char(c) || c.is_whitespace()) {
                break;
            }
            wrapped |= c == '\r' || c == '\n';
        }
        let Some(close) = close.filter(|_| wrapped) else {
            continue;
        };
        let inner = &rest[..close];
        let url: String = inner.chars().filter(|c| !c.is_whitespace()).collect();
        push(
            out,
            Found {
                span: start..start + close,
                url,
            },
        );
        from = start + close;
    }
}

/// Every `http://`, `https://` and `ftp://` URL, including what linkify
/// does not take whole: bracketed IPv6 hosts (`http://[2001:db8::1]:8080/`)
/// and userinfo with escapes (`https://user:p%26ss@host/`).
fn with_scheme(text: &str, out: &mut Spans) {
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

/// The URL a browser opens for `value` (entities already decoded) when the
/// whole of it is one `http`, `https` or `ftp` URL, in the forms the WHATWG
/// URL parser accepts: surrounding spaces and control characters and any
/// tab or newline inside are dropped, `\\` counts as `/`, `https:host` and
/// `https:\\host` mean `https://host`, and `//host` (with a dot in the
/// host) is scheme-relative, `https` in a webmail page.
pub fn browser_url(value: &str) -> Option<String> {
    let v: String = value
        .trim_matches(|c: char| c <= ' ')
        .chars()
        .filter(|c| !matches!(c, '\t' | '\n' | '\r'))
        .collect();
    let whole = |u: &str| find(u).first().is_some_and(|f| f.span == (0..u.len()));
    if whole(&v) {
        return Some(v);
    }
    let (scheme, rest) = match v.split_once(':') {
        Some((s, rest))
            if SCHEMES
                .iter()
                .any(|p| p[..p.len() - 3].eq_ignore_ascii_case(s)) =>
        {
            (s.to_ascii_lowercase(), rest)
        }
        _ if v.starts_with(['/', '\\']) => ("https".to_string(), v.as_str()),
        _ => return None,
    };
    let after = rest.trim_start_matches(['/', '\\']);
    let relative = rest.len() == v.len();
    if relative && rest.len() - after.len() < 2 {
        // `/path` or `\path`: relative to the page, not a host.
        return None;
    }
    let path_end = after.find(['?', '#']).unwrap_or(after.len());
    let mut url = format!("{scheme}://");
    for (i, c) in after.char_indices() {
        match c {
            '\\' if i < path_end => url.push('/'),
            // Percent-encoded by the browser, as spaces and quotes are.
            c if c.is_ascii() && !url_char(c) => url.push_str(&format!("%{:02X}", c as u32)),
            c => url.push(c),
        }
    }
    let host = url[scheme.len() + 3..]
        .split(['/', '?', '#'])
        .next()
        .unwrap_or("");
    if relative && !(host.contains('.') || host.starts_with('[')) {
        return None;
    }
    whole(&url).then_some(url)
}

/// `www.` hosts that hold an IDNA dot or a soft hyphen, which linkify ends
/// the host at (or does not take at all): the browser opens them whole.
fn www_with_idna_dots(text: &str, out: &mut Spans) {
    let bytes = text.as_bytes();
    let mut from = 0;
    while let Some(i) = bytes[from..]
        .windows(4)
        .position(|w| w.eq_ignore_ascii_case(b"www."))
    {
        let start = from + i;
        from = start + 4;
        if text[..start].ends_with(|c: char| url_char(c) && !"(['\"".contains(c)) {
            continue;
        }
        let len = text[start..]
            .find(|c: char| !url_char(c))
            .unwrap_or(text.len() - start);
        let end = trim_end(&text[start..start + len]) + start;
        let host_end = text[start..end]
            .find(['/', '?', '#'])
            .map_or(end, |h| start + h);
        if text[start..host_end].contains(|c| DOTS.contains(&c) || c == SOFT_HYPHEN) {
            push(
                out,
                Found {
                    span: start..end,
                    url: text[start..end].to_string(),
                },
            );
            from = end;
        }
    }
}

/// Length of `url` without what belongs to the sentence around it:
/// trailing punctuation, and closing brackets that were not opened inside.
fn trim_end(url: &str) -> usize {
    // Bracket counts kept as characters are dropped: linear, however many.
    let count = |c: char| url.matches(c).count();
    let (open_p, mut close_p, open_b, mut close_b) =
        (count('('), count(')'), count('['), count(']'));
    let mut end = url.len();
    while let Some(last) = url[..end].chars().next_back() {
        let drop = match last {
            '.' | ',' | ';' | ':' | '!' | '?' | '\'' | '"' | '*' | SOFT_HYPHEN => true,
            // A sentence in Japanese or Chinese ends with one.
            c if DOTS.contains(&c) => true,
            ')' => open_p < close_p,
            ']' => open_b < close_b,
            _ => false,
        };
        if !drop {
            break;
        }
        match last {
            ')' => close_p -= 1,
            ']' => close_b -= 1,
            _ => {}
        }
        end -= last.len_utf8();
    }
    end
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
    fn what_browsers_open() {
        for (value, url) in [
            (" https://a.example/x ", "https://a.example/x"),
            ("ht\ttps://a.example/t", "https://a.example/t"),
            ("https://a.ex\r\nample/n", "https://a.example/n"),
            ("HTTPS:a.example/s", "https://a.example/s"),
            (
                "https:\\\\a.example\\b?c=\\d e",
                "https://a.example/b?c=%5Cd%20e",
            ),
            ("https://a.example/a b", "https://a.example/a%20b"),
            ("//a.example/rel", "https://a.example/rel"),
            ("\\\\a.example/rel", "https://a.example/rel"),
            ("ftp:/f.example/x", "ftp://f.example/x"),
        ] {
            assert_eq!(browser_url(value).as_deref(), Some(url), "{value:?}");
        }
        for value in [
            "/path/x.png",
            "//comment",
            "x.png",
            "mailto:a@b.example",
            "see https://a.example/",
        ] {
            assert_eq!(browser_url(value), None, "{value:?}");
        }
    }

    #[test]
    fn idna_dots_and_soft_hyphen() {
        assert_eq!(
            urls("https://a\u{3002}example/r?t=1 and https://b\u{ff0e}ex\u{ad}ample/\u{ff61}"),
            vec![
                "https://a\u{3002}example/r?t=1",
                "https://b\u{ff0e}ex\u{ad}ample/"
            ]
        );
        assert_eq!(
            urls("\u{898b}\u{3066} https://c.example/x\u{3002}"),
            vec!["https://c.example/x"]
        );
        assert_eq!(
            urls("www.a\u{3002}example/r?t=1"),
            vec!["www.a\u{3002}example/r?t=1"]
        );
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
