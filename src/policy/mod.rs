//! Policy: per sender, recipient, domain and channel, what sotto does —
//! encrypt or not, what happens without a key, how links are treated.
//!
//! Files `*.toml` in the policy directory are read in lexical order. Each may
//! have a `[defaults]` table and `[[rule]]` tables. For a message, the first
//! rule (in file order) whose `from`, `to`, `channel` and `to_has_key` all
//! match sets each field it names; every other field comes from `[defaults]`,
//! then from sotto's built-in defaults. Later files add rules and defaults;
//! they never silently replace earlier ones (that is an error naming both
//! places). This module decides; it does not look keys up or touch messages.

mod load;
mod matcher;
pub mod model;
mod reload;
mod requires;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

pub use model::{
    Channel, Field, LinkMode, Loc, MissingKey, Origin, PreferEncrypt, SignMode, StaleKey,
    StoreMode, Treatment, Value, XmppFormat,
};
pub use reload::Policies;

use crate::config::{Encrypt, Problem};
use load::{ParsedFile, RawRule, parse_file, problem_at};
use matcher::{Index, Patterns, normalize_pattern};

/// The policy files shipped with sotto, used when `policy.dir` is not set.
pub const SHIPPED: &[(&str, &str)] = &[
    (
        "policies/00-defaults.toml",
        include_str!("../../policies/00-defaults.toml"),
    ),
    (
        "policies/50-examples.toml",
        include_str!("../../policies/50-examples.toml"),
    ),
];

#[derive(Debug)]
struct Rule {
    name: String,
    loc: Loc,
    from: Patterns,
    to: Patterns,
    channel: Option<Vec<Channel>>,
    to_has_key: Option<bool>,
    set: Vec<(Field, Value, Loc)>,
}

/// A loaded, checked and compiled set of policy files.
#[derive(Debug)]
pub struct PolicySet {
    defaults: Treatment,
    default_origins: HashMap<Field, Origin>,
    rules: Vec<Rule>,
    index: Index,
    /// Where the set was read from (a directory, or "shipped policies").
    pub source: String,
}

/// The decision for one recipient.
#[derive(Debug, Clone)]
pub struct Decision {
    pub treatment: Treatment,
    /// For each field, what decided it.
    pub origins: Vec<(Field, Origin)>,
    /// The rule that matched, if any.
    pub rule: Option<String>,
}

/// The decision depends on whether the recipient has a usable key: look it
/// up and ask again with the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeedsKey;

impl PolicySet {
    /// Loads every `*.toml` of `dir` in lexical order, or the shipped files
    /// when `dir` is `None`. All problems are returned, each with its place.
    pub fn load(dir: Option<&Path>) -> Result<PolicySet, Vec<Problem>> {
        let files: Vec<(PathBuf, String)> = match dir {
            None => SHIPPED
                .iter()
                .map(|(p, t)| (PathBuf::from(p), t.to_string()))
                .collect(),
            Some(d) => {
                let mut names: Vec<PathBuf> = match std::fs::read_dir(d) {
                    Ok(rd) => rd
                        .filter_map(Result::ok)
                        .map(|e| e.path())
                        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
                        .collect(),
                    Err(e) => {
                        return Err(vec![Problem::whole(
                            d,
                            format!("cannot read the policy directory: {e}"),
                        )]);
                    }
                };
                names.sort();
                let mut files = Vec::new();
                for n in names {
                    match std::fs::read_to_string(&n) {
                        Ok(t) => files.push((n, t)),
                        Err(e) => {
                            return Err(vec![Problem::whole(&n, format!("cannot read: {e}"))]);
                        }
                    }
                }
                files
            }
        };
        let source = dir.map_or_else(
            || "shipped policies".to_string(),
            |d| d.display().to_string(),
        );
        Self::from_texts(&files, source)
    }

