//! Stream management (XEP-0198) and plain protocol traffic through sotto,
//! with a real Prosody behind it and the raw client (`common/rawxmpp.rs`)
//! in front, which counts every stanza both ways.
//!
//! - counts: alice enables SM with resumption and sends presence, an
//!   encrypted chat to bob, a message the policy refuses (sotto sends the
//!   server a ping in its place) and a roster get; the server's `h` equals
//!   what she sent, the refusal's stanza error comes back, bob reads the
//!   chat once, decrypted for him;
//! - resumption: alice drops her TCP connection without closing the stream,
//!   comes back, `<resume>`s with one stanza less than she handled, and gets
//!   `<resumed h>` = what she sent and exactly the unhandled stanzas again
//!   (the one she did not own to, and one sent while she was away); the same
//!   exchange straight to Prosody is the control;
//! - roster get/set, presence subscription and iqs to the server (disco#info,
//!   ping) reach the client as they reach a client talking to Prosody
//!   directly.

#[path = "common/chatsetup.rs"]
mod chatsetup;
mod common;
#[path = "common/rawxmpp.rs"]
mod rawxmpp;

use std::net::SocketAddr;
use std::time::Duration;

use chatsetup::ChatGateway;
use common::prosody::Prosody;
use rawxmpp::{CLIENT_NS, Got, SM_NS, Session, Transport, trust};

const DOMAIN: &str = "example.org";
const OUTSIDE: &str = "outside.example";
const POLICY: &str = "[defaults]\nencrypt = \"if-key\"\nlinks = \"keep\"\n\n\
    [[rule]]\nname = \"outside must be encrypted\"\nchannel = [\"xmpp\"]\n\
    to = [\"*@outside.example\"]\nencrypt = \"required\"\n";
/// Marks a message sotto decrypted on its way to the user.
const DECRYPTED: &str = "encrypted-in-transit";

/// Where the clients connect.
struct Via {
    addr: SocketAddr,
    how: Transport,
    sotto: bool,
}

async fn setup() -> (Prosody, ChatGateway, Via) {
    let prosody = Prosody::start_default();
    prosody.register("alice", "alice-secret");
    prosody.register("bob", "bob-secret");
    let gw = ChatGateway::start(&prosody, POLICY, |_| {}).await;
    let via = Via {
        addr: gw.direct_tls_addr(),
        how: Transport::DirectTls(trust(&gw.ca)),
        sotto: true,
    };
    (prosody, gw, via)
}

fn direct(prosody: &Prosody) -> Via {
    Via {
        addr: prosody.addr().parse().unwrap(),
        how: Transport::Plain,
        sotto: false,
    }
}

impl Via {
    async fn connect(&self, user: &str, resource: &str) -> Session {
        Session::connect(
            self.addr,
            DOMAIN,
            &self.how,
            user,
            &format!("{user}-secret"),
            resource,
        )
        .await
    }

    /// Connected, with initial presence sent and its echo read: available.
    async fn online(&self, user: &str, resource: &str) -> Session {
        let mut s = self.connect(user, resource).await;
        s.send("<presence/>").await;
        let me = s.jid.clone();
        s.expect_any(|g| g.is("presence", CLIENT_NS) && g.attr("from") == Some(me.as_str()))
            .await;
        s
    }
}

fn body(g: &Got) -> String {
    g.el.child("body", CLIENT_NS)
        .map(|b| b.text())
        .unwrap_or_default()
}

fn chat(to: &str, id: &str, text: &str) -> String {
    format!("<message to='{to}' type='chat' id='{id}'><body>{text}</body></message>")
}

/// Where the counted exchange leaves alice.
struct Counted {
    alice: Session,
    bob: Session,
    previd: String,
}

