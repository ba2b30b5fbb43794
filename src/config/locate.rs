//! Where a configuration problem is: `file:line:col: what is wrong`.

use std::fmt;
use std::path::{Path, PathBuf};

use toml::de::{DeTable, DeValue};

use super::hint::{self, Serde};
use super::tree::{Refusal, Seg, dotted};

/// One thing wrong with the configuration, with its place when known.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Problem {
    /// The file, or `None` for embedded defaults and the environment.
    pub file: Option<PathBuf>,
    /// 1-based line and column.
    pub position: Option<(usize, usize)>,
    /// The environment variable it comes from, as `NAME=value` (or only
    /// `NAME` when the value may be a secret).
    pub env: Option<String>,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.env, &self.file, self.position) {
            (Some(var), _, _) => write!(f, "{var}: {}", self.message),
            (None, Some(file), Some((l, c))) => {
                write!(f, "{}:{l}:{c}: {}", file.display(), self.message)
            }
            (None, Some(file), None) => write!(f, "{}: {}", file.display(), self.message),
            (None, None, _) => write!(f, "configuration: {}", self.message),
        }
    }
}

impl Problem {
    /// A problem with a whole file (or directory).
    pub fn whole(file: &Path, message: String) -> Self {
        Problem {
            file: Some(file.to_path_buf()),
            position: None,
            env: None,
            message,
        }
    }

    /// A problem at a line and column of a file.
    pub fn at(file: &Path, position: (usize, usize), message: String) -> Self {
        Problem {
            file: Some(file.to_path_buf()),
            position: Some(position),
            env: None,
            message,
        }
    }

    /// A problem with environment variable `name`; its value is shown
    /// unless the name says it may be a secret.
    pub(super) fn from_env(name: &str, value: Option<&str>, message: String) -> Self {
        let env = match value {
            Some(v) if !hint::may_be_secret(name) => format!("{name}={v}"),
            _ => name.to_string(),
        };
        Problem {
            file: None,
            position: None,
            env: Some(env),
            message,
        }
    }

    /// A problem without a place: the embedded defaults.
    pub(super) fn unplaced(message: String) -> Self {
        Problem {
            file: None,
            position: None,
            env: None,
            message,
        }
    }

    /// A problem with the value under `key` (dotted path), found by
    /// validation: placed at the key in the file when the file sets it,
    /// else at the variable that set it, else (defaults) without a place.
    pub(super) fn at_key(
        file: Option<&Path>,
        text: Option<&str>,
        env: &[(&str, &str, String)],
        key: &str,
        msg: String,
    ) -> Self {
        if let Some((name, value, _)) = env.iter().find(|(_, _, k)| k == key) {
            return Problem::from_env(name, Some(value), format!("{key}: {msg}"));
        }
        let position = text.and_then(|t| key_offset(t, key).map(|o| line_col(t, o)));
        Problem {
            file: file.map(Path::to_path_buf),
            position,
            env: None,
            message: format!("{key}: {msg}"),
        }
    }

    /// A value or key of the file that deserialization refused.
    pub(super) fn refused(file: &Path, text: &str, r: &Refusal) -> Self {
        if r.path.is_empty() {
            return Problem::whole(file, r.message.clone());
        }
        let key = dotted(&r.path);
        let message = match hint::read_serde(&r.message) {
            Serde::UnknownField { name, known } => {
                let known: Vec<&str> = known.iter().map(String::as_str).collect();
                let table = &r.path[..r.path.len().saturating_sub(1)];
                hint::unknown_field(&name, &place(table), &known)
            }
            Serde::MissingField(f) => {
                format!(
                    "{}: `{f}` is missing; this entry is left out",
                    table_name(&r.path)
                )
            }
            Serde::BadValue(expected) => {
                let written = match text.get(r.span.clone()) {
                    _ if hint::may_be_secret(&key) => "(hidden)".to_string(),
                    Some(w) => shorten(w),
                    None => "this value".to_string(),
                };
                match r.path.last() {
                    Some(Seg::Item(_)) => format!("{key}: item {written}: {expected}"),
                    _ => format!("{key} = {written}: {expected}"),
                }
            }
        };
        Problem::at(file, line_col(text, r.span.start), message)
    }
}

/// How a problem names the table at `path`: `[smtp]`,
/// `[[smtp.auth.users]]`, or the top level.
fn table_name(path: &[Seg]) -> String {
    match path.last() {
        None => "the top level".to_string(),
        Some(Seg::Item(_)) => format!("[[{}]]", dotted(path)),
        Some(Seg::Key(_)) => format!("[{}]", dotted(path)),
    }
}

/// Where a key of the table at `path` is: "in `[smtp]`", "at the top level".
pub(super) fn place(path: &[Seg]) -> String {
    match path.last() {
        None => "at the top level".to_string(),
        Some(_) => format!("in {}", table_name(path)),
    }
}

/// The first line of what was written, at most 40 characters.
fn shorten(written: &str) -> String {
    let line = written.lines().next().unwrap_or_default().trim();
    if line.chars().count() > 40 || line.len() < written.trim().len() {
        format!("{}…", line.chars().take(40).collect::<String>())
    } else {
        line.to_string()
    }
}

/// Syntax errors of a file, each at its position.
pub(super) fn syntax_errors(path: &Path, text: &str, errors: &[toml::de::Error]) -> Vec<Problem> {
    errors
        .iter()
        .map(|e| {
            let at = e.span().map_or(0, |s| s.start);
            Problem::at(path, line_col(text, at), first_line(e.message()))
        })
        .collect()
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or(s).trim().to_string()
}

/// Byte offset of the key (or its value) at a dotted path.
fn key_offset(text: &str, dotted: &str) -> Option<usize> {
    let doc = DeTable::parse(text).ok()?;
    let mut table: &DeTable<'_> = doc.get_ref();
    let mut parts = dotted.split('.').peekable();
    while let Some(part) = parts.next() {
        let (k, v) = table.get_key_value(part)?;
        if parts.peek().is_none() {
            return Some(k.span().start);
        }
        match v.get_ref() {
            DeValue::Table(t) => table = t,
            _ => return Some(v.span().start),
        }
    }
    None
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rfind('\n')
        .map_or(before.len(), |i| before.len() - i - 1)
        + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_are_one_based() {
        assert_eq!(line_col("a\nbc\n", 0), (1, 1));
        assert_eq!(line_col("a\nbc\n", 3), (2, 2));
    }

    #[test]
    fn dotted_keys_are_found() {
        let t = "[smtp]\nhostname = \"x\"\n\n[upstream]\naddress = \"y\"\n";
        assert_eq!(
            key_offset(t, "upstream.address").map(|o| line_col(t, o)),
            Some((5, 1))
        );
        assert_eq!(key_offset(t, "upstream.tls"), None);
    }

    #[test]
    fn syntax_errors_are_all_reported() {
        let p = Path::new("x.toml");
        let text = "[smtp\nlisten = \"a\" \"b\"\nhostname = \"x\n";
        let (_, errors) = DeTable::parse_recoverable(text);
        let probs = syntax_errors(p, text, &errors);
        assert!(probs.len() >= 2, "{probs:?}");
        assert!(probs[0].to_string().starts_with("x.toml:1:"), "{probs:?}");
        assert!(probs[1].to_string().starts_with("x.toml:2:"), "{probs:?}");
    }

    #[test]
    fn long_values_are_shortened() {
        assert_eq!(shorten("\"abc\""), "\"abc\"");
        assert_eq!(shorten("[\"a\",\n\"b\"]"), "[\"a\",…");
        assert_eq!(shorten(&"x".repeat(50)).chars().count(), 41);
    }
}
