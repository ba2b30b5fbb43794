//! OpenPGP for XMPP against real peers: what sotto encrypts (XEP-0373
//! signcrypt, XEP-0027 armour body) GnuPG and sq decrypt and verify, and
//! what GnuPG signs and encrypts sotto opens. Alice is a user behind sotto
//! (her key made by `Identities`); Bob and Carol are outside, with keys made
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
use sotto::openpgp::identities::{Identities, IdentityKey};
use sotto::xmpp::framer::{Element, parse_stanza, serialize};
use sotto::xmpp::ox::{self, Incoming, OxError, Signcrypt};

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

/// A gpg key as Profanity's OX guide has users make it (see
/// [`Gpg::generate_xmpp`]); its certificate.
fn gpg_xmpp_key(g: &Gpg, jid: &str) -> Cert {
    Cert::from_bytes(&g.public(&g.generate_xmpp(jid))).unwrap()
}

async fn alice(dir: &tempfile::TempDir) -> Arc<IdentityKey> {
    let keys = Identities::open(dir.path().join("user-keys"), "at-rest secret".into()).unwrap();
    keys.get_or_create("alice@example.org").await.unwrap()
}

/// Alice behind sotto and `jid` outside with a gpg key; gpg knows Alice's
/// certificate. Keep the directory alive.
async fn alice_and_gpg_peer(jid: &str) -> (Gpg, tempfile::TempDir, Arc<IdentityKey>, Cert) {
    let g = Gpg::new();
    let dir = tempfile::tempdir().unwrap();
    let alice = alice(&dir).await;
    let peer = gpg_xmpp_key(&g, jid);
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
        ox::parse_datetime("2014-07-10T15:06:00Z")
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
    let bob_keys = Identities::open(bob_dir.path(), "x".into()).unwrap();
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
    let keys = Identities::open(dir.path().join("user-keys"), "at-rest secret".into()).unwrap();
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

/// `xml` signed by `signer` (unless `None`) and encrypted to `to` by
/// GnuPG, as gpgme-based clients (Profanity, Gajim) seal it; base64.
fn gpg_seals(g: &Gpg, xml: &str, signer: Option<&Cert>, to: &Cert) -> String {
    let to = to.fingerprint().to_hex();
    let mut args = vec!["--encrypt", "--recipient", &to];
    let signer = signer.map(|c| c.fingerprint().to_hex());
    if let Some(fpr) = &signer {
        args.extend(["--sign", "--local-user", fpr]);
    }
    let (ok, message, status) = gpg(g, &args, xml.as_bytes());
    assert!(ok, "gpg {args:?}: {status}");
    STANDARD.encode(message)
}

fn as_alice<'a>(alice: &'a IdentityKey, sender: &'a str, certs: &'a [Cert]) -> Incoming<'a> {
    Incoming {
        tsk: alice.secret(),
        sender,
        sender_certs: certs,
        recipient: Some("alice@example.org"),
        max_bytes: 256 * 1024,
        policy: P,
    }
}

/// A signcrypt's shape (what writes it so), its text, the time sotto reads
/// in it, and the names of its payload's elements.
type Shape = (
    &'static str,
    String,
    Option<std::time::SystemTime>,
    &'static [&'static str],
);

