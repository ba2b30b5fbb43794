//! The state store: what must outlive a process and be the same on every
//! replica — local identities (secret keys encrypted at rest), what sotto
//! learned about correspondents' keys, and the OX replay record.
//!
//! One data-access layer over sqlx for two back ends: an SQLite file (the
//! embedded default; one writer connection, WAL, a busy timeout) and a
//! PostgreSQL that all replicas share. Schema migrations are embedded in
//! the binary (`migrations/sqlite`, `migrations/postgres`) and applied when
//! the store opens; a database whose schema is newer than this binary knows
//! is refused. The SQL is the same text for both (`$1` binds, `ON CONFLICT`).
//!
//! This module owns the tables and their queries; it never sees a secret
//! key in clear (callers hand it locked key material) and never logs
//! addresses, keys or digests. Callers cache what they read: the
//! per-message path must not wait on the database.

mod autocrypt;
mod backup;
pub mod cli;
mod correspondents;
mod identities;
mod replay;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use tokio::sync::OnceCell;

pub use autocrypt::Peer;
pub use backup::BackupSummary;
pub use correspondents::LearnedKey;
pub use identities::Identity;

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");

/// Why the store could not do what was asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("store.url: {0}")]
    BadUrl(String),
    #[error("cannot create the state directory {path}: {source}")]
    StateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "no state directory: set store.url, or STATE_DIRECTORY, XDG_STATE_HOME or HOME in the environment"
    )]
    NoStateDir,
    #[error(
        "the store's schema is version {found}, newer than this sotto knows ({known}): run a newer sotto, or restore a backup into a fresh store"
    )]
    NewerSchema { found: i64, known: i64 },
    #[error("the disk holding the store is full")]
    DiskFull,
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    #[error("schema migration failed: {0}")]
    Migrate(String),
    #[error("store query failed: {0}")]
    Query(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    BadBackup(String),
    #[error("restore needs an empty store; this one holds {0} row(s)")]
    NotEmpty(i64),
}

impl StoreError {
    /// Whether the database may answer again later (a 4xx, not a 5xx).
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable(_) | StoreError::DiskFull)
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        use sqlx::Error as E;
        match &e {
            E::Database(d) => {
                // SQLITE_FULL; PostgreSQL disk_full.
                let code = d.code();
                if matches!(code.as_deref(), Some("13") | Some("53100")) {
                    return StoreError::DiskFull;
                }
                // PostgreSQL: connection exceptions, shutdown, unavailable.
                if code
                    .as_deref()
                    .is_some_and(|c| c.starts_with("08") || c.starts_with("57P") || c == "53300")
                {
                    return StoreError::Unavailable(e.to_string());
                }
                StoreError::Query(e.to_string())
            }
            E::Io(_) | E::PoolTimedOut | E::PoolClosed | E::Tls(_) | E::Protocol(_) => {
                StoreError::Unavailable(e.to_string())
            }
            _ => StoreError::Query(e.to_string()),
        }
    }
}

