//! URLs in CSV (RFC 4180, `text/csv`, `.csv`) and tab-separated tables,
//! rewritten field by field: a URL ends where its field ends (the plain
//! finder would run on over `,2026-03-02` into the next column), and a
//! field that a new value would break (a delimiter or quote in a marker)
//! is quoted. Everything outside the URLs stays byte for byte; rows and
//! columns stay as they were.

use std::ops::Range;

use crate::links::{LinkRewriter, splice};

/// One field: its bytes (without the quotes) and whether it is quoted.
struct Field {
    inner: Range<usize>,
    quoted: bool,
}

/// The delimiter a table uses: tab for tab-separated values, else the one
/// of `,` and `;` (Excel's in many locales) its first line has more of.
pub fn delimiter(text: &str, tab_separated: bool) -> char {
    if tab_separated {
        return '\t';
    }
    let first = text.lines().next().unwrap_or("");
    let count = |c: char| first.matches(c).count();
    if count(';') > count(',') { ';' } else { ',' }
}

/// Every field of `text`; quoted fields may span lines, `""` is a quote.
/// Lenient as spreadsheet programs are: text after a closing quote belongs
/// to the field, an unclosed quote runs to the end.
fn fields(text: &str, delim: char) -> Vec<Field> {
    let b = text.as_bytes();
    let d = delim as u8;
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        let start = i;
        let quoted = b.get(i) == Some(&b'"');
        if quoted {
            i += 1;
            loop {
                match b.get(i) {
                    None => break,
                    Some(b'"') if b.get(i + 1) == Some(&b'"') => i += 2,
                    Some(b'"') => break,
                    Some(_) => i += 1,
                }
            }
            out.push(Field {
                inner: start + 1..i,
                quoted,
            });
            i = (i + 1).min(b.len());
        }
        while i < b.len() && b[i] != d && b[i] != b'\n' {
            i += 1;
        }
        if !quoted {
            let end = if b[..i].ends_with(b"\r") && b.get(i) == Some(&b'\n') {
                i - 1
            } else {
                i
            };
            out.push(Field {
                inner: start..end,
                quoted,
            });
        }
        if i >= b.len() {
            return out;
        }
        i += 1;
    }
}

/// `text` with the URLs of its fields rewritten; `None` when nothing
/// changed, else the new text and how many fields changed.
pub fn rewrite(text: &str, delim: char, rw: &LinkRewriter) -> Option<(String, usize)> {
    let double = |s: &str| s.replace('"', "\"\"");
    let mut edits = Vec::new();
    for f in fields(text, delim) {
        let raw = &text[f.inner.clone()];
        let urls = rw.replacements(raw);
        if urls.is_empty() {
            continue;
        }
        // In a quoted field the old text's `""` stay; new quotes double.
        let new = splice(
            raw,
            urls.into_iter()
                .map(|(span, url)| (span, if f.quoted { double(&url) } else { url })),
        );
        let new = if !f.quoted && new.contains([delim, '"', '\r', '\n']) {
            format!("\"{}\"", double(&new))
        } else {
            new
        };
        edits.push((f.inner, new));
    }
    let n = edits.len();
    (n > 0).then(|| (splice(text, edits), n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::links::test_rewriter as rw;
    use crate::policy::LinkMode;

    #[test]
    fn urls_end_with_their_field() {
        let t = "id,url,date\r\n1,https://a.example/x?t=1,2026-03-02\r\n2,\"see https://b.example/y, \"\"ok\"\"\",2026-03-03\r\n3,none,x";
        let (out, n) = rewrite(t, ',', &rw(LinkMode::Strip)).unwrap();
        assert_eq!(
            out,
            "id,url,date\r\n1,[link removed],2026-03-02\r\n2,\"see [link removed], \"\"ok\"\"\",2026-03-03\r\n3,none,x"
        );
        assert_eq!(n, 2);
        let (out, _) = rewrite(t, ',', &rw(LinkMode::Defang)).unwrap();
        assert!(
            out.contains("\r\n1,hxxps://a[.]example/x?t=1,2026-03-02\r\n"),
            "{out}"
        );
        assert_eq!(rewrite("a,b\nc,d\n", ',', &rw(LinkMode::Strip)), None);
    }

    #[test]
    fn a_field_a_new_value_would_break_is_quoted() {
        let cfg = crate::config::LinksConfig {
            marker: "[link, \"removed\"]".into(),
            ..crate::config::LinksConfig::default()
        };
        let strip = LinkRewriter::new(LinkMode::Strip, &cfg, None);
        let (out, _) = rewrite("a;https://a.example/;b\n", ';', &strip).unwrap();
        assert_eq!(out, "a;\"[link, \"\"removed\"\"]\";b\n");
        let (out, _) = rewrite("a,\"x https://a.example/\",b\n", ',', &strip).unwrap();
        assert_eq!(out, "a,\"x [link, \"\"removed\"\"]\",b\n");
    }

    #[test]
    fn delimiters() {
        assert_eq!(delimiter("a;b;c,d\n1;2;3\n", false), ';');
        assert_eq!(delimiter("a,b\n", false), ',');
        assert_eq!(delimiter("a,b\n", true), '\t');
        let (out, _) = rewrite("x\thttps://a.example/\ty\n", '\t', &rw(LinkMode::Strip)).unwrap();
        assert_eq!(out, "x\t[link removed]\ty\n");
    }
}
