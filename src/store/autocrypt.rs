//! Autocrypt Level 1 peer state (section 2.3): per correspondent address,
//! `last_seen`, `autocrypt_timestamp` with the key and `prefer-encrypt` of
//! the newest `Autocrypt:` header, and `gossip_timestamp` with the newest
//! gossiped key. Each update is one conditional statement, so replicas
//! learning from messages at once keep the newest values (Level 1's rules
//! are monotonic in the message dates).

use super::{Store, StoreError, on_pool};

/// What is known about one correspondent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub address: String,
    /// Effective date of the newest message from them.
    pub last_seen: i64,
    /// Effective date of the newest message with an `Autocrypt:` header.
    pub autocrypt_timestamp: Option<i64>,
    /// The key of that header (binary OpenPGP).
    pub public_key: Option<Vec<u8>>,
    pub prefer_mutual: bool,
    pub gossip_timestamp: Option<i64>,
    pub gossip_key: Option<Vec<u8>>,
}

type Row = (
    String,
    i64,
    Option<i64>,
    Option<Vec<u8>>,
    i64,
    Option<i64>,
    Option<Vec<u8>>,
);

pub(super) const COLUMNS: &str = "address, last_seen, autocrypt_timestamp, public_key, prefer_encrypt, gossip_timestamp, gossip_key";

impl Store {
    /// A message from `address` dated `date` (its effective date), with
    /// its `Autocrypt:` header's key and prefer-encrypt if it had a valid
    /// one for that address: `last_seen` and, if newer, the Autocrypt
    /// state are updated.
    pub async fn autocrypt_seen(
        &self,
        address: &str,
        date: i64,
        header: Option<(&[u8], bool)>,
    ) -> Result<(), StoreError> {
        self.run("autocrypt_seen", async {
            on_pool!(self, write, |pool| async {
                let mut tx = pool.begin().await?;
                sqlx::query(
                    "INSERT INTO autocrypt_peers (address, last_seen) VALUES ($1, $2) \
                     ON CONFLICT (address) DO UPDATE SET last_seen = excluded.last_seen \
                     WHERE autocrypt_peers.last_seen < excluded.last_seen",
                )
                .bind(address)
                .bind(date)
                .execute(&mut *tx)
                .await?;
                if let Some((key, mutual)) = header {
                    sqlx::query(
                        "UPDATE autocrypt_peers SET public_key = $2, prefer_encrypt = $3, \
                         autocrypt_timestamp = $4 WHERE address = $1 AND \
                         (autocrypt_timestamp IS NULL OR autocrypt_timestamp < $4)",
                    )
                    .bind(address)
                    .bind(key)
                    .bind(i64::from(mutual))
                    .bind(date)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await
            }
            .await)?;
            Ok(())
        })
        .await
    }

    /// A key gossiped for `address` in a message dated `date`: kept if
    /// newer than the last gossip.
    pub async fn autocrypt_gossip(
        &self,
        address: &str,
        date: i64,
        key: &[u8],
    ) -> Result<(), StoreError> {
        self.run("autocrypt_gossip", async {
            on_pool!(self, write, |pool| async {
                let mut tx = pool.begin().await?;
                // A peer only gossiped about has not been seen yet.
                sqlx::query(
                    "INSERT INTO autocrypt_peers (address, last_seen) VALUES ($1, 0) \
                     ON CONFLICT (address) DO NOTHING",
                )
                .bind(address)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "UPDATE autocrypt_peers SET gossip_key = $2, gossip_timestamp = $3 \
                     WHERE address = $1 AND (gossip_timestamp IS NULL OR gossip_timestamp < $3)",
                )
                .bind(address)
                .bind(key)
                .bind(date)
                .execute(&mut *tx)
                .await?;
                tx.commit().await
            }
            .await)?;
            Ok(())
        })
        .await
    }

    /// The Autocrypt state of `address`, if anything is known.
    pub async fn autocrypt_peer(&self, address: &str) -> Result<Option<Peer>, StoreError> {
        self.run("autocrypt_get", async {
            let q = format!("SELECT {COLUMNS} FROM autocrypt_peers WHERE address = $1");
            let row: Option<Row> = on_pool!(self, read, |pool| {
                sqlx::query_as(&q).bind(address).fetch_optional(pool).await
            })?;
            Ok(row.map(|r| Peer {
                address: r.0,
                last_seen: r.1,
                autocrypt_timestamp: r.2,
                public_key: r.3,
                prefer_mutual: r.4 != 0,
                gossip_timestamp: r.5,
                gossip_key: r.6,
            }))
        })
        .await
    }
}
