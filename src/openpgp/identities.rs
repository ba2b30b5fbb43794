//! The local users' chat keys: one OpenPGP key per user, made by sotto the
//! first time it is needed and kept in the state store ([`crate::store`]),
//! secret parts encrypted with the passphrase of `[store] secret_file`.
//!
//! A key is an Ed25519 primary key (certify, sign) with a Curve25519
//! encryption subkey, user ID `xmpp:user@domain`, no expiry, advertising
//! only SEIPDv1 so that GnuPG-based XMPP clients can encrypt to it and read
//! what it encrypts. What the store holds is a standard transferable secret
//! key (`gpg --import` / `sq` read it with the passphrase).
//!
//! This module is a cache of unlocked keys over the store: making a key is
//! insert-if-absent there, so two processes racing for one user end with
//! one key; a key rotated or revoked through another process is noticed by
//! [`Identities::watch`] within [`WATCH_INTERVAL`]. It also imports the older
//! one-file-per-user directories (`import`). It does not publish keys (PEP)
//! or decide when to use them. Generating and unlocking keys is CPU work,
//! done in `spawn_blocking`.

mod import;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sequoia_openpgp::cert::{CertBuilder, CipherSuite};
use sequoia_openpgp::crypto::{Password, S2K};
use sequoia_openpgp::packet::Key;
use sequoia_openpgp::packet::key::{SecretParts, UnspecifiedRole};
use sequoia_openpgp::parse::Parse;
use sequoia_openpgp::serialize::SerializeInto;
use sequoia_openpgp::types::{Features, HashAlgorithm, KeyFlags, SymmetricAlgorithm};
use sequoia_openpgp::{Cert, Fingerprint, Packet};
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;
use zeroize::Zeroizing;

use crate::store::{Identity, Store, StoreError};

pub use import::Imported;

/// How often the cache asks the store which identities changed.
pub const WATCH_INTERVAL: Duration = Duration::from_secs(2);

/// Why a user's key could not be had.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    #[error("not a bare JID: {0:?}")]
    BadJid(String),
    #[error("the passphrase does not unlock {jid}'s key")]
    WrongPassphrase { jid: String },
    #[error("the stored key of {jid} is not theirs: {why}")]
    Corrupt { jid: String, why: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the passphrase in {0} is empty")]
    EmptyPassphrase(PathBuf),
    #[error("OpenPGP: {0}")]
    OpenPgp(String),
    #[error("the key task failed: {0}")]
    Task(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl IdentityError {
    /// Whether trying again later may succeed (the store was unavailable).
    pub fn is_transient(&self) -> bool {
        matches!(self, IdentityError::Store(e) if e.is_transient())
    }
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> IdentityError + '_ {
    move |source| IdentityError::Io {
        path: path.to_owned(),
        source,
    }
}

fn pgp_error(e: anyhow::Error) -> IdentityError {
    IdentityError::OpenPgp(e.to_string())
}

/// One user's key, unlocked.
pub struct IdentityKey {
    jid: String,
    cert: Arc<Cert>,
    secret: Cert,
    /// The store row's generation this key was read from.
    generation: i64,
}

impl IdentityKey {
    /// The user's bare JID (lowercased).
    pub fn jid(&self) -> &str {
        &self.jid
    }

    /// The public certificate (no secret parts): what is published.
    pub fn cert(&self) -> &Arc<Cert> {
        &self.cert
    }

    pub fn fingerprint(&self) -> Fingerprint {
        self.cert.fingerprint()
    }

    /// The certificate with its secret parts unlocked, to sign
    /// ([`crate::openpgp::seal::signing_keypair`]) and decrypt with.
    ///
    /// # Security
    /// Never serialize it: it holds unencrypted secret keys (in sequoia's
    /// in-memory protection, which encrypts them while unused and zeroes
    /// them when dropped).
    pub fn secret(&self) -> &Cert {
        &self.secret
    }
}

impl fmt::Debug for IdentityKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentityKey")
            .field("jid", &self.jid)
            .field("fingerprint", &self.fingerprint())
            .finish_non_exhaustive()
    }
}

type Cell = Arc<OnceCell<Arc<IdentityKey>>>;

/// The users' keys: the store, and a cache of unlocked keys.
pub struct Identities {
    store: Store,
    passphrase: Password,
    cells: Mutex<HashMap<String, Cell>>,
}

impl fmt::Debug for Identities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identities")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

