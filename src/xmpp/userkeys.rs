//! The local users' chat keys: one OpenPGP key per user, made by sotto the
//! first time it is needed and kept, secret parts encrypted with a
//! passphrase from config, in a directory (`[xmpp] user_keys`).
//!
//! A key is an Ed25519 primary key (certify, sign) with a Curve25519
//! encryption subkey, user ID `xmpp:user@domain`, no expiry, advertising
//! only SEIPDv1 so that GnuPG-based XMPP clients can encrypt to it and read
//! what it encrypts. Each file is a standard armoured transferable secret
//! key (`gpg --import` / `sq` read it with the passphrase), named by the
//! SHA-256 of the bare JID, so no JID can name a path outside the directory.
//!
//! This module owns the files and an in-memory cache of unlocked keys; it
//! does not publish keys (PEP) or decide when to use them. Generating and
//! unlocking keys is CPU work, done in `spawn_blocking`.

use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use sequoia_openpgp::cert::{CertBuilder, CipherSuite};
use sequoia_openpgp::crypto::{Password, S2K};
use sequoia_openpgp::packet::Key;
use sequoia_openpgp::packet::key::{SecretParts, UnspecifiedRole};
use sequoia_openpgp::parse::Parse;
use sequoia_openpgp::serialize::SerializeInto;
use sequoia_openpgp::types::{Features, HashAlgorithm, KeyFlags, SymmetricAlgorithm};
use sequoia_openpgp::{Cert, Fingerprint, Packet};
use tokio::sync::OnceCell;

/// Why a user's key could not be had.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UserKeyError {
    #[error("not a bare JID: {0:?}")]
    BadJid(String),
    #[error("the passphrase does not unlock {jid}'s key ({path})")]
    WrongPassphrase { jid: String, path: PathBuf },
    #[error("{path}: not {jid}'s key: {why}")]
    Corrupt {
        jid: String,
        path: PathBuf,
        why: String,
    },
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
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> UserKeyError + '_ {
    move |source| UserKeyError::Io {
        path: path.to_owned(),
        source,
    }
}

fn pgp_error(e: anyhow::Error) -> UserKeyError {
    UserKeyError::OpenPgp(e.to_string())
}

/// One user's key, unlocked.
pub struct UserKey {
    jid: String,
    cert: Arc<Cert>,
    secret: Cert,
}

impl UserKey {
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
    /// ([`crate::crypt::signing_keypair`]) and decrypt with.
    ///
    /// # Security
    /// Never serialize it: it holds unencrypted secret keys (in sequoia's
    /// in-memory protection).
    pub fn secret(&self) -> &Cert {
        &self.secret
    }
}

impl fmt::Debug for UserKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserKey")
            .field("jid", &self.jid)
            .field("fingerprint", &self.fingerprint())
            .finish_non_exhaustive()
    }
}

/// The directory of the users' keys, with a cache of unlocked keys.
pub struct UserKeys {
    dir: PathBuf,
    passphrase: Password,
    cells: Mutex<HashMap<String, Arc<OnceCell<Arc<UserKey>>>>>,
}

