//! Import of an older `xmpp.user_keys` directory (one armoured secret key
//! per user, named by the SHA-256 of the JID) into the store, keeping each
//! user's key and fingerprint. Nothing is written to the directory.

use std::path::{Path, PathBuf};

use sequoia_openpgp::Cert;
use sequoia_openpgp::crypto::Password;
use sequoia_openpgp::parse::Parse;
use sequoia_openpgp::types::HashAlgorithm;

use super::material::check_uid;
use super::{Identities, IdentityError, io_error, lock_cert, unlock};

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Imported {
    /// Keys stored.
    pub imported: usize,
    /// Users the store already had (the same key, or one another process
    /// or an earlier import stored; the store's holds).
    pub present: usize,
    /// Files skipped: not a key of this directory, or not unlocked by the
    /// passphrase (with why, per file name).
    pub skipped: Vec<(PathBuf, String)>,
}

impl Identities {
    /// Copies every user key of the directory `dir` (secret parts under
    /// `passphrase`) into the store, re-encrypted under the store's
    /// passphrase; users the store already has are left as they are.
    pub async fn import_dir(
        &self,
        dir: &Path,
        passphrase: &Password,
    ) -> Result<Imported, IdentityError> {
        let mut out = Imported::default();
        let known: std::collections::HashSet<String> = self
            .store
            .list_identities()
            .await?
            .into_iter()
            .map(|(jid, _, _)| jid)
            .collect();
        for (path, cert, jid) in read_dir(dir, &mut out.skipped)? {
            if known.contains(&jid) {
                out.present += 1;
                continue;
            }
            let (old, new) = (passphrase.clone(), self.passphrase.clone());
            let j = jid.clone();
            let locked = tokio::task::spawn_blocking(move || {
                let secret = unlock(cert, &j, &old)?;
                lock_cert(secret, &new)
            })
            .await
            .map_err(|e| IdentityError::Task(e.to_string()))?;
            let locked = match locked {
                Ok(l) => l,
                Err(e) => {
                    out.skipped.push((path, e.to_string()));
                    continue;
                }
            };
            let fpr = Cert::from_bytes(&locked)
                .map_err(|e| IdentityError::OpenPgp(e.to_string()))?
                .fingerprint()
                .to_hex();
            let stored = self
                .store
                .insert_identity_if_absent(&jid, &fpr, &locked)
                .await?;
            if stored.fingerprint == fpr {
                out.imported += 1;
            } else {
                out.present += 1;
            }
        }
        Ok(out)
    }
}

/// The keys of `dir`: path, certificate and JID of each file that is a key
/// of this directory (named for its JID); the others go to `skipped`.
fn read_dir(
    dir: &Path,
    skipped: &mut Vec<(PathBuf, String)>,
) -> Result<Vec<(PathBuf, Cert, String)>, IdentityError> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_error(dir))? {
        let path = entry.map_err(io_error(dir))?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if name.starts_with('.') || !name.ends_with(".pgp") {
            continue;
        }
        let cert = match Cert::from_file(&path) {
            Ok(c) => c,
            Err(e) => {
                skipped.push((path, format!("not a key: {e}")));
                continue;
            }
        };
        let jid = cert.userids().find_map(|u| {
            std::str::from_utf8(u.userid().value())
                .ok()?
                .strip_prefix("xmpp:")
                .map(str::to_owned)
        });
        match jid {
            Some(jid) if file_name_for(&jid) == name && check_uid(&cert, &jid).is_ok() => {
                out.push((path, cert, jid))
            }
            _ => skipped.push((path, "not named for its user ID".into())),
        }
    }
    out.sort_by(|a, b| a.2.cmp(&b.2));
    Ok(out)
}

/// `<hex SHA-256 of the JID>.pgp`, as the directory named its files.
fn file_name_for(jid: &str) -> String {
    let digest = HashAlgorithm::SHA256
        .context()
        .map(|c| {
            let mut c = c.for_digest();
            c.update(jid.as_bytes());
            c.into_digest().unwrap_or_default()
        })
        .unwrap_or_default();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("{hex}.pgp")
}
