use std::time::{Duration, UNIX_EPOCH};

use sequoia_openpgp::cert::CertBuilder;
use sequoia_openpgp::serialize::SerializeInto as _;

use super::*;
use crate::xmpp::framer::{Limits, NsContext, STREAM_NS, parse_stanza_in, serialize};

/// A stanza as the server would send it on a component stream.
fn parse(xml: &str) -> Element {
    let ctx = NsContext {
        default_ns: COMPONENT_NS.into(),
        prefixes: vec![("stream".into(), STREAM_NS.into())],
    };
    parse_stanza_in(xml.as_bytes(), &ctx, &Limits::default()).expect("parses")
}

fn text(e: &Element) -> String {
    String::from_utf8(serialize(e)).unwrap()
}

/// A test key under a frozen clock: 2020-01-01T00:00:00Z.
fn cert() -> Cert {
    let t = UNIX_EPOCH + Duration::from_secs(1_577_836_800);
    CertBuilder::general_purpose(Some("xmpp:alice@example.org"))
        .set_creation_time(t)
        .generate()
        .unwrap()
        .0
}

#[test]
fn handshake_is_hex_sha1_of_id_then_secret() {
    // SHA-1("abc"), FIPS 180 test vector; split across id and secret.
    assert_eq!(
        handshake_digest("a", "bc"),
        "a9993e364706816aba3e25717850c26c9cd0d89d"
    );
    assert_eq!(
        handshake_digest("", ""),
        "da39a3ee5e6b4b0d3255bfef95601890afd80709"
    );
}

#[test]
fn privileged_publish_has_the_shape_mod_privilege_accepts() {
    let payload = public_keys_list(&[KeyMetadata {
        fingerprint: "AB".repeat(20),
        date: "2020-01-01T00:00:00Z".into(),
    }]);
    let iq = privileged_set(
        "sotto.example.org",
        "alice@example.org",
        "o1",
        "i1",
        publish_open(METADATA_NODE, METADATA_ITEM, payload),
    );
    assert_eq!(
        text(&iq),
        "<iq xmlns='jabber:component:accept' type='set' id='o1' from='sotto.example.org' to='alice@example.org'>\
<privileged_iq xmlns='urn:xmpp:privilege:2'>\
<iq xmlns='jabber:client' type='set' id='i1' to='alice@example.org'>\
<pubsub xmlns='http://jabber.org/protocol/pubsub'>\
<publish node='urn:xmpp:openpgp:0:public-keys'><item id='current'>\
<public-keys-list xmlns='urn:xmpp:openpgp:0'>\
<pubkey-metadata v4-fingerprint='ABABABABABABABABABABABABABABABABABABABAB' date='2020-01-01T00:00:00Z'/>\
</public-keys-list></item></publish>\
<publish-options><x xmlns='jabber:x:data' type='submit'>\
<field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>\
<field var='pubsub#access_model'><value>open</value></field>\
</x></publish-options></pubsub></iq></privileged_iq></iq>"
    );
    // mod_privilege: exactly one child in the wrapped iq.
    let wrapped = iq
        .child("privileged_iq", PRIVILEGE_NS)
        .and_then(|p| p.child("iq", CLIENT_NS))
        .unwrap();
    assert_eq!(wrapped.elements().count(), 1);
}

#[test]
fn privileged_answer_unwraps_to_the_forwarded_iq() {
    let answer = parse(
        "<iq type='result' id='o1' from='alice@example.org' to='sotto.example.org'>\
<privilege xmlns='urn:xmpp:privilege:2'><forwarded xmlns='urn:xmpp:forward:0'>\
<iq xmlns='jabber:client' type='result' id='i1' from='alice@example.org'/>\
</forwarded></privilege></iq>",
    );
    let inner = unwrap_privileged(&answer).unwrap();
    assert_eq!(inner.attr("id"), Some("i1"));
    assert_eq!(error_condition(inner), None);
    let bare = parse("<iq type='result' id='o1'/>");
    assert_eq!(unwrap_privileged(&bare), Err(Malformed::NotForwarded));
}