impl fmt::Debug for UserKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserKeys")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl UserKeys {
    /// Opens (creating it, mode 0700, if missing) the key directory `dir`,
    /// whose keys are encrypted with `passphrase`. A wrong passphrase shows
    /// when a key is loaded.
    pub fn open(dir: impl Into<PathBuf>, passphrase: Password) -> Result<Self, UserKeyError> {
        let dir = dir.into();
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(io_error(&dir))?;
        Ok(UserKeys {
            dir,
            passphrase,
            cells: Mutex::new(HashMap::new()),
        })
    }

    /// [`UserKeys::open`] with the passphrase read from the first line of
    /// `secret_file` (config `user_keys_secret`).
    pub fn open_with_secret_file(
        dir: impl Into<PathBuf>,
        secret_file: &Path,
    ) -> Result<Self, UserKeyError> {
        let text = fs::read_to_string(secret_file).map_err(io_error(secret_file))?;
        let line = text
            .lines()
            .next()
            .unwrap_or_default()
            .trim_end_matches('\r');
        if line.is_empty() {
            return Err(UserKeyError::EmptyPassphrase(secret_file.to_owned()));
        }
        Self::open(dir, Password::from(line))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The user's key, made (and stored) if the user has none yet. Many
    /// callers asking at once for the same user wait for one generation.
    pub async fn get_or_create(&self, bare_jid: &str) -> Result<Arc<UserKey>, UserKeyError> {
        let jid = normalize_jid(bare_jid)?;
        let cell = self.cell(&jid);
        let key = cell
            .get_or_try_init(|| {
                let path = self.path_for(&jid);
                let passphrase = self.passphrase.clone();
                let jid = jid.clone();
                async move {
                    tokio::task::spawn_blocking(move || load_or_create(&path, &jid, &passphrase))
                        .await
                        .map_err(|e| UserKeyError::Task(e.to_string()))?
                        .map(Arc::new)
                }
            })
            .await?;
        Ok(key.clone())
    }

    /// The user's key if the user has one (on disk or cached); never makes one.
    pub async fn get(&self, bare_jid: &str) -> Result<Option<Arc<UserKey>>, UserKeyError> {
        let jid = normalize_jid(bare_jid)?;
        if let Some(key) = self.cell(&jid).get() {
            return Ok(Some(key.clone()));
        }
        if !self.path_for(&jid).exists() {
            return Ok(None);
        }
        self.get_or_create(&jid).await.map(Some)
    }

    /// The user's public certificate from disk, without unlocking anything;
    /// `None` if the user has no key yet.
    pub fn public_cert(&self, bare_jid: &str) -> Result<Option<Cert>, UserKeyError> {
        let jid = normalize_jid(bare_jid)?;
        if let Some(key) = self.cell(&jid).get() {
            return Ok(Some(Cert::clone(key.cert())));
        }
        let path = self.path_for(&jid);
        Ok(read_cert(&path, &jid)?.map(Cert::strip_secret_key_material))
    }

    /// Every stored key: the user's bare JID and the key's fingerprint, in
    /// no particular order. Files that are not keys of this directory are
    /// skipped.
    pub fn list(&self) -> Result<Vec<(String, Fingerprint)>, UserKeyError> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(io_error(&self.dir))? {
            let entry = entry.map_err(io_error(&self.dir))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.starts_with('.') || !name.ends_with(".pgp") {
                continue;
            }
            let Ok(cert) = Cert::from_file(entry.path()) else {
                continue;
            };
            let jid = cert.userids().find_map(|u| {
                std::str::from_utf8(u.userid().value())
                    .ok()?
                    .strip_prefix("xmpp:")
                    .map(str::to_owned)
            });
            if let Some(jid) = jid
                && self.path_for(&jid) == entry.path()
            {
                out.push((jid, cert.fingerprint()));
            }
        }
        Ok(out)
    }

    fn cell(&self, jid: &str) -> Arc<OnceCell<Arc<UserKey>>> {
        let mut cells = self.cells.lock().unwrap_or_else(|e| e.into_inner());
        cells.entry(jid.to_owned()).or_default().clone()
    }

    /// `<dir>/<hex SHA-256 of the JID>.pgp`.
    fn path_for(&self, jid: &str) -> PathBuf {
        let digest = HashAlgorithm::SHA256
            .context()
            .map(|c| {
                let mut c = c.for_digest();
                c.update(jid.as_bytes());
                c.into_digest().unwrap_or_default()
            })
            .unwrap_or_default();
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        self.dir.join(format!("{hex}.pgp"))
    }
}

