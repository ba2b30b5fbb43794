//! Deserializing a parsed TOML tree into [`Config`] without stopping at the
//! first type problem: each value serde refuses is found in the tree by its
//! span, noted, removed (so its default applies), and deserialization runs
//! again, until the rest is accepted. Knows nothing of files or variables;
//! `load` says where each refusal came from.

use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeArray, DeTable, DeValue};

use super::Config;
use super::hint::{self, Serde};

/// One step of a path into the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    /// 0-based position in an array.
    Item(usize),
}

/// A value (or key) serde refused.
#[derive(Debug, Clone)]
pub struct Refusal {
    /// Where it is in the tree; empty for one that could not be placed
    /// (then it is the last).
    pub path: Vec<Seg>,
    /// Its span, as the tree gives it.
    pub span: Range<usize>,
    /// serde's message.
    pub message: String,
}

/// The dotted name of a path's keys, without array positions.
pub fn dotted(path: &[Seg]) -> String {
    path.iter()
        .filter_map(|s| match s {
            Seg::Key(k) => Some(k.as_str()),
            Seg::Item(_) => None,
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// Refusals reported at most: each costs a round over the whole tree.
const MAX_REFUSALS: usize = 100;

/// Deserializes `doc`, removing what serde refuses one value at a time.
/// Returns the configuration built from the rest (`None` only if a refusal
/// could not be placed in the tree), what was left of the tree, and every
/// refusal in the order serde met them.
pub fn deserialize<'i>(
    mut doc: Spanned<DeTable<'i>>,
) -> (Option<Config>, Spanned<DeTable<'i>>, Vec<Refusal>) {
    let mut refusals = Vec::new();
    let mut removed = Vec::new();
    loop {
        if refusals.len() >= MAX_REFUSALS {
            refusals.push(Refusal {
                path: Vec::new(),
                span: 0..0,
                message: format!("more than {MAX_REFUSALS} problems; fix these first"),
            });
            return (None, doc, refusals);
        }
        let err = match Config::deserialize(toml::de::Deserializer::from(doc.clone())) {
            Ok(cfg) => return (Some(cfg), doc, refusals),
            Err(e) => e,
        };
        let message = err.message().to_string();
        let placed = err.span().and_then(|span| {
            let path = find(doc.get_ref(), span.start)?;
            Some((path, span))
        });
        let Some((path, span)) = placed else {
            refusals.push(Refusal {
                path: Vec::new(),
                span: 0..0,
                message,
            });
            return (None, doc, refusals);
        };
        // serde names the enum, toml only the kinds of value it takes.
        let message = if message.contains(", expected enum ")
            || message.starts_with("wanted string or table")
        {
            choices(&doc, &path).unwrap_or(message)
        } else {
            message
        };
        // Each round removes one node, so the loop ends.
        if !remove(doc.get_mut(), &path) {
            return (None, doc, refusals);
        }
        // A required key removed for its value, or misspelt, is not
        // reported missing as well.
        let follows = match hint::read_serde(&message) {
            Serde::MissingField(f) => removed.iter().any(|r: &Vec<Seg>| {
                r.len() == path.len() + 1
                    && r.starts_with(&path)
                    && matches!(r.last(), Some(Seg::Key(k))
                        if *k == f || hint::did_you_mean(k, &[f.as_str()]).is_some())
            }),
            _ => false,
        };
        removed.push(path.clone());
        if !follows {
            refusals.push(Refusal {
                path,
                span,
                message,
            });
        }
    }
}

/// serde names only the enum when a value has the wrong type for it; put
/// an empty string there instead, and serde lists the choices.
fn choices(doc: &Spanned<DeTable<'_>>, path: &[Seg]) -> Option<String> {
    let mut probe = doc.clone();
    let node = node_mut(probe.get_mut(), path)?;
    *node.get_mut() = DeValue::String("".into());
    match Config::deserialize(toml::de::Deserializer::from(probe)) {
        Err(e) if e.message().starts_with("unknown variant ``") => Some(e.message().to_string()),
        _ => None,
    }
}

/// The node at `path`.
fn node_mut<'t, 'i>(
    table: &'t mut DeTable<'i>,
    path: &[Seg],
) -> Option<&'t mut Spanned<DeValue<'i>>> {
    let (Seg::Key(key), rest) = path.split_first()? else {
        return None;
    };
    let mut node = table.get_mut(key.as_str())?;
    for seg in rest {
        node = match (node.get_mut(), seg) {
            (DeValue::Table(t), Seg::Key(k)) => t.get_mut(k.as_str())?,
            (DeValue::Array(items), Seg::Item(i)) => items.get_mut(*i)?,
            _ => return None,
        };
    }
    Some(node)
}

fn contains(span: &Range<usize>, offset: usize) -> bool {
    span.contains(&offset) || (span.is_empty() && span.start == offset)
}

/// The deepest key or value at `offset`. Tables opened by a `[header]` do
/// not span their keys, so every child is searched, not only those whose
/// parent's span holds the offset.
pub fn find(table: &DeTable<'_>, offset: usize) -> Option<Vec<Seg>> {
    for (key, value) in table.iter() {
        let here = vec![Seg::Key(key.get_ref().to_string())];
        if contains(&key.span(), offset) {
            return Some(here);
        }
        if let Some(mut deeper) = find_in(value, offset) {
            let mut path = here;
            path.append(&mut deeper);
            return Some(path);
        }
        if contains(&value.span(), offset) {
            return Some(here);
        }
    }
    None
}

/// The path below `value` to the deepest node at `offset` (empty: the value
/// itself), or `None` when nothing below holds it.
fn find_in(value: &Spanned<DeValue<'_>>, offset: usize) -> Option<Vec<Seg>> {
    match value.get_ref() {
        DeValue::Table(t) => find(t, offset),
        DeValue::Array(items) => items.iter().enumerate().find_map(|(i, item)| {
            let deeper =
                find_in(item, offset).or_else(|| contains(&item.span(), offset).then(Vec::new))?;
            let mut path = vec![Seg::Item(i)];
            path.extend(deeper);
            Some(path)
        }),
        _ => None,
    }
}

/// Removes the node at `path`; false if there is none.
fn remove(table: &mut DeTable<'_>, path: &[Seg]) -> bool {
    let Some((Seg::Key(key), rest)) = path.split_first() else {
        return false;
    };
    if rest.is_empty() {
        return table.remove(key.as_str()).is_some();
    }
    match table.get_mut(key.as_str()) {
        Some(value) => remove_in(value.get_mut(), rest),
        None => false,
    }
}

fn remove_in(value: &mut DeValue<'_>, path: &[Seg]) -> bool {
    match (value, path.split_first()) {
        (DeValue::Table(t), Some((Seg::Key(_), _))) => remove(t, path),
        (DeValue::Array(items), Some((Seg::Item(i), rest))) => {
            if rest.is_empty() {
                if *i >= items.len() {
                    return false;
                }
                let mut kept = DeArray::new();
                for (j, item) in items.iter().enumerate() {
                    if j != *i {
                        kept.push(item.clone());
                    }
                }
                *items = kept;
                true
            } else {
                match items.get_mut(*i) {
                    Some(item) => remove_in(item.get_mut(), rest),
                    None => false,
                }
            }
        }
        _ => false,
    }
}

/// Sets `value` at the dotted `path`, making the tables on the way (and
/// replacing whatever else is there).
pub fn insert<'i>(table: &mut DeTable<'i>, path: &[String], value: Spanned<DeValue<'i>>) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    let span = value.span();
    if rest.is_empty() {
        table.remove(first.as_str());
        table.insert(Spanned::new(span, first.clone().into()), value);
        return;
    }
    let is_table = matches!(
        table.get(first.as_str()).map(Spanned::get_ref),
        Some(DeValue::Table(_))
    );
    if !is_table {
        table.remove(first.as_str());
        table.insert(
            Spanned::new(span.clone(), first.clone().into()),
            Spanned::new(span, DeValue::Table(DeTable::new())),
        );
    }
    if let Some(DeValue::Table(t)) = table.get_mut(first.as_str()).map(Spanned::get_mut) {
        insert(t, rest, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(text: &str) -> (Option<Config>, Vec<(String, String)>) {
        let (doc, errors) = DeTable::parse_recoverable(text);
        assert!(errors.is_empty(), "{errors:?}");
        let (cfg, _, refusals) = deserialize(doc);
        let found = refusals
            .iter()
            .map(|r| (dotted(&r.path), text[r.span.clone()].to_string()))
            .collect();
        (cfg, found)
    }

    #[test]
    fn every_refusal_is_found_and_the_rest_is_kept() {
        let (cfg, found) = run("[upstream]\ntls = \"maybe\"\naddress = \"mx.example:25\"\n\
             [limits]\nmax_recipients = \"many\"\n[keys]\nsources = [\"dir\", \"foo\", \"vks\", 3]\n\
             [smtp]\nlistne = \"x\"\n");
        let cfg = cfg.unwrap();
        assert_eq!(cfg.upstream.address, "mx.example:25");
        assert_eq!(
            cfg.keys.sources,
            vec![super::super::KeySource::Dir, super::super::KeySource::Vks]
        );
        let mut found = found;
        found.sort();
        assert_eq!(
            found,
            vec![
                ("keys.sources".to_string(), "\"foo\"".to_string()),
                ("keys.sources".to_string(), "3".to_string()),
                ("limits.max_recipients".to_string(), "\"many\"".to_string()),
                ("smtp.listne".to_string(), "listne".to_string()),
                ("upstream.tls".to_string(), "\"maybe\"".to_string()),
            ]
        );
    }

    #[test]
    fn refusals_stop_at_a_bound() {
        let items = vec!["\"x\""; 150].join(", ");
        let (cfg, found) = run(&format!("[keys]\nsources = [{items}]\n"));
        assert!(cfg.is_none());
        assert_eq!(found.len(), MAX_REFUSALS + 1);
        assert_eq!(found[MAX_REFUSALS].0, "");
    }

    #[test]
    fn an_array_of_tables_item_is_removed_whole() {
        let (cfg, found) = run(
            "[[smtp.auth.users]]\nname = \"a\"\n\n[[smtp.auth.users]]\nname = \"b\"\npassword = \"p\"\n",
        );
        let cfg = cfg.unwrap();
        assert_eq!(cfg.smtp.auth.users.len(), 1);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, "smtp.auth.users");
    }

    #[test]
    fn insert_makes_the_tables_on_the_way() {
        let mut t = DeTable::new();
        insert(
            &mut t,
            &["upstream".into(), "auth".into(), "username".into()],
            Spanned::new(0..0, DeValue::String("u".into())),
        );
        let cfg = Config::deserialize(toml::de::Deserializer::from(Spanned::new(0..0, t))).unwrap();
        assert_eq!(cfg.upstream.auth.map(|a| a.username).as_deref(), Some("u"));
    }
}
