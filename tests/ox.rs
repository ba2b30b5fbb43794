//! OpenPGP for XMPP against real peers: what sotto encrypts (XEP-0373
//! signcrypt, XEP-0027 armour body) GnuPG and sq decrypt and verify, and
//! what GnuPG signs and encrypts sotto opens. Alice is a user behind sotto
//! (her key made by `UserKeys`); Bob and Carol are outside, with keys made
//! by gpg or sq.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::pgp::{Gpg, sq_generate};
use common::require;
use sequoia_openpgp::Cert;
use sequoia_openpgp::parse::Parse;
use sequoia_openpgp::policy::StandardPolicy;
use sequoia_openpgp::serialize::SerializeInto;
use sotto::xmpp::framer::{Element, parse_stanza, serialize};
use sotto::xmpp::ox::{self, Incoming, OxError, Signcrypt};
use sotto::xmpp::userkeys::{UserKey, UserKeys};

const P: &StandardPolicy<'static> = &StandardPolicy::new();

/// Runs `cmd` with `input` on its standard input; (success, stdout, stderr).
fn run(mut cmd: Command, input: &[u8]) -> (bool, Vec<u8>, String) {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the peer");
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs gpg with `args` on `input`; stderr holds the status lines.
fn gpg(g: &Gpg, args: &[&str], input: &[u8]) -> (bool, Vec<u8>, String) {
    let mut cmd = g.cmd();
    cmd.args(["--status-fd", "2", "--trust-model", "always"])
        .args(args);
    run(cmd, input)
}

/// A gpg key (Ed25519 + Curve25519 encryption subkey) with the XEP-0373
/// user ID `xmpp:<jid>`; returns its fingerprint.
fn gpg_xmpp_key(g: &Gpg, jid: &str) -> String {
    let uid = format!("xmpp:{jid}");
    let (ok, _, err) = gpg(
        g,
        &["--quick-gen-key", &uid, "ed25519", "sign", "never"],
        b"",
    );
    assert!(ok, "gpg --quick-gen-key: {err}");
    let fpr = g.fingerprint(&uid);
    let (ok, _, err) = gpg(
        g,
        &["--quick-add-key", &fpr, "cv25519", "encr", "never"],
        b"",
    );
    assert!(ok, "gpg --quick-add-key: {err}");
    fpr
}

async fn alice(dir: &tempfile::TempDir) -> Arc<UserKey> {
    let keys = UserKeys::open(dir.path().join("user-keys"), "at-rest secret".into()).unwrap();
    keys.get_or_create("alice@example.org").await.unwrap()
}

/// Alice behind sotto and `jid` outside with a gpg key; gpg knows Alice's
/// certificate. Keep the directory alive.
async fn alice_and_gpg_peer(jid: &str) -> (Gpg, tempfile::TempDir, Arc<UserKey>, Cert) {
    let g = Gpg::new();
    let dir = tempfile::tempdir().unwrap();
    let alice = alice(&dir).await;
    let fpr = gpg_xmpp_key(&g, jid);
    let peer = Cert::from_bytes(&g.public(&fpr)).unwrap();
    g.import(&armored(alice.cert()));
    (g, dir, alice, peer)
}

fn armored(cert: &Cert) -> Vec<u8> {
    cert.armored().to_vec().unwrap()
}

fn payload() -> Vec<Element> {
    vec![
        parse_stanza(b"<body>Lunch at 12? See https://example.org/menu</body>").unwrap(),
        parse_stanza(
            b"<html xmlns='http://jabber.org/protocol/xhtml-im'><body xmlns='http://www.w3.org/1999/xhtml'><p>Lunch at <b>12</b>?</p></body></html>",
        )
        .unwrap(),
    ]
}

/// The signcrypt element of a decrypted plaintext, checked against XEP-0373's shape.
fn check_signcrypt_xml(plaintext: &[u8], to: &str) {
    let el = parse_stanza(plaintext).expect("the plaintext is one XML element");
    assert_eq!((el.name.as_str(), el.ns.as_str()), ("signcrypt", ox::OX_NS));
    let names: Vec<&str> = el.elements().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["to", "time", "rpad", "payload"]);
    assert_eq!(el.child("to", ox::OX_NS).unwrap().attr("jid"), Some(to));
    let stamp = el.child("time", ox::OX_NS).unwrap().attr("stamp").unwrap();
    assert!(ox::parse_datetime(stamp).is_some(), "{stamp}");
    assert!(stamp.ends_with('Z') && stamp.len() == 20, "{stamp}");
    let body = el
        .child("payload", ox::OX_NS)
        .unwrap()
        .child("body", "jabber:client")
        .expect("<payload><body xmlns='jabber:client'>");
    assert_eq!(body.text(), "Lunch at 12? See https://example.org/menu");
}

