//! The XMPP proxy with real peers: a real Prosody behind sotto, and the
//! slixmpp client (tests/peers/xmpp_client.py) in front, over STARTTLS and
//! direct TLS with sotto's certificate for the domain.

mod common;

use common::prosody::{Prosody, XmppClient};
use serde_json::json;

struct Setup {
    prosody: Prosody,
    gw: sotto::serve::Running,
    ca: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

async fn setup() -> Setup {
    let prosody = Prosody::start_default();
    prosody.register("alice", "alice-secret");
    prosody.register("bob", "bob-secret");
    let ck = rcgen::generate_simple_self_signed(vec!["example.org".to_string()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.key_pair.serialize_pem()).unwrap();
    let mut cfg = common::config("127.0.0.1:1");
    cfg.xmpp.listen = "127.0.0.1:0".into();
    cfg.xmpp.listen_tls = "127.0.0.1:0".into();
    cfg.xmpp.upstream = prosody.addr();
    cfg.xmpp.domain = "example.org".into();
    cfg.xmpp.tls_cert = Some(cert.clone());
    cfg.xmpp.tls_key = Some(key);
    let gw = common::gateway(&cfg).await;
    Setup {
        prosody,
        gw,
        ca: cert,
        _dir: dir,
    }
}

impl Setup {
    fn client(&self, user: &str, direct: bool) -> XmppClient {
        let addr = if direct {
            self.gw.xmpp_tls.unwrap()
        } else {
            self.gw.xmpp.unwrap()
        };
        let c = XmppClient::new(
            &addr.to_string(),
            &self.prosody.jid(user),
            &self.prosody.password(user),
        )
        .cafile(&self.ca);
        if direct { c.direct_tls() } else { c.starttls() }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn chat_flows_through_sotto_over_starttls_and_direct_tls() {
    let s = setup().await;
    let mut bob = s
        .client("bob", true)
        .mech("SCRAM-SHA-1")
        .spawn(&json!([{ "op": "wait", "count": 1 }]))
        .await;
    let session = bob.wait_event("session").await;
    assert_eq!(session["mechanism"], "SCRAM-SHA-1", "{session}");
    assert!(!session["tls"].is_null(), "direct TLS: {session}");
    bob.wait_event("ready").await;

    let alice = s
        .client("alice", false)
        .mech("SCRAM-SHA-1")
        .run(&json!([{ "op": "send", "to": "bob@example.org", "body": "hi bob, via sotto" }]))
        .await
        .assert_ok();
    // What alice was offered: no STARTTLS from the server, no channel binding.
    let features = alice.events("features");
    assert!(
        features.len() >= 3,
        "before TLS, after TLS, after login: {}",
        alice.transcript()
    );
    for f in &features {
        let xml = f["xml"].as_str().unwrap_or_default();
        assert!(!xml.contains("-PLUS") && !xml.contains("sasl-cb"), "{xml}");
        // Once TLS is on (sotto's), the server's own STARTTLS offer is gone.
        if !f["tls"].is_null() {
            assert!(!xml.contains("starttls"), "{xml}");
        }
    }
    let bob = bob.finish().await.assert_ok();
    let got = bob.messages();
    assert_eq!(got.len(), 1, "{}", bob.transcript());
    assert_eq!(got[0]["body"], "hi bob, via sotto");
    assert_eq!(s.prosody.archive("bob").len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_xml_ends_that_stream_only() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = setup().await;
    // A client that sends a billion-laughs DOCTYPE before TLS.
    let mut raw = tokio::net::TcpStream::connect(s.gw.xmpp.unwrap())
        .await
        .unwrap();
    raw.write_all(b"<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol 'lol'>]><stream:stream>")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        raw.read_to_end(&mut buf),
    )
    .await;
    let text = String::from_utf8_lossy(&buf);
    assert!(
        text.contains("restricted-xml") || text.contains("not-well-formed"),
        "{text}"
    );
    // Others keep working.
    let alice = s
        .client("alice", false)
        .run(&json!([{ "op": "send", "to": "bob@example.org", "body": "still here" }]))
        .await
        .assert_ok();
    assert_eq!(alice.events("sent").len(), 1, "{}", alice.transcript());
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_over_verified_tls() {
    use common::prosody::Options;
    let ck = rcgen::generate_simple_self_signed(vec!["example.org".to_string()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.key_pair.serialize_pem()).unwrap();
    let prosody = Prosody::start(Options::default().tls(&cert, &key));
    prosody.register("alice", "alice-secret");
    prosody.register("bob", "bob-secret");
    let gateway = |trust: bool| {
        let mut cfg = common::config("127.0.0.1:1");
        cfg.xmpp.listen = "127.0.0.1:0".into();
        cfg.xmpp.upstream = format!("127.0.0.1:{}", prosody.direct_tls_port.unwrap());
        cfg.xmpp.upstream_tls = true;
        cfg.xmpp.upstream_tls_ca = trust.then(|| cert.clone());
        cfg.xmpp.domain = "example.org".into();
        cfg.xmpp.tls_cert = Some(cert.clone());
        cfg.xmpp.tls_key = Some(key.clone());
        cfg
    };
    let client = |gw: &sotto::serve::Running, user: &str| {
        XmppClient::new(
            &gw.xmpp.unwrap().to_string(),
            &prosody.jid(user),
            &prosody.password(user),
        )
        .cafile(&cert)
        .starttls()
    };

    // Trusting the server's CA: chat flows over TLS on both legs.
    let gw = common::gateway(&gateway(true)).await;
    let mut bob = client(&gw, "bob")
        .spawn(&json!([{ "op": "wait", "count": 1 }]))
        .await;
    bob.wait_event("ready").await;
    client(&gw, "alice")
        .run(&json!([{ "op": "send", "to": "bob@example.org", "body": "over TLS both ways" }]))
        .await
        .assert_ok();
    let bob = bob.finish().await.assert_ok();
    assert_eq!(bob.messages()[0]["body"], "over TLS both ways");

    // Not trusting it: the client is told, nothing reaches the server.
    let untrusting = common::gateway(&gateway(false)).await;
    let run = client(&untrusting, "alice")
        .run(&json!([{ "op": "send", "to": "bob@example.org", "body": "must not pass" }]))
        .await;
    assert!(!run.ok(), "{}", run.transcript());
    assert!(
        run.transcript().contains("remote-connection-failed"),
        "{}",
        run.transcript()
    );
    assert_eq!(prosody.archive("bob").len(), 1, "only the first message");
}
