//! Property: policy decisions, checked with proptest on generated rule sets
//! and queries. The decision's rule is the first rule in file order whose
//! matchers match, as a naive reference matcher finds it.
//!
//! Case counts are kept low so CI stays fast (`PROPTEST_CASES` overrides);
//! the other families are in the other `tests/properties_*.rs`.

mod common;

use std::path::PathBuf;

use common::proptest_config;
use proptest::prelude::*;
use sotto::policy::{Channel, PolicySet};

#[derive(Debug, Clone)]
struct GenRule {
    from: Option<Vec<String>>,
    to: Option<Vec<String>>,
    channel: Option<Vec<&'static str>>,
    to_has_key: Option<bool>,
    links: &'static str,
}

const DOMAINS: [&str; 6] = [
    "x.example",
    "y.example",
    "sub.x.example",
    "deep.sub.x.example",
    "xx.example",
    "other.test",
];

fn pattern() -> impl Strategy<Value = String> {
    let domain = prop::sample::select(&DOMAINS[..]);
    let local = prop::sample::select(vec!["a", "b", "ab", "A"]);
    prop_oneof![
        1 => Just("*".to_string()),
        3 => domain.clone().prop_map(|d| d.to_string()),
        3 => domain.clone().prop_map(|d| format!("*@{d}")),
        3 => (local.clone(), domain.clone()).prop_map(|(l, d)| format!("{l}@{d}")),
        2 => domain.clone().prop_map(|d| format!("*@*.{d}")),
        1 => Just("*.example".to_string()),
        1 => domain.clone().prop_map(|d| format!("a*@{d}")),
        1 => domain.clone().prop_map(|d| format!("?@{d}")),
        1 => (local, domain).prop_map(|(l, d)| format!("{}@{}", l.to_uppercase(), d.to_uppercase())),
        1 => Just("*@*".to_string()),
    ]
}

fn gen_rule() -> impl Strategy<Value = GenRule> {
    let list = || prop::option::weighted(0.6, prop::collection::vec(pattern(), 1..3));
    let channel =
        prop::option::weighted(0.3, prop::sample::subsequence(vec!["smtp", "xmpp"], 1..=2));
    let key = prop::option::weighted(0.25, any::<bool>());
    let links = prop::sample::select(vec!["keep", "strip", "defang", "redact"]);
    (list(), list(), channel, key, links).prop_map(|(from, to, channel, to_has_key, links)| {
        GenRule {
            from,
            to,
            channel,
            to_has_key,
            links,
        }
    })
}

fn toml_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("\"{s}\"")).collect();
    format!("[{}]", quoted.join(", "))
}

/// The rules as policy files: rule i is named "r{i}", the rules split over
/// files at `cuts`, in order.
fn policy_files(rules: &[(usize, GenRule)], cuts: &[usize]) -> Vec<(PathBuf, String)> {
    let mut files: Vec<(PathBuf, String)> = vec![(
        PathBuf::from("/policy/00.toml"),
        "[defaults]\nlinks = \"keep\"\n".to_string(),
    )];
    for (n, (i, r)) in rules.iter().enumerate() {
        if cuts.contains(&n) {
            files.push((
                PathBuf::from(format!("/policy/{:02}.toml", files.len() * 10)),
                String::new(),
            ));
        }
        let text = &mut files.last_mut().unwrap().1;
        text.push_str(&format!("\n[[rule]]\nname = \"r{i}\"\n"));
        if let Some(f) = &r.from {
            text.push_str(&format!("from = {}\n", toml_list(f)));
        }
        if let Some(t) = &r.to {
            text.push_str(&format!("to = {}\n", toml_list(t)));
        }
        if let Some(c) = &r.channel {
            let c: Vec<String> = c.iter().map(|s| s.to_string()).collect();
            text.push_str(&format!("channel = {}\n", toml_list(&c)));
        }
        if let Some(k) = r.to_has_key {
            text.push_str(&format!("to_has_key = {k}\n"));
        }
        text.push_str(&format!("links = \"{}\"\n", r.links));
    }
    files
}