#[test]
fn stanza_errors_give_their_condition() {
    let e = parse(
        "<iq type='error' id='x'><error type='cancel'>\
<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>no</text>\
<item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>",
    );
    assert_eq!(error_condition(&e).as_deref(), Some("item-not-found"));
    let bare = parse("<iq type='error' id='x'/>");
    assert_eq!(
        error_condition(&bare).as_deref(),
        Some("undefined-condition")
    );
    assert_eq!(error_condition(&parse("<iq type='result' id='x'/>")), None);
}

#[test]
fn metadata_list_parses_and_refuses_bad_fingerprints() {
    let answer = parse(
        "<iq type='result' id='x'><pubsub xmlns='http://jabber.org/protocol/pubsub'>\
<items node='urn:xmpp:openpgp:0:public-keys'>\
<item id='old'><public-keys-list xmlns='urn:xmpp:openpgp:0'/></item>\
<item id='current'><public-keys-list xmlns='urn:xmpp:openpgp:0'>\
<pubkey-metadata v4-fingerprint='1357b01865b2503c18453d208cac2a9678548e35' date='2018-03-01T15:26:12Z'/>\
<pubkey-metadata v4-fingerprint='67819B343B2AB70DED9320872C6464AF2A8E4C02' date='1953-05-16T12:00:00Z'/>\
</public-keys-list></item></items></pubsub></iq>",
    );
    let item = latest_item(&answer).unwrap().unwrap();
    let list = parse_public_keys_list(item).unwrap();
    assert_eq!(
        list,
        vec![
            KeyMetadata {
                fingerprint: "1357B01865B2503C18453D208CAC2A9678548E35".into(),
                date: "2018-03-01T15:26:12Z".into()
            },
            KeyMetadata {
                fingerprint: "67819B343B2AB70DED9320872C6464AF2A8E4C02".into(),
                date: "1953-05-16T12:00:00Z".into()
            },
        ]
    );
    let bad = parse(
        "<item xmlns='http://jabber.org/protocol/pubsub'><public-keys-list xmlns='urn:xmpp:openpgp:0'>\
<pubkey-metadata v4-fingerprint='../../etc'/></public-keys-list></item>",
    );
    assert_eq!(parse_public_keys_list(&bad), Err(Malformed::BadFingerprint));
    let empty = parse(
        "<iq type='result' id='x'><pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='n'/></pubsub></iq>",
    );
    assert_eq!(latest_item(&empty), Ok(None));
    assert_eq!(
        latest_item(&parse("<iq type='result' id='x'/>")),
        Err(Malformed::NoItems)
    );
}

#[test]
fn merge_replaces_own_entry_and_keeps_others() {
    let k = |f: &str, d: &str| KeyMetadata {
        fingerprint: f.into(),
        date: d.into(),
    };
    let merged = merge(vec![k("AA", "1"), k("bb", "2"), k("CC", "3")], k("BB", "9"));
    assert_eq!(merged, vec![k("AA", "1"), k("CC", "3"), k("BB", "9")]);
    assert_eq!(merge(Vec::new(), k("BB", "9")), vec![k("BB", "9")]);
}

#[test]
fn pubkey_round_trips_and_is_checked_against_the_listed_fingerprint() {
    let cert = cert();
    let fpr = cert.fingerprint().to_hex();
    let bytes = cert.to_vec().unwrap();
    let date = cert_date(&cert);
    assert_eq!(date, "2020-01-01T00:00:00Z");
    let item = with_child(el("item", PUBSUB_NS), pubkey(&bytes, &date));
    // Whitespace in <data> (as in XEP-0373's examples) is allowed.
    let mut spaced = item.clone();
    if let Some(Node::Element(p)) = spaced.children.first_mut()
        && let Some(d) = p.child_mut("data", OPENPGP_NS)
    {
        let b64 = d.text();
        d.children = vec![Node::Text(format!(
            "\n  {}\n  {}\n",
            &b64[..10],
            &b64[10..]
        ))];
    }
    for item in [&item, &spaced] {
        let got = parse_pubkey(item, &fpr.to_ascii_lowercase()).unwrap();
        assert_eq!(got.fingerprint(), cert.fingerprint());
        assert!(!got.is_tsk(), "published without secret key material");
    }
    assert_eq!(
        parse_pubkey(&item, &"0".repeat(40)).unwrap_err(),
        Malformed::FingerprintMismatch
    );
    let garbage = with_child(el("item", PUBSUB_NS), pubkey(b"not a key", &date));
    assert_eq!(
        parse_pubkey(&garbage, &fpr).unwrap_err(),
        Malformed::NotACert
    );
    let mut not_b64 = pubkey(b"", &date);
    not_b64.children = vec![Node::Element(with_text(el("data", OPENPGP_NS), "***"))];
    let not_b64 = with_child(el("item", PUBSUB_NS), not_b64);
    assert_eq!(parse_pubkey(&not_b64, &fpr).unwrap_err(), Malformed::Base64);
    assert_eq!(
        parse_pubkey(&el("item", PUBSUB_NS), &fpr).unwrap_err(),
        Malformed::NoPayload("pubkey")
    );
}

