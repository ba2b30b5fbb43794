//! The `sotto` binary: help texts, `check` golden outputs, and the SIGTERM
//! shutdown that lets an open transaction finish.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Client, Sink, free_port};

/// `sotto` in the repository (the tests' own SOTTO_* settings must not leak
/// in).
fn sotto() -> Command {
    let mut c = common::sotto();
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

#[test]
fn help_explains_each_subcommand() {
    let out = sotto().arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for s in ["serve", "check", "SOTTO_", "127.0.0.1:10025"] {
        assert!(text.contains(s), "--help lacks {s}: {text}");
    }
    let out = sotto().args(["serve", "--help"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("SIGTERM") && text.contains("--config"),
        "{text}"
    );
    let out = sotto().args(["check", "--help"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("file:line:col"), "{text}");
}

#[test]
fn shipped_example_and_defaults_check_clean() {
    let out = sotto()
        .args(["check", "--config", "sotto.example.toml"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = sotto().arg("check").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Each `tests/data/config/NAME.toml` is checked; the output must equal
/// `NAME.expected` exactly. A mismatch writes `NAME.failed` beside it.
#[test]
fn check_reports_match_golden_files() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/config");
    let mut cases = 0;
    let mut failed = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        cases += 1;
        let rel = path.strip_prefix(env!("CARGO_MANIFEST_DIR")).unwrap();
        let out = sotto()
            .args(["check", "--config"])
            .arg(rel)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(1),
            "{} should fail the check",
            rel.display()
        );
        let want = std::fs::read_to_string(path.with_extension("expected")).unwrap();
        let got = String::from_utf8_lossy(&out.stderr).into_owned();
        if got != want {
            std::fs::write(path.with_extension("failed"), &got).unwrap();
            failed.push(format!("{}:\n got: {got}\nwant: {want}", rel.display()));
        }
    }
    assert!(cases >= 5, "only {cases} golden cases found");
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

/// Each directory `tests/data/policy/NAME/` is checked as the policy
/// directory; the output must equal `NAME.expected` exactly.
#[test]
fn policy_check_reports_match_golden_files() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/policy");
    let mut cases = 0;
    let mut failed = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if !path.is_dir() {
            continue;
        }
        cases += 1;
        let rel = path.strip_prefix(env!("CARGO_MANIFEST_DIR")).unwrap();
        let out = sotto()
            .args(["check", "--policies"])
            .arg(rel)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(1),
            "{} should fail the check",
            rel.display()
        );
        let want = std::fs::read_to_string(path.with_extension("expected")).unwrap();
        let got = String::from_utf8_lossy(&out.stderr).into_owned();
        if got != want {
            std::fs::write(path.with_extension("failed"), &got).unwrap();
            failed.push(format!("{}:\n got: {got}\nwant: {want}", rel.display()));
        }
    }
    assert!(cases >= 4, "only {cases} golden cases found");
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

#[test]
fn explain_names_the_deciding_rule_and_the_key() {
    let out = sotto()
        .args([
            "explain",
            "--from",
            "a@corp.example",
            "--to",
            "b@partner.example",
            "--to",
            "c@lists.example",
        ])
        .env("SOTTO_KEYS__SOURCES", "dir")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("encrypt               = required  (rule \"partner must be encrypted\" at policies/50-examples.toml:"),
        "{text}"
    );
    assert!(
        text.contains(
            "missing_key           = plain     ([defaults] at policies/00-defaults.toml:"
        ),
        "{text}"
    );
    assert!(text.contains("key: none (no key found)"), "{text}");
    assert!(text.contains("result: refused: 550 5.7.1"), "{text}");
    assert!(
        text.contains("encrypt               = never     (rule \"mailing lists stay readable\""),
        "{text}"
    );
    assert!(text.contains("key: not looked up"), "{text}");
    assert!(text.contains("result: relayed readable"), "{text}");
}

#[test]
fn explain_for_chat_names_the_format_and_never_makes_keys() {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    std::fs::create_dir(&policies).unwrap();
    std::fs::write(
        policies.join("00.toml"),
        "[defaults]\nencrypt = \"if-key\"\n\n[[rule]]\nname = \"partners get legacy\"\n\
         channel = [\"xmpp\"]\nto = [\"*@partner.example\"]\nencrypt = \"required\"\nxmpp_format = \"legacy\"\nstore = false\n",
    )
    .unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "pass\n").unwrap();
    let store = format!("sqlite://{}", dir.path().join("sotto.db").display());
    let out = sotto()
        .args(["explain", "--channel", "xmpp", "--policies"])
        .arg(&policies)
        .args([
            "--from",
            "alice@example.org",
            "--to",
            "bob@example.org",
            "--to",
            "x@partner.example",
        ])
        .env("SOTTO_KEYS__SOURCES", "dir")
        .env("SOTTO_XMPP__DOMAIN", "example.org")
        .env("SOTTO_STORE__URL", &store)
        .env("SOTTO_XMPP__USER_KEYS_SECRET", &secret)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("xmpp from <alice@example.org> to <bob@example.org>:"),
        "{text}"
    );
    assert!(
        text.contains(
            "key: none (no key found (sotto lookup failed: a local user without a key yet"
        ),
        "{text}"
    );
    assert!(
        text.contains("result: encrypted (ox) with the key sotto makes for this local user"),
        "{text}"
    );
    assert!(
        text.contains("xmpp_format           = legacy    (rule \"partners get legacy\""),
        "{text}"
    );
    assert!(text.contains("store                 = false"), "{text}");
    assert!(
        text.contains(
            "result: refused: 550 5.7.1 Encryption required (policy rule \"partners get legacy\")"
        ),
        "{text}"
    );
    // explain only reads: no key was made for the local user.
    let snapshot = dir.path().join("snapshot");
    let out = sotto()
        .args(["store", "backup"])
        .arg(&snapshot)
        .env("SOTTO_STORE__URL", &store)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains(": 0 identities"),
        "explain must not create keys: {said}"
    );
}