    /// Builds a set from (file name, text) pairs, in the given order.
    pub fn from_texts(
        files: &[(PathBuf, String)],
        source: String,
    ) -> Result<PolicySet, Vec<Problem>> {
        let mut problems = Vec::new();
        let mut parsed: Vec<ParsedFile> = Vec::new();
        for (path, text) in files {
            let mut p = parse_file(path, text, &mut problems);
            resolve_paths(path, &mut p, &mut problems);
            parsed.push(p);
        }
        let mut defaults = Treatment::default();
        let mut default_origins: HashMap<Field, Origin> = HashMap::new();
        let mut default_locs: HashMap<Field, Loc> = HashMap::new();
        for p in &parsed {
            check_contradiction(&p.defaults, "[defaults]", &mut problems);
            for (field, value, loc) in &p.defaults {
                if let Some(first) = default_locs.get(field) {
                    problems.push(problem_at(
                        loc,
                        format!("`{}` in [defaults] is already set at {first}; a later file may not replace it", field.name()),
                    ));
                    continue;
                }
                defaults.set(*field, value);
                default_locs.insert(*field, loc.clone());
                default_origins.insert(*field, Origin::Defaults(loc.clone()));
            }
        }
        let raw: Vec<RawRule> = parsed.into_iter().flat_map(|p| p.rules).collect();
        let mut rules: Vec<Rule> = Vec::new();
        let mut names: HashMap<String, Loc> = HashMap::new();
        let mut shadows = Shadows::default();
        for r in &raw {
            if let Some(first) = names.get(&r.name) {
                problems.push(problem_at(
                    &r.loc,
                    format!(
                        "duplicate rule name \"{}\"; first defined at {first}",
                        r.name
                    ),
                ));
            } else {
                names.insert(r.name.clone(), r.loc.clone());
            }
            check_contradiction(&r.set, &format!("rule \"{}\"", r.name), &mut problems);
            for (key, list) in [("from", &r.from), ("to", &r.to)] {
                if list.as_ref().is_some_and(|l| l.is_empty()) {
                    problems.push(problem_at(
                        &r.loc,
                        format!(
                            "rule \"{}\" can never match: `{key}` is an empty list",
                            r.name
                        ),
                    ));
                }
            }
            if r.channel.as_ref().is_some_and(|c| c.is_empty()) {
                problems.push(problem_at(
                    &r.loc,
                    format!(
                        "rule \"{}\" can never match: `channel` is an empty list",
                        r.name
                    ),
                ));
            }
            if let Some(earlier) = shadows.find(r) {
                problems.push(problem_at(
                    &r.loc,
                    format!(
                        "rule \"{}\" can never match: rule \"{}\" at {} matches everything it does first",
                        r.name, earlier.name, earlier.loc
                    ),
                ));
            }
            shadows.add(r);
            let compile = |list: &Option<Vec<String>>, problems: &mut Vec<Problem>| match list {
                None => Patterns::any(),
                Some(l) => Patterns::compile(l).unwrap_or_else(|e| {
                    problems.push(problem_at(&r.loc, format!("rule \"{}\": {e}", r.name)));
                    Patterns::any()
                }),
            };
            let from = compile(&r.from, &mut problems);
            let to = compile(&r.to, &mut problems);
            rules.push(Rule {
                name: r.name.clone(),
                loc: r.loc.clone(),
                from,
                to,
                channel: r.channel.clone(),
                to_has_key: r.to_has_key,
                set: r.set.clone(),
            });
        }
        if !problems.is_empty() {
            problems.sort_by(|a, b| (&a.file, a.position).cmp(&(&b.file, b.position)));
            problems.dedup();
            return Err(problems);
        }
        let mut index = Index::default();
        for (i, r) in rules.iter().enumerate() {
            index.add(i, &r.from, &r.to);
        }
        Ok(PolicySet {
            defaults,
            default_origins,
            rules,
            index,
            source,
        })
    }

    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    /// Where `sign = true` (or `"organisation"`) is first set, if anywhere
    /// (it needs a signing key).
    pub fn signing_origin(&self) -> Option<String> {
        self.origin_of(Field::Sign, &Value::Sign(SignMode::Organisation))
    }

    /// Where `field = value` is first set — `[defaults]` or a rule — if anywhere.
    pub fn origin_of(&self, field: Field, value: &Value) -> Option<String> {
        if self.defaults.get(field) == *value
            && let Some(Origin::Defaults(l)) = self.default_origins.get(&field)
        {
            return Some(l.to_string());
        }
        self.rules.iter().find_map(|r| {
            r.set
                .iter()
                .find(|(f, v, _)| *f == field && v == value)
                .map(|(_, _, l)| l.to_string())
        })
    }

    /// Decides the treatment for one recipient. `has_key` is whether the
    /// recipient has a usable key, if known; a rule with `to_has_key` needs it.
    pub fn decide(
        &self,
        channel: Channel,
        from: &str,
        to: &str,
        has_key: Option<bool>,
    ) -> Result<Decision, NeedsKey> {
        let from = from.to_lowercase();
        let to = to.to_lowercase();
        let domain = |a: &str| {
            a.rsplit_once('@')
                .map(|(_, d)| d.to_string())
                .unwrap_or_default()
        };
        let mut matched = None;
        for i in self.index.candidates(&domain(&from), &domain(&to)) {
            let r = &self.rules[i];
            if r.channel.as_ref().is_some_and(|c| !c.contains(&channel))
                || !r.from.matches(&from)
                || !r.to.matches(&to)
            {
                continue;
            }
            if let Some(want) = r.to_has_key {
                match has_key {
                    None => return Err(NeedsKey),
                    Some(h) if h != want => continue,
                    Some(_) => {}
                }
            }
            matched = Some(r);
            break;
        }
        let mut treatment = self.defaults.clone();
        let mut origins: Vec<(Field, Origin)> = Field::ALL
            .iter()
            .map(|f| {
                (
                    *f,
                    self.default_origins
                        .get(f)
                        .cloned()
                        .unwrap_or(Origin::Builtin),
                )
            })
            .collect();
        if let Some(r) = matched {
            for (field, value, _) in &r.set {
                treatment.set(*field, value);
                if let Some(o) = origins.iter_mut().find(|(f, _)| f == field) {
                    o.1 = Origin::Rule {
                        name: r.name.clone(),
                        loc: r.loc.clone(),
                    };
                }
            }
        }
        Ok(Decision {
            treatment,
            origins,
            rule: matched.map(|r| r.name.clone()),
        })
    }

