//! The deployment files in `deploy/`, one test binary a target:
//! `tests/deploy_systemd.rs` (the unit), `tests/deploy_docker.rs` (the
//! Dockerfile and the image's configuration), `tests/deploy_kubernetes.rs`
//! (the manifests), and here every sotto.toml shipped under `deploy/`, which
//! must pass `sotto check`. Helpers shared by them are in
//! `tests/common/deploy.rs`.
//!
//! Postfix's recipes in `deploy/postfix/` run against a real Postfix in
//! `tests/postfix.rs`.

mod common;

use common::deploy::{assert_checks, etc_sotto, read, repo, shipped_policies};

#[test]
fn shipped_sotto_tomls_pass_check() {
    // Files under deploy/ other than the Kubernetes ConfigMap (checked in
    // tests/deploy_kubernetes.rs): they name /etc/sotto paths, moved into a
    // tempdir here.
    let mut found = Vec::new();
    let mut stack = vec![repo().join("deploy")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "toml") {
                found.push(p);
            }
        }
    }
    found.sort();
    assert!(
        found.len() >= 2,
        "expected sotto.toml files under deploy/: {found:?}"
    );
    for p in found {
        let rel = p.strip_prefix(repo()).unwrap().display().to_string();
        let text = read(&rel);
        let mut files = shipped_policies();
        files.extend(named_files(&text));
        let (_dir, path) = etc_sotto(&text, &files);
        assert_checks(&rel, &path, &[]);
    }
}

/// The files a deployment's sotto.toml names under /etc/sotto (keys,
/// certificates, the store's passphrase), as placeholders: what the
/// deployment provides, for `sotto check` to find.
fn named_files(config: &str) -> Vec<(String, String)> {
    config
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split('"').nth(1))
        .filter_map(|v| v.strip_prefix("/etc/sotto/"))
        .filter(|rel| rel.contains('.') && !rel.starts_with("policies"))
        .map(|rel| (rel.to_string(), "placeholder\n".to_string()))
        .collect()
}

/// The Dovecot recipe in `deploy/imap/`, run: Dovecot with `99-sotto.conf`
/// (its port replaced by a free one), sotto with `dovecot/sotto.toml` as
/// shipped but for what is machine-specific, set by environment variables
/// (listen addresses, the store's file, the upstream port) and the files
/// it names (a certificate made here, the passphrase). imaplib APPENDs
/// through the STARTTLS and the implicit-TLS listener; Dovecot's Maildir
/// holds PGP/MIME; FETCH through sotto returns the original.
#[tokio::test(flavor = "multi_thread")]
async fn the_dovecot_imap_recipe_carries_mail() {
    use base64::Engine as _;
    use common::dovecot::{Dovecot, Options};
    use common::imapworld::{ALICE, PASSWORD, body_of, imap_with};
    use serde_json::json;

    let conf = read("deploy/imap/dovecot/99-sotto.conf");
    assert!(conf.contains("port = 1143"), "{conf}");
    let dovecot = Dovecot::start_with(
        Options::default().config(&conf.replace("port = 1143", "port = {imap_port}")),
    );
    dovecot.add_user(ALICE, PASSWORD);

    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let text = read("deploy/imap/dovecot/sotto.toml");
    let mut files = shipped_policies();
    files.push(("secret/store.secret".into(), "recipe passphrase\n".into()));
    files.push(("tls/mail.example.org.fullchain.pem".into(), ck.cert.pem()));
    files.push((
        "tls/mail.example.org.key.pem".into(),
        ck.key_pair.serialize_pem(),
    ));
    let (dir, path) = etc_sotto(&text, &files);
    let ca = dir.path().join("tls/mail.example.org.fullchain.pem");
    let env: Vec<(String, String)> = [
        ("SOTTO_IMAP__LISTEN", "127.0.0.1:0".to_string()),
        ("SOTTO_IMAP__LISTEN_TLS", "127.0.0.1:0".to_string()),
        ("SOTTO_IMAP__UPSTREAM", dovecot.imap_addr()),
        ("SOTTO_SMTP__LISTEN", "127.0.0.1:0".to_string()),
        ("SOTTO_LMTP__LISTEN", "".to_string()),
        ("SOTTO_ADMIN__LISTEN", "".to_string()),
        ("SOTTO_REDIRECT__LISTEN", "".to_string()),
        ("SOTTO_IDENTITIES__WKD_LISTEN", "".to_string()),
        (
            "SOTTO_STORE__URL",
            sotto::store::sqlite_url(&dir.path().join("sotto.db")),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_checks("deploy/imap/dovecot/sotto.toml", &path, &env);
    let cfg = sotto::config::Config::load(Some(&path), env).expect("the recipe loads");
    assert_eq!(cfg.identities.domains, ["example.org"]);
    let running = common::gateway(&cfg).await;
    let ca = ca.display().to_string();

    let message = b"Subject: recipe 9393\r\n\r\nbody 9393\r\n";
    let b64 = base64::engine::general_purpose::STANDARD.encode(message);
    let starttls = running.imap.expect("the STARTTLS listener").to_string();
    let r = imap_with(
        &starttls.replace("127.0.0.1", "localhost"),
        &["--starttls", &ca],
        &json!([{ "op": "append", "message": b64 }]),
    );
    assert!(
        r[0]["after_starttls_caps"]
            .as_array()
            .is_some_and(|c| !c.is_empty()),
        "{r:?}"
    );
    assert_eq!(r[2]["status"], "OK", "{r:?}");
    let stored = String::from_utf8_lossy(&dovecot.messages(ALICE)[0]).into_owned();
    assert!(
        stored.contains("multipart/encrypted") && !stored.contains("9393"),
        "{stored}"
    );
    let tls = running
        .imap_tls
        .expect("the implicit-TLS listener")
        .to_string();
    let r = imap_with(
        &tls.replace("127.0.0.1", "localhost"),
        &["--tls", &ca],
        &json!([{ "op": "fetch", "uid": "1" }]),
    );
    assert_eq!(body_of(&r[2]), message.to_vec());
    running.shutdown();
}
