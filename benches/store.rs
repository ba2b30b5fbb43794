//! The state store on each back end, side by side in one run: how many
//! identities (chat users' keys: made, encrypted at rest, inserted if
//! absent in one transaction) each creates per second, 8 at a time, and what
//! reading one costs — from the store (a query) and from the in-memory
//! cache that the per-message path reads. SQLite is a file in a temporary
//! directory; PostgreSQL a private cluster on 127.0.0.1 (Debian's
//! `postgresql`, which `tests/run` installs).
//!
//! `cargo bench --bench store`; `STORE_BENCH_IDENTITIES` (default 200).

#[path = "../tests/common/postgres.rs"]
mod postgres;

use std::sync::Arc;
use std::time::Instant;

use sotto::openpgp::identities::Identities;
use sotto::store::{Options, Store, sqlite_url};

const PASS: &str = "store passphrase for the benchmark";
const CONCURRENCY: usize = 8;

struct Figures {
    created_per_s: f64,
    query_us: f64,
    cached_us: f64,
}

async fn measure(url: &str, n: usize) -> Figures {
    let store = Store::open(&Options::new(url)).await.expect("open");
    let keys = Arc::new(Identities::new(store, PASS.into()));
    let t = Instant::now();
    let mut next = 0;
    while next < n {
        let batch: Vec<_> = (next..(next + CONCURRENCY).min(n))
            .map(|i| {
                let keys = keys.clone();
                tokio::spawn(async move {
                    keys.get_or_create(&format!("user{i}@example.org"))
                        .await
                        .expect("an identity")
                        .fingerprint()
                })
            })
            .collect();
        for b in batch {
            b.await.expect("task");
        }
        next += CONCURRENCY;
    }
    let created_per_s = n as f64 / t.elapsed().as_secs_f64();
    let stored = keys.store().list_identities().await.expect("list");
    assert_eq!(stored.len(), n, "every identity is stored once");
    let t = Instant::now();
    for i in 0..n {
        let row = keys
            .store()
            .identity(&format!("user{i}@example.org"))
            .await
            .expect("query");
        assert!(row.is_some());
    }
    let query_us = t.elapsed().as_secs_f64() * 1e6 / n as f64;
    let t = Instant::now();
    for i in 0..n {
        let key = keys
            .get(&format!("user{i}@example.org"))
            .await
            .expect("cache");
        assert!(key.is_some());
    }
    let cached_us = t.elapsed().as_secs_f64() * 1e6 / n as f64;
    keys.store().close().await;
    Figures {
        created_per_s,
        query_us,
        cached_us,
    }
}

fn main() {
    let n: usize = std::env::var("STORE_BENCH_IDENTITIES")
        .ok()
        .map(|v| v.parse().expect("STORE_BENCH_IDENTITIES: a number"))
        .unwrap_or(200);
    let dir = tempfile::tempdir().expect("tempdir");
    let pg = postgres::Postgres::start();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let rows = rt.block_on(async {
        vec![
            (
                "SQLite",
                measure(&sqlite_url(&dir.path().join("sotto.db")), n).await,
            ),
            ("PostgreSQL", measure(&pg.database(), n).await),
        ]
    });
    println!(
        "\n{n} identities, {CONCURRENCY} at a time, {} CPUs",
        std::thread::available_parallelism().map_or(1, |c| c.get())
    );
    println!(
        "{:<12} {:>14} {:>16} {:>16}",
        "", "created/s", "read, query µs", "read, cache µs"
    );
    for (name, f) in &rows {
        println!(
            "{name:<12} {:>14.1} {:>16.1} {:>16.2}",
            f.created_per_s, f.query_us, f.cached_us
        );
    }
}
