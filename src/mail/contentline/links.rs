//! The URLs of content lines rewritten: each property's parameters and
//! value, read as its [`Kind`] says. A line none of whose values changes
//! stays byte for byte; a changed one is written unfolded with only the
//! URLs' bytes replaced (escaped as the value's kind wants), then folded
//! at 75 octets.

use std::ops::Range;

use super::{Property, Unparsable, caret, escape_text, fold, read, uncaret, unescape};
use crate::links::{LinkRewriter, find, html, splice};

/// What a property's value is, for finding its URLs and writing new ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// TEXT: escapes undone to find URLs, new text escaped.
    Text,
    /// A URI (or a list of them): not escaped (`\:` is read, as Apple's
    /// vCards write it), new text written as it is.
    Uri,
    /// TEXT holding an HTML document (`FMTTYPE=text/html`): unescaped,
    /// rewritten as HTML, escaped again.
    Html,
    /// Inline binary data: no URL in it.
    Binary,
}

/// `text` with the URLs of every property rewritten, each value read as
/// `kind` says; `None` when nothing changed, else the new text and how
/// many values changed.
pub fn rewrite(
    text: &str,
    root: &'static str,
    kind: impl Fn(&str, &Property) -> Kind,
    rw: &LinkRewriter,
) -> Result<Option<(String, usize)>, Unparsable> {
    let mut out = String::with_capacity(text.len() + 256);
    let mut last = 0;
    let mut changed = 0;
    for (line, prop) in read(text, root)? {
        let Some((new, n)) = rewrite_line(&line.unfolded, &prop, kind(&line.unfolded, &prop), rw)
        else {
            continue;
        };
        out.push_str(&text[last..line.span.start]);
        out.push_str(&fold(&new, line.newline));
        if line.terminated {
            out.push_str(line.newline);
        }
        last = line.span.end;
        changed += n;
    }
    if changed == 0 {
        return Ok(None);
    }
    out.push_str(&text[last..]);
    Ok(Some((out, changed)))
}

/// One unfolded line with the URLs of its parameters and value rewritten;
/// `None` when nothing changed. A URL that is not inside one value (an
/// unquoted `ALTREP=https://…` reads as a parameter value `https` and a
/// property value `//…`) makes the whole line be read as plain text.
pub fn rewrite_line(
    line: &str,
    prop: &Property,
    kind: Kind,
    rw: &LinkRewriter,
) -> Option<(String, usize)> {
    let values: Vec<Range<usize>> = prop
        .params
        .iter()
        .flat_map(|p| p.values.iter().map(|v| v.inner.clone()))
        .chain(std::iter::once(prop.value.clone()))
        .collect();
    let astray = find::find(line).iter().any(|f| {
        !values
            .iter()
            .any(|v| v.start <= f.span.start && f.span.end <= v.end)
    });
    if astray {
        return rw.rewrite_text(line).map(|new| (new, 1));
    }
    let mut edits: Vec<(Range<usize>, String)> = Vec::new();
    for v in prop.params.iter().flat_map(|p| &p.values) {
        if let Some(new) = rewrite_param(&line[v.inner.clone()], rw) {
            edits.push((v.outer.clone(), format!("\"{new}\"")));
        }
    }
    if let Some(new) = rewrite_value(&line[prop.value.clone()], kind, rw) {
        edits.push((prop.value.clone(), new));
    }
    if edits.is_empty() {
        return None;
    }
    let n = edits.len();
    Some((splice(line, edits), n))
}

/// A property value (as written) with its URLs rewritten; `None` when
/// nothing changed.
pub fn rewrite_value(raw: &str, kind: Kind, rw: &LinkRewriter) -> Option<String> {
    match kind {
        Kind::Binary => None,
        Kind::Html => {
            let (text, _) = unescape(raw);
            let (new, _) = html::rewrite(&text, rw)?;
            Some(escape_text(&new))
        }
        Kind::Text => replace_mapped(raw, unescape, escape_text, rw),
        Kind::Uri => replace_mapped(raw, unescape, str::to_string, rw),
    }
}

