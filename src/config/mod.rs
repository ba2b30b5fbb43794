//! Configuration: `sotto.toml`, overridden by `SOTTO_*` environment variables,
//! deserialized into typed structs and validated as a whole.
//!
//! Owns the shape of the configuration and its defaults. It does not open
//! sockets or files other than the configuration itself and the TLS material
//! it is asked to check; the subsystems read their part from [`Config`].

mod crypt;
mod links;
mod locate;
mod xmpp;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub use crypt::{CryptConfig, Encrypt, KeySource, KeysConfig, PolicyConfig, SubjectMode};
pub use links::{LinksConfig, RedirectConfig, TokenKey};
pub use locate::Problem;
pub use xmpp::XmppConfig;

/// Prefix of environment variables that override the file; `__` separates
/// levels: `SOTTO_UPSTREAM__ADDRESS=127.0.0.1:2525`.
pub const ENV_PREFIX: &str = "SOTTO";

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

impl Config {
    /// Loads the file (if any), applies `SOTTO_*` overrides from `env`, and
    /// validates the result. Every problem is reported, not only the first.
    pub fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let text = match path {
            Some(p) => Some(std::fs::read_to_string(p).map_err(|e| ConfigError {
                problems: vec![Problem::whole(p, format!("cannot read: {e}"))],
            })?),
            None => None,
        };
        let file = path.map(Path::to_path_buf);
        if let (Some(p), Some(t)) = (path, &text) {
            // Syntax and type errors with their exact position, before the
            // config crate (which loses positions) sees the file.
            let problems = locate::check_file(p, t);
            if !problems.is_empty() {
                return Err(ConfigError { problems });
            }
        }
        let env: Vec<(String, String)> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with(&format!("{ENV_PREFIX}_")))
            .collect();
        let env_keys: Vec<String> = env.iter().map(|(k, _)| k.clone()).collect();
        let mut builder = config::Config::builder();
        if let Some(t) = &text {
            builder = builder.add_source(config::File::from_str(t, config::FileFormat::Toml));
        }
        builder = builder.add_source(
            config::Environment::with_prefix(ENV_PREFIX)
                .prefix_separator("_")
                .separator("__")
                .try_parsing(true)
                .list_separator(",")
                .with_list_parse_key("keys.sources")
                .source(Some(env.into_iter().collect())),
        );
        let cfg: Config = builder
            .build()
            .and_then(|c| c.try_deserialize())
            .map_err(|e| ConfigError {
                problems: vec![Problem::env_or_file(file.as_deref(), format!("{e}"))],
            })?;
        let mut problems: Vec<Problem> = cfg
            .validate()
            .into_iter()
            .map(|(key, msg)| {
                Problem::at_key(file.as_deref(), text.as_deref(), &env_keys, &key, msg)
            })
            .collect();
        // In file order; problems without a place (environment) come last.
        problems.sort_by_key(|p| p.position.unwrap_or((usize::MAX, 0)));
        if problems.is_empty() {
            Ok(cfg)
        } else {
            Err(ConfigError { problems })
        }
    }

    /// Every semantic problem, as (dotted key, message).
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut addr = |key: &str, value: &str, may_be_empty: bool| {
            if value.is_empty() {
                if !may_be_empty {
                    out.push((key.to_string(), "must not be empty".to_string()));
                }
            } else if value.parse::<SocketAddr>().is_err() {
                out.push((
                    key.to_string(),
                    format!("`{value}` is not an IP:port address (e.g. 127.0.0.1:10025)"),
                ));
            }
        };
        addr("smtp.listen", &self.smtp.listen, true);
        addr("lmtp.listen", &self.lmtp.listen, true);
        addr("admin.listen", &self.admin.listen, true);
        addr("redirect.listen", &self.redirect.listen, true);
        addr("xmpp.listen", &self.xmpp.listen, true);
        addr("xmpp.listen_tls", &self.xmpp.listen_tls, true);
        let xmpp_on = !self.xmpp.listen.is_empty() || !self.xmpp.listen_tls.is_empty();
        if xmpp_on {
            if split_host_port(&self.xmpp.upstream).is_none() {
                out.push((
                    "xmpp.upstream".into(),
                    format!("`{}` is not host:port", self.xmpp.upstream),
                ));
            }
            for (key, p) in [
                ("xmpp.tls_cert", &self.xmpp.tls_cert),
                ("xmpp.tls_key", &self.xmpp.tls_key),
            ] {
                match p {
                    None => out.push((
                        key.into(),
                        "is needed when an XMPP listener is on (TLS ends at sotto)".into(),
                    )),
                    Some(p) if !p.is_file() => {
                        out.push((key.into(), format!("cannot read `{}`", p.display())))
                    }
                    Some(_) => {}
                }
            }
        }
        if self.smtp.listen.is_empty() && self.lmtp.listen.is_empty() {
            out.push((
                "smtp.listen".into(),
                "SMTP and LMTP listeners are both disabled".into(),
            ));
        }
        if split_host_port(&self.upstream.address).is_none() {
            out.push((
                "upstream.address".into(),
                format!(
                    "`{}` is not host:port (e.g. 127.0.0.1:10026)",
                    self.upstream.address
                ),
            ));
        }
        match (&self.smtp.tls_cert, &self.smtp.tls_key) {
            (Some(_), None) => out.push(("smtp.tls_cert".into(), "tls_key is missing".into())),
            (None, Some(_)) => out.push(("smtp.tls_key".into(), "tls_cert is missing".into())),
            (Some(c), Some(k)) => {
                for (key, p) in [("smtp.tls_cert", c), ("smtp.tls_key", k)] {
                    if !p.is_file() {
                        out.push((key.into(), format!("cannot read `{}`", p.display())));
                    }
                }
            }
            (None, None) => {
                if self.smtp.require_tls {
                    out.push((
                        "smtp.require_tls".into(),
                        "needs tls_cert and tls_key".into(),
                    ));
                }
            }
        }
        if let Some(ca) = &self.upstream.tls_ca
            && !ca.is_file()
        {
            out.push((
                "upstream.tls_ca".into(),
                format!("cannot read `{}`", ca.display()),
            ));
        }
        if self.smtp.auth.required && self.smtp.auth.users.is_empty() {
            out.push((
                "smtp.auth.required".into(),
                "no [[smtp.auth.users]] are defined".into(),
            ));
        }
        for (key, v, min) in [
            (
                "limits.max_message_size",
                self.limits.max_message_size,
                1024,
            ),
            ("limits.max_recipients", self.limits.max_recipients, 1),
            ("limits.max_connections", self.limits.max_connections, 1),
            ("limits.max_commands", self.limits.max_commands, 10),
            ("limits.max_errors", self.limits.max_errors, 1),
            ("limits.max_line_length", self.limits.max_line_length, 512),
        ] {
            if v < min {
                out.push((key.into(), format!("must be at least {min}")));
            }
        }
        for (key, d) in [
            ("timeouts.command", self.timeouts.command),
            ("timeouts.data", self.timeouts.data),
            ("timeouts.upstream", self.timeouts.upstream),
            ("timeouts.upstream_data", self.timeouts.upstream_data),
        ] {
            if d.is_zero() {
                out.push((key.into(), "must be longer than zero".into()));
            }
        }
        if let Some(d) = &self.keys.dir
            && !d.is_dir()
        {
            out.push((
                "keys.dir".into(),
                format!("`{}` is not a directory", d.display()),
            ));
        }
        if let Some(p) = &self.crypt.signing_key
            && !p.is_file()
        {
            out.push((
                "crypt.signing_key".into(),
                format!("cannot read `{}`", p.display()),
            ));
        }
        if let Some(d) = &self.policy.dir
            && !d.is_dir()
        {
            out.push((
                "policy.dir".into(),
                format!("`{}` is not a directory", d.display()),
            ));
        }
        if !(self.redirect.public_url.starts_with("https://")
            || self.redirect.public_url.starts_with("http://"))
        {
            out.push((
                "redirect.public_url".into(),
                "must start with https:// (or http:// for tests)".into(),
            ));
        }
        let mut ids = std::collections::HashSet::new();
        for k in &self.redirect.keys {
            if !ids.insert(k.id) {
                out.push((
                    "redirect.keys".into(),
                    format!("key id {} is used twice", k.id),
                ));
            }
            match (&k.secret, &k.secret_file) {
                (Some(_), Some(_)) | (None, None) => out.push((
                    "redirect.keys".into(),
                    format!("key {}: give exactly one of secret, secret_file", k.id),
                )),
                (None, Some(p)) if !p.is_file() => out.push((
                    "redirect.keys".into(),
                    format!("key {}: cannot read `{}`", k.id, p.display()),
                )),
                _ => {}
            }
        }
        if let Some(a) = &self.upstream.auth {
            for (key, v) in [
                ("upstream.auth.username", &a.username),
                ("upstream.auth.password", &a.password),
            ] {
                if v.is_empty() {
                    out.push((
                        key.into(),
                        format!(
                            "is missing (set it in the file or as SOTTO_{})",
                            key.replace('.', "__").to_uppercase()
                        ),
                    ));
                }
            }
        }
        if self.keys.cache_size == 0 {
            out.push(("keys.cache_size".into(), "must be at least 1".into()));
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            out.push((
                "log.level".into(),
                format!("not a log level or filter: {e}"),
            ));
        }
        out
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
mod tests {
    use super::*;