/// Signcrypts shaped as other clients write them (the libstrophe, nbxmpp
/// and Smack shapes, pretty-printed, prefixed; the full table is in
/// `src/xmpp/ox/tests/shapes.rs`), signed and encrypted by GnuPG with a key
/// made as Profanity's guide says: sotto opens each.
#[tokio::test]
async fn sotto_opens_what_other_clients_write_sealed_by_gpg() {
    let (g, _dir, alice, carol) = alice_and_gpg_peer("carol@example.org").await;
    // 2026-11-23T14:00:00Z.
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_795_442_400);
    let shapes: &[Shape] = &[
        (
            "Profanity (libstrophe): %z offset +0000",
            "<signcrypt xmlns=\"urn:xmpp:openpgp:0\"><to jid=\"alice@example.org\"/>\
             <time stamp=\"2026-11-23T14:00:00+0000\"/><rpad>cc</rpad><payload>\
             <body xmlns=\"jabber:client\">from profanity marker-1</body></payload></signcrypt>"
                .into(),
            Some(t),
            &["body"],
        ),
        (
            "Gajim (nbxmpp): the message's children in the payload",
            "<signcrypt xmlns=\"urn:xmpp:openpgp:0\"><to jid=\"alice@example.org\" />\
             <time stamp=\"2026-11-23T14:00:00Z\" /><rpad>Zm9v</rpad><payload>\
             <body xmlns=\"jabber:client\">from gajim marker-2</body>\
             <origin-id xmlns=\"urn:xmpp:sid:0\" id=\"5c0e\" />\
             <request xmlns=\"urn:xmpp:receipts\" /><store xmlns=\"urn:xmpp:hints\" />\
             </payload></signcrypt>"
                .into(),
            Some(t),
            &["body", "origin-id", "request", "store"],
        ),
        (
            "Smack: milliseconds, padding after the payload",
            "<signcrypt xmlns='urn:xmpp:openpgp:0'><to jid='alice@example.org'/>\
             <time stamp='2026-11-23T14:00:00.123+00:00'/><payload>\
             <body xmlns='jabber:client'>from smack marker-3</body></payload>\
             <rpad>q1w2e3</rpad></signcrypt>"
                .into(),
            Some(t + std::time::Duration::from_millis(123)),
            &["body"],
        ),
        (
            "pretty-printed, declaration, extra elements",
            "<?xml version='1.0' encoding='UTF-8'?>\n<signcrypt xmlns='urn:xmpp:openpgp:0'>\n  \
             <to jid='Alice@Example.org/laptop'/>\n  <time stamp='2026-11-23T15:00:00.5+01:00'/>\n  \
             <rpad/>\n  <rpad>x</rpad>\n  <note xmlns='urn:example:x'>?</note>\n  <payload>\n    \
             <body xmlns='jabber:client'>pretty marker-4</body>\n  </payload>\n</signcrypt>\n"
                .into(),
            Some(t + std::time::Duration::from_millis(500)),
            &["body"],
        ),
        (
            "prefixed, no time",
            "<ox:signcrypt xmlns:ox='urn:xmpp:openpgp:0'><ox:to jid='alice@example.org'/>\
             <ox:payload><body xmlns='jabber:client'>prefixed marker-5</body></ox:payload>\
             </ox:signcrypt>"
                .into(),
            None,
            &["body"],
        ),
    ];
    let certs = [carol.clone()];
    for (shape, xml, time, names) in shapes {
        let b64 = gpg_seals(&g, xml, Some(&carol), alice.cert());
        let opened = ox::decrypt(&b64, &as_alice(&alice, "carol@example.org", &certs))
            .unwrap_or_else(|e| panic!("{shape}: {e}"));
        assert_eq!(opened.signer, carol.fingerprint(), "{shape}");
        assert_eq!(opened.signcrypt.time, *time, "{shape}");
        let got: Vec<&str> = opened
            .signcrypt
            .payload
            .iter()
            .map(|e| e.name.as_str())
            .collect();
        assert_eq!(got, *names, "{shape}");
        let body = &opened.signcrypt.payload[0];
        assert_eq!(body.ns, "jabber:client", "{shape}");
        assert!(body.text().contains("marker-"), "{shape}: {}", body.text());
    }
}

