//! Correspondents' public keys and what sotto learned about them: for each
//! (address, fingerprint), the certificate as last seen, where it came from
//! (`wkd`, `vks`, `pep`, `autocrypt`, `dir`, …) and when it was first and
//! last seen. Public data only.

use super::{Store, StoreError, now, on_pool};

/// One learned key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LearnedKey {
    pub address: String,
    /// Upper-case hex fingerprint.
    pub fingerprint: String,
    /// The certificate (binary OpenPGP, no secret parts).
    pub cert: Vec<u8>,
    pub source: String,
    pub first_seen: i64,
    pub last_seen: i64,
}

type Row = (String, String, Vec<u8>, String, i64, i64);

impl Store {
    /// Records that `cert` (fingerprint `fingerprint`) was seen for
    /// `address` from `source` now: a new row, or the stored one updated
    /// (certificate, source, last seen; first seen kept).
    pub async fn learn_key(
        &self,
        address: &str,
        fingerprint: &str,
        cert: &[u8],
        source: &str,
    ) -> Result<(), StoreError> {
        self.run("key_learn", async {
            let q = "INSERT INTO correspondent_keys \
                 (address, fingerprint, cert, source, first_seen, last_seen) \
                 VALUES ($1, $2, $3, $4, $5, $5) \
                 ON CONFLICT (address, fingerprint) DO UPDATE SET \
                 cert = excluded.cert, source = excluded.source, last_seen = excluded.last_seen";
            on_pool!(self, write, |pool| {
                sqlx::query(q)
                    .bind(address)
                    .bind(fingerprint)
                    .bind(cert)
                    .bind(source)
                    .bind(now())
                    .execute(pool)
                    .await
                    .map(|r| r.rows_affected())
            })?;
            Ok(())
        })
        .await
    }

    /// Every key learned for `address`, most recently seen first.
    pub async fn learned_keys(&self, address: &str) -> Result<Vec<LearnedKey>, StoreError> {
        self.run("key_list", async {
            let q = "SELECT address, fingerprint, cert, source, first_seen, last_seen \
                 FROM correspondent_keys WHERE address = $1 \
                 ORDER BY last_seen DESC, fingerprint";
            let rows: Vec<Row> = on_pool!(self, read, |pool| {
                sqlx::query_as(q).bind(address).fetch_all(pool).await
            })?;
            Ok(rows
                .into_iter()
                .map(|r| LearnedKey {
                    address: r.0,
                    fingerprint: r.1,
                    cert: r.2,
                    source: r.3,
                    first_seen: r.4,
                    last_seen: r.5,
                })
                .collect())
        })
        .await
    }
}
