//! The content-line syntax iCalendar (RFC 5545 3.1) and vCard (RFC 6350
//! 3.2, RFC 2426) share, read and written for link rewriting: lines folded
//! with a line break and a space or tab, `group.NAME;PARAM=a,"b":value`,
//! TEXT escaping (`\\` `\;` `\,` `\n`) and RFC 6868 caret escaping in
//! parameter values.
//!
//! Nothing is lost in the reading: each line keeps its place in the text,
//! so a line can be written again alone ([`links`] rewrites the ones
//! whose values hold URLs). The iCalendar and vCard modules only say
//! which properties hold which [`Kind`] of value.

pub mod links;

use std::ops::Range;

pub use links::{Kind, rewrite};

/// Lines longer than this (octets, line break excluded) are folded.
const FOLD_AT: usize = 75;

/// Why a text is not a calendar or vCard sotto can read line by line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Unparsable {
    #[error("line {0} is not a content line")]
    Line(usize),
    #[error("the text does not begin with BEGIN:{0}")]
    Root(&'static str),
    #[error("BEGIN and END do not match at line {0}")]
    Nesting(usize),
    #[error("a component is not closed")]
    Unclosed,
}

/// One logical line: where it is in the text and what it says unfolded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// Its bytes in the text, folds and final line break included.
    pub span: Range<usize>,
    /// The content, unfolded, without its line break.
    pub unfolded: String,
    /// The line break it uses (`"\r\n"` unless it came with a bare `"\n"`).
    pub newline: &'static str,
    /// Whether it ends with a line break (the last line may not).
    pub terminated: bool,
}

/// `text` cut into logical lines: a physical line that begins with a space
/// or tab continues the one before, without that space or tab.
pub fn lines(text: &str) -> Vec<Line> {
    let mut out: Vec<Line> = Vec::new();
    // A byte order mark stays where it is, before the first line.
    let mut pos = if text.starts_with('\u{feff}') { 3 } else { 0 };
    while pos < text.len() {
        let (content_end, next, newline) = match text[pos..].find('\n') {
            Some(i) if text[..pos + i].ends_with('\r') => (pos + i - 1, pos + i + 1, "\r\n"),
            Some(i) => (pos + i, pos + i + 1, "\n"),
            None => (text.len(), text.len(), ""),
        };
        let content = &text[pos..content_end];
        let continues = content.starts_with([' ', '\t']);
        match out.last_mut() {
            Some(last) if continues => {
                last.unfolded.push_str(&content[1..]);
                last.span.end = next;
                last.terminated = !newline.is_empty();
            }
            _ => out.push(Line {
                span: pos..next,
                unfolded: content.to_string(),
                newline: if newline.is_empty() { "\r\n" } else { newline },
                terminated: !newline.is_empty(),
            }),
        }
        pos = next;
    }
    out
}

/// A parameter value: its bytes (without quotes) and all of it (with them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamValue {
    pub inner: Range<usize>,
    pub outer: Range<usize>,
}

/// A parameter: its name and its values (none for vCard 2.1's `;WORK`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    pub name: Range<usize>,
    pub values: Vec<ParamValue>,
}

/// A content line read: positions into its unfolded text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Property {
    /// The name without its group (`item1.URL` → `URL`).
    pub name: Range<usize>,
    pub params: Vec<Param>,
    /// The value: everything after the first `:` outside quotes.
    pub value: Range<usize>,
}

impl Property {
    /// The upper-cased name, as the tables in `ical` and `vcard` list them.
    pub fn name(&self, line: &str) -> String {
        line[self.name.clone()].to_ascii_uppercase()
    }

    /// Whether a parameter `name` has the value `value` (case-insensitive;
    /// vCard 3.0 may list several, `TYPE=a,b`).
    pub fn has_param(&self, line: &str, name: &str, value: &str) -> bool {
        self.params.iter().any(|p| {
            line[p.name.clone()].eq_ignore_ascii_case(name)
                && p.values
                    .iter()
                    .any(|v| line[v.inner.clone()].eq_ignore_ascii_case(value))
        })
    }
}