#[test]
fn component_answers_disco_and_ping_and_refuses_the_rest() {
    let disco = parse(
        "<iq type='get' id='d1' from='example.org' to='sotto.example.org'>\
<query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
    );
    let a = answer(&disco, "sotto.example.org").unwrap();
    assert_eq!(
        text(&a),
        "<iq xmlns='jabber:component:accept' id='d1' from='sotto.example.org' to='example.org' type='result'>\
<query xmlns='http://jabber.org/protocol/disco#info'>\
<identity category='component' type='generic' name='sotto'/>\
<feature var='http://jabber.org/protocol/disco#info'/><feature var='urn:xmpp:ping'/></query></iq>"
    );
    let ping =
        parse("<iq type='get' id='p1' from='example.org'><ping xmlns='urn:xmpp:ping'/></iq>");
    assert_eq!(
        text(&answer(&ping, "sotto.example.org").unwrap()),
        "<iq xmlns='jabber:component:accept' id='p1' from='sotto.example.org' to='example.org' type='result'/>"
    );
    for other in [
        "<iq type='set' id='u1' from='bob@example.org/r'><query xmlns='jabber:iq:roster'/></iq>",
        "<iq type='get' id='u1' from='bob@example.org/r'><query xmlns='http://jabber.org/protocol/disco#info' node='x'/></iq>",
        "<iq type='get' id='u1' from='bob@example.org/r'/>",
    ] {
        let a = answer(&parse(other), "sotto.example.org").unwrap();
        assert_eq!(a.attr("type"), Some("error"), "{other}");
        assert_eq!(error_condition(&a).as_deref(), Some("service-unavailable"));
        assert_eq!(a.attr("to"), Some("bob@example.org/r"));
    }
    for never in [
        "<iq type='result' id='r'/>",
        "<iq type='error' id='r'/>",
        "<iq id='r'/>",
    ] {
        assert_eq!(answer(&parse(never), "sotto.example.org"), None, "{never}");
    }
}

#[test]
fn privilege_message_grants() {
    let m = parse(
        "<message from='example.org' to='sotto.example.org'>\
<privilege xmlns='urn:xmpp:privilege:2'><perm access='iq'>\
<namespace ns='http://jabber.org/protocol/pubsub' type='set'/></perm></privilege></message>",
    );
    assert!(grants_iq(&m, PUBSUB_NS, "set"));
    assert!(!grants_iq(&m, PUBSUB_NS, "get"));
    assert!(!grants_iq(&m, "jabber:iq:roster", "set"));
    let both = parse(
        "<message><privilege xmlns='urn:xmpp:privilege:2'><perm access='iq'>\
<namespace ns='http://jabber.org/protocol/pubsub' type='both'/></perm></privilege></message>",
    );
    assert!(grants_iq(&both, PUBSUB_NS, "get"));
    // As mod_privilege writes several namespaces: each inside the previous.
    let nested = parse(
        "<message><privilege xmlns='urn:xmpp:privilege:2'><perm access='roster' type='get'/>\
<perm access='iq'><namespace ns='jabber:iq:roster' type='get'>\
<namespace ns='http://jabber.org/protocol/pubsub' type='set'/></namespace></perm></privilege></message>",
    );
    assert!(grants_iq(&nested, PUBSUB_NS, "set"));
    assert!(!grants_iq(&nested, "jabber:iq:roster", "set"));
}

#[test]
fn items_query_asks_for_the_latest_item() {
    assert_eq!(
        text(&items_query(&key_node("AB"))),
        "<pubsub xmlns='http://jabber.org/protocol/pubsub'>\
<items node='urn:xmpp:openpgp:0:public-keys:AB' max_items='1'/></pubsub>"
    );
}
