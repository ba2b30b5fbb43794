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
/// Longer tokens are refused before decoding (a URL of about 12 KB).
const MAX_TOKEN_CHARS: usize = 16 * 1024;

/// Why a token could not be made or opened. The messages name no URL and no
/// key material.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenError {
    /// Not an absolute `http`/`https` URL with a host (or it holds control
    /// characters).
    #[error("only http and https URLs can be sealed")]
    NotHttp,
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
    /// warning logged once, since its tokens die with the process and other
    /// replicas cannot open them.
    pub fn from_config(cfg: &RedirectConfig) -> Result<TokenKeys, TokenError> {
        if cfg.keys.is_empty() {
            let cipher = PROCESS_KEY.get_or_init(|| {
                tracing::warn!(
                    event = "redirect_random_key",
                    "no redirect.keys configured: using a random token key for this process; \
                     redirect links stop working when it restarts and other replicas cannot open them"
                );
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
    /// Other schemes are refused ([`TokenError::NotHttp`]).
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
mod tests {
    use super::*;

    const URL: &str = "https://example.org/reset?token=s3cr3t&x=1#frag";

    fn keys() -> TokenKeys {
        TokenKeys::from_secrets(vec![(7, [1; 32])])
    }

    fn day() -> Duration {
        Duration::from_secs(86_400)
    }

    #[test]
    fn round_trip() {
        let k = keys();
        let t = k.seal(URL, day()).unwrap();
        assert_eq!(k.open(&t).unwrap(), URL);
        assert!(
            t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        // Short: header, nonce, expiry, tag and the URL, in base64.
        assert_eq!(t.len(), ((MIN_LEN + URL.len()) * 4).div_ceil(3));
        assert!(!t.contains("example"));
        // A fresh nonce each time.
        assert_ne!(k.seal(URL, day()).unwrap(), t);
        let plain = "http://[2001:db8::1]:8080/p";
        assert_eq!(k.open(&k.seal(plain, day()).unwrap()).unwrap(), plain);
    }

    #[test]
    fn altered_bytes_are_refused() {
        let k = TokenKeys::from_secrets(vec![(7, [1; 32]), (8, [2; 32])]);
        let t = k.seal(URL, day()).unwrap();
        let raw = URL_SAFE_NO_PAD.decode(&t).unwrap();
        for i in 0..raw.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut bad = raw.clone();
                bad[i] ^= flip;
                let err = k.open(&URL_SAFE_NO_PAD.encode(&bad)).unwrap_err();
                match i {
                    0 => assert_eq!(err, TokenError::Malformed, "byte {i}"),
                    // 7 flipped is no configured id.
                    1 => assert_eq!(err, TokenError::UnknownKey, "byte {i}"),
                    _ => assert_eq!(err, TokenError::Forged, "byte {i}"),
                }
            }
        }
        // Key id 7 → 8 (both configured): the AAD binds the id.
        let mut swapped = raw.clone();
        swapped[1] = 8;
        assert_eq!(
            k.open(&URL_SAFE_NO_PAD.encode(&swapped)).unwrap_err(),
            TokenError::Forged
        );
        // Truncated, extended, not base64, empty.
        assert!(matches!(
            k.open(&URL_SAFE_NO_PAD.encode(&raw[..raw.len() - 1]))
                .unwrap_err(),
            TokenError::Forged | TokenError::Malformed
        ));
        let mut longer = raw.clone();
        longer.push(0);
        assert_eq!(
            k.open(&URL_SAFE_NO_PAD.encode(&longer)).unwrap_err(),
            TokenError::Forged
        );
        assert_eq!(
            k.open(&URL_SAFE_NO_PAD.encode(&raw[..MIN_LEN - 1]))
                .unwrap_err(),
            TokenError::Malformed
        );
        assert_eq!(k.open("").unwrap_err(), TokenError::Malformed);
        assert_eq!(k.open("not a token!").unwrap_err(), TokenError::Malformed);
        assert_eq!(k.open(&format!("{t}=")).unwrap_err(), TokenError::Malformed);
        assert_eq!(
            k.open(&"A".repeat(MAX_TOKEN_CHARS + 4)).unwrap_err(),
            TokenError::Malformed
        );
        // Altered characters of the text form.
        for i in 0..t.len() {
            let mut chars: Vec<char> = t.chars().collect();
            chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
            let bad: String = chars.into_iter().collect();
            let err = k.open(&bad).unwrap_err();
            assert!(
                matches!(
                    err,
                    TokenError::Forged | TokenError::Malformed | TokenError::UnknownKey
                ),
                "char {i}: {err:?}"
            );
        }
    }

    #[test]
    fn expired() {
        let k = keys();
        assert_eq!(
            k.open(&k.seal_until(URL, 1).unwrap()).unwrap_err(),
            TokenError::Expired
        );
        let past = u32::try_from(now_unix() - 10).unwrap();
        assert_eq!(
            k.open(&k.seal_until(URL, past).unwrap()).unwrap_err(),
            TokenError::Expired
        );
        assert_eq!(
            k.open(&k.seal(URL, Duration::ZERO).unwrap()).unwrap_err(),
            TokenError::Expired
        );
        let future = u32::try_from(now_unix() + 3600).unwrap();
        assert_eq!(k.open(&k.seal_until(URL, future).unwrap()).unwrap(), URL);
        // A TTL beyond 2106 saturates instead of wrapping into the past.
        assert_eq!(
            k.open(&k.seal(URL, Duration::from_secs(u64::MAX)).unwrap())
                .unwrap(),
            URL
        );
    }

    #[test]
    fn unknown_key_id() {
        let t = keys().seal(URL, day()).unwrap();
        let other = TokenKeys::from_secrets(vec![(9, [1; 32])]);
        assert_eq!(other.open(&t).unwrap_err(), TokenError::UnknownKey);
        // Same id, different secret: forged.
        let other = TokenKeys::from_secrets(vec![(7, [3; 32])]);
        assert_eq!(other.open(&t).unwrap_err(), TokenError::Forged);
        // No keys at all.
        let none = TokenKeys::from_secrets(vec![]);
        assert_eq!(none.open(&t).unwrap_err(), TokenError::UnknownKey);
        assert!(matches!(
            none.seal(URL, day()).unwrap_err(),
            TokenError::BadKey(_)
        ));
    }

    #[test]
    fn key_rotation() {
        let old = TokenKeys::from_secrets(vec![(1, [1; 32])]);
        let old_token = old.seal(URL, day()).unwrap();
        let both = TokenKeys::from_secrets(vec![(2, [2; 32]), (1, [1; 32])]);
        assert_eq!(both.open(&old_token).unwrap(), URL);
        let new_token = both.seal(URL, day()).unwrap();
        assert_eq!(URL_SAFE_NO_PAD.decode(&new_token).unwrap()[1], 2);
        assert_eq!(old.open(&new_token).unwrap_err(), TokenError::UnknownKey);
        let new_only = TokenKeys::from_secrets(vec![(2, [2; 32])]);
        assert_eq!(new_only.open(&new_token).unwrap(), URL);
        assert_eq!(
            new_only.open(&old_token).unwrap_err(),
            TokenError::UnknownKey
        );
    }

    #[test]
    fn only_http() {
        let k = keys();
        for url in [
            "javascript:alert(1)",
            "JavaScript://%0aalert(1)",
            "data:text/html,<script>alert(1)</script>",
            "ftp://example.org/file",
            "file:///etc/passwd",
            "mailto:a@example.org",
            "//example.org/path",
            "/relative",
            "https://",
            "https:///path",
            "http://user@/x",
            "https://example.org/\r\nSet-Cookie: a=b",
            " https://example.org/",
            "https://exa mple.org/",
            "",
        ] {
            assert_eq!(
                k.seal(url, day()).unwrap_err(),
                TokenError::NotHttp,
                "{url:?}"
            );
        }
        assert!(k.seal("HTTPS://Example.org", day()).is_ok());
        // A token holding a non-http URL (sealed by hand) does not open either.
        let (id, cipher) = &k.keys[0];
        let header = [VERSION, *id];
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let mut plain = u32::MAX.to_be_bytes().to_vec();
        plain.extend_from_slice(b"javascript:alert(1)");
        let sealed = cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: &plain,
                    aad: &header,
                },
            )
            .unwrap();
        let raw = [&header[..], &nonce[..], &sealed[..]].concat();
        assert_eq!(
            k.open(&URL_SAFE_NO_PAD.encode(raw)).unwrap_err(),
            TokenError::NotHttp
        );
    }

    #[test]
    fn hosts() {
        assert_eq!(
            http_host("https://Example.ORG/a?b#c").as_deref(),
            Some("example.org")
        );
        assert_eq!(
            http_host("http://user:pw@host.example:8080/x").as_deref(),
            Some("host.example")
        );
        assert_eq!(
            http_host("http://a@b@evil.example/").as_deref(),
            Some("evil.example")
        );
        assert_eq!(
            http_host("http://[2001:DB8::1]:80/").as_deref(),
            Some("[2001:db8::1]")
        );
        assert_eq!(
            http_host("https://host.example?q=1").as_deref(),
            Some("host.example")
        );
        assert_eq!(
            http_host("https://host.example\\@other/").as_deref(),
            Some("host.example")
        );
        assert_eq!(http_host("http://[::1/"), None);
        assert_eq!(http_host("ftp://host/"), None);
    }

    #[test]
    fn from_config() {
        use crate::config::TokenKey;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("key");
        std::fs::write(&file, format!("  {}\n", STANDARD.encode([5u8; 32]))).unwrap();
        let cfg = RedirectConfig {
            keys: vec![
                TokenKey {
                    id: 3,
                    secret: Some(STANDARD.encode([4u8; 32])),
                    secret_file: None,
                },
                TokenKey {
                    id: 1,
                    secret: None,
                    secret_file: Some(file.clone()),
                },
            ],
            ..RedirectConfig::default()
        };
        let k = TokenKeys::from_config(&cfg).unwrap();
        assert_eq!(k.ids(), vec![3, 1]);
        let by_file = TokenKeys::from_secrets(vec![(1, [5; 32])]);
        assert_eq!(k.open(&by_file.seal(URL, day()).unwrap()).unwrap(), URL);
        assert!(!format!("{k:?}").contains(&STANDARD.encode([4u8; 32])));

        let bad = |keys: Vec<TokenKey>| {
            let cfg = RedirectConfig {
                keys,
                ..RedirectConfig::default()
            };
            match TokenKeys::from_config(&cfg) {
                Err(TokenError::BadKey(why)) => why,
                other => panic!("{other:?}"),
            }
        };
        let short = STANDARD.encode([4u8; 16]);
        assert!(
            !bad(vec![TokenKey {
                id: 2,
                secret: Some(short.clone()),
                secret_file: None
            }])
            .contains(&short)
        );
        bad(vec![TokenKey {
            id: 2,
            secret: Some("not base64!".into()),
            secret_file: None,
        }]);
        bad(vec![TokenKey {
            id: 2,
            secret: None,
            secret_file: None,
        }]);
        bad(vec![TokenKey {
            id: 2,
            secret: Some(STANDARD.encode([4u8; 32])),
            secret_file: Some(file.clone()),
        }]);
        bad(vec![TokenKey {
            id: 2,
            secret: None,
            secret_file: Some(dir.path().join("missing")),
        }]);
        bad(vec![
            TokenKey {
                id: 2,
                secret: Some(STANDARD.encode([4u8; 32])),
                secret_file: None,
            },
            TokenKey {
                id: 2,
                secret: Some(STANDARD.encode([5u8; 32])),
                secret_file: None,
            },
        ]);

        // None configured: a random key for the process, the same on each call.
        let a = TokenKeys::from_config(&RedirectConfig::default()).unwrap();
        let b = TokenKeys::from_config(&RedirectConfig::default()).unwrap();
        assert_eq!(b.open(&a.seal(URL, day()).unwrap()).unwrap(), URL);
        assert_eq!(
            keys().open(&a.seal(URL, day()).unwrap()).unwrap_err(),
            TokenError::UnknownKey
        );
    }
}
