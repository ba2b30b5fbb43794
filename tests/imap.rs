//! The IMAP proxy's first slice against a real Dovecot, with Python's
//! imaplib as the client: a message APPENDed through sotto is stored as
//! PGP/MIME (the Maildir file holds neither body nor subject), FETCH
//! through sotto returns the original bytes exactly while the same FETCH
//! straight to Dovecot returns ciphertext, and capabilities sotto cannot
//! keep correct are not offered.

mod common;

use std::process::{Command, Stdio};

use base64::Engine as _;
use common::dovecot::Dovecot;
use common::gateway;
use common::imapworld::{
    ALICE, PASSWORD, body_of, imap, imap_with, proxy_config, proxy_world, proxy_world_with,
};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread")]
async fn append_is_stored_encrypted_and_fetch_returns_the_original() {
    let (dovecot, _sink, _state, running) = proxy_world().await;
    let proxy = running.imap.expect("imap listener").to_string();

    let original = b"From: Alice <alice@example.org>\r\nTo: Bob <bob@outside.example>\r\n\
Subject: draft plans 1212\r\nDate: Wed, 02 Dec 2026 10:00:00 +0000\r\nMessage-ID: <d1@example.org>\r\n\
MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nthe secret draft 1212\r\n.starts with a dot\r\n";
    let b64 = base64::engine::general_purpose::STANDARD.encode(original);
    let through = imap(
        &proxy,
        &json!([
            { "op": "capability" },
            { "op": "append", "message": b64 },
            { "op": "uids" },
        ]),
    );
    assert_eq!(through[1]["status"], "OK", "{through:?}");
    let caps: Vec<String> = through[2]["caps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_ascii_uppercase())
        .collect();
    for gone in [
        "COMPRESS=DEFLATE",
        "CATENATE",
        "MULTIAPPEND",
        "PREVIEW",
        "SNIPPET=FUZZY",
        "URL-PARTIAL",
        "NOTIFY",
    ] {
        assert!(
            !caps.contains(&gone.to_string()),
            "{gone} offered: {caps:?}"
        );
    }
    for kept in ["IDLE", "MOVE", "UIDPLUS", "CONDSTORE", "LITERAL+"] {
        assert!(caps.contains(&kept.to_string()), "{kept} missing: {caps:?}");
    }
    assert_eq!(through[3]["status"], "OK", "{through:?}");
    let uid = through[4]["uids"][0].as_str().expect("a uid").to_owned();

    // The Maildir file: PGP/MIME, no body, no subject.
    let stored = dovecot.messages(ALICE);
    assert_eq!(stored.len(), 1);
    let text = String::from_utf8_lossy(&stored[0]);
    assert!(text.contains("multipart/encrypted"), "{text}");
    assert!(!text.contains("1212"), "plaintext in the mailbox: {text}");

    // FETCH through sotto: the original bytes; straight to Dovecot: ciphertext.
    let steps = json!([{ "op": "fetch", "uid": uid }]);
    let via = imap(&proxy, &steps);
    let got = body_of(&via[2]);
    assert_eq!(got, original.to_vec(), "{}", String::from_utf8_lossy(&got));
    let meta = via[2]["parts"][0]["meta"].as_str().unwrap();
    assert!(
        meta.contains(&format!("RFC822.SIZE {}", original.len())),
        "{meta}"
    );
    let direct = imap(&dovecot.imap_addr(), &steps);
    let raw = body_of(&direct[2]);
    assert!(String::from_utf8_lossy(&raw).contains("BEGIN PGP MESSAGE"));
    assert!(!String::from_utf8_lossy(&raw).contains("1212"));
    running.shutdown();
}

/// Writes an mbsyncrc for alice through `port` on localhost (plain IMAP),
/// INBOX synced both ways with the Maildir `local`; runs mbsync once.
fn mbsync(dir: &std::path::Path, port: &str, local: &std::path::Path) -> String {
    let mbsync = common::require("mbsync");
    let pass = dir.join("pass");
    std::fs::write(&pass, PASSWORD).unwrap();
    let rc = dir.join("mbsyncrc");
    std::fs::write(
        &rc,
        format!(
            "IMAPAccount a\nHost localhost\nPort {port}\nUser {ALICE}\nPassCmd \"cat {}\"\nSSLType None\nAuthMechs LOGIN\n\n\
             IMAPStore remote\nAccount a\n\nMaildirStore local\nPath {}/\nInbox {}/INBOX\nSubFolders Verbatim\n\n\
             Channel inbox\nFar :remote:\nNear :local:\nPatterns INBOX\nCreate Near\nSync All\nExpunge None\nSyncState *\n",
            pass.display(),
            local.display(),
            local.display()
        ),
    )
    .unwrap();
    let out = Command::new(mbsync)
        .arg("-c")
        .arg(&rc)
        .arg("inbox")
        .output()
        .expect("mbsync");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Every file of a Maildir folder (new and cur).
fn maildir_files(folder: &std::path::Path) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for sub in ["new", "cur"] {
        if let Ok(rd) = std::fs::read_dir(folder.join(sub)) {
            for e in rd.flatten() {
                out.push(std::fs::read(e.path()).unwrap());
            }
        }
    }
    out
}

/// A real sync tool through the proxy, both ways: mbsync (isync) pulls
/// what was stored encrypted and gets it plain; a message written into its
/// local Maildir is pushed (APPEND) and stored encrypted.
#[tokio::test(flavor = "multi_thread")]
async fn mbsync_reads_and_saves_mail_through_sotto() {
    let (dovecot, _sink, state, running) = proxy_world().await;
    let port = running.imap.unwrap().port().to_string();

    let first = b"From: <carol@else.example>\r\nTo: <alice@example.org>\r\nSubject: stored 3434\r\n\r\nkept encrypted 3434\r\n";
    let b64 = base64::engine::general_purpose::STANDARD.encode(first);
    let r = imap(
        &running.imap.unwrap().to_string(),
        &json!([{ "op": "append", "message": b64 }]),
    );
    assert_eq!(r[2]["status"], "OK", "{r:?}");

    let local = state.path().join("mail");
    std::fs::create_dir_all(&local).unwrap();
    let said = mbsync(state.path(), &port, &local);
    let pulled = maildir_files(&local.join("INBOX"));
    assert_eq!(pulled.len(), 1, "mbsync: {said}");
    // mbsync stores LF line ends and adds its X-TUID field: otherwise the
    // original, plain.
    let text = String::from_utf8_lossy(&pulled[0]);
    assert!(
        text.starts_with(
            "From: <carol@else.example>\nTo: <alice@example.org>\nSubject: stored 3434\n"
        ) && text.ends_with("\n\nkept encrypted 3434\n")
            && !text.contains("PGP"),
        "mbsync got: {text}"
    );

    // A message mbsync's user wrote locally: pushed through sotto.
    let new = local.join("INBOX/new");
    std::fs::write(
        new.join("1700000000.M1P1.sotto"),
        b"From: <alice@example.org>\nTo: <carol@else.example>\nSubject: written offline 5656\n\nsaved by mbsync 5656\n",
    )
    .unwrap();
    let said = mbsync(state.path(), &port, &local);
    let stored = dovecot.messages(ALICE);
    assert_eq!(stored.len(), 2, "mbsync: {said}\n{}", dovecot.log());
    for m in &stored {
        let text = String::from_utf8_lossy(m);
        assert!(text.contains("multipart/encrypted"), "{text}");
        assert!(
            !text.contains("3434") && !text.contains("5656"),
            "plaintext stored: {text}"
        );
    }
    running.shutdown();
}

/// TLS towards clients: implicit TLS (IMAPS) and STARTTLS on the plain
/// listener, with a certificate for `localhost`; the same APPEND and FETCH
/// over each. STARTTLS is sotto's own: offered before, not after.
#[tokio::test(flavor = "multi_thread")]
async fn clients_reach_the_proxy_over_implicit_tls_and_starttls() {
    let (dovecot, _sink, state, running) = proxy_world_with(|cfg, dir| {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert, ck.cert.pem()).unwrap();
        std::fs::write(&key, ck.key_pair.serialize_pem()).unwrap();
        cfg.imap.listen_tls = "127.0.0.1:0".into();
        cfg.imap.tls_cert = Some(cert);
        cfg.imap.tls_key = Some(key);
    })
    .await;
    let cert = state.path().join("cert.pem");
    let ca = cert.to_str().unwrap();
    let message = b"From: <alice@example.org>\r\nSubject: over tls 7878\r\n\r\nbody 7878\r\n";
    let b64 = base64::engine::general_purpose::STANDARD.encode(message);
    let steps = json!([{ "op": "append", "message": b64 }, { "op": "uids" }]);

    let tls = format!("localhost:{}", running.imap_tls.unwrap().port());
    let r = imap_with(&tls, &["--tls", ca], &steps);
    assert_eq!(r[2]["status"], "OK", "{r:?}");
    let uid = r[3]["uids"][0].as_str().unwrap().to_owned();
    let r = imap_with(
        &tls,
        &["--tls", ca],
        &json!([{ "op": "fetch", "uid": uid }]),
    );
    assert_eq!(body_of(&r[2]), message.to_vec());

    let plain = format!("localhost:{}", running.imap.unwrap().port());
    let r = imap_with(
        &plain,
        &["--starttls", ca],
        &json!([{ "op": "fetch", "uid": uid }]),
    );
    let before: Vec<&str> = r[0]["greeting_caps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    let after: Vec<&str> = r[0]["after_starttls_caps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert!(before.contains(&"STARTTLS"), "{before:?}");
    assert!(!after.contains(&"STARTTLS"), "{after:?}");
    assert_eq!(body_of(&r[2]), message.to_vec());
    assert!(String::from_utf8_lossy(&dovecot.messages(ALICE)[0]).contains("multipart/encrypted"));
    running.shutdown();
}

/// IDLE through the proxy, with a second client at once: one client idles,
/// the other APPENDs; the idling one is told of the new message, ends with
/// DONE and gets its tagged OK.
#[tokio::test(flavor = "multi_thread")]
async fn idle_notifications_arrive_while_another_client_appends() {
    let (_dovecot, _sink, _state, running) = proxy_world().await;
    let proxy = running.imap.unwrap().to_string();
    let (host, port) = proxy.rsplit_once(':').unwrap();
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/imap_client.py");
    let mut idler = tokio::process::Command::new("python3")
        .arg(script)
        .args([host, port, ALICE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use tokio::io::AsyncWriteExt as _;
        let mut stdin = idler.stdin.take().unwrap();
        stdin
            .write_all(format!("{PASSWORD}\n[{{\"op\": \"idle\"}}]").as_bytes())
            .await
            .unwrap();
    }
    use tokio::io::AsyncBufReadExt as _;
    let mut lines = tokio::io::BufReader::new(idler.stdout.take().unwrap()).lines();
    let mut idling = false;
    while let Some(line) =
        tokio::time::timeout(std::time::Duration::from_secs(20), lines.next_line())
            .await
            .expect("the idling client answers")
            .unwrap()
    {
        let v: Value = serde_json::from_str(&line).unwrap();
        if v["op"] == "idling" {
            assert!(v["line"].as_str().unwrap().starts_with('+'), "{v}");
            idling = true;
            break;
        }
    }
    assert!(idling, "IDLE was not accepted");
    let b64 =
        base64::engine::general_purpose::STANDARD.encode(b"Subject: while idling\r\n\r\nhello\r\n");
    let r = imap(&proxy, &json!([{ "op": "append", "message": b64 }]));
    assert_eq!(r[2]["status"], "OK", "{r:?}");
    let line = tokio::time::timeout(std::time::Duration::from_secs(20), lines.next_line())
        .await
        .expect("the idling client is told")
        .unwrap()
        .expect("a line");
    let v: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["op"], "idle");
    assert!(v["pushed"].as_str().unwrap().ends_with("EXISTS"), "{v}");
    assert!(v["done"].as_str().unwrap().contains(" OK"), "{v}");
    let out = idler.wait_with_output().await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    running.shutdown();
}

/// Implicit TLS towards the server: Dovecot's IMAPS listener with a
/// certificate for `localhost`, verified by sotto against the configured
/// CA; APPEND and FETCH through it. A plain upstream off loopback is
/// refused at start.
#[tokio::test(flavor = "multi_thread")]
async fn the_server_is_reached_over_verified_tls() {
    let dir = tempfile::tempdir().unwrap();
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let (cert, key) = (dir.path().join("up.pem"), dir.path().join("up.key"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.key_pair.serialize_pem()).unwrap();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let imaps = common::free_port();
    let dovecot = Dovecot::start_with(
        common::dovecot::Options::default()
            .config("ssl = yes")
            .config(&format!("ssl_cert = <{}", cert.display()))
            .config(&format!("ssl_key = <{}", key.display()))
            .config(&format!(
                "service imap-login {{\n  inet_listener imaps {{\n    address = 127.0.0.1\n    port = {imaps}\n  }}\n}}"
            )),
    );
    dovecot.add_user(ALICE, PASSWORD);
    let (_sink, _state, mut cfg) = proxy_config();

    // Plain to a host that is not this machine: refused.
    cfg.imap.upstream = "imap.example.net:143".into();
    let err = sotto::serve::start(&cfg).await.err().expect("refused");
    assert!(err.to_string().contains("imap.upstream_tls"), "{err}");

    cfg.imap.upstream = format!("localhost:{imaps}");
    cfg.imap.upstream_tls = true;
    cfg.imap.upstream_tls_ca = Some(cert.clone());
    let running = gateway(&cfg).await;
    let proxy = running.imap.unwrap().to_string();
    let message = b"Subject: via imaps 9191\r\n\r\nbody 9191\r\n";
    let b64 = base64::engine::general_purpose::STANDARD.encode(message);
    let r = imap(
        &proxy,
        &json!([{ "op": "append", "message": b64 }, { "op": "uids" }]),
    );
    assert_eq!(r[2]["status"], "OK", "{r:?}\n{}", dovecot.log());
    let uid = r[3]["uids"][0].as_str().unwrap().to_owned();
    let r = imap(&proxy, &json!([{ "op": "fetch", "uid": uid }]));
    assert_eq!(body_of(&r[2]), message.to_vec());
    assert!(!String::from_utf8_lossy(&dovecot.messages(ALICE)[0]).contains("9191"));
    running.shutdown();

    // STARTTLS on Dovecot's plain port, verified the same way.
    cfg.imap.upstream = format!(
        "localhost:{}",
        dovecot.imap_addr().rsplit_once(':').unwrap().1
    );
    cfg.imap.upstream_tls = false;
    cfg.imap.upstream_starttls = true;
    let running = gateway(&cfg).await;
    let proxy = running.imap.unwrap().to_string();
    let r = imap(&proxy, &json!([{ "op": "fetch", "uid": uid }]));
    assert_eq!(body_of(&r[2]), message.to_vec());
    // Three logins in all (two over IMAPS above, this one on the plain
    // port), every one over TLS.
    let log = dovecot.log();
    let logins: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("imap-login: Info: Login: user=<alice@example.org>"))
        .collect();
    assert_eq!(logins.len(), 3, "{log}");
    assert!(logins.iter().all(|l| l.contains(", TLS,")), "{log}");
    running.shutdown();

    // A certificate the CA did not sign: the client is told, nothing passes.
    let other = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let other_ca = dir.path().join("other.pem");
    std::fs::write(&other_ca, other.cert.pem()).unwrap();
    cfg.imap.upstream_tls_ca = Some(other_ca);
    let running = gateway(&cfg).await;
    let proxy = running.imap.unwrap().to_string();
    let c = common::imapworld::RawImap::connect(&proxy).await;
    assert!(
        c.greeting.starts_with("* BYE [UNAVAILABLE]"),
        "{}",
        c.greeting
    );
    running.shutdown();
}
