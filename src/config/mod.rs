//! Configuration: `sotto.toml`, overridden by `SOTTO_*` environment variables,
//! deserialized into typed structs and validated as a whole.
//!
//! Owns the shape of the configuration and its defaults. It does not open
//! sockets or files other than the configuration itself and the TLS material
//! it is asked to check; the subsystems read their part from [`Config`].
//!
//! This file holds the root [`Config`] with the listener, upstream, limits,
//! timeouts, admin and log sections; the other sections have a file each
//! (`crypt`, `links`, `xmpp`). Loading is in `load`: the file's tree is
//! deserialized by `tree` (every refused value collected), `SOTTO_*`
//! variables are read by `env`, semantic checks are in `validate`, placing
//! a problem at its line in the file in `locate`, and its wording in `hint`.

mod crypt;
mod env;
pub(crate) mod hint;
mod identities;
mod links;
mod load;
mod locate;
mod store;
mod tree;
mod validate;
mod xmpp;

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

pub use crypt::{CryptConfig, Encrypt, KeySource, KeysConfig, PolicyConfig, SubjectMode};
pub use identities::{IdentitiesConfig, ImapConfig, InboundConfig};
pub use links::{LinksConfig, RedirectConfig, TokenKey};
pub use load::ENV_PREFIX;
pub use locate::Problem;
pub use store::StoreConfig;
pub use xmpp::XmppConfig;

/// The whole configuration of one sotto process.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub smtp: SmtpConfig,
    pub lmtp: LmtpConfig,
    pub upstream: UpstreamConfig,
    pub limits: Limits,
    pub timeouts: Timeouts,
    pub admin: AdminConfig,
    pub log: LogConfig,
    pub keys: KeysConfig,
    pub policy: PolicyConfig,
    pub crypt: CryptConfig,
    pub links: LinksConfig,
    pub redirect: RedirectConfig,
    pub xmpp: XmppConfig,
    pub store: StoreConfig,
    pub identities: IdentitiesConfig,
    pub inbound: InboundConfig,
    pub imap: ImapConfig,
}

/// The SMTP listener (smarthost or before-queue filter use).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpConfig {
    /// Address to listen on; empty string disables the SMTP listener.
    pub listen: String,
    /// Name sotto gives in its greeting and EHLO reply.
    pub hostname: String,
    /// PEM certificate chain for STARTTLS; STARTTLS is offered when set.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for STARTTLS.
    pub tls_key: Option<PathBuf>,
    /// Refuse MAIL until the client has started TLS.
    pub require_tls: bool,
    /// SMTP AUTH for clients (smarthost use).
    pub auth: ServerAuth,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:10025".into(),
            hostname: "localhost".into(),
            tls_cert: None,
            tls_key: None,
            require_tls: false,
            auth: ServerAuth::default(),
        }
    }
}

/// Accounts that may authenticate to the SMTP listener.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct ServerAuth {
    /// Refuse MAIL from clients that have not authenticated.
    pub required: bool,
    /// Offer AUTH on connections without TLS (passwords in clear: tests only).
    pub allow_plaintext: bool,
    pub users: Vec<User>,
}

/// One account for SMTP AUTH PLAIN/LOGIN.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub name: String,
    pub password: String,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// The LMTP listener (after-queue content filter use, recommended).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LmtpConfig {
    /// Address to listen on; empty string disables the LMTP listener.
    pub listen: String,
}

impl Default for LmtpConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:10024".into(),
        }
    }
}

/// How the upstream connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum UpstreamTls {
    /// Plain TCP: for a re-injection listener on loopback.
    #[default]
    None,
    /// Plain TCP, then STARTTLS, which must succeed.
    Starttls,
    /// TLS from the first byte (port 465 style).
    Tls,
}

/// Where sotto relays to.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamConfig {
    /// `host:port` of the upstream SMTP server.
    pub address: String,
    pub tls: UpstreamTls,
    /// Extra CA certificates (PEM) trusted for the upstream, beside the system ones.
    pub tls_ca: Option<PathBuf>,
    /// Name to verify in the upstream's certificate (default: the host of `address`).
    pub tls_name: Option<String>,
    /// Name sotto gives in its EHLO to the upstream.
    pub helo_name: String,
    /// SMTP AUTH to the upstream (smarthost to a provider's submission port).
    pub auth: Option<UpstreamAuth>,
    /// Idle upstream connections kept for reuse.
    pub pool_size: usize,
    /// How long an idle upstream connection is kept.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        Self {
            address: "127.0.0.1:10026".into(),
            tls: UpstreamTls::None,
            tls_ca: None,
            tls_name: None,
            helo_name: "localhost".into(),
            auth: None,
            pool_size: 32,
            idle_timeout: Duration::from_secs(30),
        }
    }
}

/// Credentials for the upstream. Either may come from the environment
/// (`SOTTO_UPSTREAM__AUTH__PASSWORD`) while the other is in the file.
#[derive(Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamAuth {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for UpstreamAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamAuth")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// Bounds on what one client may make sotto do.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest message accepted, in bytes (advertised with SIZE).
    pub max_message_size: usize,
    /// Recipients per transaction.
    pub max_recipients: usize,
    /// Concurrent client connections over all listeners; more get `421`.
    pub max_connections: usize,
    /// Commands per connection (DATA content not counted).
    pub max_commands: usize,
    /// Erroneous commands per connection before it is closed.
    pub max_errors: usize,
    /// Longest command line, CRLF included.
    pub max_line_length: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_size: 25 * 1024 * 1024,
            max_recipients: 100,
            max_connections: 256,
            max_commands: 10_000,
            max_errors: 20,
            max_line_length: 2048,
        }
    }
}

/// Time bounds per phase.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Timeouts {
    /// Time a client has to send one whole command line.
    #[serde(with = "humantime_serde")]
    pub command: Duration,
    /// Time a client has to send the whole message after `354`.
    #[serde(with = "humantime_serde")]
    pub data: Duration,
    /// Time the upstream has to connect or answer one command.
    #[serde(with = "humantime_serde")]
    pub upstream: Duration,
    /// Time the upstream has to accept the message after the data was sent.
    #[serde(with = "humantime_serde")]
    pub upstream_data: Duration,
    /// On SIGTERM, how long in-flight transactions may take before sotto exits.
    #[serde(with = "humantime_serde")]
    pub shutdown: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            command: Duration::from_secs(300),
            data: Duration::from_secs(600),
            upstream: Duration::from_secs(60),
            upstream_data: Duration::from_secs(600),
            shutdown: Duration::from_secs(60),
        }
    }
}

/// The admin HTTP endpoint (`/healthz`, `/readyz`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Address to listen on; empty string disables it.
    pub listen: String,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:9025".into(),
        }
    }
}

/// Log output.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `error`, `warn`, `info`, `debug` or `trace`, or a tracing filter directive.
    pub level: String,
    /// `text` or `json`.
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Why a configuration could not be loaded: every problem found, each with
/// where it is.
#[derive(Debug, thiserror::Error)]
#[error("{}", self.render())]
pub struct ConfigError {
    pub problems: Vec<Problem>,
}

impl ConfigError {
    fn render(&self) -> String {
        self.problems
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Splits `host:port` (IPv6 in brackets) into its parts.
pub fn split_host_port(addr: &str) -> Option<(String, u16)> {
    let (host, port) = addr.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty() || port == 0 {
        return None;
    }
    Some((host.to_string(), port))
}

#[cfg(test)]
mod tests;
