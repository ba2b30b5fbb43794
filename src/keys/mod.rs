//! The key store: finds a recipient's certificate by address, from sources
//! tried in the configured order (local directory, WKD, VKS), and keeps what
//! the web sources said in a bounded cache (hits and misses, each with a
//! TTL). Concurrent lookups of one address share one fetch.
//!
//! Chat recipients are looked up as `xmpp:user@domain`: the same sources
//! (by the bare address) plus the recipient's PEP nodes, through a fetcher
//! the XMPP side installs ([`KeyStore::set_pep`]); their certificates must
//! carry the `xmpp:` user ID (or the address as an e-mail user ID).
//!
//! A certificate is used only if it is valid now under sequoia's
//! StandardPolicy, not revoked or expired, has an encryption-capable key and
//! a user ID with the address; otherwise the next source is asked. This
//! module holds public data only and writes nothing but `keys import`.

pub mod admin;
pub mod dir;
mod validate;
pub mod web;

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use sequoia_openpgp::Cert;
use sequoia_openpgp::parse::Parse as _;
use sequoia_openpgp::policy::StandardPolicy;
use sequoia_openpgp::serialize::SerializeInto as _;
use tokio::sync::OnceCell;

pub use validate::{Rejection, XMPP_SCHEME, normalize, usable_for};

use crate::config::{Config, KeySource};
use dir::DirSource;
use web::{Fetched, Web};

/// A certificate that may be used for an address, and where it came from.
#[derive(Debug, Clone)]
pub struct Found {
    pub cert: Arc<Cert>,
    pub source: KeySource,
}

/// A certificate that was seen for the address but not used.
#[derive(Debug, Clone)]
pub struct Rejected {
    pub source: KeySource,
    pub fingerprint: String,
    pub reason: Rejection,
}

/// A source that could not be asked.
#[derive(Debug, Clone)]
pub struct SourceError {
    pub source: KeySource,
    pub error: String,
}

/// What the address's Autocrypt state says (source `autocrypt`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutocryptState {
    pub recommendation: crate::openpgp::autocrypt::Recommendation,
    /// The key came from another correspondent's gossip, not the peer.
    pub gossip: bool,
    /// Effective date of the peer's newest mail, and of the newest one
    /// with an Autocrypt header (Unix seconds).
    pub last_seen: i64,
    pub autocrypt_timestamp: Option<i64>,
}

/// Everything one lookup learnt.
#[derive(Debug, Clone, Default)]
pub struct Lookup {
    pub found: Option<Found>,
    pub rejected: Vec<Rejected>,
    pub errors: Vec<SourceError>,
    /// The address's Autocrypt state, when the `autocrypt` source knew it.
    pub autocrypt: Option<AutocryptState>,
}

impl Lookup {
    /// What the `autocrypt` source knew, in one line (`explain`, `keys
    /// lookup`): Level 1's recommendation, where the key came from and
    /// when the peer was last seen.
    pub fn autocrypt_line(&self) -> Option<String> {
        let a = self.autocrypt.as_ref()?;
        let date = |t: i64| {
            humantime::format_rfc3339_seconds(
                std::time::UNIX_EPOCH + Duration::from_secs(t.max(0) as u64),
            )
            .to_string()
        };
        let key = match (a.gossip, a.autocrypt_timestamp) {
            (true, _) => "gossiped by another correspondent".to_string(),
            (false, Some(t)) => format!("from their own Autocrypt header of {}", date(t)),
            (false, None) => "none".to_string(),
        };
        let seen = if a.last_seen > 0 {
            date(a.last_seen)
        } else {
            "never".into()
        };
        Some(format!(
            "autocrypt: recommendation {}; key {key}; last seen {seen}",
            a.recommendation.name()
        ))
    }

