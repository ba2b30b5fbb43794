//! Chat through sotto with real peers: a real Prosody (two hosts: the
//! organisation's `example.org` behind sotto, and `outside.example` whose
//! users connect straight to Prosody), slixmpp clients, and GnuPG reading
//! what sotto produced.
//!
//! - alice → bob, both behind sotto: bob's client gets the plain body;
//!   Prosody's archive holds only `<openpgp/>`, which GnuPG decrypts with
//!   bob's sotto-held key (passphrase-protected on disk) to the body;
//! - alice → carol outside: carol's client gets `<openpgp/>`; GnuPG with
//!   carol's key decrypts it and verifies alice's signature;
//! - a pair with encryption off: links in the body stripped per policy;
//! - encryption required without a key: alice gets a stanza error and the
//!   message reaches no one; the stream goes on (stream management on).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine;
use common::pgp::Gpg;
use common::prosody::{Options, Prosody, XmppClient};
use serde_json::json;

const OUTSIDE: &str = "outside.example";
const PASSPHRASE: &str = "chat keys passphrase for the tests";

struct Setup {
    prosody: Prosody,
    gw: sotto::serve::Running,
    ca: PathBuf,
    user_keys: PathBuf,
    gpg: Gpg,
    _dirs: Vec<tempfile::TempDir>,
}

async fn setup(policy: &str) -> Setup {
    setup_with(policy, |_| {}).await
}

async fn setup_with(policy: &str, tune: impl FnOnce(&mut sotto::config::Config)) -> Setup {
    setup_full(policy, false, tune).await
}