/// The passphrase in the first line of `secret_file`; refuses an empty one.
/// The file's text is zeroed once read.
pub fn read_passphrase(secret_file: &Path) -> Result<Password, IdentityError> {
    let text = Zeroizing::new(std::fs::read_to_string(secret_file).map_err(io_error(secret_file))?);
    let line = text
        .lines()
        .next()
        .unwrap_or_default()
        .trim_end_matches('\r');
    if line.is_empty() {
        return Err(IdentityError::EmptyPassphrase(secret_file.to_owned()));
    }
    Ok(Password::from(line))
}

impl Identities {
    /// The users' keys in `store`, secret parts encrypted with `passphrase`.
    /// A wrong passphrase shows when a key is loaded.
    pub fn new(store: Store, passphrase: Password) -> Self {
        Identities {
            store,
            passphrase,
            cells: Mutex::new(HashMap::new()),
        }
    }

    /// A private SQLite store in the directory `dir` (created, mode 0700,
    /// if missing): for tools and tests that run alone.
    pub fn open(dir: impl Into<PathBuf>, passphrase: Password) -> Result<Self, IdentityError> {
        let dir = dir.into();
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(io_error(&dir))?;
        let url = crate::store::sqlite_url(&dir.join("sotto.db"));
        let store = Store::open_lazy(&crate::store::Options::new(url))?;
        Ok(Self::new(store, passphrase))
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The user's key, made (and stored) if the user has none yet, or a new
    /// one if theirs was revoked. Many callers asking at once for the same
    /// user wait for one answer; several processes get the one key stored
    /// first.
    pub async fn get_or_create(&self, bare_jid: &str) -> Result<Arc<IdentityKey>, IdentityError> {
        let jid = normalize_jid(bare_jid)?;
        let cell = self.cell(&jid);
        let key = cell.get_or_try_init(|| self.load_or_create(&jid)).await?;
        Ok(key.clone())
    }

    /// The user's key if the user has one (stored or cached); never makes one.
    pub async fn get(&self, bare_jid: &str) -> Result<Option<Arc<IdentityKey>>, IdentityError> {
        let jid = normalize_jid(bare_jid)?;
        if let Some(key) = self.cell(&jid).get() {
            return Ok(Some(key.clone()));
        }
        match self.store.identity(&jid).await? {
            Some(id) if id.revoked.is_none() => self.get_or_create(&jid).await.map(Some),
            _ => Ok(None),
        }
    }

    /// The user's public certificate, without unlocking anything; `None`
    /// if the user has no key yet.
    pub async fn public_cert(&self, bare_jid: &str) -> Result<Option<Cert>, IdentityError> {
        let jid = normalize_jid(bare_jid)?;
        if let Some(key) = self.cell(&jid).get() {
            return Ok(Some(Cert::clone(key.cert())));
        }
        match self.store.identity(&jid).await? {
            Some(id) if id.revoked.is_none() => {
                Ok(Some(stored_cert(&id, &jid)?.strip_secret_key_material()))
            }
            _ => Ok(None),
        }
    }

    /// Every user's bare JID and key fingerprint, by JID.
    pub async fn list(&self) -> Result<Vec<(String, Fingerprint)>, IdentityError> {
        let rows = self.store.list_identities().await?;
        Ok(rows
            .into_iter()
            .filter_map(|(jid, fpr, _)| Some((jid, fpr.parse().ok()?)))
            .collect())
    }

    /// Replaces the user's key with a new one (stored for every process);
    /// the new key.
    pub async fn rotate(&self, bare_jid: &str) -> Result<Arc<IdentityKey>, IdentityError> {
        let jid = normalize_jid(bare_jid)?;
        let current = self.get_or_create(&jid).await?;
        let (secret, locked) = self.generate_locked(&jid).await?;
        let fpr = secret.fingerprint().to_hex();
        // If someone else changed it first, theirs holds.
        self.store
            .rotate_identity(&jid, current.generation, &fpr, &locked)
            .await?;
        self.forget(&jid);
        self.get_or_create(&jid).await
    }

    /// Drops the cached key of `jid` (the next use reads the store).
    pub fn forget(&self, jid: &str) {
        let mut cells = self.cells.lock().unwrap_or_else(|e| e.into_inner());
        cells.remove(jid);
    }

    /// Polls the store every [`WATCH_INTERVAL`] until `shutdown` for
    /// identities changed (rotated, revoked) by any process, and drops
    /// their cached keys whose generation is older. A poll that fails is
    /// tried again; its window covers the time missed.
    pub fn watch(self: &Arc<Self>, shutdown: CancellationToken) {
        let me = self.clone();
        tokio::spawn(async move {
            // Overlap covers commits that land late and clock skew between
            // replicas (times are each writer's clock).
            const OVERLAP: i64 = 60;
            let mut since = crate::store::now() - OVERLAP;
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(WATCH_INTERVAL) => {}
                }
                let started = crate::store::now();
                match me.store.identities_changed_since(since).await {
                    Ok(changed) => {
                        for (jid, generation) in changed {
                            me.invalidate_older(&jid, generation);
                        }
                        since = started - OVERLAP;
                    }
                    Err(e) => tracing::debug!(event = "user_keys_watch_failed", error = %e),
                }
            }
        });
    }

    fn invalidate_older(&self, jid: &str, generation: i64) {
        let mut cells = self.cells.lock().unwrap_or_else(|e| e.into_inner());
        let stale = cells
            .get(jid)
            .and_then(|c| c.get())
            .is_some_and(|k| k.generation < generation);
        if stale {
            cells.remove(jid);
        }
    }

    fn cell(&self, jid: &str) -> Cell {
        let mut cells = self.cells.lock().unwrap_or_else(|e| e.into_inner());
        cells.entry(jid.to_owned()).or_default().clone()
    }

    /// The stored key, unlocked; else a new one stored if absent (the
    /// winner of a race is read back and used).
    async fn load_or_create(&self, jid: &str) -> Result<Arc<IdentityKey>, IdentityError> {
        let existing = self.store.identity(jid).await?;
        if let Some(id) = &existing
            && id.revoked.is_none()
        {
            return self.unlock_stored(id.clone(), jid).await;
        }
        let (secret, locked) = self.generate_locked(jid).await?;
        let fpr = secret.fingerprint().to_hex();
        let stored = match existing {
            // Revoked: a new key replaces it, unless someone else did first.
            Some(old) => {
                self.store
                    .rotate_identity(jid, old.generation, &fpr, &locked)
                    .await?;
                self.store.identity(jid).await?
            }
            None => Some(
                self.store
                    .insert_identity_if_absent(jid, &fpr, &locked)
                    .await?,
            ),
        };
        let stored = stored.ok_or_else(|| IdentityError::Corrupt {
            jid: jid.to_owned(),
            why: "vanished".into(),
        })?;
        if stored.fingerprint == fpr && stored.revoked.is_none() {
            return Ok(Arc::new(user_key(jid, secret, stored.generation)));
        }
        self.unlock_stored(stored, jid).await
    }

    async fn unlock_stored(
        &self,
        id: Identity,
        jid: &str,
    ) -> Result<Arc<IdentityKey>, IdentityError> {
        let passphrase = self.passphrase.clone();
        let jid = jid.to_owned();
        tokio::task::spawn_blocking(move || {
            let cert = stored_cert(&id, &jid)?;
            unlock(cert, &jid, &passphrase)
                .map(|secret| Arc::new(user_key(&jid, secret, id.generation)))
        })
        .await
        .map_err(|e| IdentityError::Task(e.to_string()))?
    }

    /// A new key for `jid`: unlocked, and serialized with its secret parts
    /// encrypted under the passphrase.
    async fn generate_locked(&self, jid: &str) -> Result<(Cert, Vec<u8>), IdentityError> {
        let passphrase = self.passphrase.clone();
        let jid = jid.to_owned();
        tokio::task::spawn_blocking(move || {
            let secret = generate(&jid)?;
            let locked = lock_cert(secret.clone(), &passphrase)?;
            Ok((secret, locked))
        })
        .await
        .map_err(|e| IdentityError::Task(e.to_string()))?
    }
}