    /// Why no key was found, in one line for a reply or a log.
    pub fn why_none(&self) -> String {
        if let Some(r) = self.rejected.first() {
            format!("key {} from {} is {}", r.fingerprint, r.source, r.reason)
        } else if let Some(e) = self.errors.first() {
            format!("no key found ({} lookup failed: {})", e.source, e.error)
        } else {
            "no key found".to_string()
        }
    }
}

impl fmt::Display for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeySource::Dir => "dir",
            KeySource::Autocrypt => "autocrypt",
            KeySource::Wkd => "wkd",
            KeySource::Vks => "vks",
            KeySource::Pep => "pep",
            KeySource::Sotto => "sotto",
        })
    }
}

/// Fetches a chat user's certificates from their PEP nodes (installed by
/// the XMPP side, which owns the service connection).
pub trait PepFetcher: Send + Sync {
    fn fetch<'a>(&'a self, bare_jid: &'a str)
    -> Pin<Box<dyn Future<Output = Fetched> + Send + 'a>>;
}

struct Cached {
    at: Instant,
    lookup: Lookup,
}

/// Finds certificates by address; cheap to clone.
#[derive(Clone)]
pub struct KeyStore {
    inner: Arc<Inner>,
}

struct Inner {
    sources: Vec<KeySource>,
    dir: Option<DirSource>,
    web: Web,
    wkd_url: Option<String>,
    vks_url: String,
    ttl: Duration,
    negative_ttl: Duration,
    cache_size: usize,
    cache: Mutex<HashMap<String, Arc<OnceCell<Cached>>>>,
    policy: StandardPolicy<'static>,
    pep: OnceLock<Arc<dyn PepFetcher>>,
    /// Where keys found on the web sources are recorded (source, first and
    /// last seen), when sotto runs with a state store.
    learned: OnceLock<crate::store::Store>,
}

impl KeyStore {
    pub fn from_config(cfg: &Config) -> Self {
        let k = &cfg.keys;
        KeyStore {
            inner: Arc::new(Inner {
                sources: k.sources.clone(),
                dir: k.dir.clone().map(DirSource::new),
                web: Web::new(k.timeout),
                wkd_url: k.wkd_url.clone().filter(|u| !u.is_empty()),
                vks_url: k.vks_url.clone(),
                ttl: k.cache_ttl,
                negative_ttl: k.negative_ttl,
                cache_size: k.cache_size,
                cache: Mutex::new(HashMap::new()),
                policy: StandardPolicy::new(),
                pep: OnceLock::new(),
                learned: OnceLock::new(),
            }),
        }
    }

    /// Installs the PEP fetcher (once; later calls are ignored).
    pub fn set_pep(&self, fetcher: Arc<dyn PepFetcher>) {
        let _ = self.inner.pep.set(fetcher);
    }

    /// Records every key the web sources (WKD, VKS, PEP) serve and sotto
    /// accepts in `store` (once; later calls are ignored): at most once per
    /// address per cache period, in the background, off the message path.
    pub fn set_store(&self, store: crate::store::Store) {
        let _ = self.inner.learned.set(store);
    }

