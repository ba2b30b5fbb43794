//! Compiled address patterns and the index that keeps matching flat as
//! policies grow: rules whose `to` (or else `from`) patterns all name a
//! literal domain are filed under it; only the rest are tried for every
//! recipient.

use std::collections::HashMap;

use globset::{GlobBuilder, GlobMatcher};

/// One compiled pattern: the common shapes are matched without a regex.
#[derive(Debug, Clone)]
enum Pat {
    /// `local@domain`, exactly.
    Exact(String),
    /// `*@domain`.
    Domain(String),
    /// `*@*.domain`: any subdomain of it.
    Subdomain(String),
    /// Anything else, as a glob.
    Glob(GlobMatcher),
}

impl Pat {
    fn matches(&self, address: &str) -> bool {
        match self {
            Pat::Exact(e) => address == e,
            Pat::Domain(d) => address.rsplit_once('@').is_some_and(|(_, ad)| ad == d),
            Pat::Subdomain(d) => address.rsplit_once('@').is_some_and(|(_, ad)| {
                ad.len() > d.len() + 1
                    && ad.ends_with(d.as_str())
                    && ad.as_bytes()[ad.len() - d.len() - 1] == b'.'
            }),
            Pat::Glob(g) => g.is_match(address),
        }
    }
}

/// Where a pattern's domain can be looked up in the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DomainKey {
    /// Exactly this domain.
    Exact(String),
    /// Any subdomain of this domain (`*@*.domain`).
    Below(String),
}

/// A list of address patterns, compiled; no list matches everything.
#[derive(Debug, Clone)]
pub struct Patterns {
    pats: Option<Vec<Pat>>,
    /// The domains the patterns are limited to, when every pattern is.
    pub domains: Option<Vec<DomainKey>>,
}

/// Turns `example.com` into `*@example.com`; lower-cases.
pub fn normalize_pattern(p: &str) -> String {
    let p = p.trim().to_lowercase();
    if p == "*" || p.contains('@') {
        p
    } else {
        format!("*@{p}")
    }
}

const META: [char; 7] = ['*', '?', '[', ']', '{', '}', '\\'];

fn domain_key(pattern: &str) -> Option<DomainKey> {
    let (_, domain) = pattern.rsplit_once('@')?;
    if !domain.is_empty() && !domain.contains(META) {
        return Some(DomainKey::Exact(domain.to_string()));
    }
    let below = domain.strip_prefix("*.")?;
    (!below.is_empty() && !below.contains(META)).then(|| DomainKey::Below(below.to_string()))
}

impl Patterns {
    /// Matches everything.
    pub fn any() -> Self {
        Patterns {
            pats: None,
            domains: None,
        }
    }

    pub fn compile(patterns: &[String]) -> Result<Self, String> {
        if patterns.iter().any(|p| p.trim() == "*") {
            return Ok(Patterns::any());
        }
        let mut pats = Vec::with_capacity(patterns.len());
        let mut domains = Some(Vec::new());
        for p in patterns {
            let norm = normalize_pattern(p);
            let (local, domain) = norm.rsplit_once('@').unwrap_or(("*", norm.as_str()));
            let pat = if !norm.contains(META) {
                Pat::Exact(norm.clone())
            } else if local == "*" && !domain.contains(META) {
                Pat::Domain(domain.to_string())
            } else if local == "*" && domain.starts_with("*.") && !domain[2..].contains(META) {
                Pat::Subdomain(domain[2..].to_string())
            } else {
                let glob = GlobBuilder::new(&norm)
                    .case_insensitive(true)
                    .literal_separator(false)
                    .build()
                    .map_err(|e| format!("bad pattern `{p}`: {}", e.kind()))?;
                Pat::Glob(glob.compile_matcher())
            };
            pats.push(pat);
            match (domain_key(&norm), domains.as_mut()) {
                (Some(d), Some(list)) => list.push(d),
                _ => domains = None,
            }
        }
        Ok(Patterns {
            pats: Some(pats),
            domains,
        })
    }

    /// `address` must already be lower-case.
    pub fn matches(&self, address: &str) -> bool {
        self.pats
            .as_ref()
            .is_none_or(|ps| ps.iter().any(|p| p.matches(address)))
    }
}

/// Rule numbers filed by domain, exact or "any subdomain of".
#[derive(Debug, Default)]
struct DomainIndex {
    exact: HashMap<String, Vec<usize>>,
    below: HashMap<String, Vec<usize>>,
}