/// `secret` serialized as a TSK with every secret part encrypted under
/// `passphrase`.
fn lock_cert(secret: Cert, passphrase: &Password) -> Result<Vec<u8>, IdentityError> {
    let locked = map_secrets(secret, |k| lock(k, passphrase))?;
    locked.as_tsk().to_vec().map_err(pgp_error)
}

/// A bare JID, trimmed and lowercased; refuses empty ones, resources and
/// control characters.
fn normalize_jid(jid: &str) -> Result<String, IdentityError> {
    let jid = jid.trim();
    let bad = jid.is_empty()
        || jid.len() > 3071
        || jid.contains('/')
        || jid.chars().any(|c| c.is_control() || c.is_whitespace());
    if bad {
        return Err(IdentityError::BadJid(jid.to_owned()));
    }
    Ok(jid.to_lowercase())
}

fn user_key(jid: &str, secret: Cert, generation: i64) -> IdentityKey {
    IdentityKey {
        jid: jid.to_owned(),
        cert: Arc::new(secret.clone().strip_secret_key_material()),
        secret,
        generation,
    }
}

/// The certificate of a stored identity, checked to be `jid`'s.
fn stored_cert(id: &Identity, jid: &str) -> Result<Cert, IdentityError> {
    let corrupt = |why: String| IdentityError::Corrupt {
        jid: jid.to_owned(),
        why,
    };
    let cert = Cert::from_bytes(&id.tsk).map_err(|e| corrupt(e.to_string()))?;
    check_uid(&cert, jid).map_err(corrupt)?;
    if cert.fingerprint().to_hex() != id.fingerprint {
        return Err(corrupt("the fingerprint does not match".into()));
    }
    Ok(cert)
}

