//! What sotto does out of the box, through the binary: the shipped policy
//! redacts links (they keep working, their secrets go), a policy asking for
//! `redirect` without `redirect.public_url` is refused by `check` and by
//! `serve` (no link that cannot open is ever sent), and `serve` says at
//! start what it does to links and where it looks keys up.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::time::{Duration, Instant};

fn redirect_policy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("00.toml"),
        "[defaults]\nlinks = \"redirect\"\n",
    )
    .expect("write");
    dir
}

#[test]
fn shipped_policy_redacts_links_in_readable_mail() {
    let mut child = common::sotto()
        .args([
            "transform",
            "--from",
            "a@example.com",
            "--to",
            "b@example.org",
        ])
        .env("SOTTO_KEYS__SOURCES", "dir")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sotto transform");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(
            b"From: a@example.com\r\nTo: b@example.org\r\nSubject: reset\r\n\r\n\
              Reset: https://app.example.net/reset?user=7&token=s3cr3t-value\r\n",
        )
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(0), "{}", common::output_text(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("https://app.example.net/reset?user=7"),
        "the link must still open: {text}"
    );
    assert!(
        !text.contains("s3cr3t-value"),
        "the secret is still there: {text}"
    );
}

#[test]
fn redirect_without_a_public_url_is_refused_by_check() {
    let policies = redirect_policy();
    let out = common::sotto()
        .arg("check")
        .env("SOTTO_POLICY__DIR", policies.path())
        .output()
        .expect("sotto check");
    assert_eq!(out.status.code(), Some(1), "{}", common::output_text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("00.toml") && err.contains("links = \"redirect\" needs redirect.public_url"),
        "{err}"
    );
    // With a public URL the same policy is fine.
    let out = common::sotto()
        .arg("check")
        .env("SOTTO_POLICY__DIR", policies.path())
        .env("SOTTO_REDIRECT__PUBLIC_URL", "https://links.example.org")
        .output()
        .expect("sotto check");
    assert_eq!(out.status.code(), Some(0), "{}", common::output_text(&out));
}

/// `sotto serve` on the embedded defaults, moved to free ports.
fn serve() -> std::process::Command {
    let mut c = common::sotto();
    c.arg("serve")
        .env("SOTTO_SMTP__LISTEN", "127.0.0.1:0")
        .env("SOTTO_LMTP__LISTEN", "127.0.0.1:0")
        .env("SOTTO_ADMIN__LISTEN", "127.0.0.1:0")
        .env("SOTTO_REDIRECT__LISTEN", "127.0.0.1:0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c
}

#[test]
fn serve_refuses_redirect_without_a_public_url() {
    let policies = redirect_policy();
    let out = serve()
        .env("SOTTO_POLICY__DIR", policies.path())
        .output()
        .expect("sotto serve");
    assert_ne!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("needs redirect.public_url"), "{err}");
}

#[test]
fn serve_says_what_it_does_to_links_and_where_it_looks_keys_up() {
    let mut child = serve().spawn().expect("sotto serve");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let (mut links, mut keys) = (None, None);
    while (links.is_none() || keys.is_none()) && Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            if line.contains("event=\"links\"") || line.contains("event=links") {
                links = Some(line);
            } else if line.contains("key_sources") {
                keys = Some(line);
            }
        }
    }
    child.kill().ok();
    child.wait().ok();
    let links = links.expect("serve logged what it does to links");
    assert!(
        links.contains("readable mail and chat: redact (policies/00-defaults.toml:"),
        "{links}"
    );
    assert!(links.contains("inside encryption: keep"), "{links}");
    let keys = keys.expect("serve logged its key sources");
    assert!(
        keys.contains("dir,autocrypt,wkd,pep") && !keys.contains("vks"),
        "{keys}"
    );
}