#[test]
fn env_override_is_checked_too() {
    let out = sotto()
        .args(["check", "--config", "sotto.example.toml"])
        .env("SOTTO_UPSTREAM__ADDRESS", "no-port")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("upstream.address (from SOTTO_UPSTREAM__ADDRESS)"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_finishes_the_open_transaction_then_exits_zero() {
    let sink = Sink::start(&[]);
    let (smtp, lmtp, admin) = (free_port(), free_port(), free_port());
    let mut child = sotto()
        .arg("serve")
        .env("SOTTO_SMTP__LISTEN", format!("127.0.0.1:{smtp}"))
        .env("SOTTO_LMTP__LISTEN", format!("127.0.0.1:{lmtp}"))
        .env("SOTTO_ADMIN__LISTEN", format!("127.0.0.1:{admin}"))
        .env("SOTTO_REDIRECT__LISTEN", "127.0.0.1:0")
        .env("SOTTO_UPSTREAM__ADDRESS", &sink.addr)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{smtp}").parse().unwrap();
    let mut up = false;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "sotto serve did not start");
    // One client mid-message, one idle.
    let mut busy = Client::connect(addr).await;
    busy.cmd("EHLO busy", "250").await;
    busy.cmd("MAIL FROM:<a@example.com>", "250").await;
    busy.cmd("RCPT TO:<b@example.org>", "250").await;
    busy.cmd("DATA", "354").await;
    busy.send(b"Subject: in flight\r\n\r\nfirst half\r\n").await;
    let mut idle = Client::connect(addr).await;
    idle.cmd("EHLO idle", "250").await;

    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    // The idle client is told, and the listener stops accepting.
    let r = idle.reply().await;
    assert!(r.starts_with("421 4.3.2"), "{r:?}");
    let mut refused = false;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(addr).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(refused, "still accepting after SIGTERM");
    // The open transaction finishes and is relayed.
    busy.send(b"second half\r\n.\r\n").await;
    let r = busy.reply().await;
    assert!(r.starts_with("250"), "{r:?}");
    let r = busy.cmd("NOOP", "421").await;
    assert!(r.contains("4.3.2"), "{r}");
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));
    let stored = sink.messages();
    assert_eq!(stored.len(), 1);
    assert_eq!(
        stored[0].data,
        b"Subject: in flight\r\n\r\nfirst half\r\nsecond half\r\n"
    );
}
