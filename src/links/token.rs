//! Sealed redirect tokens: a destination URL and its expiry, encrypted and
//! authenticated under a key from the configuration, so every replica that
//! holds the key can open every token and nothing is stored.
//!
//! Layout, base64url without padding:
//!
//! ```text
//! version (1) ‖ key id (1) ‖ nonce (24) ‖ XChaCha20-Poly1305( expiry (u32 BE, Unix seconds) ‖ URL )
//! ```
//!
//! The two header bytes are the AEAD's associated data, so neither can be
//! changed without the tag failing. Only `http` and `https` URLs are sealed
//! or opened: the redirector must never become an open redirect or a way to
//! run `javascript:` in a reader's browser.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

use crate::config::RedirectConfig;

/// The token format's version byte.
const VERSION: u8 = 1;
/// Version byte and key id.
const HEADER_LEN: usize = 2;
/// XChaCha20 nonce.
const NONCE_LEN: usize = 24;
/// Poly1305 tag.
const TAG_LEN: usize = 16;
/// The expiry at the start of the plaintext.
const EXPIRY_LEN: usize = 4;
/// The shortest token that can hold anything.
const MIN_LEN: usize = HEADER_LEN + NONCE_LEN + TAG_LEN + EXPIRY_LEN;
/// Longer tokens are refused before decoding.
const MAX_TOKEN_CHARS: usize = 16 * 1024;
/// The longest URL that is sealed (12,242 bytes): its token is at most
/// `MAX_TOKEN_CHARS` long, so every token made opens. A longer URL is
/// refused ([`TokenError::TooLong`]) and the rewriter removes it instead.
pub const MAX_URL_LEN: usize = MAX_TOKEN_CHARS * 3 / 4 - MIN_LEN;

/// Why a token could not be made or opened. The messages name no URL and no
/// key material.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenError {
    /// Not an absolute `http`/`https` URL with a host (or it holds control
    /// characters).
    #[error("only http and https URLs can be sealed")]
    NotHttp,
    /// The URL is longer than [`MAX_URL_LEN`]: its token could not be opened.
    #[error("URL too long to seal")]
    TooLong,
    /// Not a token: bad base64, too short, too long or an unknown version.
    #[error("malformed token")]
    Malformed,
    /// Sealed under a key id that is not configured.
    #[error("token sealed with an unknown key")]
    UnknownKey,
    /// Altered, or not sealed by any configured key.
    #[error("token failed authentication")]
    Forged,
    /// Its expiry has passed.
    #[error("token expired")]
    Expired,
    /// A configured key is unusable; the text says which and why.
    #[error("bad token key: {0}")]
    BadKey(String),
}

/// The keys that seal and open tokens, by id. The first seals new tokens;
/// all of them open (rotation: put the new key first, keep the old one until
/// its tokens have expired).
///
/// Key material lives only inside the cipher objects; `Debug` shows ids.
#[derive(Clone)]
pub struct TokenKeys {
    keys: Vec<(u8, XChaCha20Poly1305)>,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<u8> = self.keys.iter().map(|(id, _)| *id).collect();
        f.debug_struct("TokenKeys")
            .field("ids", &ids)
            .finish_non_exhaustive()
    }
}

/// The random key used when none is configured: one per process, so tokens
/// survive a configuration reload (but not a restart).
static PROCESS_KEY: OnceLock<XChaCha20Poly1305> = OnceLock::new();

impl TokenKeys {
    /// From config: each key's base64 32-byte secret, inline (`secret`) or
    /// from `secret_file`, surrounding whitespace ignored.
    ///
    /// No keys configured: one random key (id 0) for this process, with a
    /// warning logged once when `public_url` is set (redirect links are
    /// made), since its tokens die with the process and other replicas
    /// cannot open them.
    pub fn from_config(cfg: &RedirectConfig) -> Result<TokenKeys, TokenError> {
        if cfg.keys.is_empty() {
            let cipher = PROCESS_KEY.get_or_init(|| {
                // Without a public URL no redirect link is ever made, so
                // the key's short life harms nobody: no warning then.
                if !cfg.public_url.is_empty() {
                    tracing::warn!(
                        event = "redirect_random_key",
                        "no redirect.keys configured: using a random token key for this process; \
                         redirect links stop working when it restarts and other replicas cannot open them"
                    );
                }
                XChaCha20Poly1305::new(&XChaCha20Poly1305::generate_key(&mut OsRng))
            });
            return Ok(TokenKeys {
                keys: vec![(0, cipher.clone())],
            });
        }
        let mut keys: Vec<(u8, XChaCha20Poly1305)> = Vec::with_capacity(cfg.keys.len());
        for k in &cfg.keys {
            if keys.iter().any(|(id, _)| *id == k.id) {
                return Err(TokenError::BadKey(format!("key id {} is used twice", k.id)));
            }
            let text = match (&k.secret, &k.secret_file) {
                (Some(s), None) => s.clone(),
                (None, Some(path)) => std::fs::read_to_string(path).map_err(|e| {
                    TokenError::BadKey(format!("key {}: cannot read {}: {e}", k.id, path.display()))
                })?,
                _ => {
                    return Err(TokenError::BadKey(format!(
                        "key {}: give exactly one of secret, secret_file",
                        k.id
                    )));
                }
            };
            let secret = decode_secret(text.trim()).ok_or_else(|| {
                TokenError::BadKey(format!("key {}: not 32 bytes of base64", k.id))
            })?;
            keys.push((k.id, XChaCha20Poly1305::new(&secret.into())));
        }
        Ok(TokenKeys { keys })
    }

