//! `sotto store …`: migrate, back up, restore, and import an older chat
//! user-keys directory. Also how `serve` and `explain` open the store and
//! the users' keys from the configuration.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use crate::config::Config;
use crate::openpgp::identities::{Identities, read_passphrase};

use super::{Options, Store};

/// What `sotto store` does.
#[derive(Debug, Clone, clap::Subcommand)]
#[non_exhaustive]
pub enum StoreAction {
    /// Apply the schema migrations the store lacks (serve does it too).
    /// Refuses a store whose schema is newer than this sotto knows.
    Migrate,
    /// Write a consistent snapshot of the store to FILE (mode 0600). Secret
    /// keys stay encrypted under the store's passphrase.
    Backup {
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Load a backup FILE into this (empty) store, SQLite or PostgreSQL:
    /// moving from one to the other is a backup, then a restore.
    Restore {
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Copy the chat users' keys of an older xmpp.user_keys directory into
    /// the store (same keys, same fingerprints); users the store already
    /// has are left alone. Nothing is written to DIR.
    ImportUserKeys {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
        /// File whose first line is the passphrase of DIR's keys (default:
        /// xmpp.user_keys_secret, else store.secret_file).
        #[arg(long, value_name = "FILE")]
        secret: Option<PathBuf>,
    },
}

/// Opens the configured store (migrating it).
pub async fn open(cfg: &Config) -> Result<Store, super::StoreError> {
    Store::open(&Options::from_config(&cfg.store)?).await
}

/// Whether `serve` needs the store: `store.url` is set, or chat keys are
/// (a passphrase for them is configured).
pub fn wanted(cfg: &Config) -> bool {
    cfg.store.url.is_some() || cfg.store.secret_file(&cfg.xmpp).is_some()
}

/// The chat users' keys over `store`, when a passphrase is configured; an
/// existing `xmpp.user_keys` directory is imported first (users already in
/// the store are skipped without unlocking anything).
pub async fn user_keys(cfg: &Config, store: &Store) -> Result<Option<Arc<Identities>>, String> {
    let Some(secret) = cfg.store.secret_file(&cfg.xmpp) else {
        if cfg.xmpp.user_keys.is_some() {
            return Err("xmpp.user_keys needs store.secret_file or xmpp.user_keys_secret (a file whose first line is the passphrase)".into());
        }
        return Ok(None);
    };
    let passphrase = read_passphrase(secret).map_err(|e| format!("store.secret_file: {e}"))?;
    let users = Identities::new(store.clone(), passphrase);
    if let Some(dir) = &cfg.xmpp.user_keys
        && dir.is_dir()
    {
        let old = match &cfg.xmpp.user_keys_secret {
            Some(f) => read_passphrase(f).map_err(|e| format!("xmpp.user_keys_secret: {e}"))?,
            None => read_passphrase(secret).map_err(|e| format!("store.secret_file: {e}"))?,
        };
        let done = users
            .import_dir(dir, &old)
            .await
            .map_err(|e| format!("importing xmpp.user_keys: {e}"))?;
        tracing::info!(
            event = "user_keys_imported",
            imported = done.imported,
            present = done.present,
            skipped = done.skipped.len()
        );
        for (path, why) in &done.skipped {
            tracing::warn!(event = "user_key_not_imported", file = %path.display(), why = %why);
        }
    }
    Ok(Some(Arc::new(users)))
}

/// The configured store for read-only commands (`explain`, `keys
/// lookup`): `None` when sotto runs without one, or its embedded SQLite
/// file was never created (nothing is created here).
pub fn preview_store(cfg: &Config) -> Option<Store> {
    if !wanted(cfg) {
        return None;
    }
    let opts = Options::from_config(&cfg.store).ok()?;
    if let Some(path) = opts.url.strip_prefix("sqlite://")
        && !Path::new(path).exists()
    {
        return None;
    }
    Store::open_lazy(&opts).ok()
}

/// The users' keys for `explain`: read only, `None` when chat keys are not
/// configured or the embedded store was never created.
pub fn preview_users(cfg: &Config) -> Result<Option<Identities>, String> {
    let Some(secret) = cfg.store.secret_file(&cfg.xmpp) else {
        return Ok(None);
    };
    let passphrase = read_passphrase(secret).map_err(|e| format!("store.secret_file: {e}"))?;
    let opts = Options::from_config(&cfg.store).map_err(|e| e.to_string())?;
    let store = Store::open_lazy(&opts).map_err(|e| e.to_string())?;
    Ok(Some(Identities::new(store, passphrase)))
}

/// Runs `sotto store ACTION`. Exit 0 on success, 1 otherwise.
pub async fn run(cfg: Config, action: StoreAction) -> ExitCode {
    match act(&cfg, action).await {
        Ok(said) => {
            println!("{said}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sotto store: {e}");
            ExitCode::from(1)
        }
    }
}

async fn act(cfg: &Config, action: StoreAction) -> Result<String, String> {
    let store = open(cfg).await.map_err(|e| e.to_string())?;
    let said = match action {
        StoreAction::Migrate => {
            let v = store.schema_version().await.map_err(|e| e.to_string())?;
            format!("{} store at schema version {v}", store.backend())
        }
        StoreAction::Backup { file } => {
            let s = store.backup(&file).await.map_err(|e| e.to_string())?;
            format!(
                "{}: {} identities, {} learned keys, {} replay records, {} Autocrypt peers",
                file.display(),
                s.identities,
                s.keys,
                s.replay,
                s.peers
            )
        }
        StoreAction::Restore { file } => {
            let s = store.restore(&file).await.map_err(|e| e.to_string())?;
            format!(
                "restored {} identities, {} learned keys, {} replay records, {} Autocrypt peers into the {} store",
                s.identities,
                s.keys,
                s.replay,
                s.peers,
                store.backend()
            )
        }
        StoreAction::ImportUserKeys { dir, secret } => import(cfg, &store, &dir, secret).await?,
    };
    store.close().await;
    Ok(said)
}

async fn import(
    cfg: &Config,
    store: &Store,
    dir: &Path,
    secret: Option<PathBuf>,
) -> Result<String, String> {
    let store_secret = cfg
        .store
        .secret_file(&cfg.xmpp)
        .ok_or("the store needs store.secret_file to hold secret keys")?;
    let old_secret = secret
        .as_ref()
        .or(cfg.xmpp.user_keys_secret.as_ref())
        .unwrap_or(store_secret);
    let users = Identities::new(
        store.clone(),
        read_passphrase(store_secret).map_err(|e| e.to_string())?,
    );
    let old = read_passphrase(old_secret).map_err(|e| e.to_string())?;
    let done = users
        .import_dir(dir, &old)
        .await
        .map_err(|e| e.to_string())?;
    let mut said = format!(
        "{}: {} imported, {} already in the store, {} skipped",
        dir.display(),
        done.imported,
        done.present,
        done.skipped.len()
    );
    for (path, why) in done.skipped {
        said += &format!("\n  skipped {}: {why}", path.display());
    }
    Ok(said)
}
