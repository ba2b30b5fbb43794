//! Chat on its way in through sotto, and keys over PEP, with real peers
//! (see `common/chatpeers.rs`):
//!
//! - incoming `<openpgp/>` is opened for the user only when it is signed by
//!   the sender's key and addressed to the user, else delivered as it came;
//! - carbons and the archive, read through sotto, are plain for the user
//!   (and ciphertext on the server);
//! - an outside client publishes its key on PEP, alice writes to it through
//!   sotto, and it reads alice's key from her PEP node (published by sotto's
//!   component) and verifies.

#[path = "common/chatpeers.rs"]
mod chatpeers;
#[path = "common/chatsetup.rs"]
mod chatsetup;
mod common;

use base64::Engine;
use chatpeers::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn incoming_openpgp_is_opened_for_the_user_only_when_it_verifies() {
    let s = setup(ENCRYPT_ALL).await;
    // alice's key exists once she has written (sotto makes it on first need).
    s.inside("alice")
        .run(&json!([{ "op": "send", "to": "bob@example.org", "body": "first" }]))
        .await
        .assert_ok();
    let alice_key = s.key_file("alice@example.org");
    let good = carol_seals(
        &s,
        &alice_key,
        &signcrypt("alice@example.org", "from carol, marker-9911"),
        true,
    );
    let unsigned = carol_seals(
        &s,
        &alice_key,
        &signcrypt("alice@example.org", "unsigned marker-9912"),
        false,
    );
    let misaddressed = carol_seals(
        &s,
        &alice_key,
        &signcrypt("eve@example.org", "for eve marker-9913"),
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
            { "op": "raw", "xml": stanza("good", &good) },
            { "op": "raw", "xml": stanza("unsigned", &unsigned) },
            { "op": "raw", "xml": stanza("misaddressed", &misaddressed) }
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
    let good = by_id("good");
    assert_eq!(
        good["body"],
        "from carol, marker-9911",
        "{}",
        alice.transcript()
    );
    assert!(
        good["xml"]
            .as_str()
            .unwrap()
            .contains("encrypted-in-transit")
    );
    // Not signed, or not addressed to alice: delivered as it came.
    for id in ["unsigned", "misaddressed"] {
        let m = by_id(id);
        assert_eq!(m["body"], "This message is encrypted.", "{m}");
        assert!(m["xml"].as_str().unwrap().contains("<openpgp"), "{m}");
        assert!(
            !m["xml"].as_str().unwrap().contains("encrypted-in-transit"),
            "{m}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn carbons_and_the_archive_read_through_sotto_are_plain_for_the_user() {
    let s = setup(ENCRYPT_ALL).await;
    let mut laptop = s
        .inside("alice")
        .resource("laptop")
        .carbons()
        .spawn(&json!([{ "op": "wait", "count": 1, "any": true }]))
        .await;
    laptop.wait_event("carbons_enabled").await;
    laptop.wait_event("ready").await;
    s.inside("alice")
        .resource("phone")
        .carbons()
        .run(&json!([{ "op": "send", "to": "bob@example.org", "body": "sent from the phone marker-3131" }]))
        .await
        .assert_ok();
    let laptop = laptop.finish().await.assert_ok();
    let carbon = laptop
        .messages()
        .into_iter()
        .find(|m| m["carbon"] == "sent")
        .unwrap_or_else(|| panic!("a sent carbon: {}", laptop.transcript()))
        .clone();
    assert_eq!(
        carbon["body"], "sent from the phone marker-3131",
        "{carbon}"
    );

    // alice's archive through sotto: plain; straight from Prosody: ciphertext.
    let through = s
        .inside("alice")
        .resource("archive")
        .no_presence()
        .run(&json!([{ "op": "mam" }]))
        .await
        .assert_ok();
    let results = through.events("mam")[0]["results"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(results.len(), 1, "{}", through.transcript());
    let xml = results[0]["xml"].as_str().unwrap();
    assert!(xml.contains("sent from the phone marker-3131"), "{xml}");
    let direct = s.prosody.archive("alice");
    assert_eq!(direct.len(), 1);
    assert!(
        !direct[0].contains("marker-3131") && direct[0].contains("openpgp"),
        "{}",
        direct[0]
    );
}

const OX_META: &str = "urn:xmpp:openpgp:0:public-keys";

#[tokio::test(flavor = "multi_thread")]
async fn keys_travel_over_pep_both_ways() {
    let s = setup_full(ENCRYPT_ALL, true, |_| {}).await;
    // frank (outside, not in sotto's key directory) publishes his own key
    // from his client, as XEP-0373 says.
    let frank = format!("frank@{OUTSIDE}");
    let fpr = chat_key(&s.gpg, &frank);
    let public = s
        .gpg
        .cmd()
        .args(["--export", &fpr])
        .output()
        .unwrap()
        .stdout;
    let b64 = base64::engine::general_purpose::STANDARD.encode(&public);
    let date = "2026-11-01T10:00:00Z";
    s.outside("frank")
        .no_presence()
        .run(&json!([
            { "op": "publish", "node": format!("{OX_META}:{fpr}"), "id": date, "access_model": "open",
              "xml": format!("<pubkey xmlns='urn:xmpp:openpgp:0' date='{date}'><data>{b64}</data></pubkey>") },
            { "op": "publish", "node": OX_META, "access_model": "open",
              "xml": format!("<public-keys-list xmlns='urn:xmpp:openpgp:0'><pubkey-metadata v4-fingerprint='{fpr}' date='{date}'/></public-keys-list>") }
        ]))
        .await
        .assert_ok();

    let mut inbox = s
        .outside("frank")
        .resource("inbox")
        .spawn(&json!([{ "op": "wait", "count": 1 }]))
        .await;
    inbox.wait_event("ready").await;
    // alice logs in through sotto and writes to frank: sotto finds frank's
    // key on his PEP node, and publishes alice's on hers.
    s.inside("alice")
        .run(&json!([{ "op": "send", "to": frank, "body": "over pep marker-7070" }]))
        .await
        .assert_ok();
    let inbox = inbox.finish().await.assert_ok();
    let xml = inbox.messages()[0]["xml"].as_str().unwrap().to_string();
    assert!(
        xml.contains("<openpgp") && !xml.contains("marker-7070"),
        "{xml}"
    );

    // frank's client finds alice's key where XEP-0373 says, published by
    // sotto's component (not over alice's stream), and it verifies the message.
    let mut alice_fpr = None;
    for _ in 0..50 {
        let run = s
            .outside("frank")
            .no_presence()
            .run(&json!([{ "op": "fetch", "jid": "alice@example.org", "node": OX_META }]))
            .await;
        let text = run
            .events("items")
            .first()
            .map(|i| i["items"].to_string())
            .unwrap_or_default();
        if let Some(i) = text.find("v4-fingerprint=") {
            let rest = &text[i + "v4-fingerprint=".len()..];
            let rest = rest.trim_start_matches(['\\', '"', '\'']);
            alice_fpr = Some(rest[..40].to_string());
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let alice_fpr = alice_fpr.expect("alice's key listed on her PEP node");
    let key_items = s
        .outside("frank")
        .no_presence()
        .run(&json!([{ "op": "fetch", "jid": "alice@example.org", "node": format!("{OX_META}:{alice_fpr}") }]))
        .await
        .assert_ok();
    let items = key_items.events("items")[0]["items"].to_string();
    let data_at = items.find("<data>").expect("a <data> element") + "<data>".len();
    let data_end = data_at + items[data_at..].find("</data>").unwrap();
    let alice_public = base64::engine::general_purpose::STANDARD
        .decode(items[data_at..data_end].trim())
        .unwrap();
    let frank_secret = s.gpg.home.path().join("frank-secret.asc");
    std::fs::write(&frank_secret, s.gpg.secret(&frank)).unwrap();
    let (plain, status) = gpg_decrypt(&frank_secret, "", Some(&alice_public), &openpgp_of(&xml));
    assert!(plain.contains("over pep marker-7070"), "{plain}");
    assert!(status.contains("GOODSIG"), "{status}");
    assert!(
        status.contains(&alice_fpr.to_uppercase()),
        "signed by the published key: {status}"
    );
}
