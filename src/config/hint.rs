//! Wording of configuration and policy problems: serde's messages turned
//! into what a person can act on ("expected true or false"), and the key a
//! typo most likely meant ("did you mean `listen`?"). Pure functions over
//! strings; where a problem is belongs to `locate`.

/// The known name closest to `name`, if it is close enough to be a typo.
pub fn did_you_mean<'a>(name: &str, known: &[&'a str]) -> Option<&'a str> {
    let name = name.to_lowercase();
    // Short names tolerate one slip, longer ones two or three.
    let limit = match name.chars().count() {
        0..=4 => 1,
        5..=8 => 2,
        _ => 3,
    };
    known
        .iter()
        .map(|k| (edit_distance(&name, &k.to_lowercase()), *k))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// "unknown field `frm`, did you mean `from`? Known {place}: a, b, c",
/// where `place` reads "in `[[rule]]`" or "at the top level".
pub fn unknown_field(name: &str, place: &str, known: &[&str]) -> String {
    let suggestion = match did_you_mean(name, known) {
        Some(s) => format!(", did you mean `{s}`?"),
        None => ".".to_string(),
    };
    format!(
        "unknown field `{name}`{suggestion} Known {place}: {}",
        known.join(", ")
    )
}

/// Whether a setting's name says its value may be a secret, which is then
/// never echoed in a problem.
pub fn may_be_secret(name: &str) -> bool {
    let name = name.to_lowercase();
    ["password", "secret"].iter().any(|s| name.contains(s))
}

/// Optimal string alignment distance: insertions, deletions, substitutions
/// and transpositions of neighbours each cost one.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let width = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * width];
    for i in 0..=a.len() {
        d[i * width] = i;
    }
    for (j, cell) in d.iter_mut().enumerate().take(width) {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[(i - 1) * width + j] + 1)
                .min(d[i * width + j - 1] + 1)
                .min(d[(i - 1) * width + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[(i - 2) * width + j - 2] + 1);
            }
            d[i * width + j] = best;
        }
    }
    d[a.len() * width + b.len()]
}

/// What serde said, read back into its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Serde {
    /// A key the struct does not have, and the keys it has.
    UnknownField { name: String, known: Vec<String> },
    /// A required key that is absent.
    MissingField(String),
    /// A wrong value; the text says what was expected.
    BadValue(String),
}

/// Reads one of serde's messages (as the toml crate passes them on).
pub fn read_serde(message: &str) -> Serde {
    let message = message.lines().next().unwrap_or(message).trim();
    if let Some(rest) = message.strip_prefix("unknown field `")
        && let Some((name, expected)) = rest.split_once('`')
    {
        return Serde::UnknownField {
            name: name.to_string(),
            known: ticked(expected),
        };
    }
    if let Some(rest) = message.strip_prefix("missing field `") {
        return Serde::MissingField(rest.trim_end_matches('`').to_string());
    }
    Serde::BadValue(expectation(message))
}

/// The names between backticks in `text`, in order.
fn ticked(text: &str) -> Vec<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// What a value should have been, in plain words, from serde's message.
fn expectation(message: &str) -> String {
    if let Some(rest) = message.strip_prefix("unknown variant `")
        && let Some((_, expected)) = rest.split_once('`')
    {
        let choices = ticked(expected);
        return match choices.as_slice() {
            [] => "no value is accepted here".to_string(),
            [one] => format!("expected {one}"),
            many => format!("expected one of {}", many.join(", ")),
        };
    }
    let expected = message
        .rsplit_once(", expected ")
        .map_or(message, |(_, e)| e)
        .trim();
    let plain = match expected {
        "a boolean" => "expected true or false",
        "u8" => "expected a whole number from 0 to 255",
        "u16" => "expected a whole number from 0 to 65535",
        "usize" | "u32" | "u64" => "expected a whole number (0 or more)",
        "i8" | "i16" | "i32" | "i64" | "isize" => "expected a whole number",
        "f32" | "f64" => "expected a number",
        "a string" => "expected a string (in quotes in the file)",
        "a duration" => "expected a duration such as 30s, 5m, 1h or 2d",
        "a sequence" => "expected a list",
        "a map" => "expected a table",
        e if e.starts_with("struct ") => "expected a table",
        _ => return message.to_string(),
    };
    plain.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_find_their_key() {
        let keys = ["listen", "hostname", "tls_cert", "tls_key", "require_tls"];
        assert_eq!(did_you_mean("listne", &keys), Some("listen"));
        assert_eq!(did_you_mean("hostnme", &keys), Some("hostname"));
        assert_eq!(did_you_mean("tls_crt", &keys), Some("tls_cert"));
        assert_eq!(did_you_mean("colour", &keys), None);
        let rule = ["name", "from", "to", "channel", "to_has_key", "encrypt"];
        assert_eq!(did_you_mean("frm", &rule), Some("from"));
        assert_eq!(did_you_mean("To", &rule), Some("to"));
        assert_eq!(did_you_mean("xyz", &rule), None);
    }

    #[test]
    fn edit_distance_counts_each_slip_once() {
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("abc", "abc"), 0);
        assert_eq!(edit_distance("abc", "acb"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn serde_messages_become_plain_words() {
        let cases = [
            (
                "unknown variant `maybe`, expected one of `none`, `starttls`, `tls`",
                "expected one of none, starttls, tls",
            ),
            (
                "unknown variant `x`, expected `text` or `json`",
                "expected one of text, json",
            ),
            (
                "invalid type: string \"yes\", expected a boolean",
                "expected true or false",
            ),
            (
                "invalid value: integer `300`, expected u8",
                "expected a whole number from 0 to 255",
            ),
            (
                "invalid value: string \"5x\", expected a duration",
                "expected a duration such as 30s, 5m, 1h or 2d",
            ),
            (
                "invalid type: string \"x\", expected a sequence",
                "expected a list",
            ),
            ("something else", "something else"),
        ];
        for (serde, plain) in cases {
            assert_eq!(read_serde(serde), Serde::BadValue(plain.into()), "{serde}");
        }
        assert_eq!(
            read_serde("unknown field `listne`, expected one of `listen`, `hostname`"),
            Serde::UnknownField {
                name: "listne".into(),
                known: vec!["listen".into(), "hostname".into()]
            }
        );
        assert_eq!(
            read_serde("missing field `password`"),
            Serde::MissingField("password".into())
        );
    }

    #[test]
    fn unknown_field_lists_what_is_known() {
        assert_eq!(
            unknown_field("frm", "in [[rule]]", &["name", "from"]),
            "unknown field `frm`, did you mean `from`? Known in [[rule]]: name, from"
        );
        assert_eq!(
            unknown_field("colour", "in [defaults]", &["encrypt"]),
            "unknown field `colour`. Known in [defaults]: encrypt"
        );
    }
}