/// Loads the rules; rules sotto refuses as never matching (an earlier rule
/// covers them) are dropped, as an administrator would, until the set loads.
fn load(mut rules: Vec<(usize, GenRule)>, cuts: &[usize]) -> (PolicySet, Vec<(usize, GenRule)>) {
    for _ in 0..=rules.len() {
        match PolicySet::from_texts(&policy_files(&rules, cuts), "generated".into()) {
            Ok(set) => return (set, rules),
            Err(problems) => {
                let mut dead = Vec::new();
                for p in &problems {
                    let name = p
                        .message
                        .strip_prefix("rule \"")
                        .and_then(|r| r.split_once("\" can never match"))
                        .map(|(n, _)| n.to_string());
                    match name {
                        Some(n) => dead.push(n),
                        None => panic!("unexpected policy problem: {p:?}"),
                    }
                }
                rules.retain(|(i, _)| !dead.contains(&format!("r{i}")));
            }
        }
    }
    panic!("the rules never loaded");
}

/// `*` any run of characters, `?` any one; case-insensitive.
fn glob(pattern: &[char], text: &[char]) -> bool {
    // The classic dynamic program: m[j] = pattern[..i] matches text[..j].
    let mut m = vec![false; text.len() + 1];
    m[0] = true;
    for &p in pattern {
        let mut next = vec![false; text.len() + 1];
        if p == '*' {
            let mut any = false;
            for j in 0..=text.len() {
                any |= m[j];
                next[j] = any;
            }
        } else {
            for j in 1..=text.len() {
                next[j] = m[j - 1] && (p == '?' || p == text[j - 1]);
            }
        }
        m = next;
    }
    m[text.len()]
}

/// The reference: a pattern list matches an address.
fn ref_matches(list: &Option<Vec<String>>, address: &str) -> bool {
    let Some(list) = list else { return true };
    let address: Vec<char> = address.to_lowercase().chars().collect();
    list.iter().any(|p| {
        let p = p.trim().to_lowercase();
        let p = if p == "*" || p.contains('@') {
            p
        } else {
            format!("*@{p}")
        };
        glob(&p.chars().collect::<Vec<_>>(), &address)
    })
}

/// The reference decision: the first rule, in order, whose matchers all
/// match; `Err(())` when a rule with `to_has_key` is reached and the key
/// status is unknown.
fn reference(
    rules: &[(usize, GenRule)],
    channel: Channel,
    from: &str,
    to: &str,
    has_key: Option<bool>,
) -> Result<Option<String>, ()> {
    for (i, r) in rules {
        let ch = r
            .channel
            .as_ref()
            .is_none_or(|c| c.contains(&channel.to_string().as_str()));
        if !ch || !ref_matches(&r.from, from) || !ref_matches(&r.to, to) {
            continue;
        }
        match (r.to_has_key, has_key) {
            (Some(_), None) => return Err(()),
            (Some(want), Some(h)) if want != h => continue,
            _ => return Ok(Some(format!("r{i}"))),
        }
    }
    Ok(None)
}

fn address() -> impl Strategy<Value = String> {
    prop_oneof![
        10 => (
            prop::sample::select(vec!["a", "b", "ab", "A", "c"]),
            prop::sample::select(&DOMAINS[..]),
        )
            .prop_map(|(l, d)| format!("{l}@{d}")),
        1 => Just(String::new()),
        1 => Just("B@SUB.X.EXAMPLE".to_string()),
    ]
}

fn query() -> impl Strategy<Value = (Channel, String, String, Option<bool>)> {
    (
        prop::sample::select(vec![Channel::Smtp, Channel::Xmpp]),
        address(),
        address(),
        prop::option::of(any::<bool>()),
    )
}

proptest! {
    #![proptest_config(proptest_config(64))]

    #[test]
    fn first_matching_rule_decides(
        rules in prop::collection::vec(gen_rule(), 0..12),
        cuts in prop::collection::vec(0usize..12, 0..3),
        queries in prop::collection::vec(query(), 1..24),
    ) {
        let numbered: Vec<(usize, GenRule)> = rules.into_iter().enumerate().collect();
        let (set, kept) = load(numbered, &cuts);
        for (channel, from, to, has_key) in queries {
            let got = set.decide(channel, &from, &to, has_key);
            let want = reference(&kept, channel, &from, &to, has_key);
            match (&got, &want) {
                (Err(_), Err(())) => {}
                (Ok(d), Ok(w)) => {
                    prop_assert_eq!(&d.rule, w, "{} {} -> {} (key {:?})", channel, from, to, has_key);
                    let links = kept
                        .iter()
                        .find(|(i, _)| Some(format!("r{i}")) == d.rule)
                        .map_or("keep", |(_, r)| r.links);
                    prop_assert_eq!(d.treatment.links.name(), links);
                }
                _ => prop_assert!(
                    false,
                    "{} {} -> {} (key {:?}): sotto {:?}, reference {:?}",
                    channel, from, to, has_key, got.map(|d| d.rule), want
                ),
            }
        }
    }
}
