//! Backup and restore: a consistent snapshot of every table, read in one
//! transaction, written as a text file that either back end restores into
//! an empty store (so moving from SQLite to PostgreSQL is a backup, then a
//! restore). Secret key material stays as stored: encrypted.
//!
//! Format (one record a line, fields separated by one space, text and
//! bytes in base64, absent values `-`):
//! `sotto-store-backup 1 <schema>`, then `identity …`, `key …`, `replay …`,
//! `peer …` lines, then `end <records>` so that a truncated file is refused.
//! A backup of schema 1 (no `peer` lines) restores into a newer store.

use std::io::Write;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use super::{Store, StoreError, on_pool};

const MAGIC: &str = "sotto-store-backup 1";

/// What a backup or restore held.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BackupSummary {
    pub identities: usize,
    pub keys: usize,
    pub replay: usize,
    /// Autocrypt peers.
    pub peers: usize,
}

type IdRow = (
    String,
    String,
    Vec<u8>,
    i64,
    Option<i64>,
    Option<i64>,
    i64,
    i64,
);
type KeyRow = (String, String, Vec<u8>, String, i64, i64);
type ReplayRow = (Vec<u8>, i64, i64);
type PeerRow = (
    String,
    i64,
    Option<i64>,
    Option<Vec<u8>>,
    i64,
    Option<i64>,
    Option<Vec<u8>>,
);

const ID_COLS: &str = "address, fingerprint, tsk, created, rotated, revoked, generation, changed";
const KEY_COLS: &str = "address, fingerprint, cert, source, first_seen, last_seen";
const REPLAY_COLS: &str = "digest, seen, expires";

/// Every row, read from one snapshot.
#[derive(Default)]
struct Snapshot {
    schema: i64,
    ids: Vec<IdRow>,
    keys: Vec<KeyRow>,
    replay: Vec<ReplayRow>,
    peers: Vec<PeerRow>,
}

impl Store {
    /// Writes a consistent snapshot of the store to `file` (mode 0600,
    /// through a temporary file renamed into place).
    pub async fn backup(&self, file: &Path) -> Result<BackupSummary, StoreError> {
        let snap = self
            .run("backup", async {
                let schema = self.schema_version().await?;
                let postgres = self.backend == "postgres";
                let read = |t: &str, cols: &str| format!("SELECT {cols} FROM {t} ORDER BY 1, 2");
                let snap = on_pool!(self, write, |pool| {
                    let mut tx = pool.begin().await?;
                    if postgres {
                        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                            .execute(&mut *tx)
                            .await?;
                    }
                    let ids = sqlx::query_as(&read("identities", ID_COLS))
                        .fetch_all(&mut *tx)
                        .await?;
                    let keys = sqlx::query_as(&read("correspondent_keys", KEY_COLS))
                        .fetch_all(&mut *tx)
                        .await?;
                    let replay =
                        sqlx::query_as(&format!("SELECT {REPLAY_COLS} FROM ox_replay ORDER BY 1"))
                            .fetch_all(&mut *tx)
                            .await?;
                    let peers = sqlx::query_as(&format!(
                        "SELECT {} FROM autocrypt_peers ORDER BY 1",
                        super::autocrypt::COLUMNS
                    ))
                    .fetch_all(&mut *tx)
                    .await?;
                    tx.commit().await?;
                    Ok::<_, sqlx::Error>(Snapshot {
                        schema,
                        ids,
                        keys,
                        replay,
                        peers,
                    })
                })?;
                Ok(snap)
            })
            .await?;
        let text = render(&snap);
        write_private(file, text.as_bytes())?;
        Ok(snap.summary())
    }

