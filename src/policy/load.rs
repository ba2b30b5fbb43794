//! Reading policy files: every problem is reported with its place
//! (`file:line:col: message`), not only the first.

use std::path::Path;

use toml::de::{DeTable, DeValue};

use super::model::{Channel, Field, Loc, Value};
use crate::config::Problem;
use crate::config::hint;

/// The keys of a `[[rule]]` that say which messages it matches (its other
/// keys are treatment fields).
pub const MATCH_KEYS: [&str; 5] = ["name", "from", "to", "channel", "to_has_key"];

/// A rule as written, before compilation.
#[derive(Debug, Clone)]
pub struct RawRule {
    pub name: String,
    pub loc: Loc,
    /// `None`: the key is absent (matches everything).
    pub from: Option<Vec<String>>,
    pub to: Option<Vec<String>>,
    pub channel: Option<Vec<Channel>>,
    pub to_has_key: Option<bool>,
    pub set: Vec<(Field, Value, Loc)>,
}

/// One file's content.
#[derive(Debug, Default)]
pub struct ParsedFile {
    pub defaults: Vec<(Field, Value, Loc)>,
    pub rules: Vec<RawRule>,
}

struct Ctx<'a> {
    path: &'a Path,
    /// Byte offset where each line starts.
    lines: Vec<usize>,
    problems: &'a mut Vec<Problem>,
}

impl Ctx<'_> {
    fn loc(&self, offset: usize) -> Loc {
        let line = self.lines.partition_point(|&start| start <= offset);
        let col = offset - self.lines[line - 1] + 1;
        Loc {
            file: self.path.to_path_buf(),
            line,
            col,
        }
    }

    fn problem(&mut self, offset: usize, message: impl Into<String>) {
        let loc = self.loc(offset);
        self.problems.push(problem_at(&loc, message.into()));
    }
}

pub fn problem_at(loc: &Loc, message: String) -> Problem {
    Problem::at(&loc.file, (loc.line, loc.col), message)
}

/// Parses one policy file, adding every problem found to `problems`.
pub fn parse_file(path: &Path, text: &str, problems: &mut Vec<Problem>) -> ParsedFile {
    let lines = std::iter::once(0)
        .chain(text.match_indices('\n').map(|(i, _)| i + 1))
        .collect();
    let mut cx = Ctx {
        path,
        lines,
        problems,
    };
    let mut out = ParsedFile::default();
    let (doc, errors) = DeTable::parse_recoverable(text);
    if !errors.is_empty() {
        for e in errors {
            let at = e.span().map_or(0, |s| s.start);
            let msg = e
                .message()
                .lines()
                .next()
                .unwrap_or("syntax error")
                .trim()
                .to_string();
            cx.problem(at, msg);
        }
        return out;
    }
    for (key, value) in doc.get_ref().iter() {
        match key.get_ref().ref_str() {
            "defaults" => match value.get_ref() {
                DeValue::Table(t) => {
                    out.defaults =
                        treatment_fields(&mut cx, t, "[defaults]", &[], &mut |_, _| false)
                }
                _ => cx.problem(value.span().start, "`defaults` must be a table: [defaults]"),
            },
            "rule" => match value.get_ref() {
                DeValue::Array(items) => {
                    for item in items.iter() {
                        match item.get_ref() {
                            DeValue::Table(t) => {
                                if let Some(rule) = rule(&mut cx, t, item.span().start) {
                                    out.rules.push(rule);
                                }
                            }
                            _ => {
                                cx.problem(item.span().start, "each rule must be a table: [[rule]]")
                            }
                        }
                    }
                }
                _ => cx.problem(
                    value.span().start,
                    "`rule` must be an array of tables: [[rule]]",
                ),
            },
            other => {
                let suggestion = match hint::did_you_mean(other, &["defaults", "rule"]) {
                    Some("rule") => ", did you mean [[rule]]?",
                    Some(_) => ", did you mean [defaults]?",
                    None => ".",
                };
                cx.problem(
                    key.span().start,
                    format!(
                        "unknown field `{other}`{suggestion} A policy file holds [defaults] and [[rule]] tables"
                    ),
                )
            }
        }
    }
    out
}

trait RefStr {
    fn ref_str(&self) -> &str;
}

impl RefStr for std::borrow::Cow<'_, str> {
    fn ref_str(&self) -> &str {
        self.as_ref()
    }
}

