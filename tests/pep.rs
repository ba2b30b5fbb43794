//! sotto's service connection against a real Prosody (0.12, with
//! `mod_privilege` from prosody-modules): the XEP-0114 handshake, XEP-0373
//! key publication through XEP-0356 privileged iqs, and key fetching —
//! checked with a real client (slixmpp) reading what was published.

mod common;

use std::time::{Duration, Instant};

use base64::Engine as _;
use sequoia_openpgp::Cert;
use sequoia_openpgp::cert::CertBuilder;
use sequoia_openpgp::parse::Parse as _;
use sequoia_openpgp::serialize::SerializeInto as _;
use serde_json::{Value, json};
use sotto::xmpp::framer::{Element, parse_stanza};
use sotto::xmpp::service::{ConnectError, Service, ServiceError, ServiceSettings};
use tokio_util::sync::CancellationToken;

use common::prosody::{Options, Prosody};

const SECRET: &str = "component-secret-for-tests";
const METADATA: &str = "urn:xmpp:openpgp:0:public-keys";
const OPENPGP_NS: &str = "urn:xmpp:openpgp:0";

fn prosody() -> Prosody {
    let p = Prosody::start(Options::default().component(SECRET));
    for user in ["alice", "bob", "carol"] {
        p.register(user, &format!("{user}-password"));
    }
    p
}

fn settings(p: &Prosody, secret: &str) -> ServiceSettings {
    let mut s = ServiceSettings::new(&p.component_jid(), &p.component_addr(), secret);
    s.backoff_min = Duration::from_millis(200);
    s.backoff_max = Duration::from_secs(1);
    s.request_timeout = Duration::from_secs(10);
    s
}

/// A connected service; panics with Prosody's log if it does not connect.
async fn service(p: &Prosody, shutdown: &CancellationToken) -> Service {
    let s = Service::start(settings(p, SECRET), shutdown.clone());
    if let Err(e) = s.wait_connected(Duration::from_secs(10)).await {
        panic!("service connection failed: {e}\n{}", p.log());
    }
    s
}

fn cert(user: &str) -> Cert {
    CertBuilder::general_purpose(Some(format!("xmpp:{user}")))
        .generate()
        .expect("generate")
        .0
}

/// What a client's `fetch` step printed for `node`: the payload XML of each
/// item, or the error.
fn fetched<'a>(run: &'a common::prosody::ClientRun, node: &str) -> &'a Value {
    run.events("items")
        .into_iter()
        .find(|e| e["node"] == node)
        .unwrap_or_else(|| panic!("no items event for {node}: {}", run.transcript()))
}

fn payload(item: &Value) -> Element {
    parse_stanza(item["xml"].as_str().expect("item xml").as_bytes()).expect("item payload parses")
}

