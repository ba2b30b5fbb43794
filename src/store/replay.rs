//! The OX replay record: digests of live OX messages already delivered to
//! a local user, each kept until it expires, at most `max` of them. A digest
//! seen again before it expires is a replay.

use std::time::Duration;

use super::{Store, StoreError, now, on_pool};

impl Store {
    /// Records `digest` as seen now until `ttl` has passed; `true` if it is
    /// new (never seen, or its record had expired), `false` for a replay.
    pub async fn first_sighting(&self, digest: &[u8], ttl: Duration) -> Result<bool, StoreError> {
        self.run("replay_check", async {
            let t = now();
            let expires = t.saturating_add(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2));
            let q = "INSERT INTO ox_replay (digest, seen, expires) VALUES ($1, $2, $3) \
                 ON CONFLICT (digest) DO UPDATE SET seen = excluded.seen, \
                 expires = excluded.expires WHERE ox_replay.expires <= excluded.seen";
            let done = on_pool!(self, write, |pool| {
                sqlx::query(q)
                    .bind(digest)
                    .bind(t)
                    .bind(expires)
                    .execute(pool)
                    .await
                    .map(|r| r.rows_affected())
            })?;
            Ok(done == 1)
        })
        .await
    }

    /// Drops expired records, then the oldest beyond `max`; how many went.
    pub async fn prune_replay(&self, max: u64) -> Result<u64, StoreError> {
        self.run("replay_prune", async {
            let max = i64::try_from(max).unwrap_or(i64::MAX);
            let expired = "DELETE FROM ox_replay WHERE expires <= $1";
            let over = "DELETE FROM ox_replay WHERE digest IN \
                 (SELECT digest FROM ox_replay ORDER BY seen DESC, digest LIMIT -1 OFFSET $1)";
            let over_pg = "DELETE FROM ox_replay WHERE digest IN \
                 (SELECT digest FROM ox_replay ORDER BY seen DESC, digest OFFSET $1)";
            let over = if self.backend == "postgres" {
                over_pg
            } else {
                over
            };
            let gone = on_pool!(self, write, |pool| {
                let a = sqlx::query(expired).bind(now()).execute(pool).await?;
                let b = sqlx::query(over).bind(max).execute(pool).await?;
                Ok::<_, sqlx::Error>(a.rows_affected() + b.rows_affected())
            })?;
            Ok(gone)
        })
        .await
    }
}