/// Handles a key that is not a treatment field: (name, value, offset);
/// false when the key is unknown.
type OtherKeys<'f> =
    dyn FnMut(&mut Ctx<'_>, (&str, &toml::Spanned<DeValue<'_>>, usize)) -> bool + 'f;

/// Reads the treatment fields of a table; `other` handles the keys that
/// are not treatment fields (returns false for unknown ones), which are
/// `other_known`.
fn treatment_fields(
    cx: &mut Ctx<'_>,
    table: &DeTable<'_>,
    what: &str,
    other_known: &[&str],
    other: &mut OtherKeys<'_>,
) -> Vec<(Field, Value, Loc)> {
    let mut set = Vec::new();
    for (key, value) in table.iter() {
        let name = key.get_ref().ref_str();
        let at = key.span().start;
        match Field::from_name(name) {
            Some(field) => {
                let (s, b) = match value.get_ref() {
                    DeValue::String(s) => (Some(s.as_ref()), None),
                    DeValue::Boolean(b) => (None, Some(*b)),
                    _ => (None, None),
                };
                match field.parse(s, b) {
                    Ok(v) => set.push((field, v, cx.loc(at))),
                    Err(msg) => {
                        cx.problem(value.span().start, format!("bad value for `{name}`: {msg}"))
                    }
                }
            }
            None => {
                if !other(cx, (name, value, at)) {
                    let known: Vec<&str> = other_known
                        .iter()
                        .copied()
                        .chain(Field::ALL.iter().map(|f| f.name()))
                        .collect();
                    cx.problem(at, hint::unknown_field(name, &format!("in {what}"), &known));
                }
            }
        }
    }
    set
}

fn string_list(cx: &mut Ctx<'_>, key: &str, v: &toml::Spanned<DeValue<'_>>) -> Option<Vec<String>> {
    match v.get_ref() {
        DeValue::String(s) => Some(vec![s.to_string()]),
        DeValue::Array(items) => {
            let mut out = Vec::new();
            for i in items.iter() {
                match i.get_ref() {
                    DeValue::String(s) => out.push(s.to_string()),
                    _ => cx.problem(i.span().start, format!("`{key}` takes strings")),
                }
            }
            Some(out)
        }
        _ => {
            cx.problem(
                v.span().start,
                format!("`{key}` takes a string or a list of strings"),
            );
            None
        }
    }
}

fn rule(cx: &mut Ctx<'_>, table: &DeTable<'_>, at: usize) -> Option<RawRule> {
    let mut name: Option<String> = None;
    let mut from = None;
    let mut to = None;
    let mut channel = None;
    let mut to_has_key = None;
    let set =
        treatment_fields(
            cx,
            table,
            "[[rule]]",
            &MATCH_KEYS,
            &mut |cx, (key, v, _)| {
                match key {
                    "name" => match v.get_ref() {
                        DeValue::String(s) if !s.trim().is_empty() => name = Some(s.to_string()),
                        _ => cx.problem(v.span().start, "`name` must be a non-empty string"),
                    },
                    "from" => from = string_list(cx, key, v),
                    "to" => to = string_list(cx, key, v),
                    "channel" => {
                        if let Some(list) = string_list(cx, key, v) {
                            let mut chans = Vec::new();
                            let mut bad = false;
                            for c in list {
                                match Channel::parse(&c) {
                                    Some(ch) => chans.push(ch),
                                    None => {
                                        bad = true;
                                        cx.problem(
                                    v.span().start,
                                    format!("unknown channel `{c}`; expected \"smtp\" or \"xmpp\""),
                                );
                                    }
                                }
                            }
                            // Already reported: do not also call the rule unmatchable.
                            channel = if chans.is_empty() && bad {
                                None
                            } else {
                                Some(chans)
                            };
                        }
                    }
                    "to_has_key" => match v.get_ref() {
                        DeValue::Boolean(b) => to_has_key = Some(*b),
                        _ => cx.problem(v.span().start, "`to_has_key` must be true or false"),
                    },
                    _ => return false,
                }
                true
            },
        );
    let loc = cx.loc(at);
    let Some(name) = name else {
        cx.problem(at, "rule without a `name`");
        return None;
    };
    Some(RawRule {
        name,
        loc,
        from,
        to,
        channel,
        to_has_key,
        set,
    })
}
