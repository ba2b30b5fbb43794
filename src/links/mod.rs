//! Links in what stays readable: finding URLs (text and HTML) and rewriting
//! them per mode so no third-party scanner can see or fetch them:
//! `strip` (a marker instead), `defang` (`hxxps://example[.]com/…`),
//! `redact` (userinfo and secret-looking or tracking parameters removed),
//! `redirect` (a sealed token on sotto's own redirector).
//!
//! Plain functions over text; the MIME walk is in `crate::mail::rewrite`.
//! Nothing here logs a URL.

pub mod css;
pub mod find;
pub mod html;
pub mod token;

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{LinksConfig, RedirectConfig};
use crate::policy::LinkMode;
use token::TokenKeys;

/// Where `redirect` links point, and how they are sealed.
#[derive(Clone)]
pub struct Redirect {
    pub public_url: String,
    pub ttl: Duration,
    pub keys: Arc<TokenKeys>,
}

impl Redirect {
    pub fn from_config(cfg: &RedirectConfig, keys: Arc<TokenKeys>) -> Self {
        Redirect {
            public_url: cfg.public_url.trim_end_matches('/').to_string(),
            ttl: cfg.token_ttl,
            keys,
        }
    }
}

/// What a URL becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rewritten {
    /// The same URL.
    Kept,
    /// A new URL (defanged, redacted or redirected).
    Url(String),
    /// Gone: text gets the marker, an HTML attribute is removed.
    Removed,
}

/// Rewrites URLs per mode; one per transaction, shared by its parts.
#[derive(Clone)]
pub struct LinkRewriter {
    pub mode: LinkMode,
    pub marker: String,
    redact_exact: Vec<String>,
    redact_prefix: Vec<String>,
    redirect: Option<Redirect>,
}

impl LinkRewriter {
    pub fn new(mode: LinkMode, cfg: &LinksConfig, redirect: Option<Redirect>) -> Self {
        let (mut redact_exact, mut redact_prefix) = (Vec::new(), Vec::new());
        for p in &cfg.redact_params {
            let p = p.to_ascii_lowercase();
            match p.strip_suffix('*') {
                Some(prefix) => redact_prefix.push(prefix.to_string()),
                None => redact_exact.push(p),
            }
        }
        LinkRewriter {
            mode,
            marker: cfg.marker.clone(),
            redact_exact,
            redact_prefix,
            redirect,
        }
    }

    /// What `url` becomes in this mode.
    pub fn rewrite_url(&self, url: &str) -> Rewritten {
        match self.mode {
            LinkMode::Keep => Rewritten::Kept,
            LinkMode::Strip => Rewritten::Removed,
            LinkMode::Defang => Rewritten::Url(defang(url)),
            LinkMode::Redact => match self.redact(url) {
                Some(u) if u == url => Rewritten::Kept,
                Some(u) => Rewritten::Url(u),
                None => Rewritten::Removed,
            },
            LinkMode::Redirect => {
                let Some(r) = &self.redirect else {
                    return Rewritten::Removed;
                };
                let target = absolute(url);
                match r.keys.seal(&target, r.ttl) {
                    Ok(token) => Rewritten::Url(format!("{}/l/{token}", r.public_url)),
                    // Not http(s) (ftp), or too long for a token that
                    // opens: no redirect exists for it.
                    Err(_) => Rewritten::Removed,
                }
            }
        }
    }

    /// Rewrites every URL in plain text; `None` when nothing changed.
    pub fn rewrite_text(&self, text: &str) -> Option<String> {
        let edits = self.replacements(text);
        (!edits.is_empty()).then(|| splice(text, edits))
    }

    /// Where each URL of plain `text` that changes is, and what it becomes
    /// (the marker for a removed one), in order, not overlapping.
    pub fn replacements(&self, text: &str) -> Vec<(Range<usize>, String)> {
        if self.mode == LinkMode::Keep {
            return Vec::new();
        }
        find::find(text)
            .into_iter()
            .filter_map(|f| {
                let new = match self.rewrite_url(&f.url) {
                    Rewritten::Kept => return None,
                    Rewritten::Url(u) => u,
                    Rewritten::Removed => self.marker.clone(),
                };
                Some((f.span, new))
            })
            .collect()
    }

    /// Removes userinfo and the configured parameters; `None` if the URL
    /// cannot be parsed (then it is removed rather than left whole).
    fn redact(&self, url: &str) -> Option<String> {
        let mut u = url::Url::parse(&absolute(url)).ok()?;
        let _ = u.set_username("");
        let _ = u.set_password(None);
        if u.query().is_some() {
            let kept: Vec<(String, String)> = u
                .query_pairs()
                .filter(|(k, _)| {
                    let k = k.to_ascii_lowercase();
                    !self.redact_exact.contains(&k)
                        && !self.redact_prefix.iter().any(|p| k.starts_with(p.as_str()))
                })
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            if kept.is_empty() {
                u.set_query(None);
            } else {
                u.query_pairs_mut().clear().extend_pairs(kept);
            }
        }
        let mut s = u.to_string();
        // Keep a bare `www.` link bare, as the reader wrote it.
        if !has_scheme(url)
            && let Some(rest) = s.strip_prefix("http://")
        {
            s = rest.to_string();
        }
        Some(s)
    }
}