fn name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// Reads `line` as `[group.]NAME *(;param) : value`; `None` if it is not one.
pub fn parse(line: &str) -> Option<Property> {
    let b = line.as_bytes();
    let mut i = 0;
    let mut name_start = 0;
    while i < b.len() && (name_byte(b[i]) || b[i] == b'.') {
        if b[i] == b'.' {
            name_start = i + 1;
        }
        i += 1;
    }
    if name_start == i {
        return None;
    }
    let name = name_start..i;
    let mut params = Vec::new();
    while b.get(i) == Some(&b';') {
        i += 1;
        let start = i;
        while i < b.len() && name_byte(b[i]) {
            i += 1;
        }
        if start == i {
            return None;
        }
        let mut param = Param {
            name: start..i,
            values: Vec::new(),
        };
        if b.get(i) == Some(&b'=') {
            loop {
                i += 1;
                let from = i;
                if b.get(i) == Some(&b'"') {
                    let close = from + 1 + line[from + 1..].find('"')?;
                    i = close + 1;
                    param.values.push(ParamValue {
                        inner: from + 1..close,
                        outer: from..i,
                    });
                } else {
                    while i < b.len() && !matches!(b[i], b';' | b':' | b',' | b'"') {
                        i += 1;
                    }
                    param.values.push(ParamValue {
                        inner: from..i,
                        outer: from..i,
                    });
                }
                if b.get(i) != Some(&b',') {
                    break;
                }
            }
        }
        params.push(param);
    }
    if b.get(i) != Some(&b':') {
        return None;
    }
    Some(Property {
        name,
        params,
        value: i + 1..line.len(),
    })
}

/// The lines of a text made of one or more `BEGIN:root` … `END:root`
/// components (nested components balanced; blank lines allowed), each
/// with its property.
pub fn read(text: &str, root: &'static str) -> Result<Vec<(Line, Property)>, Unparsable> {
    let mut out = Vec::new();
    let mut open: Vec<String> = Vec::new();
    let mut roots = 0;
    for (n, line) in lines(text).into_iter().enumerate() {
        if line.unfolded.trim().is_empty() {
            continue;
        }
        let prop = parse(&line.unfolded).ok_or(Unparsable::Line(n + 1))?;
        let value = line.unfolded[prop.value.clone()]
            .trim()
            .to_ascii_uppercase();
        match prop.name(&line.unfolded).as_str() {
            "BEGIN" => {
                if open.is_empty() {
                    if value != root {
                        return Err(Unparsable::Root(root));
                    }
                    roots += 1;
                }
                open.push(value);
            }
            "END" => {
                let closed = open.pop();
                if closed != Some(value) {
                    return Err(Unparsable::Nesting(n + 1));
                }
            }
            _ if open.is_empty() => return Err(Unparsable::Root(root)),
            _ => {}
        }
        out.push((line, prop));
    }
    if !open.is_empty() {
        return Err(Unparsable::Unclosed);
    }
    if roots == 0 {
        return Err(Unparsable::Root(root));
    }
    Ok(out)
}

/// TEXT escapes undone (`\\` `\;` `\,` `\:` `\n` `\N`; any other backslash
/// stays), with the raw offset of each byte of the result (and of its end).
pub fn unescape(raw: &str) -> (String, Vec<usize>) {
    decode_with_map(raw, '\\', |c| match c {
        '\\' | ';' | ',' | ':' => Some(c),
        'n' | 'N' => Some('\n'),
        _ => None,
    })
}

/// RFC 6868 escapes undone (`^^` `^n` `^'`), with the raw offset map.
pub fn uncaret(raw: &str) -> (String, Vec<usize>) {
    decode_with_map(raw, '^', |c| match c {
        '^' => Some('^'),
        'n' | 'N' => Some('\n'),
        '\'' => Some('"'),
        _ => None,
    })
}

