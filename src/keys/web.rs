//! Certificates from the web: WKD (advanced, then direct method) and a VKS
//! keyserver (`/vks/v1/by-email/`). Base URLs are configurable so tests can
//! point them at servers on 127.0.0.1.

use std::time::Duration;

use sequoia_openpgp::Cert;
use sequoia_openpgp::cert::CertParser;
use sequoia_openpgp::parse::Parse;

/// Largest response accepted from a key server.
const MAX_RESPONSE: usize = 1 << 20;

/// What a web source answered.
#[derive(Debug)]
pub enum Fetched {
    Certs(Vec<Cert>),
    NotFound,
    /// Could not ask (network, timeout, bad response): say why.
    Failed(String),
}

fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The WKD URLs for an address, advanced method first. With `base`, both
/// methods use it instead of the domain's hosts.
pub fn wkd_urls(address: &str, base: Option<&str>) -> Option<[String; 2]> {
    let (local, domain) = address.rsplit_once('@')?;
    let domain = domain.to_ascii_lowercase();
    let hash = crate::openpgp::wkd::hash(local);
    let l = percent_encode(local);
    let (adv, direct) = match base {
        Some(b) => (
            b.trim_end_matches('/').to_string(),
            b.trim_end_matches('/').to_string(),
        ),
        None => (
            format!("https://openpgpkey.{domain}"),
            format!("https://{domain}"),
        ),
    };
    Some([
        format!("{adv}/.well-known/openpgpkey/{domain}/hu/{hash}?l={l}"),
        format!("{direct}/.well-known/openpgpkey/hu/{hash}?l={l}"),
    ])
}

/// The VKS by-email URL.
pub fn vks_url(address: &str, base: &str) -> String {
    format!(
        "{}/vks/v1/by-email/{}",
        base.trim_end_matches('/'),
        percent_encode(address)
    )
}

/// A client for both web sources.
#[derive(Clone)]
pub struct Web {
    http: reqwest::Client,
}

impl Web {
    pub fn new(timeout: Duration) -> Self {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::limited(3))
            .user_agent(concat!("sotto/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        Web { http }
    }

    /// GETs one URL and parses the certificates in the answer.
    pub async fn fetch(&self, url: &str) -> Fetched {
        let mut resp = match self.http.get(url).send().await {
            Ok(r) => r,
            Err(e) => return Fetched::Failed(describe(&e)),
        };
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            return Fetched::NotFound;
        }
        if !resp.status().is_success() {
            return Fetched::Failed(format!("HTTP {}", resp.status()));
        }
        let mut body = Vec::new();
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > MAX_RESPONSE {
                        return Fetched::Failed("response larger than 1 MiB".into());
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => return Fetched::Failed(describe(&e)),
            }
        }
        match CertParser::from_bytes(&body) {
            Ok(p) => {
                let certs: Vec<Cert> = p.filter_map(Result::ok).collect();
                if certs.is_empty() {
                    Fetched::Failed("no certificate in the answer".into())
                } else {
                    Fetched::Certs(certs)
                }
            }
            Err(e) => Fetched::Failed(format!("unreadable answer: {e}")),
        }
    }
}

fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "cannot connect".into()
    } else {
        "request failed".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wkd_hash_matches_the_draft_example() {
        // draft-koch-openpgp-webkey-service: Joe.Doe@Example.ORG
        let [adv, direct] = wkd_urls("Joe.Doe@Example.ORG", None).unwrap();
        assert_eq!(
            adv,
            "https://openpgpkey.example.org/.well-known/openpgpkey/example.org/hu/iy9q119eutrkn8s1mk4r39qejnbu3n5q?l=Joe.Doe"
        );
        assert_eq!(
            direct,
            "https://example.org/.well-known/openpgpkey/hu/iy9q119eutrkn8s1mk4r39qejnbu3n5q?l=Joe.Doe"
        );
    }

    #[test]
    fn vks_url_is_encoded() {
        assert_eq!(
            vks_url("a+b@x.org", "http://127.0.0.1:1/"),
            "http://127.0.0.1:1/vks/v1/by-email/a%2Bb%40x.org"
        );
    }
}