impl DomainIndex {
    fn add(&mut self, i: usize, keys: &[DomainKey]) {
        for k in keys {
            let (map, d) = match k {
                DomainKey::Exact(d) => (&mut self.exact, d),
                DomainKey::Below(d) => (&mut self.below, d),
            };
            let v = map.entry(d.clone()).or_default();
            if v.last() != Some(&i) {
                v.push(i);
            }
        }
    }

    /// Rules filed under `domain` or under any domain it is below.
    fn collect(&self, domain: &str, out: &mut Vec<usize>) {
        if let Some(v) = self.exact.get(domain) {
            out.extend_from_slice(v);
        }
        let mut rest = domain;
        while let Some((_, parent)) = rest.split_once('.') {
            if let Some(v) = self.below.get(parent) {
                out.extend_from_slice(v);
            }
            rest = parent;
        }
    }
}

/// Rules filed by the domains they are limited to.
#[derive(Debug, Default)]
pub struct Index {
    by_to: DomainIndex,
    by_from: DomainIndex,
    rest: Vec<usize>,
}

impl Index {
    /// Files rule `i` under its `to` domains, else its `from` domains, else
    /// with the rules tried for everybody.
    pub fn add(&mut self, i: usize, from: &Patterns, to: &Patterns) {
        if let Some(ds) = &to.domains {
            self.by_to.add(i, ds);
        } else if let Some(ds) = &from.domains {
            self.by_from.add(i, ds);
        } else {
            self.rest.push(i);
        }
    }

    /// The rules that may match, in rule order.
    pub fn candidates(&self, from_domain: &str, to_domain: &str) -> Vec<usize> {
        let mut out: Vec<usize> = Vec::with_capacity(self.rest.len() + 4);
        out.extend_from_slice(&self.rest);
        self.by_to.collect(to_domain, &mut out);
        self.by_from.collect(from_domain, &mut out);
        out.sort_unstable();
        out.dedup();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_and_globs() {
        let p = Patterns::compile(&["Example.COM".into(), "*@*.example.net".into()]).unwrap();
        assert!(p.matches("bob@example.com"));
        assert!(p.matches("a@sub.example.net"));
        assert!(!p.matches("a@example.net"));
        assert!(!p.matches("a@xexample.net"));
        assert_eq!(
            p.domains,
            Some(vec![
                DomainKey::Exact("example.com".into()),
                DomainKey::Below("example.net".into())
            ])
        );
        assert!(
            Patterns::compile(&["*@mx*.example.net".into()])
                .unwrap()
                .domains
                .is_none()
        );
        let p = Patterns::compile(&["b?b@x.org".into(), "Ceo@Corp.example".into()]).unwrap();
        assert!(
            p.matches("bob@x.org") && p.matches("ceo@corp.example") && !p.matches("boob@x.org")
        );
        let p = Patterns::compile(&["legal.example".into(), "ceo@corp.example".into()]).unwrap();
        let exact = |d: &str| DomainKey::Exact(d.to_string());
        assert_eq!(
            p.domains,
            Some(vec![exact("legal.example"), exact("corp.example")])
        );
        let p = Patterns::compile(&["*@*.legal.example".into()]).unwrap();
        assert_eq!(
            p.domains,
            Some(vec![DomainKey::Below("legal.example".into())])
        );
        let any = Patterns::compile(&["*".into(), "x.example".into()]).unwrap();
        assert!(any.matches("who@ever.org") && any.domains.is_none());
        assert!(Patterns::compile(&["a[".into()]).is_err());
    }

    #[test]
    fn index_keeps_rule_order() {
        let mut ix = Index::default();
        let any = Patterns::any();
        ix.add(0, &any, &Patterns::compile(&["b.example".into()]).unwrap());
        ix.add(1, &any, &any);
        ix.add(2, &Patterns::compile(&["a.example".into()]).unwrap(), &any);
        assert_eq!(ix.candidates("a.example", "b.example"), vec![0, 1, 2]);
        assert_eq!(ix.candidates("x.example", "y.example"), vec![1]);
        ix.add(
            3,
            &any,
            &Patterns::compile(&["*@*.c.example".into()]).unwrap(),
        );
        assert_eq!(ix.candidates("x", "mx.eu.c.example"), vec![1, 3]);
        assert_eq!(ix.candidates("x", "c.example"), vec![1]);
    }
}
