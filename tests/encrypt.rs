//! Encryption end to end: swaks or a raw client → sotto → aiosmtpd sink; the
//! sink holds PGP/MIME that GnuPG and sq each decrypt to the original
//! content entity, with the real Subject inside and `[...]` outside.

mod common;

use std::path::Path;

use common::pgp::{Gpg, armored_part, sq_decrypt, sq_generate};
use common::{Client, Sink, config, gateway, swaks};
use sotto::config::Config;

const REQUIRED: &str = "encrypt = \"required\"";
const IF_KEY: &str = "encrypt = \"if-key\"";
use sotto::mail::split;

/// A config whose key directory is `keys`, encrypting per `mode` (a policy
/// `[defaults]` line such as `encrypt = "required"`); keep the returned
/// directory alive.
fn crypt_config(sink: &Sink, keys: &Path, defaults: &str) -> (Config, tempfile::TempDir) {
    let mut cfg = config(&sink.addr);
    cfg.keys.dir = Some(keys.to_path_buf());
    let dir = common::policy(&mut cfg, &format!("[defaults]\n{defaults}\n"));
    (cfg, dir)
}

fn field(msg: &[u8], name: &str) -> Option<String> {
    split(msg)
        .fields
        .iter()
        .find(|f| f.is(name))
        .map(|f| String::from_utf8_lossy(f.raw).into_owned())
}

