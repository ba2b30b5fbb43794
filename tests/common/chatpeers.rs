//! The chat tests' world: a real Prosody with two hosts — the
//! organisation's `example.org` behind sotto ([`super::chatsetup`]'s
//! gateway, user keys under a passphrase) and `outside.example`, whose users
//! connect straight to Prosody — users alice, bob (inside) and carol, dave,
//! frank (outside), GnuPG keys with the XEP-0373 user ID for carol and dave
//! in sotto's key directory, and GnuPG helpers that read what sotto made.
//!
//! Included beside `common` and `chatsetup` (`#[path]`), which it uses as
//! `crate::common` and `crate::chatsetup`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine;
use serde_json::json;

use crate::chatsetup::ChatGateway;
use crate::common::pgp::Gpg;
use crate::common::prosody::{ClientRun, Options, Prosody, XmppClient};

pub const OUTSIDE: &str = "outside.example";
/// Policy: encrypt whenever a key is found, links kept.
pub const ENCRYPT_ALL: &str = "[defaults]\nencrypt = \"if-key\"\nlinks = \"keep\"\n";

pub struct Setup {
    pub prosody: Prosody,
    pub gw: ChatGateway,
    pub gpg: Gpg,
}

pub async fn setup(policy: &str) -> Setup {
    setup_full(policy, false, |_| {}).await
}

pub async fn setup_with(policy: &str, tune: impl FnOnce(&mut sotto::config::Config)) -> Setup {
    setup_full(policy, false, tune).await
}

/// With `pep`, Prosody runs sotto's component (mod_privilege) and sotto
/// connects to it, publishing and fetching keys over PEP.
pub async fn setup_full(
    policy: &str,
    pep: bool,
    tune: impl FnOnce(&mut sotto::config::Config),
) -> Setup {
    setup_components(policy, usize::from(pep), tune).await
}

/// Like [`setup_full`] with PEP, Prosody declaring `replicas` component
/// names (`sotto-1.example.org`, …) and sotto's `xmpp.component` listing
/// them all (see [`pep_config`]); 0 is no PEP.
pub async fn setup_components(
    policy: &str,
    replicas: usize,
    tune: impl FnOnce(&mut sotto::config::Config),
) -> Setup {
    let mut opts = Options::default().config(&format!("VirtualHost \"{OUTSIDE}\""));
    const SECRET: &str = "component secret for the tests";
    match replicas {
        0 => {}
        1 => opts = opts.component(SECRET),
        n => opts = opts.replica_components(SECRET, n),
    }
    let prosody = Prosody::start(opts);
    prosody.register("alice", "alice-secret");
    prosody.register("bob", "bob-secret");
    for user in ["carol", "dave", "frank"] {
        prosody.register_at(user, OUTSIDE, &format!("{user}-secret"));
    }
    // Outside users' keys, with the XEP-0373 user ID, known to sotto.
    let gpg = Gpg::new();
    for user in ["carol", "dave"] {
        let email = format!("{user}@{OUTSIDE}");
        chat_key(&gpg, &email);
        gpg.export(&email, &format!("{user}.asc"));
    }
    let keys = gpg.keys.clone();
    let pep = replicas > 0;
    let gw = ChatGateway::start(&prosody, policy, |cfg| {
        cfg.keys.dir = Some(keys);
        if pep {
            pep_config(&prosody, cfg);
        }
        tune(cfg);
    })
    .await;
    Setup { prosody, gw, gpg }
}

/// Points `cfg` at `prosody`'s component(s), every name listed, with the
/// secret in a file beside the user keys' passphrase, and adds the PEP key
/// source.
pub fn pep_config(prosody: &Prosody, cfg: &mut sotto::config::Config) {
    let file = cfg
        .xmpp
        .user_keys_secret
        .as_ref()
        .unwrap()
        .with_file_name("component.secret");
    std::fs::write(&file, format!("{}\n", prosody.component_secret())).unwrap();
    cfg.xmpp.component = prosody.component_jids().join(", ");
    cfg.xmpp.component_upstream = prosody.component_addr();
    cfg.xmpp.component_secret = Some(file);
    cfg.keys.sources = vec![sotto::config::KeySource::Dir, sotto::config::KeySource::Pep];
}

impl Setup {
    /// A client of the organisation, through sotto (STARTTLS).
    pub fn inside(&self, user: &str) -> XmppClient {
        XmppClient::new(
            &self.gw.starttls_addr().to_string(),
            &self.prosody.jid(user),
            &self.prosody.password(user),
        )
        .cafile(&self.gw.ca)
        .starttls()
    }

    /// alice (through sotto) sends `body` to `to`; what `receiver`, online
    /// before she sends, got.
    pub async fn alice_writes(&self, receiver: XmppClient, to: &str, body: &str) -> ClientRun {
        let mut receiver = receiver.spawn(&json!([{ "op": "wait", "count": 1 }])).await;
        receiver.wait_event("ready").await;
        self.inside("alice")
            .run(&json!([{ "op": "send", "to": to, "body": body }]))
            .await
            .assert_ok();
        receiver.finish().await.assert_ok()
    }

