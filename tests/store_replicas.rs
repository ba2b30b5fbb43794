//! Two sotto replicas (`serve` twice, in process) in front of one Prosody,
//! sharing one PostgreSQL store: alice and bob log in through both at once,
//! several times, and each ends with one key that both replicas use —
//! alice writes through one replica, bob reads through the other, and what
//! he gets was encrypted to and opened with the same keys. And the PEP
//! work: both replicas given the same two component names, each takes one
//! and publishes the keys of the users logged in through it.

#[path = "common/chatpeers.rs"]
mod chatpeers;
#[path = "common/chatsetup.rs"]
mod chatsetup;
mod common;

use chatpeers::*;
use chatsetup::ChatGateway;
use chatsetup::postgres::Postgres;
use common::prosody::XmppClient;
use sequoia_openpgp::Cert;
use sequoia_openpgp::parse::Parse as _;
use serde_json::json;

fn through(s: &Setup, gw: &ChatGateway, user: &str, resource: &str) -> XmppClient {
    XmppClient::new(
        &gw.starttls_addr().to_string(),
        &s.prosody.jid(user),
        &s.prosody.password(user),
    )
    .cafile(&gw.ca)
    .starttls()
    .resource(resource)
}

#[tokio::test(flavor = "multi_thread")]
async fn two_replicas_on_one_postgres_share_one_key_per_user() {
    let pg = Postgres::start();
    let url = pg.database();
    let u = url.clone();
    let s = setup_with(ENCRYPT_ALL, move |cfg| cfg.store.url = Some(u)).await;
    let keys = s.gpg.keys.clone();
    let u = url.clone();
    let two = ChatGateway::start(&s.prosody, ENCRYPT_ALL, move |cfg| {
        cfg.keys.dir = Some(keys);
        cfg.store.url = Some(u);
    })
    .await;

    // First logins, all at once, through both replicas.
    let mut logins = Vec::new();
    for i in 0..4 {
        for user in ["alice", "bob"] {
            for (g, gw) in [(1, &s.gw), (2, &two)] {
                let c = through(&s, gw, user, &format!("r{i}-{g}"));
                logins.push(tokio::spawn(async move {
                    c.run(&json!([])).await.assert_ok();
                }));
            }
        }
    }
    for l in logins {
        l.await.unwrap();
    }
    // Both users' keys are in the shared store (made at login).
    let db = url.rsplit('/').next().unwrap();
    eventually_rows(&pg, db, 2).await;

    // alice through replica one to bob on replica two, and back.
    let receiver = through(&s, &two, "bob", "phone");
    let mut bob = receiver.spawn(&json!([{ "op": "wait", "count": 1 }])).await;
    bob.wait_event("ready").await;
    through(&s, &s.gw, "alice", "laptop")
        .run(&json!([{ "op": "send", "to": "bob@example.org", "body": "across replicas 6601" }]))
        .await
        .assert_ok();
    let bob = bob.finish().await.assert_ok();
    let got = bob.messages();
    assert_eq!(got.len(), 1, "{}", bob.transcript());
    assert_eq!(
        got[0]["body"],
        "across replicas 6601",
        "{}",
        bob.transcript()
    );
    let xml = got[0]["xml"].as_str().unwrap();
    assert!(
        xml.contains("encrypted-in-transit"),
        "opened by replica two: {xml}"
    );
    let archive = s.prosody.archive("bob");
    assert!(archive.iter().all(|m| !m.contains("6601")), "{archive:?}");
}

async fn eventually_rows(pg: &Postgres, db: &str, want: usize) {
    for _ in 0..300 {
        let n: usize = pg
            .sql_in(db, "SELECT COUNT(*) FROM identities")
            .trim()
            .parse()
            .unwrap_or(0);
        assert!(n <= want, "{n} identities for {want} users");
        if n == want {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the logins never made the users' keys");
}

#[tokio::test(flavor = "multi_thread")]
async fn two_replicas_share_the_pep_work_with_a_component_name_each() {
    let pg = Postgres::start();
    let url = pg.database();
    let u = url.clone();
    // Prosody declares sotto-1 and sotto-2, each with the privilege; both
    // replicas get the same configuration, listing both names.
    let s = setup_components(ENCRYPT_ALL, 2, move |cfg| cfg.store.url = Some(u)).await;
    let keys = s.gpg.keys.clone();
    let u = url.clone();
    let two = ChatGateway::start(&s.prosody, ENCRYPT_ALL, |cfg| {
        cfg.keys.dir = Some(keys);
        cfg.store.url = Some(u);
        pep_config(&s.prosody, cfg);
    })
    .await;

    // alice only ever logs in through replica one, bob through replica
    // two: each key on PEP was published by that replica's component.
    // (A login whose publication found the connection still coming up is
    // published again at the next login.)
    let mut found = std::collections::BTreeMap::new();
    for (user, gw) in [("alice", &s.gw), ("bob", &two)] {
        for _ in 0..50 {
            through(&s, gw, user, "desk")
                .run(&json!([]))
                .await
                .assert_ok();
            if let Some(fpr) = s.listed_fingerprint(&format!("{user}@example.org")).await {
                found.insert(user, fpr);
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        assert!(
            found.contains_key(user),
            "{user}'s key never reached PEP through its replica\n{}",
            s.prosody.log()
        );
    }
    // What PEP lists is each user's one identity in the shared store.
    for (user, fpr) in &found {
        let stored =
            s.gw.stored_key(&format!("{user}@example.org"))
                .expect("identity in the store");
        let cert = Cert::from_bytes(&stored).unwrap();
        assert_eq!(&cert.fingerprint().to_hex(), fpr, "{user}");
    }
    // Prosody saw both names authenticated, one per replica.
    let log = s.prosody.log();
    for name in ["sotto-1.example.org", "sotto-2.example.org"] {
        assert!(
            log.lines()
                .any(|l| l.contains(name) && l.contains("authenticated")),
            "{name} never connected:\n{log}"
        );
    }
}