    /// From raw secrets, the first sealing (for tests and tools).
    pub fn from_secrets(keys: Vec<(u8, [u8; 32])>) -> TokenKeys {
        TokenKeys {
            keys: keys
                .into_iter()
                .map(|(id, secret)| (id, XChaCha20Poly1305::new(&secret.into())))
                .collect(),
        }
    }

    /// The configured key ids, the sealing one first.
    pub fn ids(&self) -> Vec<u8> {
        self.keys.iter().map(|(id, _)| *id).collect()
    }

    /// Seals an `http`/`https` URL, valid for `ttl` from now.
    /// Other schemes are refused ([`TokenError::NotHttp`]), and so are URLs
    /// longer than [`MAX_URL_LEN`] ([`TokenError::TooLong`]).
    pub fn seal(&self, url: &str, ttl: Duration) -> Result<String, TokenError> {
        let expiry = now_unix().saturating_add(ttl.as_secs());
        self.seal_until(url, u32::try_from(expiry).unwrap_or(u32::MAX))
    }

    /// Seals with an explicit expiry (Unix seconds). For tests and tools:
    /// the gateway itself uses [`TokenKeys::seal`].
    pub fn seal_until(&self, url: &str, expiry_unix: u32) -> Result<String, TokenError> {
        if http_host(url).is_none() {
            return Err(TokenError::NotHttp);
        }
        if url.len() > MAX_URL_LEN {
            return Err(TokenError::TooLong);
        }
        let (id, cipher) = self
            .keys
            .first()
            .ok_or_else(|| TokenError::BadKey("no token key configured".into()))?;
        let header = [VERSION, *id];
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let mut plain = Vec::with_capacity(EXPIRY_LEN + url.len());
        plain.extend_from_slice(&expiry_unix.to_be_bytes());
        plain.extend_from_slice(url.as_bytes());
        let sealed = cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: &plain,
                    aad: &header,
                },
            )
            .map_err(|_| TokenError::BadKey("encryption failed".into()))?;
        let mut raw = Vec::with_capacity(HEADER_LEN + NONCE_LEN + sealed.len());
        raw.extend_from_slice(&header);
        raw.extend_from_slice(&nonce);
        raw.extend_from_slice(&sealed);
        Ok(URL_SAFE_NO_PAD.encode(raw))
    }

    /// Opens a token and returns its URL. Malformed, sealed under an unknown
    /// key id, altered or forged, expired, or not `http`/`https`: an error.
    pub fn open(&self, token: &str) -> Result<String, TokenError> {
        if token.len() > MAX_TOKEN_CHARS {
            return Err(TokenError::Malformed);
        }
        let raw = URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| TokenError::Malformed)?;
        if raw.len() < MIN_LEN || raw[0] != VERSION {
            return Err(TokenError::Malformed);
        }
        let (header, rest) = raw.split_at(HEADER_LEN);
        let cipher = self
            .keys
            .iter()
            .find(|(id, _)| *id == header[1])
            .map(|(_, c)| c)
            .ok_or(TokenError::UnknownKey)?;
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let plain = cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: header,
                },
            )
            .map_err(|_| TokenError::Forged)?;
        let (expiry, url) = plain.split_at(EXPIRY_LEN);
        let expiry = u32::from_be_bytes(expiry.try_into().map_err(|_| TokenError::Malformed)?);
        if now_unix() >= u64::from(expiry) {
            return Err(TokenError::Expired);
        }
        let url = String::from_utf8(url.to_vec()).map_err(|_| TokenError::Malformed)?;
        if http_host(&url).is_none() {
            return Err(TokenError::NotHttp);
        }
        Ok(url)
    }
}

/// Decodes a 32-byte secret from standard base64 (padded or not) or base64url.
fn decode_secret(text: &str) -> Option<[u8; 32]> {
    let bytes = STANDARD
        .decode(text)
        .or_else(|_| STANDARD_NO_PAD.decode(text))
        .or_else(|_| URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')))
        .ok()?;
    bytes.try_into().ok()
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The host of an absolute `http`/`https` URL, lower-cased, without
/// userinfo or port (IPv6 literals keep their brackets). `None` for any other
/// scheme, an empty host, or a URL holding control characters or surrounding
/// whitespace.
pub fn http_host(url: &str) -> Option<String> {
    if url.trim() != url || url.chars().any(|c| c.is_control()) {
        return None;
    }
    let scheme_end = url.find("://")?;
    let scheme = &url[..scheme_end];
    if !(scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")) {
        return None;
    }
    let rest = &url[scheme_end + 3..];
    let authority = &rest[..rest.find(['/', '?', '#', '\\']).unwrap_or(rest.len())];
    let hostport = match authority.rfind('@') {
        Some(at) => &authority[at + 1..],
        None => authority,
    };
    let host = if hostport.starts_with('[') {
        &hostport[..hostport.find(']')? + 1]
    } else {
        &hostport[..hostport.find(':').unwrap_or(hostport.len())]
    };
    if host.is_empty() || host == "[]" || host.contains(char::is_whitespace) {
        return None;
    }
    Some(host.to_lowercase())
}

#[cfg(test)]
mod tests;
