//! How sotto reaches the server as a component: [`ServiceSettings`] (the
//! component names it may take, component port, shared secret, timeouts, backoff, limits), built from
//! `[xmpp]` by [`ServiceSettings::from_config`], which reads the secret
//! from its file, and why that can fail ([`SettingsError`]).

use std::path::PathBuf;
use std::time::Duration;

use crate::config::XmppConfig;
use crate::xmpp::framer::Limits;

/// How to reach the server as a component.
#[derive(Debug, Clone)]
pub struct ServiceSettings {
    /// The component JIDs (domains, e.g. `sotto-1.example.org`) this
    /// process may connect as, in order of preference: it takes the first
    /// that no other connection holds (the server answers `conflict` for a
    /// name in use), so N replicas given the same N names each get one.
    /// Never empty.
    pub names: Vec<String>,
    /// The server's component port, `host:port`.
    pub upstream: String,
    /// The shared secret (`component_secret` in Prosody).
    pub secret: String,
    /// Bound on each request's answer. Default 10 s.
    pub request_timeout: Duration,
    /// Bound on connecting and the handshake. Default 10 s.
    pub connect_timeout: Duration,
    /// First wait before reconnecting; doubled after each failure up to
    /// `backoff_max`. Defaults 1 s and 60 s.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// Limits on what the server sends (keys are tens of KiB). Default
    /// 1 MiB per stanza.
    pub limits: Limits,
}

impl ServiceSettings {
    /// Settings for the component name(s) `names` (one JID, or several
    /// separated by commas or spaces, see [`component_names`]) at
    /// `upstream` with `secret`, defaults otherwise.
    pub fn new(names: &str, upstream: &str, secret: &str) -> ServiceSettings {
        ServiceSettings {
            names: component_names(names),
            upstream: upstream.to_owned(),
            secret: secret.to_owned(),
            request_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            limits: Limits {
                max_stanza_bytes: 1024 * 1024,
                ..Limits::default()
            },
        }
    }

    /// The settings `[xmpp]` asks for: `None` when `component` is empty
    /// (PEP off); the secret is the first line of `component_secret`.
    pub fn from_config(cfg: &XmppConfig) -> Result<Option<ServiceSettings>, SettingsError> {
        if component_names(&cfg.component).is_empty() {
            return Ok(None);
        }
        let path = cfg
            .component_secret
            .clone()
            .ok_or(SettingsError::NoSecret)?;
        let text = std::fs::read_to_string(&path).map_err(|source| SettingsError::ReadSecret {
            path: path.clone(),
            source,
        })?;
        let secret = text.lines().next().unwrap_or_default().trim();
        if secret.is_empty() {
            return Err(SettingsError::EmptySecret { path });
        }
        Ok(Some(ServiceSettings::new(
            &cfg.component,
            &cfg.component_upstream,
            secret,
        )))
    }
}

/// The component names `xmpp.component` lists: one JID, or several
/// separated by commas or white space (one per replica), lower-cased, in
/// order, each once.
pub fn component_names(text: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for name in text.split(|c: char| c == ',' || c.is_whitespace()) {
        let name = name.trim().to_ascii_lowercase();
        if !name.is_empty() && !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

/// Why [`ServiceSettings::from_config`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SettingsError {
    #[error("xmpp.component is set but xmpp.component_secret is not")]
    NoSecret,
    #[error("xmpp.component_secret {}: {source}", path.display())]
    ReadSecret {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("xmpp.component_secret {}: the first line is empty", path.display())]
    EmptySecret { path: PathBuf },
}
