//! How every process's cache notices identities another process changed
//! (rotated, revoked, a user ID added): by polling the store. Each change
//! is also announced to [`Identities::changes`] subscribers (e.g. the chat
//! side, which republishes a revoked key on PEP).

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::{Identities, WATCH_INTERVAL};

impl Identities {
    /// Polls the store every [`WATCH_INTERVAL`] until `shutdown` for
    /// identities changed (rotated, revoked) by any process, and drops
    /// their cached keys whose generation is older. A poll that fails is
    /// tried again; its window covers the time missed.
    pub fn watch(self: &Arc<Self>, shutdown: CancellationToken) {
        let me = self.clone();
        tokio::spawn(async move {
            // Overlap covers commits that land late and clock skew between
            // replicas (times are each writer's clock).
            const OVERLAP: i64 = 60;
            let mut since = crate::store::now() - OVERLAP;
            // The generation last announced per address: the overlap
            // window sees a change several times.
            let mut announced: std::collections::HashMap<String, i64> =
                std::collections::HashMap::new();
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(WATCH_INTERVAL) => {}
                }
                let started = crate::store::now();
                match me.store.identities_changed_since(since).await {
                    Ok(changed) => {
                        for (jid, generation) in changed {
                            me.invalidate_older(&jid, generation);
                            if announced.insert(jid.clone(), generation) != Some(generation) {
                                let _ = me.changes.send(jid);
                            }
                        }
                        since = started - OVERLAP;
                    }
                    Err(e) => tracing::debug!(event = "user_keys_watch_failed", error = %e),
                }
            }
        });
    }

    /// Addresses whose identity changes from now on (rotated, revoked, a
    /// user ID added), seen by [`Identities::watch`] within
    /// [`WATCH_INTERVAL`]; a lagging receiver misses some.
    pub fn changes(&self) -> tokio::sync::broadcast::Receiver<String> {
        self.changes.subscribe()
    }

    pub(super) fn invalidate_older(&self, jid: &str, generation: i64) {
        let mut cells = self.cells.lock().unwrap_or_else(|e| e.into_inner());
        let stale = cells
            .get(jid)
            .and_then(|c| c.get())
            .is_some_and(|k| k.generation < generation);
        if stale {
            cells.remove(jid);
        }
    }
}
