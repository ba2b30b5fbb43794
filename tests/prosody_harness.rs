//! The XMPP test harness itself, with no sotto in the way: a real Prosody
//! (tests/common/prosody.rs) and the slixmpp client (tests/peers/xmpp_client.py)
//! talking to it directly. If these fail, the XMPP proxy's tests cannot be
//! trusted either.

mod common;

use common::prosody::{Options, Prosody, XmppClient};
use serde_json::json;

fn with_users() -> Prosody {
    let p = Prosody::start_default();
    p.register("alice", "alice-secret");
    p.register("bob", "bob secret ünïcode");
    p
}

#[tokio::test]
async fn alice_sends_bob_a_chat_message_over_plain_tcp_with_scram() {
    let p = with_users();
    let body = "hello bob <&> 1";

    let mut bob = p
        .client("bob")
        .resource("phone")
        .mech("SCRAM-SHA-1")
        .spawn(&json!([{ "op": "wait", "count": 1 }]))
        .await;
    let session = bob.wait_event("session").await;
    assert_eq!(session["mechanism"], "SCRAM-SHA-1");
    assert!(session["tls"].is_null(), "plain TCP: {session}");
    bob.wait_event("ready").await;

    let alice = p
        .client("alice")
        .mech("SCRAM-SHA-1")
        .run(&json!([{ "op": "send", "to": "bob@example.org", "body": body }]))
        .await
        .assert_ok();
    assert_eq!(alice.events("sent").len(), 1, "{}", alice.transcript());

    let bob = bob.finish().await.assert_ok();
    let got = bob.messages();
    assert_eq!(got.len(), 1, "{}", bob.transcript());
    let m = got[0];
    assert_eq!(m["body"], body);
    assert_eq!(m["type"], "chat");
    assert!(
        m["from"]
            .as_str()
            .unwrap()
            .starts_with("alice@example.org/"),
        "{m}"
    );
    let xml = m["xml"].as_str().unwrap();
    assert!(
        xml.contains("hello bob &lt;&amp;&gt; 1"),
        "raw stanza: {xml}"
    );

    // The server's archive, read directly: bob's holds the message.
    let archive = p.archive("bob");
    assert_eq!(archive.len(), 1, "{archive:?}");
    assert!(
        archive[0].contains("<body>hello bob &lt;&amp;&gt; 1</body>"),
        "{archive:?}"
    );
    assert!(
        archive[0].contains("from=\"alice@example.org/"),
        "{archive:?}"
    );
    // And so does alice's (her sent copy).
    assert_eq!(p.archive("alice").len(), 1);
}

#[tokio::test]
async fn plain_and_scram_are_both_offered_without_tls() {
    let p = with_users();
    let run = p
        .client("alice")
        .mech("PLAIN")
        .run(&json!([]))
        .await
        .assert_ok();
    let first = run.events("features")[0]["xml"]
        .as_str()
        .unwrap()
        .to_string();
    for mech in [
        "<mechanism>PLAIN</mechanism>",
        "<mechanism>SCRAM-SHA-1</mechanism>",
    ] {
        assert!(first.contains(mech), "{mech} not offered: {first}");
    }
    assert_eq!(run.events("session")[0]["mechanism"], "PLAIN");
    // A password that needs SASLprep, over SCRAM.
    let run = p
        .client("bob")
        .mech("SCRAM-SHA-1")
        .run(&json!([]))
        .await
        .assert_ok();
    assert_eq!(run.events("session")[0]["mechanism"], "SCRAM-SHA-1");
}

#[tokio::test]
async fn a_wrong_password_fails_cleanly() {
    let p = with_users();
    for mech in ["SCRAM-SHA-1", "PLAIN"] {
        let run = XmppClient::new(&p.addr(), "alice@example.org", "wrong")
            .mech(mech)
            .run(&json!([{ "op": "send", "to": "bob@example.org", "body": "never" }]))
            .await;
        assert_eq!(run.code, Some(2), "{}", run.transcript());
        let err = run.error().expect("an error event");
        assert_eq!(err["kind"], "auth", "{}", run.transcript());
        assert!(
            err["message"].as_str().unwrap().contains("not-authorized"),
            "{}",
            run.transcript()
        );
        assert!(run.events("session").is_empty());
        assert!(run.events("sent").is_empty());
    }
    // A mechanism the server does not offer: also an authentication failure.
    let run = p.client("alice").mech("DIGEST-MD5").run(&json!([])).await;
    assert_eq!(run.code, Some(2), "{}", run.transcript());
    assert!(
        run.error().unwrap()["message"]
            .as_str()
            .unwrap()
            .contains("SCRAM-SHA-1"),
        "{}",
        run.transcript()
    );
    assert!(p.archive("bob").is_empty());
}