    pub fn policy(&self) -> &StandardPolicy<'static> {
        &self.inner.policy
    }

    /// The local directory source, if configured.
    pub fn dir(&self) -> Option<&DirSource> {
        self.inner.dir.as_ref()
    }

    /// Looks `address` up: the directory every time (it is in memory and
    /// re-read on change), the web sources through the cache.
    pub async fn lookup(&self, address: &str) -> Lookup {
        let l = self.lookup_uncounted(address).await;
        let (source, result) = match (&l.found, l.rejected.is_empty(), l.errors.is_empty()) {
            (Some(f), _, _) => (f.source.to_string(), "found"),
            (None, false, _) => ("none".to_string(), "rejected"),
            (None, true, false) => ("none".to_string(), "error"),
            (None, true, true) => ("none".to_string(), "none"),
        };
        metrics::counter!("sotto_key_lookups_total", "source" => source, "result" => result)
            .increment(1);
        l
    }

    async fn lookup_uncounted(&self, address: &str) -> Lookup {
        let mut result = Lookup::default();
        let web_first =
            self.inner.sources.iter().position(|s| {
                !matches!(s, KeySource::Dir | KeySource::Sotto | KeySource::Autocrypt)
            });
        for (i, source) in self.inner.sources.iter().enumerate() {
            if *source == KeySource::Dir {
                self.search_dir(address, &mut result);
                if result.found.is_some() {
                    return result;
                }
            } else if *source == KeySource::Autocrypt {
                self.search_autocrypt(address, &mut result).await;
                if result.found.is_some() {
                    return result;
                }
            } else if Some(i) == web_first {
                let web = self.cached_web(address).await;
                result.rejected.extend(web.rejected);
                result.errors.extend(web.errors);
                if web.found.is_some() {
                    result.found = web.found;
                    return result;
                }
            }
        }
        result
    }

    fn search_dir(&self, address: &str, out: &mut Lookup) {
        let Some(dir) = &self.inner.dir else { return };
        for cert in dir.certs().iter().filter(|c| validate::names(c, address)) {
            self.consider(cert.clone(), address, KeySource::Dir, out);
            if out.found.is_some() {
                return;
            }
        }
    }

    /// The key the address's Autocrypt state holds (its own header's, else
    /// a gossiped one): one indexed read of the store, not cached, so a key
    /// learned from the last message is used for the next.
    async fn search_autocrypt(&self, address: &str, out: &mut Lookup) {
        let Some(store) = self.inner.learned.get() else {
            return;
        };
        let address = address.strip_prefix(XMPP_SCHEME).unwrap_or(address);
        match store.autocrypt_peer(&address.to_lowercase()).await {
            Ok(Some(peer)) => {
                use crate::openpgp::autocrypt::recommend;
                out.autocrypt = Some(AutocryptState {
                    recommendation: recommend(
                        peer.last_seen,
                        peer.autocrypt_timestamp,
                        peer.public_key.is_some(),
                        peer.prefer_mutual,
                        peer.gossip_key.is_some(),
                    ),
                    gossip: peer.public_key.is_none(),
                    last_seen: peer.last_seen,
                    autocrypt_timestamp: peer.autocrypt_timestamp,
                });
                for key in [peer.public_key, peer.gossip_key].into_iter().flatten() {
                    if let Ok(cert) = Cert::from_bytes(&key) {
                        self.consider(Arc::new(cert), address, KeySource::Autocrypt, out);
                        if out.found.is_some() {
                            return;
                        }
                    }
                }
            }
            Ok(None) => {}
            Err(e) => out.errors.push(SourceError {
                source: KeySource::Autocrypt,
                error: e.to_string(),
            }),
        }
    }

    fn consider(&self, cert: Arc<Cert>, address: &str, source: KeySource, out: &mut Lookup) {
        match usable_for(&cert, address, &self.inner.policy) {
            Ok(()) => out.found = Some(Found { cert, source }),
            Err(reason) => out.rejected.push(Rejected {
                source,
                fingerprint: cert.fingerprint().to_hex(),
                reason,
            }),
        }
    }

    /// The web sources' answer, shared by concurrent lookups and cached.
    async fn cached_web(&self, address: &str) -> Lookup {
        let key = normalize(address);
        let cell = {
            let mut cache = self.inner.cache.lock().unwrap_or_else(|p| p.into_inner());
            let fresh = cache
                .get(&key)
                .filter(|c| c.get().is_none_or(|c| !self.expired(c)))
                .cloned();
            match fresh {
                Some(cell) => cell,
                None => {
                    if cache.len() >= self.inner.cache_size {
                        cache.retain(|_, c| c.get().is_some_and(|c| !self.expired(c)));
                        if cache.len() >= self.inner.cache_size {
                            cache.clear();
                        }
                    }
                    let cell = Arc::new(OnceCell::new());
                    cache.insert(key.clone(), cell.clone());
                    cell
                }
            }
        };
        let cached = cell
            .get_or_init(|| async {
                Cached {
                    at: Instant::now(),
                    lookup: self.ask_web(&key).await,
                }
            })
            .await;
        cached.lookup.clone()
    }

    fn expired(&self, c: &Cached) -> bool {
        let ttl = if c.lookup.found.is_some() {
            self.inner.ttl
        } else {
            self.inner.negative_ttl
        };
        c.at.elapsed() >= ttl
    }

    fn urls(&self, source: KeySource, address: &str) -> Vec<String> {
        // Web sources know chat users by their bare address.
        let address = address.strip_prefix(XMPP_SCHEME).unwrap_or(address);
        match source {
            KeySource::Dir | KeySource::Pep | KeySource::Sotto | KeySource::Autocrypt => Vec::new(),
            KeySource::Wkd => web::wkd_urls(address, self.inner.wkd_url.as_deref())
                .map(|u| u.to_vec())
                .unwrap_or_default(),
            KeySource::Vks => vec![web::vks_url(address, &self.inner.vks_url)],
        }
    }

    /// Every answer of every web source for an address, unfiltered and
    /// uncached (for `keys refresh`).
    pub async fn fetch_all(&self, address: &str) -> Vec<(KeySource, Fetched)> {
        let mut out = Vec::new();
        for source in admin::web_sources(&self.inner.sources) {
            for url in self.urls(source, address) {
                out.push((source, self.inner.web.fetch(&url).await));
            }
        }
        out
    }

    /// Asks the web sources in order, without the cache.
    async fn ask_web(&self, address: &str) -> Lookup {
        let mut out = Lookup::default();
        for source in &self.inner.sources {
            if *source == KeySource::Pep {
                if let (Some(jid), Some(pep)) =
                    (address.strip_prefix(XMPP_SCHEME), self.inner.pep.get())
                {
                    self.judge(pep.fetch(jid).await, address, *source, &mut out);
                }
            } else {
                for url in self.urls(*source, address) {
                    let fetched = self.inner.web.fetch(&url).await;
                    if self.judge(fetched, address, *source, &mut out) {
                        break;
                    }
                }
            }
            if let Some(found) = &out.found {
                tracing::debug!(event = "key_lookup", source = %source, result = "found");
                self.learn(address, found);
                return out;
            }
        }
        out
    }

    /// Records `found` for `address` in the store, if there is one; a
    /// failure is logged and counted, never in the way of the lookup.
    fn learn(&self, address: &str, found: &Found) {
        let Some(store) = self.inner.learned.get().cloned() else {
            return;
        };
        let Ok(cert) = found.cert.to_vec() else {
            return;
        };
        let address = address
            .strip_prefix(XMPP_SCHEME)
            .unwrap_or(address)
            .to_owned();
        let fingerprint = found.cert.fingerprint().to_hex();
        let source = found.source.to_string();
        tokio::spawn(async move {
            if let Err(e) = store
                .learn_key(&address, &fingerprint, &cert, &source)
                .await
            {
                tracing::warn!(event = "key_learn_failed", error = %e);
            }
        });
    }

    /// Judges one answer of `source` into `out`; whether it served
    /// certificates (then that source is not asked again).
    fn judge(&self, fetched: Fetched, address: &str, source: KeySource, out: &mut Lookup) -> bool {
        match fetched {
            Fetched::Certs(certs) => {
                // Every certificate served for the address is judged, so one
                // for another user ID is reported as such.
                for cert in certs {
                    self.consider(Arc::new(cert), address, source, out);
                    if out.found.is_some() {
                        break;
                    }
                }
                true
            }
            Fetched::NotFound => false,
            Fetched::Failed(error) => {
                out.errors.push(SourceError { source, error });
                false
            }
        }
    }
}