fn check_uid(cert: &Cert, jid: &str) -> Result<(), String> {
    let uid = format!("xmpp:{jid}");
    if cert.userids().any(|u| u.userid().value() == uid.as_bytes()) {
        Ok(())
    } else {
        Err(format!("no user ID {uid}"))
    }
}

/// Bytes hashed by the S2K that turns the passphrase into the key that
/// encrypts secret parts on disk (iterated and salted SHA-256). Sequoia's
/// default is the largest OpenPGP allows (64 MiB, ~0.35 s per key), made
/// for passphrases people choose; this one comes from a config file, and
/// each user's key is unlocked at every restart, so 4 MiB (~20 ms).
const S2K_BYTES: u32 = 4 << 20;

/// `k` with its secret parts encrypted under `passphrase` (AES-256).
fn lock(
    k: Key<SecretParts, UnspecifiedRole>,
    passphrase: &Password,
) -> anyhow::Result<Key<SecretParts, UnspecifiedRole>> {
    let s2k = S2K::new_iterated(HashAlgorithm::SHA256, S2K_BYTES)?;
    let (public, mut secret) = k.take_secret();
    secret.encrypt_in_place_with(&public, s2k, SymmetricAlgorithm::AES256, None, passphrase)?;
    Ok(public.add_secret(secret).0)
}

/// `cert` with its secret parts decrypted with `passphrase`.
fn unlock(cert: Cert, jid: &str, passphrase: &Password) -> Result<Cert, IdentityError> {
    map_secrets(cert, |k| {
        if k.has_unencrypted_secret() {
            Ok(k)
        } else {
            k.decrypt_secret(passphrase)
        }
    })
    .map_err(|_| IdentityError::WrongPassphrase {
        jid: jid.to_owned(),
    })
}

/// Applies `op` to every secret key packet of `cert`.
fn map_secrets(
    cert: Cert,
    op: impl Fn(Key<SecretParts, UnspecifiedRole>) -> anyhow::Result<Key<SecretParts, UnspecifiedRole>>,
) -> Result<Cert, IdentityError> {
    let mut packets = Vec::new();
    for packet in cert.into_tsk().into_packets() {
        packets.push(match packet {
            Packet::SecretKey(k) => Packet::SecretKey(
                op(k.role_into_unspecified())
                    .map_err(pgp_error)?
                    .role_into_primary(),
            ),
            Packet::SecretSubkey(k) => Packet::SecretSubkey(
                op(k.role_into_unspecified())
                    .map_err(pgp_error)?
                    .role_into_subordinate(),
            ),
            other => other,
        });
    }
    Cert::from_packets(packets.into_iter()).map_err(pgp_error)
}

/// A new key for `jid`, secret parts unencrypted.
fn generate(jid: &str) -> Result<Cert, IdentityError> {
    let (cert, _revocation) = CertBuilder::new()
        .set_cipher_suite(CipherSuite::Cv25519)
        .set_primary_key_flags(KeyFlags::empty().set_certification().set_signing())
        .add_subkey(
            KeyFlags::empty()
                .set_transport_encryption()
                .set_storage_encryption(),
            None,
            None,
        )
        .add_userid(format!("xmpp:{jid}"))
        .set_features(Features::empty().set_seipdv1())
        .map_err(pgp_error)?
        .generate()
        .map_err(pgp_error)?;
    Ok(cert)
}

#[cfg(test)]
mod tests;