/// A parameter value (without its quotes) with its URLs rewritten, caret
/// escaped (RFC 6868) to go between quotes; `None` when nothing changed.
pub fn rewrite_param(raw: &str, rw: &LinkRewriter) -> Option<String> {
    // What stays of the old value is copied as it was: it holds no `"`.
    replace_mapped(raw, uncaret, caret, rw)
}

/// `raw` with the bytes of each URL of its form decoded by `decode` (which
/// gives the raw offset of each decoded byte) replaced by the new URL,
/// encoded. No escape makes a `://` or `www.` that is not in `raw` but for
/// `\:`, so other values are not decoded at all.
fn replace_mapped(
    raw: &str,
    decode: fn(&str) -> (String, Vec<usize>),
    encode: impl Fn(&str) -> String,
    rw: &LinkRewriter,
) -> Option<String> {
    if !find::may_contain(raw) && !raw.contains("\\:") {
        return None;
    }
    let (text, map) = decode(raw);
    let edits = rw.replacements(&text);
    if edits.is_empty() {
        return None;
    }
    let mapped = edits
        .into_iter()
        .map(|(span, new)| (map[span.start]..map[span.end], encode(&new)));
    Some(splice(raw, mapped))
}

#[cfg(test)]
mod tests {
    use super::super::parse;
    use super::*;
    use crate::links::test_rewriter;
    use crate::policy::LinkMode;

    fn strip() -> LinkRewriter {
        test_rewriter(LinkMode::Strip)
    }

    fn defang() -> LinkRewriter {
        test_rewriter(LinkMode::Defang)
    }

    #[test]
    fn only_urls_bytes_change() {
        // The list's unescaped comma stays a separator, the escaped ones stay.
        let line = r"CATEGORIES:a\,b,see https://a.example/x\, ok";
        let p = parse(line).unwrap();
        let (new, n) = rewrite_line(line, &p, Kind::Text, &strip()).unwrap();
        assert_eq!(new, r"CATEGORIES:a\,b,see [link removed]\, ok");
        assert_eq!(n, 1);
        let line = r"URL:http\://a.example/x";
        let p = parse(line).unwrap();
        let (new, _) = rewrite_line(line, &p, Kind::Uri, &defang()).unwrap();
        assert_eq!(new, "URL:hxxp://a[.]example/x");
        let line = "NOTE:no links";
        assert_eq!(
            rewrite_line(line, &parse(line).unwrap(), Kind::Text, &strip()),
            None
        );
        let line = "PHOTO;ENCODING=b:aHR0cHM6Ly9hLmV4YW1wbGUv";
        assert_eq!(
            rewrite_line(line, &parse(line).unwrap(), Kind::Binary, &strip()),
            None
        );
    }

    #[test]
    fn params_are_quoted_when_they_change() {
        let line = r#"DESCRIPTION;ALTREP="https://a.example/d":text"#;
        let (new, _) = rewrite_line(line, &parse(line).unwrap(), Kind::Text, &strip()).unwrap();
        assert_eq!(new, r#"DESCRIPTION;ALTREP="[link removed]":text"#);
        // Unquoted and holding a colon: the line is read as plain text.
        let line = "DESCRIPTION;ALTREP=https://a.example/d: text";
        let (new, _) = rewrite_line(line, &parse(line).unwrap(), Kind::Text, &strip()).unwrap();
        assert_eq!(new, "DESCRIPTION;ALTREP=[link removed]: text");
    }

    #[test]
    fn html_values_are_rewritten_as_html() {
        let raw = r#"<a href="https://a.example/h">x</a>\n<p>b\, c</p>"#;
        let new = rewrite_value(raw, Kind::Html, &strip()).unwrap();
        assert_eq!(new, r"<a>x</a>\n<p>b\, c</p>");
    }
}