#[tokio::test(flavor = "multi_thread")]
async fn connects_with_the_secret_and_is_refused_without_it() {
    let p = prosody();
    let shutdown = CancellationToken::new();
    let good = service(&p, &shutdown).await;
    assert!(good.is_connected());
    assert_eq!(good.jid(), "sotto.example.org");

    let wrong = Service::start(settings(&p, "not-the-secret"), shutdown.clone());
    let err = wrong
        .wait_connected(Duration::from_secs(3))
        .await
        .expect_err("a wrong secret must not connect");
    match &err {
        ServiceError::NotConnected {
            last: Some(ConnectError::NotAuthorized { .. }),
        } => {}
        other => panic!("expected not-authorized, got {other:?}\n{}", p.log()),
    }
    assert!(
        err.to_string()
            .contains("the server refused the component handshake (not-authorized"),
        "{err}"
    );
    assert!(!wrong.is_connected());

    // A component name Prosody does not serve.
    let mut unknown = settings(&p, SECRET);
    unknown.names = vec!["nobody.example.org".into()];
    let err = Service::start(unknown, shutdown.clone())
        .wait_connected(Duration::from_secs(3))
        .await
        .expect_err("an unknown component name must not connect");
    assert!(
        matches!(
            &err,
            ServiceError::NotConnected {
                last: Some(ConnectError::StreamError { condition, .. })
            } if condition == "host-unknown"
        ),
        "{err:?}"
    );
    // The refused ones did not disturb the good one.
    assert!(good.is_connected());

    // The component answers what is routed to it: a real client's disco,
    // ping, and anything else with service-unavailable.
    let run = p
        .client("bob")
        .no_presence()
        .run(&json!([
            { "op": "iq", "xml": "<iq type='get' to='sotto.example.org'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>" },
            { "op": "iq", "xml": "<iq type='get' to='sotto.example.org'><ping xmlns='urn:xmpp:ping'/></iq>" },
            { "op": "iq", "xml": "<iq type='set' to='sotto.example.org'><query xmlns='jabber:iq:roster'/></iq>" },
        ]))
        .await
        .assert_ok();
    let answers = run.events("iq");
    assert_eq!(answers.len(), 3, "{}", run.transcript());
    let xml = |i: usize| answers[i]["xml"].as_str().unwrap_or_default().to_string();
    assert_eq!(answers[0]["type"], "result", "{}", run.transcript());
    assert!(
        xml(0).contains("category=\"component\"") && xml(0).contains("urn:xmpp:ping"),
        "{}",
        xml(0)
    );
    assert_eq!(answers[1]["type"], "result", "{}", run.transcript());
    assert_eq!(answers[2]["type"], "error", "{}", run.transcript());
    assert!(xml(2).contains("service-unavailable"), "{}", xml(2));
    assert!(good.is_connected());
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_published_key_is_read_by_a_real_client_and_by_fetch_keys() {
    let p = prosody();
    let shutdown = CancellationToken::new();
    let service = service(&p, &shutdown).await;
    let alice = cert("alice@example.org");
    let fpr = alice.fingerprint().to_hex();

    service
        .publish_key("alice@example.org", &alice)
        .await
        .unwrap_or_else(|e| panic!("publish_key: {e}\n{}", p.log()));
    // Again: only the date is refreshed, the list holds it once.
    service
        .publish_key("alice@example.org", &alice)
        .await
        .expect("publish_key again");

    // Bob, not in alice's roster, reads both nodes with slixmpp straight
    // from Prosody: the nodes are standard XEP-0373 and open.
    let key_node = format!("{METADATA}:{fpr}");
    let run = p
        .client("bob")
        .no_presence()
        .run(&json!([
            { "op": "fetch", "jid": "alice@example.org", "node": METADATA },
            { "op": "fetch", "jid": "alice@example.org", "node": key_node },
        ]))
        .await
        .assert_ok();
    let meta = fetched(&run, METADATA);
    assert!(meta.get("error").is_none(), "{}", run.transcript());
    let items = meta["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{}", run.transcript());
    let list = payload(&items[0]);
    assert_eq!(
        (list.name.as_str(), list.ns.as_str()),
        ("public-keys-list", OPENPGP_NS)
    );
    let listed: Vec<&str> = list
        .elements()
        .filter(|e| e.name == "pubkey-metadata")
        .map(|e| e.attr("v4-fingerprint").unwrap_or_default())
        .collect();
    assert_eq!(listed, vec![fpr.as_str()], "{}", run.transcript());
    let date = list.elements().next().unwrap().attr("date").unwrap();
    assert!(
        date.len() == 20 && date.ends_with('Z') && date.as_bytes()[10] == b'T',
        "XEP-0082 date: {date}"
    );

    let key = fetched(&run, &key_node);
    let items = key["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{}", run.transcript());
    assert_eq!(items[0]["id"], date, "key item id is its date");
    let pubkey = payload(&items[0]);
    assert_eq!(
        (pubkey.name.as_str(), pubkey.ns.as_str()),
        ("pubkey", OPENPGP_NS)
    );
    let data = pubkey.child("data", OPENPGP_NS).expect("<data>").text();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .expect("base64");
    assert_eq!(bytes, alice.to_vec().unwrap(), "the binary public cert");
    let published = Cert::from_bytes(&bytes).unwrap();
    assert_eq!(published.fingerprint(), alice.fingerprint());
    assert!(!published.is_tsk(), "no secret key material published");

    // sotto's own fetch finds the same.
    let got = service.fetch_keys("alice@example.org").await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0], published);
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread")]
async fn no_key_is_typed_none_and_client_published_keys_are_found_and_kept() {
    let p = prosody();
    let shutdown = CancellationToken::new();
    let service = service(&p, &shutdown).await;

    // Never published: the typed "none".
    let err = service.fetch_keys("bob@example.org").await.unwrap_err();
    assert_eq!(err, ServiceError::NoKeys, "{err}");
    assert!(!err.is_transient());
    // Nor does an account that does not exist have keys.
    let err = service.fetch_keys("nobody@example.org").await.unwrap_err();
    assert_eq!(err, ServiceError::NoKeys, "{err}");

    // Carol publishes a key from her own client, as XEP-0373 says.
    let own = cert("carol@example.org");
    let own_fpr = own.fingerprint().to_hex();
    let b64 = base64::engine::general_purpose::STANDARD.encode(own.to_vec().unwrap());
    let date = "2024-05-01T10:00:00Z";
    p.client("carol")
        .no_presence()
        .run(&json!([
            { "op": "publish", "node": format!("{METADATA}:{own_fpr}"), "id": date,
              "access_model": "open",
              "xml": format!("<pubkey xmlns='{OPENPGP_NS}' date='{date}'><data>{b64}</data></pubkey>") },
            { "op": "publish", "node": METADATA, "access_model": "open",
              "xml": format!("<public-keys-list xmlns='{OPENPGP_NS}'><pubkey-metadata v4-fingerprint='{own_fpr}' date='{date}'/></public-keys-list>") },
        ]))
        .await
        .assert_ok();
    let got = service.fetch_keys("carol@example.org").await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].fingerprint(), own.fingerprint());

    // sotto publishes its key for carol: hers stays listed beside it.
    let held = cert("carol@example.org");
    service
        .publish_key("carol@example.org", &held)
        .await
        .unwrap_or_else(|e| panic!("publish_key: {e}\n{}", p.log()));
    let listed: Vec<String> = service
        .listed_keys("carol@example.org")
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.fingerprint)
        .collect();
    assert_eq!(listed, vec![own_fpr.clone(), held.fingerprint().to_hex()]);
    let mut got: Vec<String> = service
        .fetch_keys("carol@example.org")
        .await
        .unwrap()
        .iter()
        .map(|c| c.fingerprint().to_hex())
        .collect();
    got.sort();
    let mut want = vec![own_fpr, held.fingerprint().to_hex()];
    want.sort();
    assert_eq!(got, want);
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread")]
async fn without_the_privilege_publishing_is_refused_before_sending() {
    let p = Prosody::start(Options::default().component_without_privilege(SECRET));
    p.register("alice", "alice-password");
    let shutdown = CancellationToken::new();
    let service = service(&p, &shutdown).await;
    let err = service
        .publish_key("alice@example.org", &cert("alice@example.org"))
        .await
        .unwrap_err();
    assert_eq!(err, ServiceError::NotPrivileged, "{err}");
    assert!(service.is_connected());
    // Nothing was published.
    assert_eq!(
        service.fetch_keys("alice@example.org").await.unwrap_err(),
        ServiceError::NoKeys
    );
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_while_disconnected_fail_fast() {
    let p = prosody();
    let shutdown = CancellationToken::new();
    let service = service(&p, &shutdown).await;
    assert_eq!(
        service.fetch_keys("bob@example.org").await.unwrap_err(),
        ServiceError::NoKeys
    );
    drop(p); // kills Prosody

    let end = Instant::now() + Duration::from_secs(10);
    while service.is_connected() {
        assert!(Instant::now() < end, "the lost connection went unnoticed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for _ in 0..3 {
        let started = Instant::now();
        let err = service.fetch_keys("bob@example.org").await.unwrap_err();
        assert!(matches!(err, ServiceError::NotConnected { .. }), "{err:?}");
        assert!(err.is_transient());
        assert!(
            started.elapsed() < Duration::from_millis(200),
            "took {:?}",
            started.elapsed()
        );
        let err = service
            .publish_key("bob@example.org", &cert("bob@example.org"))
            .await
            .unwrap_err();
        assert!(matches!(err, ServiceError::NotConnected { .. }), "{err:?}");
        // While it keeps trying to reconnect.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_deploy_recipe_accepts_the_component() {
    let cfg =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/prosody/prosody.cfg.lua");
    // The recipe's own component name and privileges; only the secret and
    // the port are the harness's.
    let p = Prosody::start(Options::default().base_config(&cfg).component(SECRET));
    p.register("alice", "alice-password");
    p.register("bob", "bob-password");
    let shutdown = CancellationToken::new();
    let service = service(&p, &shutdown).await;
    let alice = cert("alice@example.org");
    service
        .publish_key("alice@example.org", &alice)
        .await
        .unwrap_or_else(|e| panic!("publish_key through the recipe: {e}\n{}", p.log()));
    let got = service.fetch_keys("alice@example.org").await.unwrap();
    assert_eq!(got[0].fingerprint(), alice.fingerprint());
    let run = p
        .client("bob")
        .no_presence()
        .run(&json!([{ "op": "fetch", "jid": "alice@example.org", "node": METADATA }]))
        .await
        .assert_ok();
    assert_eq!(
        fetched(&run, METADATA)["items"].as_array().map(Vec::len),
        Some(1),
        "{}",
        run.transcript()
    );
    shutdown.cancel();
}

/// Replicas share the PEP work with a component name each: three services
/// given the same two names (`xmpp.component = "sotto-1…, sotto-2…"`)
/// against one Prosody. Two connect, each as a different name, and each
/// publishes for its users with its own privilege; the third finds both
/// names taken (Prosody's `conflict`) and keeps trying, and takes the name
/// the first gives up when it stops.
#[tokio::test(flavor = "multi_thread")]
async fn replicas_take_one_component_name_each() {
    let p = Prosody::start(Options::default().replica_components(SECRET, 2));
    for user in ["alice", "bob", "carol"] {
        p.register(user, &format!("{user}-password"));
    }
    let names = p.component_jids().join(", ");
    let start = |token: &CancellationToken| {
        let mut s = ServiceSettings::new(&names, &p.component_addr(), SECRET);
        s.backoff_min = Duration::from_millis(200);
        s.backoff_max = Duration::from_millis(500);
        Service::start(s, token.clone())
    };
    let (one_stop, two_stop, three_stop) = (
        CancellationToken::new(),
        CancellationToken::new(),
        CancellationToken::new(),
    );
    let one = start(&one_stop);
    one.wait_connected(Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("first replica: {e}\n{}", p.log()));
    let two = start(&two_stop);
    two.wait_connected(Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("second replica: {e}\n{}", p.log()));
    assert_eq!(one.jid(), "sotto-1.example.org");
    assert_eq!(two.jid(), "sotto-2.example.org");

    let three = start(&three_stop);
    let err = three
        .wait_connected(Duration::from_secs(2))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ServiceError::NotConnected { last: Some(e) } if e.is_conflict()),
        "both names are held: {err:?}"
    );

    // Each publishes with its own name's privilege; a real client reads
    // both keys.
    let (alice, bob) = (cert("alice@example.org"), cert("bob@example.org"));
    one.publish_key("alice@example.org", &alice)
        .await
        .unwrap_or_else(|e| panic!("publish through sotto-1: {e}\n{}", p.log()));
    two.publish_key("bob@example.org", &bob)
        .await
        .unwrap_or_else(|e| panic!("publish through sotto-2: {e}\n{}", p.log()));
    let run = p
        .client("carol")
        .no_presence()
        .run(&json!([
            { "op": "fetch", "jid": "alice@example.org", "node": METADATA },
            { "op": "fetch", "jid": "bob@example.org", "node": METADATA },
        ]))
        .await
        .assert_ok();
    let listed: Vec<String> = run
        .events("items")
        .iter()
        .map(|e| {
            let list = payload(&e["items"][0]);
            let meta = list.elements().next().expect("pubkey-metadata");
            meta.attr("v4-fingerprint").unwrap_or_default().to_owned()
        })
        .collect();
    assert_eq!(
        listed,
        [alice.fingerprint().to_hex(), bob.fingerprint().to_hex()],
        "{}",
        run.transcript()
    );
    // Each reads what the other published.
    assert_eq!(one.fetch_keys("bob@example.org").await.unwrap()[0], bob);
    assert_eq!(two.fetch_keys("alice@example.org").await.unwrap()[0], alice);

    // The first stops; the waiting one takes its name and publishes.
    one_stop.cancel();
    three
        .wait_connected(Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("third replica never took the free name: {e}\n{}", p.log()));
    assert_eq!(three.jid(), "sotto-1.example.org");
    three
        .publish_key("alice@example.org", &alice)
        .await
        .unwrap_or_else(|e| panic!("publish through the taken-over name: {e}\n{}", p.log()));
    assert!(two.is_connected(), "the second replica kept its name");
    two_stop.cancel();
    three_stop.cancel();
}