/// The back end and its connections.
#[derive(Clone)]
enum Pools {
    /// One writer connection (SQLite allows one writer at a time) and a few
    /// readers.
    Sqlite {
        write: SqlitePool,
        read: SqlitePool,
    },
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to the pool for `$kind` (`read` or
/// `write`) of either back end: the same query text serves both.
macro_rules! on_pool {
    ($store:expr, $kind:ident, |$pool:ident| $body:expr) => {
        match &$store.pools {
            $crate::store::Pools::Sqlite { $kind: $pool, .. } => $body,
            $crate::store::Pools::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_pool;

/// The state store. Cheap to clone (a handle on shared pools).
#[derive(Clone)]
pub struct Store {
    pools: Pools,
    backend: &'static str,
    /// Migrated (and the schema checked) once, before the first query.
    ready: Arc<OnceCell<()>>,
    timeout: Duration,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

/// How to open a store: the URL and the connection bounds.
#[derive(Debug, Clone)]
pub struct Options {
    pub url: String,
    pub max_connections: u32,
    pub timeout: Duration,
}

impl Options {
    pub fn new(url: impl Into<String>) -> Self {
        Options {
            url: url.into(),
            max_connections: 10,
            timeout: Duration::from_secs(5),
        }
    }

    /// From `[store]`: its `url`, else the SQLite file in the state
    /// directory ([`default_sqlite_path`]).
    pub fn from_config(cfg: &crate::config::StoreConfig) -> Result<Self, StoreError> {
        let url = match &cfg.url {
            Some(u) => u.clone(),
            None => sqlite_url(&default_sqlite_path()?),
        };
        Ok(Options {
            url,
            max_connections: cfg.max_connections,
            timeout: cfg.timeout,
        })
    }
}

/// The URL of the SQLite file at `path`.
pub fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}", path.display())
}

/// Where the embedded store lives when `store.url` is unset: `sotto.db` in
/// `$STATE_DIRECTORY` (systemd's `StateDirectory=`; its first entry), else
/// in `$XDG_STATE_HOME/sotto`, else in `$HOME/.local/state/sotto`. The
/// directory is created (mode 0700) if missing.
pub fn default_sqlite_path() -> Result<PathBuf, StoreError> {
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    let dir = if let Some(d) = env("STATE_DIRECTORY") {
        let d = d.to_string_lossy().into_owned();
        PathBuf::from(d.split(':').next().unwrap_or_default())
    } else if let Some(d) = env("XDG_STATE_HOME") {
        PathBuf::from(d).join("sotto")
    } else if let Some(h) = env("HOME") {
        PathBuf::from(h).join(".local/state/sotto")
    } else {
        return Err(StoreError::NoStateDir);
    };
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(|source| StoreError::StateDir {
            path: dir.clone(),
            source,
        })?;
    Ok(dir.join("sotto.db"))
}

impl Store {
    /// Opens the store at `opts.url` and applies the migrations it lacks;
    /// refuses a schema newer than this binary's.
    pub async fn open(opts: &Options) -> Result<Store, StoreError> {
        let store = Self::open_lazy(opts)?;
        store.ensure_ready().await?;
        Ok(store)
    }

    /// [`Store::open`] without touching the database yet: connections and
    /// migrations happen at the first query.
    pub fn open_lazy(opts: &Options) -> Result<Store, StoreError> {
        let url = opts.url.as_str();
        let (pools, backend) = if url.starts_with("postgres://") || url.starts_with("postgresql://")
        {
            let connect =
                PgConnectOptions::from_str(url).map_err(|e| StoreError::BadUrl(e.to_string()))?;
            let pool = PgPoolOptions::new()
                .max_connections(opts.max_connections)
                .acquire_timeout(opts.timeout)
                .connect_lazy_with(connect);
            (Pools::Postgres(pool), "postgres")
        } else if url.starts_with("sqlite:") {
            let connect = SqliteConnectOptions::from_str(url)
                .map_err(|e| StoreError::BadUrl(e.to_string()))?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(opts.timeout)
                .foreign_keys(true);
            let write = SqlitePoolOptions::new()
                .max_connections(1)
                .acquire_timeout(opts.timeout)
                .connect_lazy_with(connect.clone());
            let read = SqlitePoolOptions::new()
                .max_connections(opts.max_connections.clamp(1, 4))
                .acquire_timeout(opts.timeout)
                .connect_lazy_with(connect);
            (Pools::Sqlite { write, read }, "sqlite")
        } else {
            return Err(StoreError::BadUrl(
                "must start with sqlite: or postgres://".into(),
            ));
        };
        Ok(Store {
            pools,
            backend,
            ready: Arc::new(OnceCell::new()),
            timeout: opts.timeout,
        })
    }

    /// `sqlite` or `postgres`.
    pub fn backend(&self) -> &'static str {
        self.backend
    }

    /// Applies missing migrations (once per handle).
    async fn ensure_ready(&self) -> Result<(), StoreError> {
        self.ready
            .get_or_try_init(|| self.migrate())
            .await
            .map(|_| ())
    }

    /// Applies the migrations this binary knows and the database lacks
    /// (`sotto store migrate`); refuses a newer schema.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        // Several processes may open one new store at once: PostgreSQL
        // migrations take an advisory lock; on SQLite a loser of the race
        // (reading the schema version, or applying a migration against a
        // snapshot another process just changed) is told "locked" at once,
        // without waiting, and tries the whole step again, for at most the
        // store's timeout (it used to retry only the migration, three
        // times, and lost under load).
        let started = std::time::Instant::now();
        let mut pause = Duration::from_millis(50);
        loop {
            match self.migrate_once().await {
                Err(e)
                    if self.backend == "sqlite"
                        && !matches!(e, StoreError::NewerSchema { .. })
                        && started.elapsed() + pause < self.timeout =>
                {
                    tracing::debug!(event = "store_migrate_retry", error = %e);
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(800));
                }
                result => return result,
            }
        }
    }

    /// One attempt of [`Store::migrate`].
    async fn migrate_once(&self) -> Result<(), StoreError> {
        let migrator = self.migrator();
        let known = migrator.iter().map(|m| m.version).max().unwrap_or(0);
        let found = self.schema_version().await?;
        if found > known {
            return Err(StoreError::NewerSchema { found, known });
        }
        match on_pool!(self, write, |pool| migrator.run(pool).await) {
            Ok(()) => Ok(()),
            Err(sqlx::migrate::MigrateError::Execute(e)) => Err(e.into()),
            Err(e) => Err(StoreError::Migrate(e.to_string())),
        }
    }

    fn migrator(&self) -> &'static Migrator {
        match self.pools {
            Pools::Sqlite { .. } => &SQLITE_MIGRATIONS,
            Pools::Postgres(_) => &POSTGRES_MIGRATIONS,
        }
    }

