//! The OX replay record end to end (real Prosody, slixmpp, GnuPG; see
//! `common/chatpeers.rs`): carol's signed OX message reaches alice through
//! sotto and is opened; the same ciphertext sent again as a new live
//! message is delivered as it came, not as new; a different message from
//! carol still opens.

#[path = "common/chatpeers.rs"]
mod chatpeers;
#[path = "common/chatsetup.rs"]
mod chatsetup;
mod common;

use chatpeers::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn a_replayed_signcrypt_is_not_delivered_as_new() {
    let s = setup(ENCRYPT_ALL).await;
    s.inside("alice")
        .run(&json!([{ "op": "send", "to": "bob@example.org", "body": "first" }]))
        .await
        .assert_ok();
    let alice_key = s.key_file("alice@example.org");
    let once = carol_seals(
        &s,
        &alice_key,
        &signcrypt("alice@example.org", "pay once marker-5501"),
        true,
    );
    let other = carol_seals(
        &s,
        &alice_key,
        &signcrypt("alice@example.org", "another marker-5502"),
        true,
    );
    let mut alice = s
        .inside("alice")
        .spawn(&json!([{ "op": "wait", "count": 3 }]))
        .await;
    alice.wait_event("ready").await;
    let stanza = |id: &str, b64: &str| {
        format!(
            "<message to='alice@example.org' type='chat' id='{id}'><openpgp xmlns='urn:xmpp:openpgp:0'>{b64}</openpgp>\
             <body>This message is encrypted.</body></message>"
        )
    };
    s.outside("carol")
        .run(&json!([
            { "op": "raw", "xml": stanza("first", &once) },
            { "op": "raw", "xml": stanza("again", &once) },
            { "op": "raw", "xml": stanza("other", &other) }
        ]))
        .await
        .assert_ok();
    let alice = alice.finish().await.assert_ok();
    let by_id = |id: &str| {
        alice
            .messages()
            .into_iter()
            .find(|m| m["id"] == id)
            .unwrap_or_else(|| panic!("no message {id}: {}", alice.transcript()))
            .clone()
    };
    let first = by_id("first");
    assert_eq!(first["body"], "pay once marker-5501", "{first}");
    let again = by_id("again");
    assert_eq!(again["body"], "This message is encrypted.", "{again}");
    let xml = again["xml"].as_str().unwrap();
    assert!(
        xml.contains("urn:xmpp:openpgp:0"),
        "delivered as it came: {xml}"
    );
    assert!(!xml.contains("encrypted-in-transit"), "{xml}");
    assert!(!xml.contains("marker-5501"), "{xml}");
    let other = by_id("other");
    assert_eq!(other["body"], "another marker-5502", "{other}");
}
