//! What a client or a remote sender must not be able to do through sotto's
//! chat pipeline (each found by review, each checked here end to end with a
//! real Prosody, the raw client and GnuPG):
//!
//! - pass itself off as another local user: a bind result sent to itself,
//!   or a SASL authorization identity (the bound JID decides);
//! - get content out in clear: a subject-only message, an odd `type`, a
//!   note to self without `to`, an empty `<openpgp/>` as a way out;
//! - have sotto vouch for what it did not decrypt: a forged transit marker,
//!   content outside the ciphertext, an unsigned XEP-0027 message.

#[path = "common/chatpeers.rs"]
mod chatpeers;
#[path = "common/chatsetup.rs"]
mod chatsetup;
mod common;
#[path = "common/rawxmpp.rs"]
mod rawxmpp;

use std::time::Duration;

use chatpeers::*;
use rawxmpp::{CLIENT_NS, Got, Session, Transport, trust};
use serde_json::json;

const DOMAIN: &str = "example.org";

impl Setup {
    fn how(&self) -> Transport {
        Transport::DirectTls(trust(&self.gw.ca))
    }

    async fn raw(&self, user: &str, resource: &str) -> Session {
        let mut s = Session::connect(
            self.gw.direct_tls_addr(),
            DOMAIN,
            &self.how(),
            user,
            &format!("{user}-secret"),
            resource,
        )
        .await;
        s.send("<presence/>").await;
        s
    }
}

/// What carol's GnuPG says of an `<openpgp/>` message she got, knowing
/// alice's public key.
fn carol_reads(s: &Setup, xml: &str) -> (String, String) {
    let secret = s.gpg.home.path().join("carol-secret.asc");
    std::fs::write(&secret, s.gpg.secret(&format!("carol@{OUTSIDE}"))).unwrap();
    let alice = public_part(&s.key_file("alice@example.org"));
    gpg_decrypt(&secret, "", Some(&alice), &openpgp_of(xml))
}

