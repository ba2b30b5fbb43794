//! The link side of the configuration: how `redact` recognises secrets
//! (`[links]`), and the scanner-proof redirector (`[redirect]`).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// Link rewriting.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LinksConfig {
    /// Query parameters `redact` removes: exact names, or prefixes ending in
    /// `*` (`utm_*`). Matched case-insensitively.
    pub redact_params: Vec<String>,
    /// What `strip` puts where a URL was.
    pub marker: String,
}

impl Default for LinksConfig {
    fn default() -> Self {
        let params = [
            "token",
            "access_token",
            "id_token",
            "refresh_token",
            "auth",
            "authorization",
            "key",
            "apikey",
            "api_key",
            "sig",
            "signature",
            "password",
            "passwd",
            "pass",
            "pwd",
            "secret",
            "code",
            "otp",
            "session",
            "sessionid",
            "session_id",
            "sid",
            "jwt",
            "reset",
            "reset_token",
            "x-amz-signature",
            "x-amz-credential",
            "x-amz-security-token",
            "x-goog-signature",
            "x-goog-credential",
            "utm_*",
            "fbclid",
            "gclid",
            "dclid",
            "msclkid",
            "mc_cid",
            "mc_eid",
            "_hsenc",
            "_hsmi",
            "mkt_tok",
            "igshid",
            "yclid",
        ];
        LinksConfig {
            redact_params: params.iter().map(|s| s.to_string()).collect(),
            marker: "[link removed]".into(),
        }
    }
}

/// One key for sealing redirect tokens.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenKey {
    /// Identifies the key inside each token (0–255); keep ids unique.
    pub id: u8,
    /// 32 random bytes, base64 (`openssl rand -base64 32`).
    pub secret: Option<String>,
    /// Or a file holding that base64 text (e.g. a mounted Secret).
    pub secret_file: Option<PathBuf>,
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// The redirector that `redirect` links point to.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedirectConfig {
    /// Address the redirector listens on; empty disables it in `serve`.
    pub listen: String,
    /// Base URL of the redirector as readers reach it; links become
    /// `<public_url>/l/<token>`. Empty (the default): not configured, and a
    /// policy with `links = "redirect"` is refused.
    pub public_url: String,
    /// How long a token stays valid.
    #[serde(with = "humantime_serde")]
    pub token_ttl: Duration,
    /// Requests per minute one client IP may make.
    pub rate_limit: u32,
    /// Token keys; the first seals new tokens, all open them (rotation).
    /// None: a random key per process (tokens die with it; one replica only).
    pub keys: Vec<TokenKey>,
}

impl Default for RedirectConfig {
    fn default() -> Self {
        RedirectConfig {
            listen: "127.0.0.1:8025".into(),
            public_url: String::new(),
            token_ttl: Duration::from_secs(30 * 24 * 3600),
            rate_limit: 60,
            keys: Vec::new(),
        }
    }
}