    /// The newest migration applied to the database; 0 for a new one.
    pub async fn schema_version(&self) -> Result<i64, StoreError> {
        let q = "SELECT COALESCE(MAX(version), 0) FROM _sqlx_migrations WHERE success";
        let r: Result<(i64,), sqlx::Error> =
            on_pool!(self, write, |pool| sqlx::query_as(q).fetch_one(pool).await);
        match r {
            Ok((v,)) => Ok(v),
            // No migrations table yet: a new database.
            Err(sqlx::Error::Database(d))
                if d.message().contains("_sqlx_migrations")
                    || d.code().as_deref() == Some("42P01") =>
            {
                Ok(0)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Whether the database answers now (for `/readyz`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.run("ping", async {
            let r: Result<(i32,), sqlx::Error> = on_pool!(self, write, |pool| {
                sqlx::query_as("SELECT 1").fetch_one(pool).await
            });
            r.map(|_| ()).map_err(StoreError::from)
        })
        .await
    }

    /// Runs one store operation: migrated first, bounded by the timeout,
    /// timed and counted (`sotto_store_query_duration_seconds`,
    /// `sotto_store_errors_total`).
    pub(crate) async fn run<T>(
        &self,
        op: &'static str,
        f: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let start = Instant::now();
        let result = match tokio::time::timeout(self.timeout * 2, async {
            self.ensure_ready().await?;
            f.await
        })
        .await
        {
            Ok(r) => r,
            Err(_) => Err(StoreError::Unavailable("timed out".into())),
        };
        metrics::histogram!("sotto_store_query_duration_seconds", "op" => op, "backend" => self.backend)
            .record(start.elapsed().as_secs_f64());
        if let Err(e) = &result {
            metrics::counter!("sotto_store_errors_total", "op" => op, "backend" => self.backend)
                .increment(1);
            tracing::debug!(event = "store_error", op, backend = self.backend, error = %e);
        }
        result
    }

    /// Closes the connections (waiting for queries under way).
    pub async fn close(&self) {
        match &self.pools {
            Pools::Sqlite { write, read } => {
                read.close().await;
                write.close().await;
            }
            Pools::Postgres(p) => p.close().await,
        }
    }
}

/// Now, in Unix seconds.
pub(crate) fn now() -> i64 {
    unix(SystemTime::now())
}

pub(crate) fn unix(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Registers the store's metrics with their help texts.
pub fn describe_metrics() {
    metrics::describe_histogram!(
        "sotto_store_query_duration_seconds",
        "Time of one state-store operation, by operation and back end"
    );
    metrics::describe_counter!(
        "sotto_store_errors_total",
        "State-store operations that failed, by operation and back end"
    );
}

#[cfg(test)]
mod tests;