    /// Loads the backup `file` into this store, which must be empty, in one
    /// transaction.
    pub async fn restore(&self, file: &Path) -> Result<BackupSummary, StoreError> {
        let text = std::fs::read_to_string(file).map_err(|source| StoreError::Io {
            path: file.to_owned(),
            source,
        })?;
        let snap = parse(&text)?;
        let known = self.migrator().iter().map(|m| m.version).max().unwrap_or(0);
        if snap.schema > known {
            return Err(StoreError::NewerSchema {
                found: snap.schema,
                known,
            });
        }
        self.run("restore", async {
            on_pool!(self, write, |pool| async {
                let mut tx = pool.begin().await?;
                let mut rows = 0i64;
                for t in ["identities", "correspondent_keys", "ox_replay", "autocrypt_peers"] {
                    let (n,): (i64,) = sqlx::query_as(&format!("SELECT COUNT(*) FROM {t}"))
                        .fetch_one(&mut *tx)
                        .await?;
                    rows += n;
                }
                if rows > 0 {
                    return Ok(Err(StoreError::NotEmpty(rows)));
                }
                for r in &snap.ids {
                    sqlx::query(&format!(
                        "INSERT INTO identities ({ID_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
                    ))
                    .bind(&r.0)
                    .bind(&r.1)
                    .bind(&r.2)
                    .bind(r.3)
                    .bind(r.4)
                    .bind(r.5)
                    .bind(r.6)
                    .bind(r.7)
                    .execute(&mut *tx)
                    .await?;
                }
                for r in &snap.keys {
                    sqlx::query(&format!(
                        "INSERT INTO correspondent_keys ({KEY_COLS}) VALUES ($1, $2, $3, $4, $5, $6)"
                    ))
                    .bind(&r.0)
                    .bind(&r.1)
                    .bind(&r.2)
                    .bind(&r.3)
                    .bind(r.4)
                    .bind(r.5)
                    .execute(&mut *tx)
                    .await?;
                }
                for r in &snap.replay {
                    sqlx::query(&format!(
                        "INSERT INTO ox_replay ({REPLAY_COLS}) VALUES ($1, $2, $3)"
                    ))
                    .bind(&r.0)
                    .bind(r.1)
                    .bind(r.2)
                    .execute(&mut *tx)
                    .await?;
                }
                for r in &snap.peers {
                    sqlx::query(&format!(
                        "INSERT INTO autocrypt_peers ({}) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                        super::autocrypt::COLUMNS
                    ))
                    .bind(&r.0)
                    .bind(r.1)
                    .bind(r.2)
                    .bind(&r.3)
                    .bind(r.4)
                    .bind(r.5)
                    .bind(&r.6)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok::<_, sqlx::Error>(Ok(()))
            }
            .await)??;
            Ok(())
        })
        .await?;
        Ok(snap.summary())
    }
}

impl Snapshot {
    fn summary(&self) -> BackupSummary {
        BackupSummary {
            identities: self.ids.len(),
            keys: self.keys.len(),
            replay: self.replay.len(),
            peers: self.peers.len(),
        }
    }

    fn records(&self) -> usize {
        self.ids.len() + self.keys.len() + self.replay.len() + self.peers.len()
    }
}

fn opt_b64(v: &Option<Vec<u8>>) -> String {
    v.as_deref().map_or("-".into(), b64)
}

fn b64(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

fn opt(v: Option<i64>) -> String {
    v.map_or("-".into(), |v| v.to_string())
}

fn render(s: &Snapshot) -> String {
    let mut out = format!("{MAGIC} {}\n", s.schema);
    for r in &s.ids {
        out += &format!(
            "identity {} {} {} {} {} {} {} {}\n",
            b64(r.0.as_bytes()),
            b64(r.1.as_bytes()),
            b64(&r.2),
            r.3,
            opt(r.4),
            opt(r.5),
            r.6,
            r.7
        );
    }
    for r in &s.keys {
        out += &format!(
            "key {} {} {} {} {} {}\n",
            b64(r.0.as_bytes()),
            b64(r.1.as_bytes()),
            b64(&r.2),
            b64(r.3.as_bytes()),
            r.4,
            r.5
        );
    }
    for r in &s.replay {
        out += &format!("replay {} {} {}\n", b64(&r.0), r.1, r.2);
    }
    for r in &s.peers {
        out += &format!(
            "peer {} {} {} {} {} {} {}\n",
            b64(r.0.as_bytes()),
            r.1,
            opt(r.2),
            opt_b64(&r.3),
            r.4,
            opt(r.5),
            opt_b64(&r.6)
        );
    }
    out += &format!("end {}\n", s.records());
    out
}

/// Reads fields of one record in order, each error naming its line.
struct Fields<'a> {
    line: usize,
    it: std::str::SplitAsciiWhitespace<'a>,
}

impl Fields<'_> {
    fn bad(&self, what: &str) -> StoreError {
        StoreError::BadBackup(format!("backup line {}: {what}", self.line))
    }
    fn next(&mut self) -> Result<&str, StoreError> {
        self.it.next().ok_or_else(|| self.bad("too few fields"))
    }
    fn bytes(&mut self) -> Result<Vec<u8>, StoreError> {
        let f = self.next()?;
        B64.decode(f).map_err(|_| self.bad("bad base64"))
    }
    fn text(&mut self) -> Result<String, StoreError> {
        let b = self.bytes()?;
        String::from_utf8(b).map_err(|_| self.bad("not UTF-8"))
    }
    fn int(&mut self) -> Result<i64, StoreError> {
        let f = self.next()?;
        f.parse().map_err(|_| self.bad("not a number"))
    }
    fn opt(&mut self) -> Result<Option<i64>, StoreError> {
        match self.next()? {
            "-" => Ok(None),
            f => f.parse().map(Some).map_err(|_| self.bad("not a number")),
        }
    }
    fn opt_bytes(&mut self) -> Result<Option<Vec<u8>>, StoreError> {
        match self.next()? {
            "-" => Ok(None),
            f => B64.decode(f).map(Some).map_err(|_| self.bad("bad base64")),
        }
    }
    fn done(&mut self) -> Result<(), StoreError> {
        match self.it.next() {
            None => Ok(()),
            Some(_) => Err(self.bad("too many fields")),
        }
    }
}

