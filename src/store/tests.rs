//! The store on SQLite: migrations, identities, learned keys, the replay
//! record. Both back ends together are tested in `tests/store.rs`.

use std::time::Duration;

use super::*;

async fn fresh() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir.path().join("s.db"));
    let store = Store::open(&Options::new(url)).await.unwrap();
    (dir, store)
}

#[tokio::test]
async fn opens_migrates_and_reopens() {
    let (dir, store) = fresh().await;
    assert_eq!(store.backend(), "sqlite");
    let known = SQLITE_MIGRATIONS.iter().map(|m| m.version).max().unwrap();
    assert_eq!(store.schema_version().await.unwrap(), known);
    store.ping().await.unwrap();
    let mode: (String,) = sqlx::query_as("PRAGMA journal_mode")
        .fetch_one(match &store.pools {
            Pools::Sqlite { write, .. } => write,
            Pools::Postgres(_) => unreachable!(),
        })
        .await
        .unwrap();
    assert_eq!(mode.0, "wal");
    store.close().await;
    // Opening again applies nothing new and keeps the rows.
    let url = sqlite_url(&dir.path().join("s.db"));
    let again = Store::open(&Options::new(url)).await.unwrap();
    assert_eq!(again.schema_version().await.unwrap(), known);
}

#[tokio::test]
async fn a_newer_schema_is_refused() {
    let (dir, store) = fresh().await;
    on_pool!(store, write, |pool| {
        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (99990101, 'from the future', TRUE, X'00', 0)",
        )
        .execute(pool)
        .await
        .map(|r| r.rows_affected())
    })
    .unwrap();
    store.close().await;
    let url = sqlite_url(&dir.path().join("s.db"));
    let err = Store::open(&Options::new(url)).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::NewerSchema {
                found: 99990101,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("newer than this sotto knows"),
        "{err}"
    );
}

#[tokio::test]
async fn identity_insert_if_absent_keeps_the_first() {
    let (_dir, store) = fresh().await;
    assert!(store.identity("a@x").await.unwrap().is_none());
    let first = store
        .insert_identity_if_absent("a@x", "AAAA", b"locked one")
        .await
        .unwrap();
    assert_eq!((first.fingerprint.as_str(), first.generation), ("AAAA", 1));
    let second = store
        .insert_identity_if_absent("a@x", "BBBB", b"locked two")
        .await
        .unwrap();
    assert_eq!(second.fingerprint, "AAAA");
    assert_eq!(second.tsk, b"locked one");

    // Rotation needs the generation read; a stale one changes nothing.
    assert!(!store.rotate_identity("a@x", 7, "CCCC", b"c").await.unwrap());
    assert!(store.rotate_identity("a@x", 1, "CCCC", b"c").await.unwrap());
    let now = store.identity("a@x").await.unwrap().unwrap();
    assert_eq!((now.fingerprint.as_str(), now.generation), ("CCCC", 2));
    assert!(now.rotated.is_some() && now.revoked.is_none());
    let changed = store.identities_changed_since(0).await.unwrap();
    assert_eq!(changed, [("a@x".to_string(), 2)]);

    assert!(store.revoke_identity("a@x").await.unwrap());
    assert!(!store.revoke_identity("a@x").await.unwrap());
    let revoked = store.identity("a@x").await.unwrap().unwrap();
    assert!(revoked.revoked.is_some());
    assert_eq!(revoked.generation, 3);
    assert!(store.list_identities().await.unwrap().is_empty());
}

#[tokio::test]
async fn learned_keys_keep_first_seen() {
    let (_dir, store) = fresh().await;
    store
        .learn_key("b@y", "F1", b"cert v1", "wkd")
        .await
        .unwrap();
    let first = store.learned_keys("b@y").await.unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].source, "wkd");
    store
        .learn_key("b@y", "F1", b"cert v2", "autocrypt")
        .await
        .unwrap();
    store.learn_key("b@y", "F2", b"other", "pep").await.unwrap();
    let all = store.learned_keys("b@y").await.unwrap();
    assert_eq!(all.len(), 2);
    let f1 = all.iter().find(|k| k.fingerprint == "F1").unwrap();
    assert_eq!(f1.cert, b"cert v2");
    assert_eq!(f1.source, "autocrypt");
    assert_eq!(f1.first_seen, first[0].first_seen);
    assert!(f1.last_seen >= first[0].last_seen);
    assert!(store.learned_keys("nobody@y").await.unwrap().is_empty());
}

#[tokio::test]
async fn replay_record_is_bounded_and_expires() {
    let (_dir, store) = fresh().await;
    let day = Duration::from_secs(86_400);
    assert!(store.first_sighting(b"one", day).await.unwrap());
    assert!(!store.first_sighting(b"one", day).await.unwrap());
    assert!(store.first_sighting(b"two", day).await.unwrap());
    // An expired record no longer counts.
    assert!(store.first_sighting(b"old", Duration::ZERO).await.unwrap());
    assert!(store.first_sighting(b"old", day).await.unwrap());
    assert!(!store.first_sighting(b"old", day).await.unwrap());
    for i in 0..10u8 {
        store.first_sighting(&[b'n', i], day).await.unwrap();
    }
    let gone = store.prune_replay(5).await.unwrap();
    assert_eq!(gone, 8);
    let (left,): (i64,) = on_pool!(store, read, |pool| {
        sqlx::query_as("SELECT COUNT(*) FROM ox_replay")
            .fetch_one(pool)
            .await
    })
    .unwrap();
    assert_eq!(left, 5);
}

#[tokio::test]
async fn bad_urls_are_refused() {
    for url in ["mysql://x/y", "", "/var/lib/sotto.db"] {
        assert!(matches!(
            Store::open_lazy(&Options::new(url)),
            Err(StoreError::BadUrl(_))
        ));
    }
}

#[tokio::test]
async fn autocrypt_state_keeps_the_newest_by_message_date() {
    let (_dir, store) = fresh().await;
    let a = "bob@outside.example";
    assert_eq!(store.autocrypt_peer(a).await.unwrap(), None);
    store
        .autocrypt_seen(a, 100, Some((b"k1", true)))
        .await
        .unwrap();
    // An older message (delivered late) changes nothing.
    store
        .autocrypt_seen(a, 50, Some((b"k0", false)))
        .await
        .unwrap();
    let p = store.autocrypt_peer(a).await.unwrap().unwrap();
    assert_eq!(
        (
            p.last_seen,
            p.autocrypt_timestamp,
            p.public_key.as_deref(),
            p.prefer_mutual
        ),
        (100, Some(100), Some(&b"k1"[..]), true)
    );
    // A newer message without a header: only last_seen moves.
    store.autocrypt_seen(a, 200, None).await.unwrap();
    let p = store.autocrypt_peer(a).await.unwrap().unwrap();
    assert_eq!((p.last_seen, p.autocrypt_timestamp), (200, Some(100)));
    // Gossip: newest wins, and does not count as seeing the peer.
    store.autocrypt_gossip("dave@x", 30, b"g1").await.unwrap();
    store.autocrypt_gossip("dave@x", 20, b"g0").await.unwrap();
    let d = store.autocrypt_peer("dave@x").await.unwrap().unwrap();
    assert_eq!(
        (
            d.last_seen,
            d.gossip_timestamp,
            d.gossip_key.as_deref(),
            d.public_key
        ),
        (0, Some(30), Some(&b"g1"[..]), None)
    );
}