#[tokio::test]
async fn gpg_decrypts_and_verifies_what_sotto_signcrypts() {
    let (g, _dir, alice, bob) = alice_and_gpg_peer("bob@example.org").await;

    let sc = Signcrypt::new(vec!["bob@example.org".into()], payload());
    let b64 = ox::encrypt(&sc, &[bob, Cert::clone(alice.cert())], alice.secret(), P).unwrap();
    let binary = STANDARD.decode(&b64).unwrap();
    let (ok, plaintext, status) = gpg(&g, &["--decrypt"], &binary);
    assert!(ok, "gpg --decrypt: {status}");
    check_signcrypt_xml(&plaintext, "bob@example.org");
    assert!(status.contains("[GNUPG:] DECRYPTION_OKAY"), "{status}");
    assert!(status.contains("[GNUPG:] GOODSIG"), "{status}");
    let alice_fpr = alice.fingerprint().to_hex();
    assert!(
        status.contains(&format!("[GNUPG:] VALIDSIG {alice_fpr}")),
        "{status}"
    );
    assert!(!status.contains("BADSIG"), "{status}");

    // The whole outgoing message content serializes as XEP-0373/0374 say.
    let children = ox::message_children(b64.clone());
    let xml: Vec<String> = children
        .iter()
        .map(|e| String::from_utf8(serialize(e)).unwrap())
        .collect();
    assert_eq!(
        xml[0],
        format!("<openpgp xmlns='urn:xmpp:openpgp:0'>{b64}</openpgp>")
    );
    assert!(xml[1].starts_with("<body xmlns='jabber:client'>This message is encrypted"));
    assert_eq!(
        xml[2],
        "<encryption xmlns='urn:xmpp:eme:0' namespace='urn:xmpp:openpgp:0' name='OpenPGP for XMPP'/>"
    );
    assert_eq!(xml[3], "<store xmlns='urn:xmpp:hints'/>");
}

#[tokio::test]
async fn sq_decrypts_and_verifies_what_sotto_signcrypts() {
    require("sq");
    let dir = tempfile::tempdir().unwrap();
    let alice = alice(&dir).await;
    let (bob_secret, bob_public) = sq_generate(dir.path(), "bob@example.org");
    let bob = Cert::from_file(&bob_public).unwrap();
    let alice_file = dir.path().join("alice.asc");
    std::fs::write(&alice_file, armored(alice.cert())).unwrap();

    let sc = Signcrypt::new(vec!["bob@example.org".into()], payload());
    let b64 = ox::encrypt(&sc, &[bob, Cert::clone(alice.cert())], alice.secret(), P).unwrap();
    let mut sq = Command::new("sq");
    sq.args(["decrypt", "--recipient-key"])
        .arg(&bob_secret)
        .arg("--signer-cert")
        .arg(&alice_file);
    let (ok, plaintext, stderr) = run(sq, &STANDARD.decode(&b64).unwrap());
    // sq only succeeds (and only releases the plaintext) if the signature
    // verifies with Alice's certificate.
    assert!(ok, "sq decrypt: {stderr}");
    assert!(stderr.contains("Good signature"), "{stderr}");
    check_signcrypt_xml(&plaintext, "bob@example.org");
}

#[tokio::test]
async fn sotto_opens_what_gpg_signs_and_encrypts() {
    let (g, _dir, alice, carol) = alice_and_gpg_peer("carol@example.org").await;
    let alice_fpr = alice.fingerprint().to_hex();

    let xml = "<signcrypt xmlns='urn:xmpp:openpgp:0'>\n  <to jid='alice@example.org'/>\n  \
               <time stamp='2014-07-10T17:06:00+02:00'/>\n  <rpad>f0rm1l4n4-mT8y33j!Y%fRSrcd^ZE4Q7VDt1L%WEgR!kv</rpad>\n  \
               <payload>\n    <body xmlns='jabber:client'>This is a secret message.</body>\n  </payload>\n</signcrypt>\n";
    let (ok, message, status) = gpg(
        &g,
        &[
            "--local-user",
            &carol.fingerprint().to_hex(),
            "--recipient",
            &alice_fpr,
            "--sign",
            "--encrypt",
        ],
        xml.as_bytes(),
    );
    assert!(ok, "gpg --sign --encrypt: {status}");
    let b64 = STANDARD.encode(&message);

    let senders = [carol.clone()];
    let how = Incoming {
        tsk: alice.secret(),
        sender: "carol@example.org",
        sender_certs: &senders,
        recipient: Some("alice@example.org"),
        max_bytes: 256 * 1024,
        policy: P,
    };
    let opened = ox::decrypt(&b64, &how).expect("sotto opens gpg's signcrypt");
    assert_eq!(opened.signer, carol.fingerprint());
    assert_eq!(opened.signcrypt.to, ["alice@example.org"]);
    assert_eq!(
        opened.signcrypt.time,
        ox::parse_datetime("2014-07-10T15:06:00Z").unwrap()
    );
    assert_eq!(opened.signcrypt.payload.len(), 1);
    assert_eq!(
        opened.signcrypt.payload[0].text(),
        "This is a secret message."
    );

    // The same message claimed by someone else is refused.
    let mallory = Incoming {
        sender: "mallory@example.org",
        ..how
    };
    assert_eq!(
        ox::decrypt(&b64, &mallory),
        Err(OxError::SignerMismatch {
            expected: "mallory@example.org".into()
        })
    );
    // Addressed to Alice, not to Bob.
    let bob_dir = tempfile::tempdir().unwrap();
    let bob_keys = UserKeys::open(bob_dir.path(), "x".into()).unwrap();
    let bob = bob_keys.get_or_create("bob@example.org").await.unwrap();
    let as_bob = Incoming {
        tsk: bob.secret(),
        recipient: Some("bob@example.org"),
        ..how
    };
    assert_eq!(ox::decrypt(&b64, &as_bob), Err(OxError::NotForUs));
}