    /// `explain`'s table: each field, its value, and what decided it.
    pub fn explain(&self, decision: &Decision) -> String {
        let mut out = String::new();
        for (field, origin) in &decision.origins {
            let value = decision.treatment.get(*field).to_string();
            writeln!(out, "{:<21} = {:<9} ({origin})", field.name(), value).ok();
        }
        out
    }
}

/// A pattern list in a comparable form; `None` for "matches everything".
fn pattern_key(list: &Option<Vec<String>>) -> Option<Vec<String>> {
    let list = list.as_ref()?;
    if list.iter().any(|p| p.trim() == "*") {
        return None;
    }
    let mut n: Vec<String> = list.iter().map(|p| normalize_pattern(p)).collect();
    n.sort();
    n.dedup();
    Some(n)
}

/// A rule's (from, to) pattern lists in comparable form.
type PatternKeys = (Option<Vec<String>>, Option<Vec<String>>);

/// Earlier rules by their (from, to) patterns, so a later rule is compared
/// only with those that could cover it: a rule covers another when each of
/// its pattern lists is "everything" or the same list.
#[derive(Default)]
struct Shadows<'a> {
    by_patterns: HashMap<PatternKeys, Vec<&'a RawRule>>,
}

impl<'a> Shadows<'a> {
    fn add(&mut self, r: &'a RawRule) {
        self.by_patterns
            .entry((pattern_key(&r.from), pattern_key(&r.to)))
            .or_default()
            .push(r);
    }

    /// The first earlier rule that matches everything `r` does.
    fn find(&self, r: &RawRule) -> Option<&'a RawRule> {
        let (f, t) = (pattern_key(&r.from), pattern_key(&r.to));
        let keys = [(None, None), (None, t.clone()), (f.clone(), None), (f, t)];
        let mut found: Option<&'a RawRule> = None;
        for (i, key) in keys.iter().enumerate() {
            if keys[..i].contains(key) {
                continue;
            }
            for e in self
                .by_patterns
                .get(key)
                .map(Vec::as_slice)
                .unwrap_or_default()
            {
                let earlier =
                    found.is_none_or(|f| (&e.loc.file, e.loc.line) < (&f.loc.file, f.loc.line));
                if earlier && shadows(e, r) {
                    found = Some(e);
                }
            }
        }
        found
    }
}

/// Whether `earlier` matches every message `later` matches.
fn shadows(earlier: &RawRule, later: &RawRule) -> bool {
    let covers =
        |e: &Option<Vec<String>>, l: &Option<Vec<String>>| match (pattern_key(e), pattern_key(l)) {
            (None, _) => true,
            (Some(e), Some(l)) => e == l,
            (Some(_), None) => false,
        };
    let channels = match (&earlier.channel, &later.channel) {
        (None, _) => true,
        (Some(e), Some(l)) => l.iter().all(|c| e.contains(c)),
        (Some(e), None) => Channel::ALL.iter().all(|c| e.contains(c)),
    };
    let key = earlier.to_has_key.is_none() || earlier.to_has_key == later.to_has_key;
    covers(&earlier.from, &later.from) && covers(&earlier.to, &later.to) && channels && key
}

fn check_contradiction(set: &[(Field, Value, Loc)], what: &str, problems: &mut Vec<Problem>) {
    let required = set
        .iter()
        .any(|(f, v, _)| *f == Field::Encrypt && *v == Value::Encrypt(Encrypt::Required));
    if let Some((_, _, loc)) = set
        .iter()
        .find(|(f, v, _)| *f == Field::MissingKey && *v == Value::MissingKey(MissingKey::Plain))
        && required
    {
        problems.push(problem_at(
            loc,
            format!("{what}: missing_key = \"plain\" contradicts encrypt = \"required\" (a recipient without a key is always refused)"),
        ));
    }
}

/// Makes `archive_key` paths relative to their file's directory, and checks
/// they can be read.
fn resolve_paths(file: &Path, parsed: &mut ParsedFile, problems: &mut Vec<Problem>) {
    let base = file.parent().unwrap_or(Path::new("."));
    let sets =
        std::iter::once(&mut parsed.defaults).chain(parsed.rules.iter_mut().map(|r| &mut r.set));
    for set in sets {
        for (_, value, loc) in set.iter_mut() {
            if let Value::Path(p) = value {
                if p.is_relative() {
                    *p = base.join(&*p);
                }
                if !p.is_file() {
                    problems.push(problem_at(
                        loc,
                        format!("archive_key: cannot read `{}`", p.display()),
                    ));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
