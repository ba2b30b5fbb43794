//! The `[store]` section: where sotto keeps what must outlive a process and
//! be the same on every replica (see [`crate::store`]).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// The state store.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// `sqlite:///path/to/sotto.db` or `postgres://user@host/db`. Unset: the
    /// SQLite file `sotto.db` in the state directory (`$STATE_DIRECTORY`,
    /// else `$XDG_STATE_HOME/sotto`, else `~/.local/state/sotto`).
    pub url: Option<String>,
    /// File whose first line is the passphrase that encrypts the local
    /// identities' secret keys at rest. Unset: `xmpp.user_keys_secret`.
    pub secret_file: Option<PathBuf>,
    /// Connections to PostgreSQL per process (SQLite: one writer, a few readers).
    pub max_connections: u32,
    /// How long a query waits for a connection (or SQLite for its lock).
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// How long a live OX message is remembered to refuse its replay.
    #[serde(with = "humantime_serde")]
    pub replay_ttl: Duration,
    /// Most OX replay records kept; the oldest go first.
    pub replay_max: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            url: None,
            secret_file: None,
            max_connections: 10,
            timeout: Duration::from_secs(5),
            replay_ttl: Duration::from_secs(30 * 24 * 3600),
            replay_max: 1_000_000,
        }
    }
}

impl StoreConfig {
    /// The passphrase file for secret keys at rest: `[store] secret_file`,
    /// else the older `xmpp.user_keys_secret`.
    pub fn secret_file<'a>(&'a self, xmpp: &'a super::XmppConfig) -> Option<&'a PathBuf> {
        self.secret_file.as_ref().or(xmpp.user_keys_secret.as_ref())
    }

    /// Every problem with this section, as (dotted key, message).
    pub fn validate(&self, xmpp: &super::XmppConfig) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if let Some(url) = &self.url {
            let known = ["sqlite:", "postgres://", "postgresql://"];
            if !known.iter().any(|p| url.starts_with(p)) {
                out.push((
                    "store.url".into(),
                    "must start with sqlite: (e.g. sqlite:///var/lib/sotto/sotto.db) or postgres://"
                        .into(),
                ));
            }
        }
        if let Some(p) = self.secret_file(xmpp)
            && !p.is_file()
        {
            out.push((
                "store.secret_file".into(),
                format!("cannot read `{}`", p.display()),
            ));
        }
        if self.max_connections == 0 {
            out.push(("store.max_connections".into(), "must be at least 1".into()));
        }
        if self.timeout.is_zero() {
            out.push(("store.timeout".into(), "must be longer than zero".into()));
        }
        if self.replay_max == 0 {
            out.push(("store.replay_max".into(), "must be at least 1".into()));
        }
        out
    }
}
