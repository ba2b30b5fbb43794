//! The organisation's identities: one OpenPGP key per local address, for
//! mail and chat alike, made by sotto the first time it is needed and kept
//! in the state store ([`crate::store`]), secret parts encrypted with the
//! passphrase of `[store] secret_file`.
//!
//! A key is an Ed25519 primary key (certify, sign) with a Curve25519
//! encryption subkey, no expiry, advertising only SEIPDv1 so that GnuPG and
//! Autocrypt clients can encrypt to it and read what it encrypts. Its user
//! IDs are `<address>` once it is used for mail and `xmpp:address` once it
//! is used for chat ([`Uses`]; the one missing is added when first needed),
//! so mail and chat correspondents see one fingerprint per person. What the
//! store holds is a standard transferable secret key (`gpg --import` / `sq`
//! read it with the passphrase). A user who keeps their own key is
//! registered with its public part only ([`Identities::register_own`]):
//! it is published, and never used to sign or decrypt.
//!
//! This module is a cache of unlocked keys over the store: making a key is
//! insert-if-absent there, so two processes racing for one user end with
//! one key; a key rotated or revoked through another process is noticed by
//! [`Identities::watch`] within [`WATCH_INTERVAL`]. It also imports the older
//! one-file-per-user directories (`import`). It does not publish keys (PEP)
//! or decide when to use them. Generating and unlocking keys is CPU work,
//! done in `spawn_blocking`.

pub mod cli;
mod import;
mod material;
mod watch;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sequoia_openpgp::crypto::Password;
use sequoia_openpgp::{Cert, Fingerprint};
use tokio::sync::OnceCell;
use zeroize::Zeroizing;

use crate::store::{Identity, Store, StoreError};

pub use import::Imported;
use material::{add_uid, generate, has_uid, lock_cert, stored_cert, unlock};

/// A local sender's identity for mail ([`Identities::for_mail`]).
#[derive(Debug, Clone)]
pub enum MailIdentity {
    /// sotto holds the key: it signs and decrypts.
    Active(Arc<IdentityKey>),
    /// Revoked: the certificate with its revocation, published as is.
    Revoked(Cert),
    /// The user's own key (public only).
    Own(Cert),
}

