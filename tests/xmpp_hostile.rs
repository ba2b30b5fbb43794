//! Hostile XML from a logged-in client, through sotto to a real Prosody:
//! an entity-expansion bomb, a 10 MB stanza, 10,000-deep nesting and bytes
//! that are not UTF-8. Each gets that client a `<stream:error>` and the end
//! of its stream, nothing of it reaches the server, and another user's
//! session through the same sotto keeps working throughout.

#[path = "common/chatsetup.rs"]
mod chatsetup;
mod common;
#[path = "common/rawxmpp.rs"]
mod rawxmpp;

use std::time::Duration;

use chatsetup::ChatGateway;
use common::prosody::Prosody;
use rawxmpp::{CLIENT_NS, STREAM_NS, Session, Transport, trust};

const POLICY: &str = "[defaults]\nencrypt = \"if-key\"\nlinks = \"keep\"\n";

fn attacks() -> Vec<(&'static str, Vec<u8>, &'static [&'static str])> {
    let bomb = b"<!DOCTYPE lolz [<!ENTITY lol 'lol'><!ENTITY lol2 '&lol;&lol;&lol;&lol;'>]>\
                 <message to='bob@example.org'><body>&lol2;</body></message>"
        .to_vec();
    let mut big = b"<message to='bob@example.org' type='chat'><body>".to_vec();
    big.extend(std::iter::repeat_n(b'a', 10 * 1024 * 1024));
    big.extend_from_slice(b"</body></message>");
    let mut deep = b"<message to='bob@example.org'>".to_vec();
    for _ in 0..10_000 {
        deep.extend_from_slice(b"<x>");
    }
    let garbage =
        b"<message to='bob@example.org'><body>\xff\xfe\xc3\x28 garbage</body></message>".to_vec();
    vec![
        ("entity bomb", bomb, &["restricted-xml", "not-well-formed"]),
        ("10 MB stanza", big, &["policy-violation"]),
        ("10,000-deep nesting", deep, &["policy-violation"]),
        ("invalid UTF-8", garbage, &["not-well-formed"]),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_xml_after_login_ends_that_stream_only() {
    let prosody = Prosody::start_default();
    prosody.register("alice", "alice-secret");
    prosody.register("bob", "bob-secret");
    prosody.register("carol", "carol-secret");
    let gw = ChatGateway::start(&prosody, POLICY, |_| {}).await;
    let how = Transport::DirectTls(trust(&gw.ca));
    let addr = gw.direct_tls_addr();
    let mut bob = Session::connect(addr, "example.org", &how, "bob", "bob-secret", "phone").await;
    bob.send("<presence/>").await;

    for (i, (what, bytes, conditions)) in attacks().into_iter().enumerate() {
        let mut alice =
            Session::connect(addr, "example.org", &how, "alice", "alice-secret", "evil").await;
        // The write may fail half-way: sotto stops reading and closes.
        let _ = alice.send_bytes(&bytes).await;
        let mut error = None;
        while let Some(g) = alice.next_within(Duration::from_secs(20)).await {
            if g.is("error", STREAM_NS) {
                error = Some(g);
                break;
            }
        }
        let error = error.unwrap_or_else(|| panic!("{what}: no stream error"));
        assert!(
            conditions.iter().any(|c| error.xml.contains(c)),
            "{what}: {}",
            error.xml
        );
        assert!(
            alice.next_within(Duration::from_secs(10)).await.is_none(),
            "{what}: the stream ends after the error"
        );

        // bob, on his own session through the same sotto, still chats.
        let mut carol =
            Session::connect(addr, "example.org", &how, "carol", "carol-secret", "pc").await;
        let id = format!("after-{i}");
        carol
            .send(&format!(
                "<message to='bob@example.org' type='chat' id='{id}'><body>still here {i}</body></message>"
            ))
            .await;
        let got = bob.expect_id(&id).await;
        let body = got
            .el
            .child("body", CLIENT_NS)
            .map(|b| b.text())
            .unwrap_or_default();
        assert_eq!(body, format!("still here {i}"), "after {what}: {}", got.xml);
        carol.close().await;
    }
    // None of the hostile messages reached bob's archive.
    let archive = prosody.archive("bob");
    assert_eq!(archive.len(), 4, "only carol's four: {archive:?}");
    assert!(
        archive
            .iter()
            .all(|m| !m.contains("garbage") && !m.contains("aaaa"))
    );
}
