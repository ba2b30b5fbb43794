//! The encryption side of the configuration: where keys come from
//! (`[keys]`), where the policy files are (`[policy]`), and the
//! organisation's own key (`[crypt]`). What each message gets is policy.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// Where recipients' certificates come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeySource {
    /// The local directory `keys.dir`.
    Dir,
    /// Keys correspondents announced in their mail's `Autocrypt:` headers
    /// (or that others gossiped), learned by the inbound path into the
    /// state store (Autocrypt Level 1).
    Autocrypt,
    /// Web Key Directory of the recipient's domain.
    Wkd,
    /// A verifying keyserver (`keys.vks_url`).
    Vks,
    /// The recipient's XMPP PEP nodes (chat only; needs `xmpp.component`).
    Pep,
    /// A local chat user's key, held by sotto (`xmpp.user_keys`); not
    /// configurable, always asked first for local users.
    #[serde(skip)]
    Sotto,
}

/// The key store.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeysConfig {
    /// Directory of `*.asc` / `*.pgp` certificates, re-read on change.
    pub dir: Option<PathBuf>,
    /// Sources in the order they are asked.
    pub sources: Vec<KeySource>,
    /// Base URL used for WKD instead of the recipient's domain (tests, proxies).
    pub wkd_url: Option<String>,
    /// Base URL of the VKS keyserver.
    pub vks_url: String,
    /// Time one web request may take.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// How long a found key is remembered.
    #[serde(with = "humantime_serde")]
    pub cache_ttl: Duration,
    /// How long "no key" is remembered.
    #[serde(with = "humantime_serde")]
    pub negative_ttl: Duration,
    /// Addresses remembered at most.
    pub cache_size: usize,
}

impl Default for KeysConfig {
    fn default() -> Self {
        Self {
            dir: None,
            sources: vec![
                KeySource::Dir,
                KeySource::Autocrypt,
                KeySource::Wkd,
                KeySource::Pep,
            ],
            wkd_url: None,
            vks_url: "https://keys.openpgp.org".into(),
            timeout: Duration::from_secs(5),
            cache_ttl: Duration::from_secs(3600),
            negative_ttl: Duration::from_secs(300),
            cache_size: 10_000,
        }
    }
}

/// Whether mail is encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Encrypt {
    /// Refuse a recipient without a usable key (550 5.7.1 at RCPT).
    Required,
    /// Encrypt when the recipient has a usable key, else relay as is.
    #[default]
    IfKey,
    /// Never encrypt.
    Never,
}

/// Whether the subject is protected (moved inside, outer Subject `...`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SubjectMode {
    #[default]
    Protect,
    Keep,
}

/// Where the policy files are.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// Directory of `*.toml` policy files, read in lexical order and
    /// reloaded on change and on SIGHUP. Unset: the policies shipped with
    /// sotto (see `policies/` in its source).
    pub dir: Option<PathBuf>,
}

/// The organisation's own key material.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct CryptConfig {
    /// The organisation's signing key (an unencrypted OpenPGP secret key,
    /// Ed25519), for policies with `sign = true`.
    pub signing_key: Option<PathBuf>,
}