    /// The fingerprint (upper-case hex) `jid`'s XEP-0373 metadata node
    /// lists first, read by frank (outside, straight to Prosody); `None`
    /// while nothing is listed.
    pub async fn listed_fingerprint(&self, jid: &str) -> Option<String> {
        let run = self
            .outside("frank")
            .no_presence()
            .run(&json!([{ "op": "fetch", "jid": jid, "node": "urn:xmpp:openpgp:0:public-keys" }]))
            .await;
        let text = run
            .events("items")
            .first()
            .map(|i| i["items"].to_string())
            .unwrap_or_default();
        let at = text.find("v4-fingerprint=")? + "v4-fingerprint=".len();
        let rest = text[at..].trim_start_matches(['\\', '"', '\'']);
        Some(rest.get(..40)?.to_uppercase())
    }

    /// A user of the other host, straight to Prosody.
    pub fn outside(&self, user: &str) -> XmppClient {
        XmppClient::new(
            &self.prosody.addr(),
            &format!("{user}@{OUTSIDE}"),
            &format!("{user}-secret"),
        )
    }

    /// The sotto-held key of `jid` as a file (armoured, its secret parts
    /// passphrase-protected as in the store). sotto makes users' keys in
    /// the background at login, so this waits (up to 20 s) for it.
    pub fn key_file(&self, jid: &str) -> PathBuf {
        use sequoia_openpgp::parse::Parse;
        use sequoia_openpgp::serialize::SerializeInto;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let tsk = loop {
            if let Some(tsk) = self.gw.stored_key(jid) {
                break tsk;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no key for {jid} in the store"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        };
        let cert = sequoia_openpgp::Cert::from_bytes(&tsk).expect("a stored key");
        let path = self.gw.scratch.join(format!("{jid}.pgp"));
        std::fs::write(&path, cert.as_tsk().armored().to_vec().unwrap()).unwrap();
        path
    }
}

/// `gpg --show-keys` of a key file, in a throwaway homedir.
pub fn gpg_show(key: &[u8]) -> String {
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
pub fn gpg_decrypt(
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
pub fn openpgp_of(xml: &str) -> Vec<u8> {
    let start = xml.find("<openpgp").expect("an <openpgp> element");
    let open_end = start + xml[start..].find('>').unwrap() + 1;
    let close = open_end + xml[open_end..].find("</openpgp>").unwrap();
    base64::engine::general_purpose::STANDARD
        .decode(xml[open_end..close].trim())
        .unwrap()
}

/// Signs with carol's key and encrypts to `to_cert` (a key file) with
/// GnuPG; the base64 of the binary message.
pub fn carol_seals(s: &Setup, to_cert: &Path, plaintext: &str, sign: bool) -> String {
    let carol = format!("carol@{OUTSIDE}");
    gpg_seals(&s.gpg, sign.then_some(carol.as_str()), to_cert, plaintext)
}

/// Signs with `gpg`'s key for `signer` (none: unsigned) and encrypts to
/// `to_cert` (a key file) with GnuPG, as gpgme-based clients do; the base64
/// of the binary message.
pub fn gpg_seals(gpg: &Gpg, signer: Option<&str>, to_cert: &Path, plaintext: &str) -> String {
    use sequoia_openpgp::parse::Parse;
    gpg.import(&public_part(to_cert));
    let to = sequoia_openpgp::Cert::from_file(to_cert)
        .unwrap()
        .fingerprint()
        .to_hex();
    let input = gpg.home.path().join("signcrypt.xml");
    std::fs::write(&input, plaintext).unwrap();
    let output = gpg.home.path().join("signcrypt.pgp");
    let _ = std::fs::remove_file(&output);
    let mut c = gpg.cmd();
    c.args(["--trust-model", "always", "--encrypt", "-r", &to]);
    if let Some(signer) = signer {
        c.args(["--sign", "--local-user", signer]);
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

pub fn signcrypt(to: &str, body: &str) -> String {
    format!(
        "<signcrypt xmlns='urn:xmpp:openpgp:0'><to jid='{to}'/><time stamp='2026-11-23T10:00:00Z'/>\
         <rpad>abc</rpad><payload><body xmlns='jabber:client'>{body}</body></payload></signcrypt>"
    )
}

/// The public certificate of a stored key file, armoured.
pub fn public_part(key_file: &Path) -> Vec<u8> {
    use sequoia_openpgp::parse::Parse;
    use sequoia_openpgp::serialize::SerializeInto;
    sequoia_openpgp::Cert::from_file(key_file)
        .unwrap()
        .strip_secret_key_material()
        .armored()
        .to_vec()
        .unwrap()
}

/// A GnuPG key for the chat user `email`, with the XEP-0373 user ID
/// `xmpp:EMAIL` beside the e-mail one; its fingerprint.
pub fn chat_key(gpg: &Gpg, email: &str) -> String {
    let fpr = gpg.generate(email, true, "1y", None);
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
    fpr
}