/// alice enables SM with resumption, sends four stanzas (one refused
/// through sotto) and checks the server's count and the answers; bob reads
/// the chat once. Both stay connected.
async fn counted_exchange(via: &Via) -> Counted {
    let mut bob = via.online("bob", "phone").await;
    let mut alice = via.connect("alice", "laptop").await;
    let enabled = alice.enable(true).await;
    assert!(enabled.is("enabled", SM_NS), "{}", enabled.xml);
    assert_eq!(enabled.attr("resume"), Some("true"), "{}", enabled.xml);
    let previd = enabled.attr("id").expect("a resumption id").to_string();

    alice.send("<presence/>").await;
    alice
        .send(&chat("bob@example.org", "m1", "counted marker-3301"))
        .await;
    alice
        .send(&chat(
            &format!("erin@{OUTSIDE}"),
            "m2",
            "no key for erin marker-3302",
        ))
        .await;
    alice
        .send("<iq type='get' id='roster-1'><query xmlns='jabber:iq:roster'/></iq>")
        .await;
    assert_eq!(alice.sent, 4);
    // The server handled exactly what alice sent, the refused one included.
    assert_eq!(alice.ack().await, 4, "the server's h after four stanzas");

    let refused = alice.expect_id("m2").await;
    assert_eq!(refused.attr("type"), Some("error"), "{}", refused.xml);
    assert_eq!(
        refused.attr("from"),
        Some(format!("erin@{OUTSIDE}").as_str()),
        "{}",
        refused.xml
    );
    if via.sotto {
        assert!(
            refused.xml.contains("policy-violation")
                && refused.xml.contains("outside must be encrypted"),
            "{}",
            refused.xml
        );
        assert!(!refused.xml.contains("marker-3302"), "{}", refused.xml);
    }
    let roster = alice.expect_id("roster-1").await;
    assert_eq!(roster.attr("type"), Some("result"), "{}", roster.xml);
    let me = alice.jid.clone();
    alice
        .expect_any(|g| g.is("presence", CLIENT_NS) && g.attr("from") == Some(me.as_str()))
        .await;
    // Presence echo, roster result, error: three in, each counted once.
    assert_eq!(alice.received, 3, "alice handled three stanzas");

    let got = bob.expect_id("m1").await;
    assert_eq!(body(&got), "counted marker-3301", "{}", got.xml);
    assert_eq!(via.sotto, got.xml.contains(DECRYPTED), "{}", got.xml);
    assert!(!got.xml.contains("<openpgp"), "{}", got.xml);
    Counted { alice, bob, previd }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_stanza_is_counted_through_sotto_the_refused_one_too() {
    let (prosody, _gw, via) = setup().await;
    let Counted { alice, mut bob, .. } = counted_exchange(&via).await;
    alice.close().await;
    // bob got m1 once and nothing from the refused one; the server stored
    // ciphertext only.
    assert!(
        bob.next_within(Duration::from_secs(1)).await.is_none(),
        "bob gets nothing more"
    );
    let archive = prosody.archive("bob");
    assert_eq!(archive.len(), 1, "{archive:?}");
    assert!(archive[0].contains("urn:xmpp:openpgp:0") && !archive[0].contains("marker-3301"));
    assert!(
        prosody
            .archive("alice")
            .iter()
            .all(|m| !m.contains("marker-3302"))
    );
}

/// The counted exchange, then alice drops her connection and resumes.
async fn resume_after_a_dropped_connection(via: &Via) {
    let Counted {
        mut alice,
        mut bob,
        previd,
    } = counted_exchange(via).await;
    bob.send(&chat(
        "alice@example.org",
        "b1",
        "before the drop marker-3303",
    ))
    .await;
    let got = alice.expect_id("b1").await;
    assert_eq!(body(&got), "before the drop marker-3303", "{}", got.xml);
    let (sent, handled) = (alice.sent, alice.received);
    assert_eq!((sent, handled), (4, 4));
    alice.drop_connection();
    // While she is away (or before the server has noticed): queued for her.
    bob.send(&chat("alice@example.org", "b2", "while away marker-3304"))
        .await;
    // bob's ping answered: the server has routed b2 by then.
    bob.send("<iq type='get' to='example.org' id='bob-ping'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    bob.expect_id("bob-ping").await;

    let mut alice = Session::login(via.addr, DOMAIN, &via.how, "alice", "alice-secret").await;
    // She owns to one stanza less than she handled: it comes again.
    let resumed = alice.resume(&previd, handled - 1, sent).await;
    assert!(resumed.is("resumed", SM_NS), "{}", resumed.xml);
    assert_eq!(resumed.attr("previd"), Some(previd.as_str()));
    assert_eq!(
        resumed.attr("h"),
        Some(sent.to_string().as_str()),
        "<resumed h> is what alice sent: {}",
        resumed.xml
    );
    for (id, text) in [
        ("b1", "before the drop marker-3303"),
        ("b2", "while away marker-3304"),
    ] {
        let again = alice.next().await;
        assert_eq!(
            again.attr("id"),
            Some(id),
            "redelivered in order: {}",
            again.xml
        );
        assert_eq!(body(&again), text, "{}", again.xml);
        assert_eq!(via.sotto, again.xml.contains(DECRYPTED), "{}", again.xml);
    }
    let extra = alice.next_within(Duration::from_secs(1)).await;
    assert!(extra.is_none(), "only the unacked stanzas: {extra:?}");
    assert_eq!(alice.received, handled + 1);

    // The resumed stream goes on, counted from where it was.
    alice
        .send(&chat("bob@example.org", "m3", "after resuming marker-3305"))
        .await;
    assert_eq!(alice.ack().await, sent + 1);
    let got = bob.expect_id("m3").await;
    assert_eq!(body(&got), "after resuming marker-3305");
    let again = bob.next_within(Duration::from_secs(1)).await;
    assert!(again.is_none(), "bob read each chat once: {again:?}");
    alice.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stream_resumes_straight_to_prosody() {
    let prosody = Prosody::start_default();
    prosody.register("alice", "alice-secret");
    prosody.register("bob", "bob-secret");
    resume_after_a_dropped_connection(&direct(&prosody)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stream_resumes_through_sotto() {
    let (_prosody, _gw, via) = setup().await;
    resume_after_a_dropped_connection(&via).await;
}

/// `xml` with `jid` (a full JID) written as `{me}`, to compare what two
/// resources of one user got.
fn as_me(xml: &str, jid: &str) -> String {
    xml.replace(jid, "{me}")
}

/// Sends `ask` (with this `id`) on both streams of one user; the answers
/// must be the same bytes but for the full JID. Returns the first.
async fn ask_both(through: &mut Session, straight: &mut Session, ask: &str, id: &str) -> Got {
    through.send(ask).await;
    straight.send(ask).await;
    let (a, b) = (through.expect_id(id).await, straight.expect_id(id).await);
    assert_eq!(as_me(&a.xml, &through.jid), as_me(&b.xml, &straight.jid));
    a
}

#[tokio::test(flavor = "multi_thread")]
async fn roster_subscription_and_server_iqs_pass_through_unchanged() {
    let (prosody, _gw, via) = setup().await;
    let straight = direct(&prosody);
    let mut alice = via.online("alice", "through").await;
    let mut alice_direct = straight.online("alice", "direct").await;
    let mut bob = via.online("bob", "phone").await;
    // Each of alice's resources sees the other come online.
    let direct_jid = alice_direct.jid.clone();
    alice
        .expect_any(|g| g.is("presence", CLIENT_NS) && g.attr("from") == Some(direct_jid.as_str()))
        .await;

    // The same iqs to the server, through sotto and straight: the same answers.
    let asks = [
        (
            "disco-1",
            "<iq type='get' to='example.org' id='disco-1'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
        ),
        (
            "ping-1",
            "<iq type='get' to='example.org' id='ping-1'><ping xmlns='urn:xmpp:ping'/></iq>",
        ),
    ];
    for (id, ask) in asks {
        let answer = ask_both(&mut alice, &mut alice_direct, ask, id).await;
        assert_eq!(answer.attr("type"), Some("result"), "{}", answer.xml);
    }

    // The roster read both ways (which also makes both resources
    // interested in roster pushes): empty, the same.
    let get = "<iq type='get' id='rg-0'><query xmlns='jabber:iq:roster'/></iq>";
    ask_both(&mut alice, &mut alice_direct, get, "rg-0").await;

    // Roster set through sotto: the result, and the same push to both resources.
    alice
        .send(
            "<iq type='set' id='rs-1'><query xmlns='jabber:iq:roster'>\
             <item jid='bob@example.org' name='Bob'><group>Friends</group></item></query></iq>",
        )
        .await;
    let result = alice.expect_id("rs-1").await;
    assert_eq!(result.attr("type"), Some("result"), "{}", result.xml);
    let push = |g: &Got| g.is("iq", CLIENT_NS) && g.attr("type") == Some("set");
    let (p1, p2) = (
        alice.expect_any(push).await,
        alice_direct.expect_any(push).await,
    );
    assert!(
        p1.xml.contains("name=\"Bob\"") || p1.xml.contains("name='Bob'"),
        "{}",
        p1.xml
    );
    let unid = |g: &Got, jid: &str| {
        let id = g.attr("id").unwrap_or_default();
        as_me(&g.xml, jid).replace(id, "{id}")
    };
    assert_eq!(unid(&p1, &alice.jid), unid(&p2, &alice_direct.jid));

    // Subscription between two users behind sotto.
    alice
        .send("<presence to='bob@example.org' type='subscribe' id='sub-1'/>")
        .await;
    let ask = bob
        .expect_any(|g| g.is("presence", CLIENT_NS) && g.attr("type") == Some("subscribe"))
        .await;
    assert_eq!(ask.attr("from"), Some("alice@example.org"), "{}", ask.xml);
    bob.send("<presence to='alice@example.org' type='subscribed' id='sub-2'/>")
        .await;
    for s in [&mut alice, &mut alice_direct] {
        let ok = s
            .expect_any(|g| g.is("presence", CLIENT_NS) && g.attr("type") == Some("subscribed"))
            .await;
        assert_eq!(ok.attr("from"), Some("bob@example.org"), "{}", ok.xml);
        // Then bob's own presence, now that alice may see it.
        let bob_jid = bob.jid.clone();
        s.expect_any(|g| g.is("presence", CLIENT_NS) && g.attr("from") == Some(bob_jid.as_str()))
            .await;
    }

    // The roster read both ways: byte for byte the same.
    let get = "<iq type='get' id='rg-1'><query xmlns='jabber:iq:roster'/></iq>";
    let a = ask_both(&mut alice, &mut alice_direct, get, "rg-1").await;
    assert!(
        a.xml.contains("subscription=\"to\"") || a.xml.contains("subscription='to'"),
        "{}",
        a.xml
    );
    assert!(a.xml.contains("Friends"), "{}", a.xml);
    alice.close().await;
    alice_direct.close().await;
    bob.close().await;
}
