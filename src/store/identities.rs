//! Local identities: one row per local user (bare address or JID,
//! lower-case), holding the fingerprint and the transferable secret key
//! whose secret parts the caller encrypted (the store never sees them in
//! clear). Making one is insert-if-absent in one transaction, so two
//! replicas racing for a new user end with one key, and both read it.

use super::{Store, StoreError, now, on_pool};

/// One stored identity.
#[derive(Clone)]
pub struct Identity {
    pub address: String,
    /// Upper-case hex fingerprint.
    pub fingerprint: String,
    /// The transferable secret key, secret parts encrypted (OpenPGP
    /// passphrase protection).
    pub tsk: Vec<u8>,
    pub created: i64,
    pub rotated: Option<i64>,
    pub revoked: Option<i64>,
    /// Bumped on every change of the row.
    pub generation: i64,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("fingerprint", &self.fingerprint)
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

type Row = (String, String, Vec<u8>, i64, Option<i64>, Option<i64>, i64);

const COLUMNS: &str = "address, fingerprint, tsk, created, rotated, revoked, generation";

fn identity(r: Row) -> Identity {
    Identity {
        address: r.0,
        fingerprint: r.1,
        tsk: r.2,
        created: r.3,
        rotated: r.4,
        revoked: r.5,
        generation: r.6,
    }
}

impl Store {
    /// The identity of `address`, if there is one (revoked ones included).
    pub async fn identity(&self, address: &str) -> Result<Option<Identity>, StoreError> {
        self.run("identity_get", async {
            let q = format!("SELECT {COLUMNS} FROM identities WHERE address = $1");
            let row: Option<Row> = on_pool!(self, read, |pool| {
                sqlx::query_as(&q).bind(address).fetch_optional(pool).await
            })?;
            Ok(row.map(identity))
        })
        .await
    }

    /// Stores `fingerprint`/`tsk` as `address`'s identity unless it has one
    /// already, in one transaction; returns the identity that holds after
    /// it — the one given, or the one another process stored first.
    pub async fn insert_identity_if_absent(
        &self,
        address: &str,
        fingerprint: &str,
        tsk: &[u8],
    ) -> Result<Identity, StoreError> {
        self.run("identity_insert", async {
            let t = now();
            let insert = "INSERT INTO identities \
                 (address, fingerprint, tsk, created, generation, changed) \
                 VALUES ($1, $2, $3, $4, 1, $4) ON CONFLICT (address) DO NOTHING";
            let select = format!("SELECT {COLUMNS} FROM identities WHERE address = $1");
            let row: Row = on_pool!(self, write, |pool| {
                let mut tx = pool.begin().await?;
                sqlx::query(insert)
                    .bind(address)
                    .bind(fingerprint)
                    .bind(tsk)
                    .bind(t)
                    .execute(&mut *tx)
                    .await?;
                let row = sqlx::query_as(&select)
                    .bind(address)
                    .fetch_one(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok::<_, sqlx::Error>(row)
            })?;
            Ok(identity(row))
        })
        .await
    }

    /// Replaces `address`'s key with a new one (rotation), or clears a
    /// revocation by giving it a new key. `false` if `address` has no
    /// identity, or its generation is no longer `generation` (someone else
    /// changed it first).
    pub async fn rotate_identity(
        &self,
        address: &str,
        generation: i64,
        fingerprint: &str,
        tsk: &[u8],
    ) -> Result<bool, StoreError> {
        self.run("identity_rotate", async {
            let q = "UPDATE identities SET fingerprint = $3, tsk = $4, rotated = $5, \
                 revoked = NULL, generation = generation + 1, changed = $5 \
                 WHERE address = $1 AND generation = $2";
            let done = on_pool!(self, write, |pool| {
                sqlx::query(q)
                    .bind(address)
                    .bind(generation)
                    .bind(fingerprint)
                    .bind(tsk)
                    .bind(now())
                    .execute(pool)
                    .await
                    .map(|r| r.rows_affected())
            })?;
            Ok(done == 1)
        })
        .await
    }

    /// Stores a new `tsk` for the same key of `address` (a user ID added):
    /// `false` if its generation is no longer `generation`.
    pub async fn update_identity_tsk(
        &self,
        address: &str,
        generation: i64,
        tsk: &[u8],
    ) -> Result<bool, StoreError> {
        self.run("identity_update", async {
            let q = "UPDATE identities SET tsk = $3, generation = generation + 1, changed = $4 \
                 WHERE address = $1 AND generation = $2";
            let done = on_pool!(self, write, |pool| {
                sqlx::query(q)
                    .bind(address)
                    .bind(generation)
                    .bind(tsk)
                    .bind(now())
                    .execute(pool)
                    .await
                    .map(|r| r.rows_affected())
            })?;
            Ok(done == 1)
        })
        .await
    }

    /// Marks `address`'s identity revoked and stores `tsk`, its key with
    /// the revocation signature (what is published from then on): `false`
    /// if its generation is no longer `generation`.
    pub async fn revoke_identity_with(
        &self,
        address: &str,
        generation: i64,
        tsk: &[u8],
    ) -> Result<bool, StoreError> {
        self.run("identity_revoke", async {
            let q = "UPDATE identities SET tsk = $3, revoked = $4, generation = generation + 1, \
                 changed = $4 WHERE address = $1 AND generation = $2 AND revoked IS NULL";
            let done = on_pool!(self, write, |pool| {
                sqlx::query(q)
                    .bind(address)
                    .bind(generation)
                    .bind(tsk)
                    .bind(now())
                    .execute(pool)
                    .await
                    .map(|r| r.rows_affected())
            })?;
            Ok(done == 1)
        })
        .await
    }

    /// Marks `address`'s identity revoked: it is no longer used, and the
    /// next need for it makes a new key. `false` if there is none.
    pub async fn revoke_identity(&self, address: &str) -> Result<bool, StoreError> {
        self.run("identity_revoke", async {
            let q = "UPDATE identities SET revoked = $2, generation = generation + 1, \
                 changed = $2 WHERE address = $1 AND revoked IS NULL";
            let done = on_pool!(self, write, |pool| {
                sqlx::query(q)
                    .bind(address)
                    .bind(now())
                    .execute(pool)
                    .await
                    .map(|r| r.rows_affected())
            })?;
            Ok(done == 1)
        })
        .await
    }

    /// Every identity's address, fingerprint and generation.
    pub async fn list_identities(&self) -> Result<Vec<(String, String, i64)>, StoreError> {
        self.run("identity_list", async {
            let q = "SELECT address, fingerprint, generation FROM identities \
                 WHERE revoked IS NULL ORDER BY address";
            let rows = on_pool!(self, read, |pool| {
                sqlx::query_as(q).fetch_all(pool).await
            })?;
            Ok(rows)
        })
        .await
    }

    /// The identities changed at or after `since` (Unix seconds): address
    /// and generation. What caches on other processes poll to notice a
    /// rotation or revocation.
    pub async fn identities_changed_since(
        &self,
        since: i64,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        self.run("identity_changes", async {
            let q = "SELECT address, generation FROM identities WHERE changed >= $1";
            let rows = on_pool!(self, read, |pool| {
                sqlx::query_as(q).bind(since).fetch_all(pool).await
            })?;
            Ok(rows)
        })
        .await
    }
}