    fn load_str(text: &str) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sotto.toml");
        std::fs::write(&p, text).unwrap();
        Config::load(Some(&p), Vec::new())
    }

    #[test]
    fn embedded_defaults_are_valid() {
        let c = Config::load(None, Vec::new()).unwrap();
        assert_eq!(c.smtp.listen, "127.0.0.1:10025");
        assert_eq!(c.lmtp.listen, "127.0.0.1:10024");
        assert_eq!(c.upstream.address, "127.0.0.1:10026");
        assert_eq!(c.admin.listen, "127.0.0.1:9025");
    }

    #[test]
    fn env_overrides_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sotto.toml");
        std::fs::write(&p, "[upstream]\naddress = \"127.0.0.1:1\"\n").unwrap();
        let env = vec![
            (
                "SOTTO_UPSTREAM__ADDRESS".to_string(),
                "127.0.0.1:2525".to_string(),
            ),
            ("SOTTO_LIMITS__MAX_RECIPIENTS".to_string(), "7".to_string()),
            ("SOTTO_KEYS__SOURCES".to_string(), "dir,vks".to_string()),
            ("PATH".to_string(), "/bin".to_string()),
        ];
        let c = Config::load(Some(&p), env).unwrap();
        assert_eq!(c.upstream.address, "127.0.0.1:2525");
        assert_eq!(c.limits.max_recipients, 7);
        assert_eq!(c.keys.sources, vec![KeySource::Dir, KeySource::Vks]);
    }

    #[test]
    fn durations_read_humanly() {
        let c = load_str("[timeouts]\ncommand = \"5s\"\ndata = \"2m\"\n").unwrap();
        assert_eq!(c.timeouts.command, Duration::from_secs(5));
        assert_eq!(c.timeouts.data, Duration::from_secs(120));
    }

    #[test]
    fn every_semantic_problem_has_its_line() {
        let err = load_str(
            "[smtp]\nlisten = \"nowhere\"\n\n[upstream]\naddress = \"x\"\n[limits]\nmax_recipients = 0\n",
        )
        .unwrap_err();
        let lines: Vec<String> = err.problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert!(lines[0].contains("sotto.toml:2:"), "{lines:?}");
        assert!(lines[0].contains("smtp.listen"), "{lines:?}");
        assert!(lines[1].contains("sotto.toml:5:"), "{lines:?}");
        assert!(lines[2].contains("sotto.toml:7:"), "{lines:?}");
        assert!(lines[2].contains("limits.max_recipients"), "{lines:?}");
    }

    #[test]
    fn unknown_key_is_reported_with_position() {
        let err = load_str("[smtp]\nlisten = \"127.0.0.1:25\"\nlistne = 1\n").unwrap_err();
        let s = err.to_string();
        assert!(s.contains("sotto.toml:3:1:"), "{s}");
        assert!(s.contains("listne"), "{s}");
    }

    #[test]
    fn host_port_split() {
        assert_eq!(split_host_port("[::1]:25"), Some(("::1".into(), 25)));
        assert_eq!(
            split_host_port("mx.example:587"),
            Some(("mx.example".into(), 587))
        );
        assert_eq!(split_host_port("mx.example"), None);
        assert_eq!(split_host_port(":25"), None);
    }
}