/// What an identity's key is used for: which user ID it must carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uses {
    /// Mail: user ID `<address>`.
    Mail,
    /// Chat: user ID `xmpp:address`.
    Chat,
}

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
    #[error("{0} keeps their own key: sotto holds only its public part")]
    OwnKey(String),
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
    /// What went wrong, without the address or path the message names:
    /// for logs, which never carry local parts.
    pub fn kind(&self) -> &'static str {
        match self {
            IdentityError::BadJid(_) => "bad_address",
            IdentityError::WrongPassphrase { .. } => "wrong_passphrase",
            IdentityError::Corrupt { .. } => "corrupt_key",
            IdentityError::OwnKey(_) => "own_key",
            IdentityError::Io { .. } => "io",
            IdentityError::EmptyPassphrase(_) => "empty_passphrase",
            IdentityError::OpenPgp(_) => "openpgp",
            IdentityError::Task(_) => "task",
            IdentityError::Store(_) => "store",
        }
    }

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
    /// Addresses whose identity changed in the store (any process), as
    /// [`Identities::watch`] sees them.
    changes: tokio::sync::broadcast::Sender<String>,
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
            changes: tokio::sync::broadcast::channel(256).0,
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

    /// The chat key of `bare_jid` ([`Identities::get_or_create_for`] with
    /// [`Uses::Chat`]).
    pub async fn get_or_create(&self, bare_jid: &str) -> Result<Arc<IdentityKey>, IdentityError> {
        self.get_or_create_for(bare_jid, Uses::Chat).await
    }

    /// The identity of `address` for `uses`, made (and stored) if it has
    /// none yet, or a new one if theirs was revoked; a key that lacks the
    /// user ID for `uses` gets it (stored for every process). Many callers
    /// asking at once for the same address wait for one answer; several
    /// processes get the one key stored first. A registered own key
    /// ([`Identities::register_own`]) is [`IdentityError::OwnKey`].
    pub async fn get_or_create_for(
        &self,
        address: &str,
        uses: Uses,
    ) -> Result<Arc<IdentityKey>, IdentityError> {
        let address = normalize_jid(address)?;
        let cell = self.cell(&address);
        let key = cell
            .get_or_try_init(|| self.load_or_create(&address, uses))
            .await?
            .clone();
        if has_uid(key.cert(), &address, uses) {
            return Ok(key);
        }
        // Cached for the other use: add this one's user ID.
        self.forget(&address);
        let cell = self.cell(&address);
        let key = cell
            .get_or_try_init(|| self.load_or_create(&address, uses))
            .await?;
        Ok(key.clone())
    }

    /// What a local sender's mail goes out with: their active key (made on
    /// their first message); their revoked key, published until an
    /// administrator makes a new one (`identities create` or `rotate`), so
    /// correspondents learn of the revocation; or their own registered key.
    /// An active cached key needs no store read.
    pub async fn for_mail(&self, address: &str) -> Result<MailIdentity, IdentityError> {
        let address = normalize_jid(address)?;
        if let Some(key) = self.cell(&address).get()
            && has_uid(key.cert(), &address, Uses::Mail)
        {
            return Ok(MailIdentity::Active(key.clone()));
        }
        match self.store.identity(&address).await? {
            Some(id) if id.revoked.is_some() => Ok(MailIdentity::Revoked(
                stored_cert(&id, &address)?.strip_secret_key_material(),
            )),
            Some(id) if !stored_cert(&id, &address)?.is_tsk() => {
                Ok(MailIdentity::Own(stored_cert(&id, &address)?))
            }
            _ => Ok(MailIdentity::Active(
                self.get_or_create_for(&address, Uses::Mail).await?,
            )),
        }
    }

    /// The address's key as stored (or cached), unlocked, if it has an
    /// active one sotto holds; never makes or changes anything (for
    /// previews such as `sotto transform --inbound`).
    pub async fn existing(&self, address: &str) -> Result<Option<Arc<IdentityKey>>, IdentityError> {
        let address = normalize_jid(address)?;
        if let Some(key) = self.cell(&address).get() {
            return Ok(Some(key.clone()));
        }
        match self.store.identity(&address).await? {
            Some(id) if id.revoked.is_none() => match self.unlock_stored(id, &address).await {
                Ok(key) => Ok(Some(key)),
                Err(IdentityError::OwnKey(_)) => Ok(None),
                Err(e) => Err(e),
            },
            _ => Ok(None),
        }
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
    /// if the user has no key yet (or it was revoked).
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

    /// What is published for `address` (WKD, Autocrypt): its public
    /// certificate, a revoked one with its revocation included, a
    /// registered own key as given; `None` if the address has no identity.
    pub async fn published(&self, address: &str) -> Result<Option<Cert>, IdentityError> {
        let address = normalize_jid(address)?;
        match self.store.identity(&address).await? {
            Some(id) => Ok(Some(
                stored_cert(&id, &address)?.strip_secret_key_material(),
            )),
            None => Ok(None),
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
    /// the new key, with the user IDs the old one had.
    pub async fn rotate(&self, bare_jid: &str) -> Result<Arc<IdentityKey>, IdentityError> {
        let jid = normalize_jid(bare_jid)?;
        let current = self.get_or_create_for(&jid, Uses::Chat).await;
        let current = match current {
            Ok(k) => k,
            Err(_) => self.get_or_create_for(&jid, Uses::Mail).await?,
        };
        let mail = has_uid(current.cert(), &jid, Uses::Mail);
        let chat = has_uid(current.cert(), &jid, Uses::Chat);
        let first = if chat { Uses::Chat } else { Uses::Mail };
        let (secret, _) = self.generate_locked(&jid, first).await?;
        let secret = if mail && chat {
            let j = jid.clone();
            blocking(move || add_uid(secret, &j, Uses::Mail)).await?
        } else {
            secret
        };
        let locked = self.lock(secret.clone()).await?;
        let fpr = secret.fingerprint().to_hex();
        // If someone else changed it first, theirs holds.
        self.store
            .rotate_identity(&jid, current.generation, &fpr, &locked)
            .await?;
        self.forget(&jid);
        self.get_or_create_for(&jid, first).await
    }

    /// Revokes `address`'s key: a revocation signature is added and the
    /// revoked certificate stays published (WKD, Autocrypt) until a new
    /// key is made at the next need. `false` if it has no key to revoke.
    pub async fn revoke(&self, address: &str) -> Result<bool, IdentityError> {
        let address = normalize_jid(address)?;
        let Some(id) = self.store.identity(&address).await? else {
            return Ok(false);
        };
        if id.revoked.is_some() {
            return Ok(false);
        }
        let cert = stored_cert(&id, &address)?;
        let locked = if cert.is_tsk() {
            let (passphrase, a) = (self.passphrase.clone(), address.clone());
            blocking(move || {
                let secret = unlock(cert, &a, &passphrase)?;
                lock_cert(material::revoke(secret)?, &passphrase)
            })
            .await?
        } else {
            // An own key: sotto cannot revoke it; it stops publishing it.
            id.tsk.clone()
        };
        let done = self
            .store
            .revoke_identity_with(&address, id.generation, &locked)
            .await?;
        self.forget(&address);
        Ok(done)
    }

    /// Registers `cert` (public parts only) as `address`'s own key, in
    /// place of any key sotto made: published, never used to sign or
    /// decrypt. It must carry a user ID naming the address.
    pub async fn register_own(&self, address: &str, cert: &Cert) -> Result<(), IdentityError> {
        let address = normalize_jid(address)?;
        let public = cert.clone().strip_secret_key_material();
        material::check_uid(&public, &address).map_err(|why| IdentityError::Corrupt {
            jid: address.clone(),
            why,
        })?;
        let bytes =
            sequoia_openpgp::serialize::SerializeInto::to_vec(&public).map_err(pgp_error)?;
        let fpr = public.fingerprint().to_hex();
        let stored = self
            .store
            .insert_identity_if_absent(&address, &fpr, &bytes)
            .await?;
        if stored.fingerprint != fpr {
            self.store
                .rotate_identity(&address, stored.generation, &fpr, &bytes)
                .await?;
        }
        self.forget(&address);
        Ok(())
    }

    /// Drops the cached key of `jid` (the next use reads the store).
    pub fn forget(&self, jid: &str) {
        let mut cells = self.cells.lock().unwrap_or_else(|e| e.into_inner());
        cells.remove(jid);
    }

    fn cell(&self, jid: &str) -> Cell {
        let mut cells = self.cells.lock().unwrap_or_else(|e| e.into_inner());
        cells.entry(jid.to_owned()).or_default().clone()
    }

    /// The stored key, unlocked (with the user ID for `uses` added if it
    /// lacked it); else a new one stored if absent (the winner of a race is
    /// read back and used).
    async fn load_or_create(
        &self,
        jid: &str,
        uses: Uses,
    ) -> Result<Arc<IdentityKey>, IdentityError> {
        let existing = self.store.identity(jid).await?;
        if let Some(id) = &existing
            && id.revoked.is_none()
        {
            let key = self.unlock_stored(id.clone(), jid).await?;
            if has_uid(key.cert(), jid, uses) {
                return Ok(key);
            }
            let (secret, j) = (key.secret.clone(), jid.to_owned());
            let secret = blocking(move || add_uid(secret, &j, uses)).await?;
            let locked = self.lock(secret).await?;
            // Someone else may have changed it first: theirs is read back.
            self.store
                .update_identity_tsk(jid, id.generation, &locked)
                .await?;
            let id = self
                .store
                .identity(jid)
                .await?
                .ok_or_else(|| IdentityError::Corrupt {
                    jid: jid.to_owned(),
                    why: "vanished".into(),
                })?;
            return self.unlock_stored(id, jid).await;
        }
        let (secret, locked) = self.generate_locked(jid, uses).await?;
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
        blocking(move || {
            let cert = stored_cert(&id, &jid)?;
            if !cert.is_tsk() {
                return Err(IdentityError::OwnKey(jid));
            }
            unlock(cert, &jid, &passphrase)
                .map(|secret| Arc::new(user_key(&jid, secret, id.generation)))
        })
        .await
    }

    /// `secret` serialized with its secret parts encrypted under the
    /// passphrase.
    async fn lock(&self, secret: Cert) -> Result<Vec<u8>, IdentityError> {
        let passphrase = self.passphrase.clone();
        blocking(move || lock_cert(secret, &passphrase)).await
    }

    /// A new key for `jid` with the user ID for `uses`: unlocked, and
    /// serialized with its secret parts encrypted under the passphrase.
    async fn generate_locked(
        &self,
        jid: &str,
        uses: Uses,
    ) -> Result<(Cert, Vec<u8>), IdentityError> {
        let passphrase = self.passphrase.clone();
        let jid = jid.to_owned();
        blocking(move || {
            let secret = generate(&jid, uses)?;
            let locked = lock_cert(secret.clone(), &passphrase)?;
            Ok((secret, locked))
        })
        .await
    }
}

/// Runs key work off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, IdentityError> + Send + 'static,
) -> Result<T, IdentityError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| IdentityError::Task(e.to_string()))?
}

/// A bare JID or mail address, trimmed and lowercased; refuses empty ones,
/// resources and control characters.
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

#[cfg(test)]
mod tests;
