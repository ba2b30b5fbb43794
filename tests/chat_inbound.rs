//! Chat on its way in through sotto, and keys over PEP, with real peers
//! (see `common/chatpeers.rs`):
//!
//! - incoming `<openpgp/>` is opened for the user only when it is signed by
//!   the sender's key and addressed to the user, else delivered as it came,
//!   also when built as other clients build it (their signcrypt shapes and
//!   time stamps, their keys);
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

use sequoia_openpgp::parse::Parse as _;

use base64::Engine;
use chatpeers::*;
use common::prosody::{ClientRun, RunningClient};
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

    let alice = alice_waits_for(&s, 3).await;
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
    let by_id = |id: &str| message(&alice, id);
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

/// An OX message as another client builds it: Profanity's shape (libstrophe
/// serialisation, the time stamp with a `+0000` offset) from frank, whose
/// key is made as Profanity's guide says (`xmpp:` user ID alone), and
/// Gajim's (pretty-printed, the message's other children in the payload)
/// from carol, both signed and encrypted by GnuPG as gpgme-based clients
/// do. alice, behind sotto, reads the plain bodies; the server keeps
/// ciphertext; the same shape addressed to someone else stays sealed.
#[tokio::test(flavor = "multi_thread")]
async fn messages_built_as_other_clients_build_them_are_opened() {
    let frank = format!("frank@{OUTSIDE}");
    let frank_gpg = common::pgp::Gpg::new();
    let fpr = frank_gpg.generate_xmpp(&frank);
    let frank_public = frank_gpg.public(&fpr);
    // frank's key is in sotto's key directory before sotto starts.
    let s = setup_with(ENCRYPT_ALL, |cfg| {
        let dir = cfg.keys.dir.as_ref().unwrap();
        std::fs::write(dir.join("frank.asc"), &frank_public).unwrap();
    })
    .await;
    s.inside("alice")
        .run(&json!([{ "op": "send", "to": "bob@example.org", "body": "first" }]))
        .await
        .assert_ok();
    let alice_key = s.key_file("alice@example.org");
    let profanity = |to: &str, body: &str| {
        format!(
            "<signcrypt xmlns=\"urn:xmpp:openpgp:0\"><to jid=\"{to}\"/>\
             <time stamp=\"2026-11-23T14:00:00+0000\"/><rpad>ccc</rpad><payload>\
             <body xmlns=\"jabber:client\">{body}</body></payload></signcrypt>"
        )
    };
    let gajim = "<?xml version='1.0' encoding='UTF-8'?>\n\
        <signcrypt xmlns=\"urn:xmpp:openpgp:0\">\n  <to jid=\"alice@example.org\" />\n  \
        <time stamp=\"2026-11-23T14:00:00Z\" />\n  <rpad>a2Vw</rpad>\n  <payload>\n    \
        <body xmlns=\"jabber:client\">from gajim marker-4402</body>\n    \
        <origin-id xmlns=\"urn:xmpp:sid:0\" id=\"4402-origin\" />\n    \
        <store xmlns=\"urn:xmpp:hints\" />\n  </payload>\n</signcrypt>\n";
    let from_profanity = gpg_seals(
        &frank_gpg,
        Some(&fpr),
        &alice_key,
        &profanity("alice@example.org", "from profanity marker-4401"),
    );
    let misaddressed = gpg_seals(
        &frank_gpg,
        Some(&fpr),
        &alice_key,
        &profanity("bob@example.org", "for bob marker-4403"),
    );
    let carol = format!("carol@{OUTSIDE}");
    let from_gajim = gpg_seals(&s.gpg, Some(&carol), &alice_key, gajim);

    let alice = alice_waits_for(&s, 3).await;
    // The outer stanzas as those clients send them.
    let stanza = |id: &str, b64: &str| {
        format!(
            "<message to='alice@example.org' type='chat' id='{id}'>\
             <body>This message is encrypted (XEP-0373: OpenPGP for XMPP).</body>\
             <openpgp xmlns='urn:xmpp:openpgp:0'>{b64}</openpgp>\
             <encryption xmlns='urn:xmpp:eme:0' namespace='urn:xmpp:openpgp:0'/>\
             <store xmlns='urn:xmpp:hints'/></message>"
        )
    };
    s.outside("frank")
        .run(&json!([
            { "op": "raw", "xml": stanza("profanity", &from_profanity) },
            { "op": "raw", "xml": stanza("misaddressed", &misaddressed) }
        ]))
        .await
        .assert_ok();
    s.outside("carol")
        .run(&json!([{ "op": "raw", "xml": stanza("gajim", &from_gajim) }]))
        .await
        .assert_ok();
    let alice = alice.finish().await.assert_ok();
    let by_id = |id: &str| message(&alice, id);
    for (id, body) in [
        ("profanity", "from profanity marker-4401"),
        ("gajim", "from gajim marker-4402"),
    ] {
        let m = by_id(id);
        assert_eq!(m["body"], body, "{}", alice.transcript());
        let xml = m["xml"].as_str().unwrap();
        assert!(xml.contains("encrypted-in-transit"), "{xml}");
        assert!(
            !xml.contains("<openpgp") && !xml.contains("XEP-0373"),
            "{xml}"
        );
    }
    assert!(
        by_id("gajim")["xml"]
            .as_str()
            .unwrap()
            .contains("4402-origin"),
        "the payload's origin-id reaches alice"
    );
    let m = by_id("misaddressed");
    let xml = m["xml"].as_str().unwrap();
    assert!(
        xml.contains("<openpgp") && !xml.contains("marker-4403"),
        "{m}"
    );
    assert!(!xml.contains("encrypted-in-transit"), "{m}");

    // The server archived ciphertext only.
    let archive = s.prosody.archive("alice").join("\n");
    assert!(archive.contains("openpgp"), "{archive}");
    for marker in ["marker-4401", "marker-4402", "marker-4403"] {
        assert!(!archive.contains(marker), "{marker} in {archive}");
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

/// alice through sotto, online and waiting for `count` messages.
async fn alice_waits_for(s: &Setup, count: usize) -> RunningClient {
    let mut alice = s
        .inside("alice")
        .spawn(&json!([{ "op": "wait", "count": count }]))
        .await;
    alice.wait_event("ready").await;
    alice
}

/// The message with this id that `run` received.
fn message(run: &ClientRun, id: &str) -> serde_json::Value {
    run.messages()
        .into_iter()
        .find(|m| m["id"] == id)
        .unwrap_or_else(|| panic!("no message {id}: {}", run.transcript()))
        .clone()
}

const OX_META: &str = "urn:xmpp:openpgp:0:public-keys";

/// The key `jid` publishes on its XEP-0373 key node for `fpr`, read by
/// frank (outside, straight to Prosody): the binary certificate.
async fn pep_key(s: &Setup, jid: &str, fpr: &str) -> Vec<u8> {
    let run = s
        .outside("frank")
        .no_presence()
        .run(&json!([{ "op": "fetch", "jid": jid, "node": format!("{OX_META}:{fpr}") }]))
        .await
        .assert_ok();
    let items = run.events("items")[0]["items"].to_string();
    let data_at = items.find("<data>").expect("a <data> element") + "<data>".len();
    let data_end = data_at + items[data_at..].find("</data>").unwrap();
    base64::engine::general_purpose::STANDARD
        .decode(items[data_at..data_end].trim())
        .unwrap()
}

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
    // What sotto found on PEP is recorded in the store: source, first and
    // last seen (written in the background, off the message path).
    let mut learned = Vec::new();
    for _ in 0..50 {
        learned = s.gw.learned_keys(&frank);
        if !learned.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(learned.len(), 1, "{learned:?}");
    assert_eq!(learned[0].fingerprint, fpr.to_uppercase());
    assert_eq!(learned[0].source, "pep");
    assert!(learned[0].first_seen > 0 && learned[0].last_seen >= learned[0].first_seen);
    let cert = sequoia_openpgp::Cert::from_bytes(&learned[0].cert).unwrap();
    assert!(!cert.is_tsk(), "public parts only");

    // frank's client finds alice's key where XEP-0373 says, published by
    // sotto's component (not over alice's stream), and it verifies the message.
    let mut alice_fpr = None;
    for _ in 0..50 {
        alice_fpr = s.listed_fingerprint("alice@example.org").await;
        if alice_fpr.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let alice_fpr = alice_fpr.expect("alice's key listed on her PEP node");
    let alice_public = pep_key(&s, "alice@example.org", &alice_fpr).await;
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

/// `sotto identities revoke` for a chat user: the serving sotto notices
/// (its store watch) and publishes the revoked key on the user's PEP key
/// node, dropping it from the metadata list; a client fetching it sees it
/// revoked.
#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_identity_is_published_as_revoked_on_pep() {
    use sequoia_openpgp::types::RevocationStatus;
    let s = setup_full(ENCRYPT_ALL, true, |_| {}).await;
    let alice = "alice@example.org";
    let mut fpr = None;
    for _ in 0..50 {
        s.inside("alice").run(&json!([])).await.assert_ok();
        fpr = s.listed_fingerprint(alice).await;
        if fpr.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let fpr = fpr.expect("alice's key on PEP");

    let mut cfg = sotto::config::Config::default();
    cfg.store.url = Some(s.gw.store_url.clone());
    cfg.store.secret_file = Some(s.gw.user_keys_secret.clone());
    let code = sotto::openpgp::identities::cli::run(
        cfg,
        sotto::openpgp::identities::cli::IdentitiesAction::Revoke {
            address: alice.into(),
        },
    )
    .await;
    assert_eq!(code, std::process::ExitCode::SUCCESS);

    // Within the watch interval, the list no longer names the key...
    let mut listed = Some(fpr.clone());
    for _ in 0..100 {
        listed = s.listed_fingerprint(alice).await;
        if listed.as_deref() != Some(fpr.as_str()) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_ne!(listed.as_deref(), Some(fpr.as_str()), "still listed");
    // ...and its node holds it revoked.
    let bytes = pep_key(&s, alice, &fpr).await;
    let cert = sequoia_openpgp::Cert::from_bytes(&bytes).unwrap();
    assert_eq!(cert.fingerprint().to_hex(), fpr);
    let policy = sequoia_openpgp::policy::StandardPolicy::new();
    assert!(
        matches!(
            cert.revocation_status(&policy, None),
            RevocationStatus::Revoked(_)
        ),
        "the published key is revoked"
    );
}
