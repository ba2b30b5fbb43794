//! Where a configuration problem is: `file:line:col: what is wrong`.

use std::fmt;
use std::path::{Path, PathBuf};

use toml::de::{DeTable, DeValue};

/// One thing wrong with the configuration, with its place when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file, or `None` for embedded defaults and the environment.
    pub file: Option<PathBuf>,
    /// 1-based line and column.
    pub position: Option<(usize, usize)>,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.file, self.position) {
            (Some(file), Some((l, c))) => write!(f, "{}:{l}:{c}: {}", file.display(), self.message),
            (Some(file), None) => write!(f, "{}: {}", file.display(), self.message),
            (None, _) => write!(f, "configuration: {}", self.message),
        }
    }
}

impl Problem {
    pub(super) fn whole(file: &Path, message: String) -> Self {
        Problem {
            file: Some(file.to_path_buf()),
            position: None,
            message,
        }
    }

    pub(super) fn env_or_file(file: Option<&Path>, message: String) -> Self {
        Problem {
            file: file.map(Path::to_path_buf),
            position: None,
            message: format!(
                "{message} (in the file or a {}_* variable)",
                super::ENV_PREFIX
            ),
        }
    }

    /// A problem with the value under `key` (dotted path); placed at the key
    /// in the file when the file sets it, else attributed to the
    /// environment or the defaults.
    pub(super) fn at_key(
        file: Option<&Path>,
        text: Option<&str>,
        env_keys: &[String],
        key: &str,
        msg: String,
    ) -> Self {
        let env_name = format!(
            "{}_{}",
            super::ENV_PREFIX,
            key.replace('.', "__").to_uppercase()
        );
        let from_env = env_keys.contains(&env_name);
        let position = match (text, from_env) {
            (Some(t), false) => key_offset(t, key).map(|o| line_col(t, o)),
            _ => None,
        };
        let message = match (position, from_env) {
            (Some(_), _) => format!("{key}: {msg}"),
            (None, true) => format!("{key} (from {env_name}): {msg}"),
            (None, false) => format!("{key}: {msg}"),
        };
        Problem {
            file: file.map(Path::to_path_buf),
            position,
            message,
        }
    }
}

/// Syntax errors (all of them) and the first type or unknown-key error of a
/// file, each at its position.
pub(super) fn check_file(path: &Path, text: &str) -> Vec<Problem> {
    let at = |span: Option<std::ops::Range<usize>>, message: String| Problem {
        file: Some(path.to_path_buf()),
        position: span.map(|s| line_col(text, s.start)),
        message,
    };
    let (_, errors) = DeTable::parse_recoverable(text);
    if !errors.is_empty() {
        return errors
            .iter()
            .map(|e| at(e.span(), first_line(e.message())))
            .collect();
    }
    match toml::from_str::<super::Config>(text) {
        Ok(_) => Vec::new(),
        Err(e) => vec![at(e.span(), first_line(e.message()))],
    }
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
        let probs = check_file(p, "[smtp\nlisten = \n");
        assert!(!probs.is_empty());
        assert!(probs[0].to_string().starts_with("x.toml:1:"), "{probs:?}");
    }
}
