//! Chat on its way out through sotto, with real peers (see
//! `common/chatpeers.rs`: a real Prosody with an inside and an outside host,
//! slixmpp clients, GnuPG reading what sotto produced):
//!
//! - alice → bob, both behind sotto: bob's client gets the plain body;
//!   Prosody's archive holds only `<openpgp/>`, which GnuPG decrypts with
//!   bob's sotto-held key (passphrase-protected on disk) to the body;
//! - alice → carol outside: carol's client gets `<openpgp/>`; GnuPG with
//!   carol's key decrypts it and verifies alice's signature;
//! - a pair with encryption off: links in the body stripped per policy;
//! - encryption required without a key: alice gets a stanza error and the
//!   message reaches no one; the stream goes on (stream management on);
//! - XEP-0027 and no-store hints per policy; too large once encrypted.

#[path = "common/chatpeers.rs"]
mod chatpeers;
#[path = "common/chatsetup.rs"]
mod chatsetup;
mod common;

use std::process::Command;

use chatpeers::*;
use chatsetup::PASSPHRASE;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn chat_between_users_behind_sotto_is_ciphertext_on_the_server() {
    let s = setup(ENCRYPT_ALL).await;
    let bob = s
        .alice_writes(
            s.inside("bob"),
            "bob@example.org",
            "the plan is secret-marker-7731",
        )
        .await;
    let got = bob.messages();
    assert_eq!(got.len(), 1, "{}", bob.transcript());
    assert_eq!(
        got[0]["body"],
        "the plan is secret-marker-7731",
        "{}",
        bob.transcript()
    );
    let xml = got[0]["xml"].as_str().unwrap();
    assert!(xml.contains("encrypted-in-transit"), "marked: {xml}");
    assert!(!xml.contains("<openpgp"), "{xml}");

    // The server's archive, read straight from Prosody: ciphertext only.
    let archive = s.prosody.archive("bob");
    assert_eq!(archive.len(), 1, "{archive:?}");
    let stored = &archive[0];
    assert!(!stored.contains("secret-marker-7731"), "{stored}");
    assert!(stored.contains("urn:xmpp:openpgp:0"), "{stored}");
    assert!(stored.contains("urn:xmpp:eme:0"), "XEP-0380 hint: {stored}");
    // GnuPG, with bob's key as sotto keeps it on disk, reads the signcrypt.
    let (plain, status) = gpg_decrypt(
        &s.key_file("bob@example.org"),
        PASSPHRASE,
        Some(&std::fs::read(s.key_file("alice@example.org")).unwrap()),
        &openpgp_of(stored),
    );
    assert!(plain.contains("<signcrypt"), "{plain}");
    assert!(plain.contains("bob@example.org"), "<to/>: {plain}");
    assert!(plain.contains("<rpad"), "{plain}");
    assert!(plain.contains("the plan is secret-marker-7731"), "{plain}");
    assert!(
        status.contains("GOODSIG"),
        "signed by alice's key: {status}"
    );
    // On disk, the keys' secret parts are protected by the passphrase.
    let out = Command::new("gpg")
        .env("GNUPGHOME", tempfile::tempdir().unwrap().path())
        .args(["--batch", "--list-packets"])
        .arg(s.key_file("bob@example.org"))
        .output()
        .unwrap();
    let packets = String::from_utf8_lossy(&out.stdout);
    assert!(packets.contains("secret key packet"), "{packets}");
    assert!(
        packets.contains("protected"),
        "secret parts protected: {packets}"
    );
    // And the counters say so.
    let metrics = reqwest::get(format!("http://{}/metrics", s.gw.running.admin.unwrap()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "sotto_xmpp_messages_total{direction=\"out\",action=\"encrypted\"}",
        "sotto_xmpp_messages_total{direction=\"in\",action=\"decrypted\"}",
        "sotto_xmpp_message_duration_seconds_count",
    ] {
        assert!(metrics.contains(line), "{line} in:\n{metrics}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn chat_to_an_outside_user_is_signed_openpgp_for_xmpp() {
    let s = setup(&format!("{ENCRYPT_ALL}\n[[rule]]\nname = \"dave\"\nchannel = [\"xmpp\"]\nto = [\"dave@{OUTSIDE}\"]\nencrypt = \"never\"\n")).await;
    let carol_jid = format!("carol@{OUTSIDE}");
    let carol = s
        .alice_writes(s.outside("carol"), &carol_jid, "hello carol, marker-4410")
        .await;
    let got = carol.messages();
    assert_eq!(got.len(), 1, "{}", carol.transcript());
    let xml = got[0]["xml"].as_str().unwrap();
    assert!(!xml.contains("marker-4410"), "{xml}");
    let body = got[0]["body"].as_str().unwrap_or_default();
    assert!(body.contains("encrypted"), "fallback body: {body}");
    // Carol's own GnuPG decrypts it and verifies alice's signature.
    let carol_secret = s.gpg.home.path().join("carol-secret.asc");
    std::fs::write(&carol_secret, s.gpg.secret(&carol_jid)).unwrap();
    let (plain, status) = gpg_decrypt(
        &carol_secret,
        "",
        Some(&std::fs::read(s.key_file("alice@example.org")).unwrap()),
        &openpgp_of(xml),
    );
    assert!(plain.contains("hello carol, marker-4410"), "{plain}");
    assert!(
        plain.contains(&format!("jid='{carol_jid}'"))
            || plain.contains(&format!("jid=\"{carol_jid}\"")),
        "{plain}"
    );
    assert!(status.contains("GOODSIG"), "{status}");
}

#[tokio::test(flavor = "multi_thread")]
async fn links_are_stripped_where_chat_stays_readable() {
    let s = setup(&format!(
        "{ENCRYPT_ALL}\n[[rule]]\nname = \"dave reads plain chat\"\nchannel = [\"xmpp\"]\nto = [\"dave@{OUTSIDE}\"]\nencrypt = \"never\"\nlinks = \"strip\"\n"
    ))
    .await;
    let mut dave = s
        .outside("dave")
        .spawn(&json!([{ "op": "wait", "count": 1 }]))
        .await;
    dave.wait_event("ready").await;
    s.inside("alice")
        .run(&json!([{ "op": "send", "to": format!("dave@{OUTSIDE}"),
            "body": "look https://files.example/doc?token=SECRET123 now" }]))
        .await
        .assert_ok();
    let dave = dave.finish().await.assert_ok();
    let got = dave.messages();
    assert_eq!(got.len(), 1, "{}", dave.transcript());
    let body = got[0]["body"].as_str().unwrap();
    assert!(
        body.starts_with("look ") && body.ends_with(" now"),
        "{body}"
    );
    assert!(
        !body.contains("files.example") && !body.contains("SECRET123"),
        "{body}"
    );
    assert!(!got[0]["xml"].as_str().unwrap().contains("openpgp"));
}

#[tokio::test(flavor = "multi_thread")]
async fn required_encryption_without_a_key_is_refused_and_the_stream_goes_on() {
    let s = setup(&format!(
        "{ENCRYPT_ALL}\n[[rule]]\nname = \"outside must be encrypted\"\nchannel = [\"xmpp\"]\nto = [\"*@{OUTSIDE}\"]\nencrypt = \"required\"\n"
    ))
    .await;
    let alice = s
        .inside("alice")
        .sm()
        .run(&json!([
            { "op": "send", "to": format!("erin@{OUTSIDE}"), "id": "m1", "body": "no key for erin marker-5521" },
            { "op": "wait", "count": 1, "any": true },
            { "op": "send", "to": "bob@example.org", "id": "m2", "body": "still works" },
            { "op": "ping" }
        ]))
        .await
        .assert_ok();
    let errors: Vec<_> = alice
        .messages()
        .into_iter()
        .filter(|m| m["type"] == "error")
        .collect();
    assert_eq!(errors.len(), 1, "{}", alice.transcript());
    let e = errors[0];
    assert_eq!(e["id"], "m1", "{e}");
    assert_eq!(e["from"], format!("erin@{OUTSIDE}"), "{e}");
    let xml = e["xml"].as_str().unwrap();
    assert!(xml.contains("policy-violation"), "{xml}");
    assert!(
        xml.contains("Encryption required") && xml.contains("outside must be encrypted"),
        "{xml}"
    );
    // The ping after the refusal is answered: the stream is in step.
    let pongs = alice.events("pong");
    assert_eq!(
        pongs.last().unwrap()["type"],
        "result",
        "{}",
        alice.transcript()
    );
    // The server never saw it: not in alice's archive (read straight from
    // Prosody), where her sent messages are kept; the next one is.
    let archive = s.prosody.archive("alice");
    assert_eq!(archive.len(), 1, "{archive:?}");
    assert!(archive.iter().all(|m| !m.contains("marker-5521")));
}

#[tokio::test(flavor = "multi_thread")]
async fn legacy_format_and_no_store_hints_per_policy() {
    let s = setup(&format!(
        "{ENCRYPT_ALL}\n[[rule]]\nname = \"dave's old client\"\nchannel = [\"xmpp\"]\nto = [\"dave@{OUTSIDE}\"]\nxmpp_format = \"legacy\"\nstore = false\n"
    ))
    .await;
    let dave_jid = format!("dave@{OUTSIDE}");
    let dave = s
        .alice_writes(s.outside("dave"), &dave_jid, "old school marker-6060")
        .await;
    let m = dave.messages()[0].clone();
    let xml = m["xml"].as_str().unwrap();
    assert!(!xml.contains("marker-6060"), "{xml}");
    assert!(xml.contains("jabber:x:encrypted"), "{xml}");
    assert!(xml.contains("no-store") && xml.contains("no-copy"), "{xml}");
    // XEP-0027's text is the armour's body: GnuPG reads it re-armoured.
    let start = xml.find("jabber:x:encrypted").unwrap();
    let open_end = start + xml[start..].find('>').unwrap() + 1;
    let close = open_end + xml[open_end..].find("</").unwrap();
    let armored = format!(
        "-----BEGIN PGP MESSAGE-----\n\n{}\n-----END PGP MESSAGE-----\n",
        xml[open_end..close].trim()
    );
    s.gpg.import(&public_part(&s.key_file("alice@example.org")));
    let plain = s.gpg.decrypt(armored.as_bytes());
    assert_eq!(String::from_utf8_lossy(&plain), "old school marker-6060");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_message_too_large_once_encrypted_gets_a_stanza_error() {
    let s = setup_with(ENCRYPT_ALL, |cfg| cfg.xmpp.max_stanza_bytes = 8192).await;
    let big = "x".repeat(6000);
    let alice = s
        .inside("alice")
        .run(&json!([
            { "op": "send", "to": "bob@example.org", "id": "big", "body": big },
            { "op": "wait", "count": 1, "any": true },
            { "op": "send", "to": "bob@example.org", "id": "small", "body": "short one" },
            { "op": "ping" }
        ]))
        .await
        .assert_ok();
    let err = alice
        .messages()
        .into_iter()
        .find(|m| m["type"] == "error")
        .unwrap_or_else(|| panic!("{}", alice.transcript()))
        .clone();
    assert_eq!(err["id"], "big");
    let xml = err["xml"].as_str().unwrap();
    assert!(
        xml.contains("not-acceptable") && xml.contains("too large once encrypted"),
        "{xml}"
    );
    assert_eq!(alice.events("pong").last().unwrap()["type"], "result");
    let archive = s.prosody.archive("bob");
    assert_eq!(archive.len(), 1, "only the short one: {archive:?}");
}