/// A bare JID, trimmed and lowercased; refuses empty ones, resources and
/// control characters.
fn normalize_jid(jid: &str) -> Result<String, UserKeyError> {
    let jid = jid.trim();
    let bad = jid.is_empty()
        || jid.len() > 3071
        || jid.contains('/')
        || jid.chars().any(|c| c.is_control() || c.is_whitespace());
    if bad {
        return Err(UserKeyError::BadJid(jid.to_owned()));
    }
    Ok(jid.to_lowercase())
}

fn load_or_create(path: &Path, jid: &str, passphrase: &Password) -> Result<UserKey, UserKeyError> {
    if let Some(cert) = read_cert(path, jid)? {
        return unlock(cert, path, jid, passphrase);
    }
    let secret = generate(jid)?;
    let locked = map_secrets(secret.clone(), |k| lock(k, passphrase))?;
    let armored = locked.as_tsk().armored().to_vec().map_err(pgp_error)?;
    if !write_new(path, &armored)? {
        // Another process stored one first: use that.
        let cert = read_cert(path, jid)?.ok_or_else(|| UserKeyError::Corrupt {
            jid: jid.to_owned(),
            path: path.to_owned(),
            why: "vanished".into(),
        })?;
        return unlock(cert, path, jid, passphrase);
    }
    Ok(user_key(jid, secret))
}

fn user_key(jid: &str, secret: Cert) -> UserKey {
    UserKey {
        jid: jid.to_owned(),
        cert: Arc::new(secret.clone().strip_secret_key_material()),
        secret,
    }
}

/// The certificate stored at `path`, checked to be `jid`'s; `None` if there
/// is no file.
fn read_cert(path: &Path, jid: &str) -> Result<Option<Cert>, UserKeyError> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error(path)(e)),
    };
    let corrupt = |why: String| UserKeyError::Corrupt {
        jid: jid.to_owned(),
        path: path.to_owned(),
        why,
    };
    let cert = Cert::from_bytes(&bytes).map_err(|e| corrupt(e.to_string()))?;
    let uid = format!("xmpp:{jid}");
    if !cert.userids().any(|u| u.userid().value() == uid.as_bytes()) {
        return Err(corrupt(format!("no user ID {uid}")));
    }
    Ok(Some(cert))
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

fn unlock(
    cert: Cert,
    path: &Path,
    jid: &str,
    passphrase: &Password,
) -> Result<UserKey, UserKeyError> {
    let secret = map_secrets(cert, |k| {
        if k.has_unencrypted_secret() {
            Ok(k)
        } else {
            k.decrypt_secret(passphrase)
        }
    })
    .map_err(|_| UserKeyError::WrongPassphrase {
        jid: jid.to_owned(),
        path: path.to_owned(),
    })?;
    Ok(user_key(jid, secret))
}

/// Applies `op` to every secret key packet of `cert`.
fn map_secrets(
    cert: Cert,
    op: impl Fn(Key<SecretParts, UnspecifiedRole>) -> anyhow::Result<Key<SecretParts, UnspecifiedRole>>,
) -> Result<Cert, UserKeyError> {
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
fn generate(jid: &str) -> Result<Cert, UserKeyError> {
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

/// Writes `bytes` to `path` (mode 0600) unless a file is there: through a
/// temporary file, linked into place only once complete. `false` if `path`
/// already existed.
fn write_new(path: &Path, bytes: &[u8]) -> Result<bool, UserKeyError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut nonce = [0u8; 8];
    sequoia_openpgp::crypto::random(&mut nonce).map_err(pgp_error)?;
    let tmp_name: String = nonce.iter().map(|b| format!("{b:02x}")).collect();
    let tmp = dir.join(format!(".tmp-{tmp_name}"));
    let written = (|| {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(io_error(&tmp)(e));
    }
    let linked = fs::hard_link(&tmp, path);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            if let Ok(d) = fs::File::open(dir) {
                let _ = d.sync_all();
            }
            Ok(true)
        }
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(io_error(path)(e)),
    }
}

#[cfg(test)]
mod tests;