/// What sotto still refuses, however the signcrypt is written: another
/// recipient, no signature, a signature by a key that is not the sender's,
/// a signature that does not verify.
#[tokio::test]
async fn sotto_refuses_gpg_sealed_signcrypts_that_do_not_protect_the_user() {
    let (g, _dir, alice, carol) = alice_and_gpg_peer("carol@example.org").await;
    let certs = [carol.clone()];
    let how = as_alice(&alice, "carol@example.org", &certs);
    let shape = |to: &str| {
        format!(
            "<signcrypt xmlns=\"urn:xmpp:openpgp:0\"><to jid=\"{to}\"/>\
             <time stamp=\"2026-11-23T14:00:00+0000\"/><rpad>cc</rpad><payload>\
             <body xmlns=\"jabber:client\">marker-9</body></payload></signcrypt>"
        )
    };

    let misaddressed = gpg_seals(&g, &shape("bob@example.org"), Some(&carol), alice.cert());
    assert_eq!(
        ox::decrypt(&misaddressed, &how).map(|v| v.signer),
        Err(OxError::RecipientMismatch {
            expected: "alice@example.org".into()
        })
    );
    let unsigned = gpg_seals(&g, &shape("alice@example.org"), None, alice.cert());
    assert_eq!(
        ox::decrypt(&unsigned, &how).map(|v| v.signer),
        Err(OxError::NoSignature)
    );
    // Another key with carol's user ID, not the one her certificate has.
    let other = Gpg::new();
    other.import(&armored(alice.cert()));
    let impostor = gpg_xmpp_key(&other, "carol@example.org");
    let forged = gpg_seals(
        &other,
        &shape("alice@example.org"),
        Some(&impostor),
        alice.cert(),
    );
    assert_eq!(
        ox::decrypt(&forged, &how).map(|v| v.signer),
        Err(OxError::UnknownSigner)
    );

    // carol's real signature over changed content: gpg signs (no
    // compression), one byte of the signed text changes, and the signed
    // message is encrypted to alice as it is (no literal packet around it).
    let carol_fpr = carol.fingerprint().to_hex();
    let (ok, mut signed, status) = gpg(
        &g,
        &[
            "--sign",
            "--compress-algo",
            "none",
            "--local-user",
            &carol_fpr,
        ],
        shape("alice@example.org").as_bytes(),
    );
    assert!(ok, "gpg --sign: {status}");
    let at = signed
        .windows(8)
        .position(|w| w == b"marker-9")
        .expect("the signed text, uncompressed");
    signed[at + 7] = b'8';
    let tampered = STANDARD.encode(common::sequoia::encrypt_as_is(&signed, alice.cert()));
    assert_eq!(
        ox::decrypt(&tampered, &how).map(|v| v.signer),
        Err(OxError::BadSignature)
    );
    // Untampered, the same construction opens: the check above is the
    // signature's.
    signed[at + 7] = b'9';
    assert!(
        ox::decrypt(
            &STANDARD.encode(common::sequoia::encrypt_as_is(&signed, alice.cert())),
            &how
        )
        .is_ok()
    );
}

/// A Smack-shaped signcrypt signed and encrypted by sq, with a key sq made
/// with the user ID `xmpp:JID` alone: sotto opens it.
#[tokio::test]
async fn sotto_opens_what_sq_signs_and_encrypts() {
    require("sq");
    let dir = tempfile::tempdir().unwrap();
    let alice = alice(&dir).await;
    let alice_file = dir.path().join("alice.asc");
    std::fs::write(&alice_file, armored(alice.cert())).unwrap();
    let dave_key = dir.path().join("dave.key");
    let mut keygen = Command::new("sq");
    keygen
        .args([
            "key",
            "generate",
            "--userid",
            "xmpp:dave@example.org",
            "--export",
        ])
        .arg(&dave_key);
    let (ok, _, err) = run(keygen, b"");
    assert!(ok, "sq key generate: {err}");
    let dave = Cert::from_file(&dave_key)
        .unwrap()
        .strip_secret_key_material();

    let xml = "<signcrypt xmlns='urn:xmpp:openpgp:0'><to jid='alice@example.org'/>\
               <time stamp='2026-11-23T14:00:00.000+00:00'/><payload>\
               <body xmlns='jabber:client'>from sq marker-6</body></payload>\
               <rpad>pQ0</rpad></signcrypt>";
    let mut sq = Command::new("sq");
    sq.args(["encrypt", "--binary", "--recipient-cert"])
        .arg(&alice_file)
        .arg("--signer-key")
        .arg(&dave_key);
    let (ok, message, err) = run(sq, xml.as_bytes());
    assert!(ok, "sq encrypt: {err}");
    let certs = [dave.clone()];
    let opened = ox::decrypt(
        &STANDARD.encode(&message),
        &as_alice(&alice, "dave@example.org", &certs),
    )
    .expect("sotto opens sq's signcrypt");
    assert_eq!(opened.signer, dave.fingerprint());
    assert_eq!(opened.signcrypt.payload[0].text(), "from sq marker-6");
    // Claimed by someone else, it is not theirs.
    assert_eq!(
        ox::decrypt(
            &STANDARD.encode(&message),
            &as_alice(&alice, "erin@example.org", &certs)
        )
        .map(|v| v.signer),
        Err(OxError::SignerMismatch {
            expected: "erin@example.org".into()
        })
    );
}