/// Checks that `inner` is `original`'s content entity with its header
/// fields protected inside.
fn assert_protects(original: &[u8], inner: &[u8]) {
    let o = split(original);
    let i = split(inner);
    common::assert_same_bytes(i.body, o.body);
    let ct = field(original, "content-type").unwrap_or_default();
    let ict = field(inner, "content-type").unwrap();
    assert!(
        ict.starts_with(ct.trim_end()),
        "inner Content-Type {ict:?} is not the original {ct:?}"
    );
    assert!(ict.contains("protected-headers=\"v1\""), "{ict}");
    for f in o.fields.iter().filter(|f| !f.is("mime-version")) {
        let found = i
            .fields
            .iter()
            .any(|g| g.raw == f.raw || (f.is("content-type") && g.is("content-type")));
        assert!(
            found,
            "field {:?} is not inside",
            String::from_utf8_lossy(f.raw)
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn corpus_decrypts_with_gpg_and_sq_to_the_original_entity() {
    let gpg = Gpg::new();
    gpg.generate("bob@example.org", true, "1y", None);
    gpg.export("bob@example.org", "bob.asc");
    let (dave_secret, dave_public) = sq_generate(gpg.home.path(), "dave@example.org");
    std::fs::copy(&dave_public, gpg.keys.join("dave.asc")).unwrap();
    let (utf8_secret, utf8_public) = sq_generate(gpg.home.path(), "élève@école.example");
    std::fs::copy(&utf8_public, gpg.keys.join("eleve.asc")).unwrap();

    let sink = Sink::start(&[]);
    let gw = gateway(&crypt_config(&sink, &gpg.keys, REQUIRED).0).await;
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/mail");
    let mut names: Vec<_> = std::fs::read_dir(&corpus)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    assert!(names.len() >= 6);
    for (n, path) in names.iter().enumerate() {
        let original = std::fs::read(path).unwrap();
        let utf8 = path
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .contains("smtputf8");
        let mut c = Client::greeted(gw.smtp.unwrap()).await;
        let rcpts: Vec<&str> = if utf8 {
            vec!["élève@école.example"]
        } else {
            vec!["bob@example.org", "dave@example.org"]
        };
        c.cmd(
            &format!(
                "MAIL FROM:<alice@example.com>{}",
                if utf8 { " SMTPUTF8" } else { " BODY=8BITMIME" }
            ),
            "250",
        )
        .await;
        for r in &rcpts {
            c.cmd(&format!("RCPT TO:<{r}>"), "250").await;
        }
        c.cmd("DATA", "354").await;
        let mut wire = Vec::new();
        for line in original.split_inclusive(|&b| b == b'\n') {
            if line.starts_with(b".") {
                wire.push(b'.');
            }
            wire.extend_from_slice(line);
        }
        wire.extend_from_slice(b".\r\n");
        c.send(&wire).await;
        let r = c.reply().await;
        assert!(r.starts_with("250"), "{}: {r}", path.display());

        let stored = &sink.messages()[n];
        let outer = &stored.data;
        let name = path.display();
        assert_eq!(
            field(outer, "subject").as_deref(),
            Some("Subject: [...]\r\n"),
            "{name}"
        );
        assert!(
            field(outer, "content-type")
                .unwrap()
                .contains("multipart/encrypted"),
            "{name}"
        );
        let o = split(&original);
        for line in o.body.split(|&b| b == b'\n').filter(|l| l.len() > 12) {
            assert!(
                !outer.windows(line.len()).any(|w| w == line),
                "{name}: body text readable outside"
            );
        }
        let armored = armored_part(outer);
        let inner = if utf8 {
            sq_decrypt(&utf8_secret, &armored)
        } else {
            let by_gpg = gpg.decrypt(&armored);
            let by_sq = sq_decrypt(&dave_secret, &armored);
            assert_eq!(by_gpg, by_sq, "{name}: gpg and sq disagree");
            by_gpg
        };
        assert_protects(&original, &inner);
        assert_eq!(
            field(&inner, "subject"),
            field(&original, "subject"),
            "{name}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn required_without_key_is_refused_at_rcpt_and_if_key_relays_clear() {
    let gpg = Gpg::new();
    gpg.generate("bob@example.org", true, "1y", None);
    gpg.export("bob@example.org", "bob.asc");
    let sink = Sink::start(&[]);
    let gw = gateway(&crypt_config(&sink, &gpg.keys, REQUIRED).0).await;
    let (ok, out) = swaks(
        gw.smtp.unwrap(),
        &["--from", "a@example.com", "--to", "nokey@example.org"],
    )
    .await;
    assert!(!ok);
    assert!(
        out.contains("550 5.7.1") && out.contains("nokey@example.org"),
        "{out}"
    );
    assert!(sink.messages().is_empty(), "nothing may leave in clear");

    let gw = gateway(&crypt_config(&sink, &gpg.keys, IF_KEY).0).await;
    let (ok, out) = swaks(
        gw.smtp.unwrap(),
        &[
            "--from",
            "a@example.com",
            "--to",
            "nokey@example.org",
            "--body",
            "clear",
        ],
    )
    .await;
    assert!(ok, "{out}");
    let m = &sink.messages()[0];
    assert!(String::from_utf8_lossy(&m.data).contains("clear"));
    assert!(field(&m.data, "content-type").is_none_or(|c| !c.contains("encrypted")));
}

#[tokio::test(flavor = "multi_thread")]
async fn recipients_with_and_without_keys_go_in_separate_transactions() {
    let gpg = Gpg::new();
    gpg.generate("bob@example.org", true, "1y", None);
    gpg.export("bob@example.org", "bob.asc");
    let sink = Sink::start(&[]);
    let gw = gateway(&crypt_config(&sink, &gpg.keys, IF_KEY).0).await;
    let mut c = Client::greeted(gw.smtp.unwrap()).await;
    c.cmd("MAIL FROM:<a@example.com>", "250").await;
    c.cmd("RCPT TO:<bob@example.org>", "250").await;
    let r = c.cmd("RCPT TO:<nokey@example.org>", "452").await;
    assert!(r.contains("4.5.3"), "{r}");
    c.cmd("DATA", "354").await;
    c.send(b"To: bob@example.org\r\nSubject: s\r\n\r\nfor bob only\r\n.\r\n")
        .await;
    assert!(c.reply().await.starts_with("250"));
    let m = &sink.messages()[0];
    assert_eq!(m.rcpts, vec!["bob@example.org"]);
    assert!(String::from_utf8_lossy(&m.data).contains("BEGIN PGP MESSAGE"));
}

#[tokio::test(flavor = "multi_thread")]
async fn bcc_recipients_hide_key_ids() {
    let gpg = Gpg::new();
    gpg.generate("bob@example.org", true, "1y", None);
    gpg.export("bob@example.org", "bob.asc");
    gpg.generate("carol@example.org", true, "1y", None);
    gpg.export("carol@example.org", "carol.asc");
    let sink = Sink::start(&[]);
    let gw = gateway(&crypt_config(&sink, &gpg.keys, REQUIRED).0).await;
    let body = b"To: bob@example.org\r\nCc: carol@example.org\r\nSubject: s\r\n\r\nhi\r\n.\r\n";
    let mut c = Client::greeted(gw.smtp.unwrap()).await;
    assert!(
        c.send_mail(
            "a@example.com",
            &["bob@example.org", "carol@example.org"],
            body
        )
        .await
        .starts_with("250")
    );
    let body = b"To: bob@example.org\r\nSubject: s\r\n\r\nhi\r\n.\r\n";
    assert!(
        c.send_mail(
            "a@example.com",
            &["bob@example.org", "carol@example.org"],
            body
        )
        .await
        .starts_with("250")
    );
    let msgs = sink.messages();
    let visible = gpg.list_packets(&armored_part(&msgs[0].data));
    let hidden = gpg.list_packets(&armored_part(&msgs[1].data));
    assert!(!visible.contains("keyid 0000000000000000"), "{visible}");
    assert_eq!(
        hidden.matches("keyid 0000000000000000").count(),
        2,
        "{hidden}"
    );
    // Each recipient still decrypts.
    assert!(String::from_utf8_lossy(&gpg.decrypt(&armored_part(&msgs[1].data))).contains("hi"));
}

#[tokio::test(flavor = "multi_thread")]
async fn already_encrypted_mail_passes_unchanged() {
    let gpg = Gpg::new();
    gpg.generate("bob@example.org", true, "1y", None);
    gpg.export("bob@example.org", "bob.asc");
    let sink = Sink::start(&[]);
    let gw = gateway(&crypt_config(&sink, &gpg.keys, REQUIRED).0).await;
    let mut c = Client::greeted(gw.smtp.unwrap()).await;
    let pgp_mime = b"To: bob@example.org\r\nSubject: already\r\nMIME-Version: 1.0\r\nContent-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=b\r\n\r\n--b\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n--b--\r\n";
    let inline = b"To: bob@example.org\r\nSubject: inline\r\n\r\n-----BEGIN PGP MESSAGE-----\r\n\r\nhQEMA\r\n-----END PGP MESSAGE-----\r\n";
    let smime = b"To: bob@example.org\r\nSubject: smime\r\nContent-Type: application/pkcs7-mime; smime-type=enveloped-data; name=smime.p7m\r\n\r\nMIAGCSqGSIb3DQEHA6CAMIACAQAxggHXMIIB0wIBADCBuzCB\r\n";
    for m in [&pgp_mime[..], inline, smime] {
        let mut wire = m.to_vec();
        wire.extend_from_slice(b".\r\n");
        assert!(
            c.send_mail("a@example.com", &["bob@example.org"], &wire)
                .await
                .starts_with("250")
        );
    }
    let stored = sink.messages();
    assert_eq!(stored[0].data, pgp_mime);
    assert_eq!(stored[1].data, inline);
    assert_eq!(stored[2].data, smime);
}

#[tokio::test(flavor = "multi_thread")]
async fn signed_and_also_encrypted_to_sender_and_archive() {
    let gpg = Gpg::new();
    gpg.generate("bob@example.org", true, "1y", None);
    gpg.export("bob@example.org", "bob.asc");
    gpg.generate("alice@example.com", true, "1y", None);
    gpg.export("alice@example.com", "alice.asc");
    let org = gpg.generate("signing@example.com", false, "1y", None);
    let org_key = gpg.home.path().join("org-secret.asc");
    std::fs::write(&org_key, gpg.secret("signing@example.com")).unwrap();
    let archive = Gpg::new();
    archive.generate("archive@example.com", true, "1y", None);
    let archive_pub = archive.export("archive@example.com", "archive.asc");
    archive.import(&gpg.public("signing@example.com"));

    let sink = Sink::start(&[]);
    let defaults = format!(
        "{REQUIRED}\nsign = true\nencrypt_to_sender = true\narchive_key = \"{}\"",
        archive_pub.display()
    );
    let (mut cfg, _policy) = crypt_config(&sink, &gpg.keys, &defaults);
    cfg.crypt.signing_key = Some(org_key);
    let gw = gateway(&cfg).await;
    let mut c = Client::greeted(gw.smtp.unwrap()).await;
    let r = c
        .send_mail(
            "alice@example.com",
            &["bob@example.org"],
            b"To: bob@example.org\r\nSubject: s\r\n\r\nsigned\r\n.\r\n",
        )
        .await;
    assert!(r.starts_with("250"), "{r}");
    let armored = armored_part(&sink.messages()[0].data);
    let keyids = gpg.list_packets(&armored);
    assert_eq!(
        keyids.matches(":pubkey enc packet:").count(),
        3,
        "bob, alice and the archive: {keyids}"
    );
    let out = gpg
        .cmd()
        .args(["--status-fd", "1", "--decrypt"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = {
        use std::io::Write;
        let mut out = out;
        out.stdin.take().unwrap().write_all(&armored).unwrap();
        out.wait_with_output().unwrap()
    };
    let status = String::from_utf8_lossy(&out.stdout);
    assert!(
        status.contains(&format!("VALIDSIG {org}")) || status.contains("GOODSIG"),
        "{status}"
    );
    assert!(String::from_utf8_lossy(&archive.decrypt(&armored)).contains("signed"));
}

#[tokio::test(flavor = "multi_thread")]
async fn transform_prints_what_serve_would_relay_or_the_refusal() {
    let gpg = Gpg::new();
    gpg.generate("bob@example.org", true, "1y", None);
    gpg.export("bob@example.org", "bob.asc");
    let policies = tempfile::tempdir().unwrap();
    std::fs::write(
        policies.path().join("00.toml"),
        "[defaults]\nencrypt = \"required\"\n",
    )
    .unwrap();
    let run = |to: &str| {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_sotto"))
            .args(["transform", "--policies"])
            .arg(policies.path())
            .args(["--from", "alice@example.com", "--to", to])
            .env("SOTTO_KEYS__DIR", &gpg.keys)
            .env("SOTTO_KEYS__SOURCES", "dir")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        // LF line endings, as a file on disk has them.
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"To: bob@example.org\nSubject: plans\n\nsecret body\n")
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let out = run("bob@example.org");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        field(&out.stdout, "subject").as_deref(),
        Some("Subject: [...]\r\n")
    );
    let inner = gpg.decrypt(&armored_part(&out.stdout));
    assert!(
        inner.ends_with(b"\r\n\r\nsecret body\r\n"),
        "{}",
        String::from_utf8_lossy(&inner)
    );
    let out = run("nokey@example.org");
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("550 5.7.1") && err.contains("nokey@example.org"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn lmtp_splits_mixed_recipients_into_one_delivery_per_treatment() {
    let gpg = Gpg::new();
    gpg.generate("bob@example.org", true, "1y", None);
    gpg.export("bob@example.org", "bob.asc");
    let sink = Sink::start(&[]);
    let gw = gateway(&crypt_config(&sink, &gpg.keys, IF_KEY).0).await;
    let mut c = Client::connect(gw.lmtp.unwrap()).await;
    c.cmd("LHLO client", "250").await;
    c.cmd("MAIL FROM:<a@example.com>", "250").await;
    c.cmd("RCPT TO:<bob@example.org>", "250").await;
    c.cmd("RCPT TO:<nokey@example.org>", "250").await;
    c.cmd("RCPT TO:<nokey2@example.org>", "250").await;
    c.cmd("DATA", "354").await;
    c.send(b"To: bob@example.org, nokey@example.org, nokey2@example.org\r\nSubject: s\r\n\r\nfor everybody\r\n.\r\n").await;
    for _ in 0..3 {
        let r = c.reply().await;
        assert!(r.starts_with("250"), "{r}");
    }
    let mut stored = sink.messages();
    stored.sort_by_key(|m| m.rcpts.len());
    assert_eq!(stored.len(), 2, "one delivery per treatment");
    assert_eq!(stored[0].rcpts, vec!["bob@example.org"]);
    assert!(String::from_utf8_lossy(&stored[0].data).contains("BEGIN PGP MESSAGE"));
    assert_eq!(
        stored[1].rcpts,
        vec!["nokey@example.org", "nokey2@example.org"]
    );
    assert!(String::from_utf8_lossy(&stored[1].data).contains("for everybody"));
}