/// A rewriter with the default configuration and no redirector (tests).
#[cfg(test)]
pub(crate) fn test_rewriter(mode: LinkMode) -> LinkRewriter {
    LinkRewriter::new(mode, &LinksConfig::default(), None)
}

/// `text` with each span of `edits` (in order, not overlapping) replaced
/// by its new text.
pub fn splice(text: &str, edits: impl IntoIterator<Item = (Range<usize>, String)>) -> String {
    let mut out = String::with_capacity(text.len() + 64);
    let mut last = 0;
    for (span, new) in edits {
        out.push_str(&text[last..span.start]);
        out.push_str(&new);
        last = span.end;
    }
    out.push_str(&text[last..]);
    out
}

fn has_scheme(url: &str) -> bool {
    url.contains("://")
}

/// `www.example.org/x` → `http://www.example.org/x`, as mail readers link it.
fn absolute(url: &str) -> String {
    if has_scheme(url) {
        url.to_string()
    } else {
        format!("http://{url}")
    }
}

/// `https://example.com/a.b` → `hxxps://example[.]com/a.b`: readable, not a link.
pub fn defang(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (Some(s), r),
        None => (None, url),
    };
    let host_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(host_end);
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let mut out = String::new();
    if let Some(s) = scheme {
        let s = s.to_ascii_lowercase();
        out.push_str(match s.as_str() {
            "http" => "hxxp",
            "https" => "hxxps",
            "ftp" => "fxp",
            other => other,
        });
        out.push_str("://");
    }
    // Userinfo is dropped: it is a secret, and defanged text stays readable.
    out.push_str(&host.replace('.', "[.]"));
    out.push_str(tail);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rw(mode: LinkMode) -> LinkRewriter {
        LinkRewriter::new(mode, &LinksConfig::default(), None)
    }

    #[test]
    fn defang_keeps_it_readable() {
        assert_eq!(
            defang("https://user:pw@mail.example.com/a.b?x=1"),
            "hxxps://mail[.]example[.]com/a.b?x=1"
        );
        assert_eq!(defang("www.example.org/p"), "www[.]example[.]org/p");
    }

    #[test]
    fn redact_removes_secrets_and_tracking() {
        let r = rw(LinkMode::Redact);
        assert_eq!(
            r.rewrite_url("https://u:p@shop.example/item?id=7&utm_source=nl&token=abc&fbclid=x"),
            Rewritten::Url("https://shop.example/item?id=7".into())
        );
        assert_eq!(
            r.rewrite_url("https://shop.example/item?id=7"),
            Rewritten::Kept
        );
        assert_eq!(
            r.rewrite_url("https://s.example/x?X-Amz-Signature=1"),
            Rewritten::Url("https://s.example/x".into())
        );
        assert_eq!(
            r.rewrite_url("www.shop.example/?utm_medium=x"),
            Rewritten::Url("www.shop.example/".into())
        );
    }

    #[test]
    fn redirect_leads_to_http_and_https_only() {
        let keys = Arc::new(TokenKeys::from_secrets(vec![(1, [7u8; 32])]));
        let redirect = Redirect {
            public_url: "https://l.example".into(),
            ttl: Duration::from_secs(60),
            keys: keys.clone(),
        };
        let r = LinkRewriter::new(LinkMode::Redirect, &LinksConfig::default(), Some(redirect));
        let Rewritten::Url(u) = r.rewrite_url("https://a.example/x") else {
            panic!("https has a redirect");
        };
        let token = u.strip_prefix("https://l.example/l/").unwrap();
        assert_eq!(keys.open(token).as_deref(), Ok("https://a.example/x"));
        assert_eq!(
            r.rewrite_url("ftp://f.example/pub/x.zip"),
            Rewritten::Removed
        );
        assert_eq!(
            r.rewrite_text("get ftp://f.example/pub/x.zip now")
                .as_deref(),
            Some("get [link removed] now")
        );
    }

    #[test]
    fn strip_text() {
        let r = rw(LinkMode::Strip);
        assert_eq!(
            r.rewrite_text("Reset: https://a.example/r?token=1 now")
                .as_deref(),
            Some("Reset: [link removed] now")
        );
        assert_eq!(r.rewrite_text("no links here"), None);
        assert_eq!(rw(LinkMode::Keep).rewrite_text("https://a.example/"), None);
    }
}
