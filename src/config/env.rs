//! `SOTTO_*` environment variables: which setting each one names
//! (`SOTTO_UPSTREAM__TLS` is `upstream.tls`), how its text is read (a
//! boolean, a number, a string, or a comma-separated list — whichever the
//! setting takes), and, checked one variable at a time, every variable the
//! configuration cannot take, reported by its name and value.

use std::borrow::Cow;

use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeArray, DeTable, DeValue};

use super::hint::{self, Serde};
use super::locate::Problem;
use super::tree::{self, Seg};
use super::{Config, ENV_PREFIX};

/// A variable the configuration takes, with its value read.
pub struct Setting<'e> {
    pub name: &'e str,
    /// The variable's text.
    pub text: &'e str,
    /// The setting's path: `["upstream", "tls"]`.
    pub path: Vec<String>,
    pub value: DeValue<'e>,
}

/// Reads every `SOTTO_*` variable of `env` (others are ignored): the ones
/// the configuration takes, and a problem for each other one.
pub fn read(env: &[(String, String)]) -> (Vec<Setting<'_>>, Vec<Problem>) {
    let prefix = format!("{ENV_PREFIX}_");
    let mut settings = Vec::new();
    let mut problems = Vec::new();
    for (name, value) in env {
        let Some(rest) = name.strip_prefix(&prefix) else {
            continue;
        };
        let path: Vec<String> = rest.split("__").map(str::to_lowercase).collect();
        if path.iter().any(String::is_empty) {
            problems.push(Problem::from_env(
                name,
                None,
                format!("not a setting name; use {prefix}<SECTION>__<KEY>, e.g. {prefix}UPSTREAM__ADDRESS"),
            ));
            continue;
        }
        match take(&path, value) {
            Ok(read) => settings.push(Setting {
                name,
                text: value,
                path,
                value: read,
            }),
            Err(why) => problems.push(explain(name, value, why)),
        }
    }
    (settings, problems)
}

/// Why a variable's value was not taken.
enum Why {
    /// No such setting: `path[depth]` is not among `known`, the keys of
    /// the table at `path[..depth]`.
    Unknown {
        path: Vec<String>,
        depth: usize,
        known: Vec<String>,
    },
    /// One item of a list.
    Item {
        item: String,
        expected: String,
    },
    Value(String),
}

/// How a variable's text may be read, most specific first.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reading {
    /// A boolean or a number.
    Scalar,
    Text,
    /// Comma-separated strings.
    List,
}

fn list_items(text: &str) -> impl Iterator<Item = &str> {
    text.split(',').map(str::trim).filter(|i| !i.is_empty())
}

/// The value of the setting at `path` read from `text` in the first way
/// the configuration takes it.
fn take<'e>(path: &[String], text: &'e str) -> Result<DeValue<'e>, Why> {
    let mut best: Option<Why> = None;
    let mut wants_list = false;
    for (reading, value) in readings(text) {
        // serde takes a list for a struct too (its fields in order): read
        // a list only where one is wanted.
        if reading == Reading::List && !wants_list {
            break;
        }
        let mut doc = DeTable::new();
        tree::insert(&mut doc, path, Spanned::new(1..2, value.clone()));
        let err = match Config::deserialize(toml::de::Deserializer::from(Spanned::new(
            0..0,
            doc.clone(),
        ))) {
            Ok(_) => return Ok(value),
            Err(e) => e,
        };
        let why = match hint::read_serde(err.message()) {
            Serde::UnknownField { name, known } => {
                // Whatever the value, the name is wrong.
                let depth = path.iter().position(|p| *p == name).unwrap_or(0);
                return Err(Why::Unknown {
                    path: path.to_vec(),
                    depth,
                    known,
                });
            }
            Serde::MissingField(f) => Why::Value(format!("`{f}` is missing")),
            Serde::BadValue(expected) => {
                let at = err.span().and_then(|s| tree::find(&doc, s.start));
                match (reading, at.as_ref().and_then(|p| p.last())) {
                    (Reading::List, Some(Seg::Item(i))) => Why::Item {
                        item: list_items(text).nth(*i).unwrap_or_default().to_string(),
                        expected,
                    },
                    _ => Why::Value(expected),
                }
            }
        };
        // A wrong type says little when another reading gets further: the
        // text `yes` read as a TLS mode says which modes there are. Else
        // the text reading speaks.
        if !err.message().starts_with("invalid type:") {
            return Err(why);
        }
        wants_list = err.message().ends_with("expected a sequence");
        if best.is_none() || reading == Reading::Text {
            best = Some(why);
        }
    }
    Err(best.unwrap_or_else(|| Why::Value("not accepted".into())))
}

/// The readings of `text` worth trying, most specific first.
fn readings(text: &str) -> Vec<(Reading, DeValue<'_>)> {
    let mut out = Vec::new();
    if text.eq_ignore_ascii_case("true") || text.eq_ignore_ascii_case("false") {
        out.push((
            Reading::Scalar,
            DeValue::Boolean(text.eq_ignore_ascii_case("true")),
        ));
    } else if let Ok(v) = DeValue::parse(text)
        && matches!(v.get_ref(), DeValue::Integer(_) | DeValue::Float(_))
    {
        out.push((Reading::Scalar, v.into_inner()));
    }
    out.push((Reading::Text, DeValue::String(Cow::Borrowed(text))));
    let mut list = DeArray::new();
    for (i, item) in list_items(text).enumerate() {
        // Distinct spans, so a refused item is found by its span.
        list.push(Spanned::new(
            10 + i..11 + i,
            DeValue::String(Cow::Borrowed(item)),
        ));
    }
    out.push((Reading::List, DeValue::Array(list)));
    out
}

/// The problem for variable `name` set to `value`.
fn explain(name: &str, value: &str, why: Why) -> Problem {
    match why {
        Why::Unknown { path, depth, known } => {
            let known: Vec<&str> = known.iter().map(String::as_str).collect();
            let unknown = path.get(depth).map_or("", String::as_str);
            // The same variable with the one wrong step put right.
            let meant = |k: &str| {
                let mut parts: Vec<String> = path.iter().map(|p| p.to_uppercase()).collect();
                if let Some(p) = parts.get_mut(depth) {
                    *p = k.to_uppercase();
                }
                format!("{ENV_PREFIX}_{}", parts.join("__"))
            };
            let suggestion = match hint::did_you_mean(unknown, &known) {
                Some(k) => format!(", did you mean {}?", meant(k)),
                None => ".".to_string(),
            };
            let place = match &path[..depth.min(path.len())] {
                [] => "at the top level".to_string(),
                section => format!("in [{}]", section.join(".")),
            };
            Problem::from_env(
                name,
                None,
                format!(
                    "no setting `{unknown}` {place}{suggestion} Known {place}: {}",
                    known.join(", ")
                ),
            )
        }
        Why::Item { item, expected } => {
            Problem::from_env(name, Some(value), format!("item `{item}`: {expected}"))
        }
        Why::Value(expected) if expected == "expected a table" => Problem::from_env(
            name,
            None,
            format!("names a section, not a setting; set its keys as {name}__<KEY>"),
        ),
        Why::Value(expected) => Problem::from_env(name, Some(value), expected),
    }
}