fn body(g: &Got) -> String {
    g.el.child("body", CLIENT_NS)
        .map(|b| b.text())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_cannot_pass_itself_off_as_another_user() {
    let s = setup(ENCRYPT_ALL).await;
    let carol = format!("carol@{OUTSIDE}");
    // bob's key exists (sotto makes it at his login).
    let _bob = s.raw("bob", "phone").await;
    let mut inbox = s
        .outside("carol")
        .spawn(&json!([{ "op": "wait", "count": 3 }]))
        .await;
    inbox.wait_event("ready").await;

    // alice routes a lookalike bind result for bob to herself.
    let mut alice = s.raw("alice", "laptop").await;
    alice
        .send(&format!(
            "<iq type='result' id='bind-1' to='{}'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
             <jid>bob@example.org/z</jid></bind></iq>",
            alice.jid
        ))
        .await;
    alice
        .send(&format!(
            "<message to='{carol}' type='chat' id='m1'><body>who am I</body></message>"
        ))
        .await;

    // alice asks SASL for bob's authorization: Prosody ignores it and
    // binds alice, and sotto takes the bound JID, not the request.
    let mut posing = Session::login_as(
        s.gw.direct_tls_addr(),
        DOMAIN,
        &s.how(),
        "bob",
        "alice",
        "alice-secret",
    )
    .await
    .bind("pose")
    .await;
    assert!(posing.jid.starts_with("alice@"), "{}", posing.jid);
    posing
        .send(&format!(
            "<message to='{carol}' type='chat' id='m2'><body>as bob</body></message>"
        ))
        .await;

    // One more from alice's first session.
    alice
        .send(&format!(
            "<message to='{carol}' type='chat' id='m3'><body>still me</body></message>"
        ))
        .await;
    let inbox = inbox.finish().await.assert_ok();
    let got = inbox.messages();
    assert_eq!(got.len(), 3, "{}", inbox.transcript());
    for m in got {
        let (plain, status) = carol_reads(&s, m["xml"].as_str().unwrap());
        assert!(plain.contains("<signcrypt"), "{plain}");
        assert!(
            status.contains("GOODSIG") && status.contains("xmpp:alice@example.org"),
            "signed by alice's key: {status}"
        );
        assert!(!status.contains("xmpp:bob@"), "not bob's: {status}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn content_outside_a_plain_body_is_encrypted_too() {
    let s = setup(ENCRYPT_ALL).await;
    let carol = format!("carol@{OUTSIDE}");
    let mut inbox = s
        .outside("carol")
        .spawn(&json!([{ "op": "wait", "count": 3, "any": true }]))
        .await;
    inbox.wait_event("ready").await;
    let mut alice = s.raw("alice", "laptop").await;
    for (id, stanza) in [
        (
            "subject",
            format!(
                "<message to='{carol}' id='subject'><subject>secret-subject-1</subject></message>"
            ),
        ),
        (
            "odd-type",
            format!(
                "<message to='{carol}' type='Chat' id='odd-type'><body>secret-odd-2</body></message>"
            ),
        ),
        (
            "way-out",
            format!(
                "<message to='{carol}' type='chat' id='way-out'><openpgp xmlns='urn:xmpp:openpgp:0'/><body>secret-out-3</body></message>"
            ),
        ),
    ] {
        let _ = id;
        alice.send(&stanza).await;
    }
    // A note to herself, without `to`: kept by the server, encrypted.
    alice
        .send("<message type='chat' id='note'><body>secret-note-4</body></message>")
        .await;
    let inbox = inbox.finish().await.assert_ok();
    let text = inbox.transcript();
    for secret in ["secret-subject-1", "secret-odd-2", "secret-out-3"] {
        assert!(!text.contains(secret), "{secret} in clear: {text}");
    }
    assert_eq!(
        inbox
            .messages()
            .iter()
            .filter(|m| m["xml"].as_str().unwrap_or_default().contains("<openpgp"))
            .count(),
        3,
        "{text}"
    );
    // alice's archive, straight from Prosody: no clear text at all.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let archive = s.prosody.archive("alice");
    assert!(archive.iter().any(|m| m.contains("openpgp")), "{archive:?}");
    for m in &archive {
        assert!(!m.contains("secret-"), "{m}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sotto_vouches_only_for_what_it_decrypted() {
    let s = setup(ENCRYPT_ALL).await;
    let mut alice = s.raw("alice", "laptop").await;
    // sotto makes alice's key at her login, in the background.
    for _ in 0..100 {
        if s.gw.stored_key("alice@example.org").is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let alice_key = s.key_file("alice@example.org");
    let good = carol_seals(
        &s,
        &alice_key,
        &signcrypt("alice@example.org", "the real words"),
        true,
    );
    // An unsigned legacy message to alice from carol.
    let legacy = {
        let out = s
            .gpg
            .cmd()
            .args([
                "--trust-model",
                "always",
                "--armor",
                "--encrypt",
                "-r",
                "xmpp:alice@example.org",
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin
                    .take()
                    .unwrap()
                    .write_all(b"unsigned legacy words")?;
                c.wait_with_output()
            })
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        text.lines()
            .skip_while(|l| !l.is_empty())
            .skip(1)
            .take_while(|l| !l.starts_with("-----"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    s.outside("carol")
        .run(&json!([
            // A plain message claiming sotto decrypted it.
            { "op": "raw", "xml": "<message to='alice@example.org' type='chat' id='forged'><body>trust me</body>\
               <encrypted-in-transit xmlns='urn:x-sotto:transit:0'/></message>" },
            // A real one, with words beside the ciphertext that nobody signed.
            { "op": "raw", "xml": format!("<message to='alice@example.org' type='chat' id='beside'>\
               <openpgp xmlns='urn:xmpp:openpgp:0'>{good}</openpgp><body>fallback</body>\
               <html xmlns='http://jabber.org/protocol/xhtml-im'><body xmlns='http://www.w3.org/1999/xhtml'>pay 10000 EUR</body></html></message>") },
            { "op": "raw", "xml": format!("<message to='alice@example.org' type='chat' id='legacy'>\
               <x xmlns='jabber:x:encrypted'>{legacy}</x><body>encrypted</body></message>") }
        ]))
        .await
        .assert_ok();
    let forged = alice.expect_id("forged").await;
    assert!(
        !forged.xml.contains("encrypted-in-transit"),
        "{}",
        forged.xml
    );
    assert_eq!(body(&forged), "trust me");
    let beside = alice.expect_id("beside").await;
    assert_eq!(body(&beside), "the real words", "{}", beside.xml);
    assert!(
        !beside.xml.contains("10000"),
        "unsigned content dropped: {}",
        beside.xml
    );
    assert!(beside.xml.contains("encrypted-in-transit"));
    let legacy = alice.expect_id("legacy").await;
    assert!(
        legacy.xml.contains("jabber:x:encrypted"),
        "delivered as it came: {}",
        legacy.xml
    );
    assert!(
        !legacy.xml.contains("unsigned legacy words"),
        "{}",
        legacy.xml
    );
    assert!(
        !legacy.xml.contains("encrypted-in-transit"),
        "{}",
        legacy.xml
    );
}
