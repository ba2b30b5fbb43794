//! The policy set in force, replaced whole when the files change (watched)
//! or on SIGHUP. A set that fails to load is refused with one log line, and
//! the last good one stays; each transaction keeps the set it started with.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use notify::Watcher;
use tokio_util::sync::CancellationToken;

use super::PolicySet;
use crate::config::Problem;

/// The current policy set, shared by all sessions.
pub struct Policies {
    dir: Option<PathBuf>,
    current: RwLock<Arc<PolicySet>>,
}

impl Policies {
    /// Loads the set (from `dir`, or the shipped files).
    pub fn load(dir: Option<PathBuf>) -> Result<Arc<Policies>, Vec<Problem>> {
        let set = PolicySet::load(dir.as_deref())?;
        Ok(Arc::new(Policies {
            dir,
            current: RwLock::new(Arc::new(set)),
        }))
    }

    /// The set in force now.
    pub fn current(&self) -> Arc<PolicySet> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Reads the files again; keeps the old set when the new one fails.
    pub fn reload(&self) -> bool {
        match PolicySet::load(self.dir.as_deref()) {
            Ok(set) => {
                tracing::info!(event = "policy_reloaded", source = %set.source, rules = set.rule_count());
                metrics::counter!("sotto_policy_reloads_total", "result" => "ok").increment(1);
                *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(set);
                true
            }
            Err(problems) => {
                let first = problems.first().map(|p| p.to_string()).unwrap_or_default();
                metrics::counter!("sotto_policy_reloads_total", "result" => "refused").increment(1);
                tracing::warn!(
                    event = "policy_reload_refused",
                    problems = problems.len(),
                    first = %first,
                    "new policy files are invalid; the previous set stays in force"
                );
                false
            }
        }
    }

    /// Reloads when the policy directory changes (debounced) and on SIGHUP,
    /// until `shutdown`.
    pub fn watch(self: &Arc<Self>, shutdown: CancellationToken) {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        let mut watcher = None;
        if let Some(dir) = &self.dir {
            let tx = tx.clone();
            let w = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
                if res.is_ok_and(|e| !e.kind.is_access()) {
                    let _ = tx.send(());
                }
            });
            match w {
                Ok(mut w) => match w.watch(dir, notify::RecursiveMode::NonRecursive) {
                    Ok(()) => watcher = Some(w),
                    Err(e) => {
                        tracing::warn!(event = "policy_watch_failed", error = %e, "reload on SIGHUP only")
                    }
                },
                Err(e) => {
                    tracing::warn!(event = "policy_watch_failed", error = %e, "reload on SIGHUP only")
                }
            }
        }
        let me = self.clone();
        tokio::spawn(async move {
            let _watcher = watcher;
            let mut hup =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    Some(()) = rx.recv() => {
                        // Editors write in several steps: wait for quiet.
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        while rx.try_recv().is_ok() {}
                        me.reload();
                    }
                    Some(()) = async { match hup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => {
                        tracing::info!(event = "sighup");
                        me.reload();
                    }
                }
            }
        });
    }
}