fn decode_with_map(
    raw: &str,
    esc: char,
    decode: impl Fn(char) -> Option<char>,
) -> (String, Vec<usize>) {
    let mut text = String::with_capacity(raw.len());
    let mut map = Vec::with_capacity(raw.len() + 1);
    let mut chars = raw.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        let decoded = if c == esc {
            chars.peek().and_then(|&(_, n)| decode(n))
        } else {
            None
        };
        let out = match decoded {
            Some(d) => {
                chars.next();
                d
            }
            None => c,
        };
        map.extend(std::iter::repeat_n(at, out.len_utf8()));
        text.push(out);
    }
    map.push(raw.len());
    (text, map)
}

/// TEXT escaping: `\` `;` `,` and line breaks.
pub fn escape_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\n' => out.push_str("\\n"),
            '\r' if chars.peek() == Some(&'\n') => {}
            '\r' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// RFC 6868 escaping for a quoted parameter value: `^` `"` and line breaks.
pub fn caret(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '^' => out.push_str("^^"),
            '"' => out.push_str("^'"),
            '\n' => out.push_str("^n"),
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

/// `line` folded: no physical line over 75 octets, each continuation
/// starting with one space, never inside a UTF-8 sequence.
pub fn fold(line: &str, newline: &str) -> String {
    let mut out = String::with_capacity(line.len() + line.len() / 30 + 8);
    let mut rest = line;
    let mut room = FOLD_AT;
    loop {
        if rest.len() <= room {
            out.push_str(rest);
            return out;
        }
        let mut cut = room;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        out.push_str(&rest[..cut]);
        out.push_str(newline);
        out.push(' ');
        rest = &rest[cut..];
        room = FOLD_AT - 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unfolding_keeps_each_lines_place() {
        let text = "BEGIN:X\r\nDESCRIPTION:a\r\n  b\r\n\tc\nEND:X";
        let l = lines(text);
        assert_eq!(l.len(), 3);
        assert_eq!(l[1].unfolded, "DESCRIPTION:a bc");
        assert_eq!(&text[l[1].span.clone()], "DESCRIPTION:a\r\n  b\r\n\tc\n");
        assert_eq!(l[1].newline, "\r\n");
        assert!(l[1].terminated);
        assert_eq!(l[2].unfolded, "END:X");
        assert!(!l[2].terminated);
    }

    #[test]
    fn content_lines_parse() {
        let line =
            r#"item1.X-ALT;ALTREP="https://a.example/x;y:z","cid:p";TYPE=work,pref;WORK:v:w"#;
        let p = parse(line).unwrap();
        assert_eq!(p.name(line), "X-ALT");
        assert_eq!(p.params.len(), 3);
        let alt = &p.params[0].values;
        assert_eq!(&line[alt[0].inner.clone()], "https://a.example/x;y:z");
        assert_eq!(&line[alt[0].outer.clone()], "\"https://a.example/x;y:z\"");
        assert_eq!(&line[alt[1].inner.clone()], "cid:p");
        assert!(p.has_param(line, "type", "PREF"));
        assert!(p.params[2].values.is_empty());
        assert_eq!(&line[p.value.clone()], "v:w");
        for bad in ["", ":v", "NAME", "N;=x:v", "N;P=\"open:v", "N A:v"] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }

    /// Folded, escaped lines as producers write them: unfolded and
    /// unescaped, then escaped and folded again, they read the same, with
    /// every written line within 75 octets.
    #[test]
    fn unfold_unescape_escape_fold_round_trips() {
        for raw in [
            "DESCRIPTION:short\\, plain\r\n",
            "DESCRIPTION:Bonjour \u{e0} tous\\,\\n\\nOrdre du jour (\u{e0} lire av\r\n ant la r\u{e9}union)\\; fin\r\n",
            "NOTE:tab\r\n\tfolded and a backslash \\\\ here\n",
            "X-EMOJI:\u{1f4c5}\u{1f4c5}\u{1f4c5}\u{1f4c5}\u{1f4c5}\u{1f4c5}\u{1f4c5}\u{1f4c5}\u{1f4c5}\u{1f4c5}\u{1f4c5}\u{1f4c5}\u{1f4c5}\u{1f4c5}\u{1f4c5}\u{1f4c5}\u{1f4c5}\u{1f4c5}\u{1f4c5}\r\n",
        ] {
            let line = &lines(raw)[0];
            let prop = parse(&line.unfolded).unwrap();
            let (text, _) = unescape(&line.unfolded[prop.value.clone()]);
            let written = format!(
                "{}{}",
                &line.unfolded[..prop.value.start],
                escape_text(&text)
            );
            let folded = fold(&written, line.newline);
            assert!(
                folded.split(line.newline).all(|l| l.len() <= 75),
                "{folded:?}"
            );
            let again = &lines(&folded)[0];
            let prop2 = parse(&again.unfolded).unwrap();
            assert_eq!(
                unescape(&again.unfolded[prop2.value.clone()]).0,
                text,
                "{raw:?}"
            );
            assert_eq!(
                again.unfolded[..prop2.value.start],
                line.unfolded[..prop.value.start]
            );
        }
    }

    /// Escape tables: raw TEXT, what it reads as, and how that is written
    /// again (round trip: unescape then escape gives equivalent content).
    #[test]
    fn text_escaping_round_trips() {
        for (raw, text, again) in [
            (
                r"a\, b\; c\\d\ne\Nf",
                "a, b; c\\d\ne\nf",
                r"a\, b\; c\\d\ne\nf",
            ),
            (r"http\://x.example", "http://x.example", "http://x.example"),
            (r"odd \q stays", r"odd \q stays", r"odd \\q stays"),
            ("trailing \\", "trailing \\", "trailing \\\\"),
            (
                "caf\u{e9} \u{1f600}",
                "caf\u{e9} \u{1f600}",
                "caf\u{e9} \u{1f600}",
            ),
        ] {
            let (t, map) = unescape(raw);
            assert_eq!(t, text, "{raw:?}");
            assert_eq!(map.len(), t.len() + 1);
            assert_eq!(*map.last().unwrap(), raw.len());
            assert_eq!(escape_text(&t), again, "{raw:?}");
            assert_eq!(unescape(&escape_text(&t)).0, t, "{raw:?}");
        }
        let (t, _) = uncaret("a^^b^nc^'d^x");
        assert_eq!(t, "a^b\nc\"d^x");
        assert_eq!(uncaret(&caret(&t)).0, t);
    }

    #[test]
    fn folding_at_75_octets_never_splits_a_character() {
        for line in [
            "X".repeat(75),
            "Y".repeat(76),
            format!("DESCRIPTION:{}", "\u{e9}\u{1f600}".repeat(60)),
            format!("URL:https://a.example/{}", "p".repeat(300)),
        ] {
            let folded = fold(&line, "\r\n");
            for (i, phys) in folded.split("\r\n").enumerate() {
                assert!(phys.len() <= 75, "{phys:?}");
                assert!(i == 0 || phys.starts_with(' '));
            }
            let l = lines(&folded);
            assert_eq!(l.len(), 1);
            assert_eq!(l[0].unfolded, line);
        }
        assert_eq!(fold("short", "\n"), "short");
    }

    #[test]
    fn structure_is_checked() {
        let ok = "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        assert_eq!(read(ok, "VCALENDAR").unwrap().len(), 4);
        for (bad, why) in [
            (
                "BEGIN:VCARD\r\nEND:VCARD\r\n",
                Unparsable::Root("VCALENDAR"),
            ),
            ("", Unparsable::Root("VCALENDAR")),
            ("BEGIN:VCALENDAR\r\nEND:VEVENT\r\n", Unparsable::Nesting(2)),
            ("BEGIN:VCALENDAR\r\nX:1\r\n", Unparsable::Unclosed),
            (
                "BEGIN:VCALENDAR\r\nnot a line\r\nEND:VCALENDAR\r\n",
                Unparsable::Line(2),
            ),
            (
                "BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\nX:1\r\n",
                Unparsable::Root("VCALENDAR"),
            ),
        ] {
            assert_eq!(read(bad, "VCALENDAR").unwrap_err(), why, "{bad:?}");
        }
    }
}