#[tokio::test]
async fn xep_0027_interop_with_gpg() {
    let (g, _dir, alice, bob) = alice_and_gpg_peer("bob@example.org").await;

    // sotto → gpg: the header and footer lines are the client's to add back.
    let body = "Legacy clients read this — ünïcode too";
    let text =
        ox::legacy_encrypt(body, &[bob.clone(), Cert::clone(alice.cert())], None, P).unwrap();
    assert!(!text.contains("-----"), "{text}");
    let full = format!("-----BEGIN PGP MESSAGE-----\n\n{text}\n-----END PGP MESSAGE-----\n");
    let (ok, plaintext, status) = gpg(&g, &["--decrypt"], full.as_bytes());
    assert!(ok, "gpg --decrypt: {status}");
    assert_eq!(String::from_utf8(plaintext).unwrap(), body);

    // gpg → sotto: an armoured message with its armour lines stripped.
    let alice_fpr = alice.fingerprint().to_hex();
    let (ok, armored_msg, status) = gpg(
        &g,
        &["--armor", "--recipient", &alice_fpr, "--encrypt"],
        b"Reply from a gpg client",
    );
    assert!(ok, "gpg --encrypt: {status}");
    let armored_msg = String::from_utf8(armored_msg).unwrap();
    let stripped: Vec<&str> = armored_msg
        .lines()
        .skip_while(|l| !l.is_empty())
        .filter(|l| !l.is_empty() && !l.starts_with("-----"))
        .collect();
    let senders = [bob];
    let how = Incoming {
        tsk: alice.secret(),
        sender: "bob@example.org",
        sender_certs: &senders,
        recipient: None,
        max_bytes: 65536,
        policy: P,
    };
    let opened = ox::legacy_decrypt(&stripped.join("\n"), &how).unwrap();
    assert_eq!(opened.body, "Reply from a gpg client");
    assert_eq!(opened.signer, None);
}

#[tokio::test]
async fn gpg_reads_the_stored_user_key_only_with_the_passphrase() {
    let g = Gpg::new();
    let dir = tempfile::tempdir().unwrap();
    let alice = alice(&dir).await;
    // The key as the state store holds it.
    let keys = UserKeys::open(dir.path().join("user-keys"), "at-rest secret".into()).unwrap();
    let stored = keys
        .store()
        .identity("alice@example.org")
        .await
        .unwrap()
        .expect("alice's key is stored")
        .tsk;
    let (ok, _, status) = gpg(&g, &["--passphrase", "at-rest secret", "--import"], &stored);
    assert!(ok, "gpg --import: {status}");
    assert!(status.contains("IMPORT_OK"), "{status}");
    let (ok, listing, _) = gpg(&g, &["--with-colons", "--list-secret-keys"], b"");
    let listing = String::from_utf8(listing).unwrap();
    assert!(
        ok && listing.contains(&alice.fingerprint().to_hex()),
        "{listing}"
    );
    assert!(listing.contains("xmpp\\x3aalice@example.org"), "{listing}");

    let sc = Signcrypt::new(vec!["alice@example.org".into()], payload());
    let b64 = ox::encrypt(&sc, &[Cert::clone(alice.cert())], alice.secret(), P).unwrap();
    let binary = STANDARD.decode(&b64).unwrap();
    let (ok, _, status) = gpg(&g, &["--passphrase", "wrong", "--decrypt"], &binary);
    assert!(!ok, "decrypted with the wrong passphrase: {status}");
    assert!(status.contains("DECRYPTION_FAILED"), "{status}");
    let (ok, plaintext, status) = gpg(
        &g,
        &["--passphrase", "at-rest secret", "--decrypt"],
        &binary,
    );
    assert!(ok, "gpg --decrypt: {status}");
    check_signcrypt_xml(&plaintext, "alice@example.org");
    assert!(status.contains("[GNUPG:] GOODSIG"), "{status}");
}