#[tokio::test]
async fn carbons_pep_and_stream_management() {
    let p = with_users();

    // Alice on two devices: the laptop sees what the phone sends (carbons).
    let mut laptop = p
        .client("alice")
        .resource("laptop")
        .carbons()
        .sm()
        .spawn(&json!([{ "op": "wait", "count": 1 }]))
        .await;
    laptop.wait_event("sm_enabled").await;
    laptop.wait_event("carbons_enabled").await;
    laptop.wait_event("ready").await;

    let key = "<public-keys-list xmlns='urn:xmpp:openpgp:0'><pubkey-metadata v4-fingerprint='1234567890ABCDEF1234567890ABCDEF12345678' date='2024-01-01T00:00:00Z'/></public-keys-list>";
    p.client("alice")
        .resource("phone")
        .sm()
        .run(&json!([
            { "op": "send", "to": "bob@example.org/x", "body": "from my phone" },
            { "op": "publish", "node": "urn:xmpp:openpgp:0:public-keys", "id": "current",
              "xml": key, "access_model": "open" },
        ]))
        .await
        .assert_ok();

    let laptop = laptop.finish().await.assert_ok();
    let carbon = laptop
        .messages()
        .into_iter()
        .find(|m| m["carbon"] == "sent")
        .unwrap_or_else(|| panic!("no sent carbon: {}", laptop.transcript()))
        .clone();
    assert_eq!(carbon["body"], "from my phone");
    assert_eq!(carbon["to"], "bob@example.org/x");

    // Bob reads alice's published key list from her PEP node.
    let bob = p
        .client("bob")
        .run(&json!([{ "op": "fetch", "jid": "alice@example.org",
                       "node": "urn:xmpp:openpgp:0:public-keys" }]))
        .await
        .assert_ok();
    let items = &bob.events("items")[0]["items"];
    assert_eq!(items[0]["id"], "current", "{}", bob.transcript());
    assert!(
        items[0]["xml"]
            .as_str()
            .unwrap()
            .contains("1234567890ABCDEF1234567890ABCDEF12345678"),
        "{}",
        bob.transcript()
    );
}

#[tokio::test]
async fn starttls_and_direct_tls_with_a_trusted_certificate() {
    let ck = rcgen::generate_simple_self_signed(vec!["example.org".to_string()]).unwrap();
    let pki = tempfile::tempdir().unwrap();
    let (cert, key) = (pki.path().join("cert.pem"), pki.path().join("key.pem"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.key_pair.serialize_pem()).unwrap();

    let p = Prosody::start(Options::default().tls(&cert, &key));
    p.register("alice", "alice-secret");

    let run = p
        .client("alice")
        .starttls()
        .cafile(&cert)
        .mech("SCRAM-SHA-1")
        .run(&json!([]))
        .await
        .assert_ok();
    let session = &run.events("session")[0];
    assert!(
        session["tls"].as_str().unwrap().starts_with("TLS"),
        "{session}"
    );

    let direct = format!("127.0.0.1:{}", p.direct_tls_port.unwrap());
    let run = XmppClient::new(&direct, "alice@example.org", "alice-secret")
        .direct_tls()
        .cafile(&cert)
        .run(&json!([]))
        .await
        .assert_ok();
    assert!(
        run.events("session")[0]["tls"].is_string(),
        "{}",
        run.transcript()
    );

    // Not trusted: refused before any login.
    let run = p.client("alice").starttls().run(&json!([])).await;
    assert!(!run.ok(), "{}", run.transcript());
    assert!(run.events("session").is_empty(), "{}", run.transcript());
}

#[tokio::test]
async fn the_deploy_recipe_serves_clients_on_loopback() {
    let cfg =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/prosody/prosody.cfg.lua");
    let text = std::fs::read_to_string(&cfg).unwrap();
    // Where sotto's `[xmpp] upstream` points by default.
    assert_eq!(
        sotto::config::XmppConfig::default().upstream,
        "127.0.0.1:5322"
    );
    for line in [
        "c2s_interfaces = { \"127.0.0.1\" }",
        "c2s_ports = { 5322 }",
        "c2s_require_encryption = false",
    ] {
        assert!(
            text.contains(line),
            "deploy/prosody/prosody.cfg.lua lacks {line}"
        );
    }
    let out = std::process::Command::new(common::require("prosodyctl"))
        .arg("--config")
        .arg(&cfg)
        .args(["check", "config"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && said.contains("All checks passed"),
        "prosodyctl check config: {said}{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The shipped file, run with only its files and port moved.
    let p = Prosody::start(Options::default().base_config(&cfg));
    p.register("alice", "alice-secret");
    p.register("bob", "bob-secret");
    let mut bob = p
        .client("bob")
        .mech("SCRAM-SHA-1")
        .sm()
        .carbons()
        .spawn(&json!([{ "op": "wait", "count": 1 }]))
        .await;
    bob.wait_event("ready").await;
    p.client("alice")
        .mech("PLAIN")
        .run(&json!([{ "op": "send", "to": "bob@example.org", "body": "through the recipe" }]))
        .await
        .assert_ok();
    let bob = bob.finish().await.assert_ok();
    assert_eq!(
        bob.messages()[0]["body"],
        "through the recipe",
        "{}",
        bob.transcript()
    );
    let archive = p.archive("bob");
    assert!(archive[0].contains("through the recipe"), "{archive:?}");
}