fn parse(text: &str) -> Result<Snapshot, StoreError> {
    let mut lines = text.lines().enumerate();
    let schema = lines
        .next()
        .and_then(|(_, l)| l.strip_prefix(MAGIC))
        .and_then(|rest| rest.trim().parse().ok())
        .ok_or_else(|| StoreError::BadBackup("not a sotto store backup".into()))?;
    let mut snap = Snapshot {
        schema,
        ..Default::default()
    };
    for (i, line) in lines {
        let mut it = line.split_ascii_whitespace();
        let kind = it.next().unwrap_or_default();
        let mut f = Fields { line: i + 1, it };
        match kind {
            "identity" => snap.ids.push((
                f.text()?,
                f.text()?,
                f.bytes()?,
                f.int()?,
                f.opt()?,
                f.opt()?,
                f.int()?,
                f.int()?,
            )),
            "key" => snap.keys.push((
                f.text()?,
                f.text()?,
                f.bytes()?,
                f.text()?,
                f.int()?,
                f.int()?,
            )),
            "replay" => snap.replay.push((f.bytes()?, f.int()?, f.int()?)),
            "peer" => snap.peers.push((
                f.text()?,
                f.int()?,
                f.opt()?,
                f.opt_bytes()?,
                f.int()?,
                f.opt()?,
                f.opt_bytes()?,
            )),
            "end" => {
                let n = f.int()?;
                f.done()?;
                let have = snap.records();
                if usize::try_from(n).ok() != Some(have) {
                    return Err(f.bad("the record count does not match"));
                }
                return Ok(snap);
            }
            _ => return Err(f.bad("unknown record")),
        }
        f.done()?;
    }
    Err(StoreError::BadBackup(
        "the backup is truncated (no end line)".into(),
    ))
}

/// Writes `bytes` to `path` (mode 0600) through a temporary file beside it.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| StoreError::Io {
        path: path.to_owned(),
        source,
    };
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io)?;
    f.write_all(bytes).and_then(|()| f.sync_all()).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_and_tampered_backups_are_refused() {
        let snap = Snapshot {
            schema: 1,
            ids: vec![("a@x".into(), "F".into(), vec![1, 2], 5, None, Some(7), 2, 7)],
            keys: vec![],
            replay: vec![(vec![9; 32], 1, 2)],
            peers: vec![("p@y".into(), 10, Some(9), Some(vec![3]), 1, None, None)],
        };
        let text = render(&snap);
        let back = parse(&text).unwrap();
        assert_eq!(back.ids, snap.ids);
        assert_eq!(back.replay, snap.replay);
        assert_eq!(back.peers, snap.peers);
        let cut = text.lines().take(2).collect::<Vec<_>>().join("\n");
        assert!(matches!(parse(&cut), Err(StoreError::BadBackup(m)) if m.contains("truncated")));
        let dropped = text.replace(&text.lines().nth(1).unwrap().to_string(), "");
        assert!(parse(&dropped).is_err());
        assert!(parse("hello\n").is_err());
        let bad = text.replace("identity ", "identity !!! ");
        assert!(parse(&bad).is_err());
    }
}