/// With `pep`, Prosody runs sotto's component (mod_privilege) and sotto
/// connects to it, publishing and fetching keys over PEP.
async fn setup_full(
    policy: &str,
    pep: bool,
    tune: impl FnOnce(&mut sotto::config::Config),
) -> Setup {
    let mut opts = Options::default().config(&format!("VirtualHost \"{OUTSIDE}\""));
    if pep {
        opts = opts.component("component secret for the tests");
    }
    let prosody = Prosody::start(opts);
    prosody.register("alice", "alice-secret");
    prosody.register("bob", "bob-secret");
    register_outside(&prosody, "carol", "carol-secret");
    register_outside(&prosody, "dave", "dave-secret");
    register_outside(&prosody, "frank", "frank-secret");

    // Outside users' keys, with the XEP-0373 user ID, known to sotto.
    let gpg = Gpg::new();
    for user in ["carol", "dave"] {
        let email = format!("{user}@{OUTSIDE}");
        let fpr = gpg.generate(&email, true, "1y", None);
        let out = gpg
            .cmd()
            .args(["--quick-add-uid", &fpr, &format!("xmpp:{email}")])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        gpg.export(&email, &format!("{user}.asc"));
    }

    let ck = rcgen::generate_simple_self_signed(vec!["example.org".to_string()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.key_pair.serialize_pem()).unwrap();
    let secret = dir.path().join("user-keys.secret");
    std::fs::write(&secret, format!("{PASSPHRASE}\n")).unwrap();
    let user_keys = dir.path().join("user-keys");

    let mut cfg = common::config("127.0.0.1:1");
    cfg.xmpp.listen = "127.0.0.1:0".into();
    cfg.xmpp.upstream = prosody.addr();
    cfg.xmpp.domain = "example.org".into();
    cfg.xmpp.tls_cert = Some(cert.clone());
    cfg.xmpp.tls_key = Some(key);
    cfg.xmpp.user_keys = Some(user_keys.clone());
    cfg.xmpp.user_keys_secret = Some(secret);
    cfg.keys.dir = Some(gpg.keys.clone());
    if pep {
        let secret = dir.path().join("component.secret");
        std::fs::write(&secret, format!("{}\n", prosody.component_secret())).unwrap();
        cfg.xmpp.component = prosody.component_jid();
        cfg.xmpp.component_upstream = prosody.component_addr();
        cfg.xmpp.component_secret = Some(secret);
        cfg.keys.sources = vec![sotto::config::KeySource::Dir, sotto::config::KeySource::Pep];
    }
    let pdir = common::policy(&mut cfg, policy);
    tune(&mut cfg);
    let gw = common::gateway(&cfg).await;
    Setup {
        prosody,
        gw,
        ca: cert,
        user_keys,
        gpg,
        _dirs: vec![dir, pdir],
    }
}

fn register_outside(prosody: &Prosody, user: &str, password: &str) {
    let out = Command::new(common::require("prosodyctl"))
        .arg("--config")
        .arg(prosody.config_path())
        .args(["register", user, OUTSIDE, password])
        .current_dir(prosody.dir())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Setup {
    /// A client of the organisation, through sotto (STARTTLS).
    fn inside(&self, user: &str) -> XmppClient {
        XmppClient::new(
            &self.gw.xmpp.unwrap().to_string(),
            &self.prosody.jid(user),
            &self.prosody.password(user),
        )
        .cafile(&self.ca)
        .starttls()
    }

    /// A user of the other host, straight to Prosody.
    fn outside(&self, user: &str) -> XmppClient {
        XmppClient::new(
            &self.prosody.addr(),
            &format!("{user}@{OUTSIDE}"),
            &format!("{user}-secret"),
        )
    }

    /// The sotto-held key file of `jid` (its secret parts passphrase-protected).
    fn key_file(&self, jid: &str) -> PathBuf {
        for entry in std::fs::read_dir(&self.user_keys).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read(&path).unwrap();
            let listing = gpg_show(&text);
            // --with-colons escapes the URI's colon.
            if listing.contains(&format!("xmpp\\x3a{jid}")) {
                return path;
            }
        }
        panic!("no key file for {jid} in {}", self.user_keys.display());
    }
}

/// `gpg --show-keys` of a key file, in a throwaway homedir.
fn gpg_show(key: &[u8]) -> String {
    let home = tempfile::tempdir().unwrap();
    let file = home.path().join("k");
    std::fs::write(&file, key).unwrap();
    let out = Command::new("gpg")
        .env("GNUPGHOME", home.path())
        .args(["--batch", "--with-colons", "--show-keys"])
        .arg(&file)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Decrypts (and verifies, when `verify_with` is given) the binary OpenPGP
/// message with the secret key `secret` (protected by `passphrase`) in a
/// fresh GnuPG homedir; returns (plaintext, gpg's status lines).
fn gpg_decrypt(
    secret: &Path,
    passphrase: &str,
    verify_with: Option<&[u8]>,
    message: &[u8],
) -> (String, String) {
    let home = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        home.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let gpg = |args: &[&str]| {
        let mut c = Command::new("gpg");
        c.env("GNUPGHOME", home.path()).args([
            "--batch",
            "--pinentry-mode",
            "loopback",
            "--passphrase",
            passphrase,
        ]);
        c.args(args);
        c
    };
    let out = gpg(&["--import", secret.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "import: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    if let Some(public) = verify_with {
        let f = home.path().join("signer.asc");
        std::fs::write(&f, public).unwrap();
        let out = gpg(&["--import", f.to_str().unwrap()]).output().unwrap();
        assert!(out.status.success());
    }
    let msg = home.path().join("msg.pgp");
    std::fs::write(&msg, message).unwrap();
    let out = gpg(&["--status-fd", "2", "--decrypt", msg.to_str().unwrap()])
        .output()
        .unwrap();
    let status = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "gpg --decrypt: {status}");
    (String::from_utf8_lossy(&out.stdout).into_owned(), status)
}

/// The base64 content of the `<openpgp>` element in `xml`, decoded.
fn openpgp_of(xml: &str) -> Vec<u8> {
    let start = xml.find("<openpgp").expect("an <openpgp> element");
    let open_end = start + xml[start..].find('>').unwrap() + 1;
    let close = open_end + xml[open_end..].find("</openpgp>").unwrap();
    base64::engine::general_purpose::STANDARD
        .decode(xml[open_end..close].trim())
        .unwrap()
}

const ENCRYPT_ALL: &str = "[defaults]\nencrypt = \"if-key\"\nlinks = \"keep\"\n";

#[tokio::test(flavor = "multi_thread")]
async fn chat_between_users_behind_sotto_is_ciphertext_on_the_server() {
    let s = setup(ENCRYPT_ALL).await;
    let mut bob = s
        .inside("bob")
        .spawn(&json!([{ "op": "wait", "count": 1 }]))
        .await;
    bob.wait_event("ready").await;
    s.inside("alice")
        .run(&json!([{ "op": "send", "to": "bob@example.org", "body": "the plan is secret-marker-7731" }]))
        .await
        .assert_ok();
    let bob = bob.finish().await.assert_ok();
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
    let metrics = reqwest::get(format!("http://{}/metrics", s.gw.admin.unwrap()))
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
    let mut carol = s
        .outside("carol")
        .spawn(&json!([{ "op": "wait", "count": 1 }]))
        .await;
    carol.wait_event("ready").await;
    s.inside("alice")
        .run(&json!([{ "op": "send", "to": carol_jid, "body": "hello carol, marker-4410" }]))
        .await
        .assert_ok();
    let carol = carol.finish().await.assert_ok();
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

/// Signs with carol's key and encrypts to `to_cert` (a key file) with
/// GnuPG; the base64 of the binary message.
fn carol_seals(s: &Setup, to_cert: &Path, plaintext: &str, sign: bool) -> String {
    s.gpg.import(&public_part(to_cert));
    let input = s.gpg.home.path().join("signcrypt.xml");
    std::fs::write(&input, plaintext).unwrap();
    let output = s.gpg.home.path().join("signcrypt.pgp");
    let _ = std::fs::remove_file(&output);
    let mut c = s.gpg.cmd();
    c.args([
        "--trust-model",
        "always",
        "--encrypt",
        "-r",
        "xmpp:alice@example.org",
    ]);
    if sign {
        c.args(["--sign", "--local-user", &format!("carol@{OUTSIDE}")]);
    }
    let out = c
        .args([
            "--output",
            output.to_str().unwrap(),
            input.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    base64::engine::general_purpose::STANDARD.encode(std::fs::read(&output).unwrap())
}

fn signcrypt(to: &str, body: &str) -> String {
    format!(
        "<signcrypt xmlns='urn:xmpp:openpgp:0'><to jid='{to}'/><time stamp='2026-11-23T10:00:00Z'/>\
         <rpad>abc</rpad><payload><body xmlns='jabber:client'>{body}</body></payload></signcrypt>"
    )
}

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

#[tokio::test(flavor = "multi_thread")]
async fn legacy_format_and_no_store_hints_per_policy() {
    let s = setup(&format!(
        "{ENCRYPT_ALL}\n[[rule]]\nname = \"dave's old client\"\nchannel = [\"xmpp\"]\nto = [\"dave@{OUTSIDE}\"]\nxmpp_format = \"legacy\"\nstore = false\n"
    ))
    .await;
    let dave_jid = format!("dave@{OUTSIDE}");
    let mut dave = s
        .outside("dave")
        .spawn(&json!([{ "op": "wait", "count": 1 }]))
        .await;
    dave.wait_event("ready").await;
    s.inside("alice")
        .run(&json!([{ "op": "send", "to": dave_jid, "body": "old school marker-6060" }]))
        .await
        .assert_ok();
    let dave = dave.finish().await.assert_ok();
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

/// The public certificate of a stored key file, armoured.
fn public_part(key_file: &Path) -> Vec<u8> {
    use sequoia_openpgp::parse::Parse;
    use sequoia_openpgp::serialize::SerializeInto;
    sequoia_openpgp::Cert::from_file(key_file)
        .unwrap()
        .strip_secret_key_material()
        .armored()
        .to_vec()
        .unwrap()
}

const OX_META: &str = "urn:xmpp:openpgp:0:public-keys";

#[tokio::test(flavor = "multi_thread")]
async fn keys_travel_over_pep_both_ways() {
    let s = setup_full(ENCRYPT_ALL, true, |_| {}).await;
    // frank (outside, not in sotto's key directory) publishes his own key
    // from his client, as XEP-0373 says.
    let frank = format!("frank@{OUTSIDE}");
    let fpr = s.gpg.generate(&frank, true, "1y", None);
    let out = s
        .gpg
        .cmd()
        .args(["--quick-add-uid", &fpr, &format!("xmpp:{frank}")])
        .output()
        .unwrap();
    assert!(out.status.success());
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
