//! Policy files while `serve` runs: an edit takes effect for the next
//! transaction, an open transaction keeps the set it started with, a broken
//! edit is refused with a log line and the last good set stays, SIGHUP
//! reloads.

mod common;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{Client, Sink, free_port};

struct Serve {
    child: Child,
    smtp: SocketAddr,
    log: std::path::PathBuf,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn serve(
    upstream: &str,
    policies: &std::path::Path,
    keys: &std::path::Path,
    log: std::path::PathBuf,
) -> Serve {
    let (smtp, lmtp, admin) = (free_port(), free_port(), free_port());
    let child = Command::new(env!("CARGO_BIN_EXE_sotto"))
        .arg("serve")
        .env("SOTTO_SMTP__LISTEN", format!("127.0.0.1:{smtp}"))
        .env("SOTTO_LMTP__LISTEN", format!("127.0.0.1:{lmtp}"))
        .env("SOTTO_ADMIN__LISTEN", format!("127.0.0.1:{admin}"))
        .env("SOTTO_REDIRECT__LISTEN", "127.0.0.1:0")
        .env("SOTTO_UPSTREAM__ADDRESS", upstream)
        .env("SOTTO_POLICY__DIR", policies)
        .env("SOTTO_KEYS__DIR", keys)
        .env("SOTTO_KEYS__SOURCES", "dir")
        .env("RUST_LOG", "info")
        .stderr(std::fs::File::create(&log).unwrap())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let smtp: SocketAddr = format!("127.0.0.1:{smtp}").parse().unwrap();
    // The guard kills the child however this ends.
    let serve = Serve { child, smtp, log };
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(smtp).await.is_ok() {
            return serve;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "sotto serve did not start: {}",
        std::fs::read_to_string(&serve.log).unwrap_or_default()
    );
}

/// The reply to RCPT for `rcpt` in a fresh transaction.
async fn rcpt_reply(addr: SocketAddr, rcpt: &str) -> String {
    let mut c = Client::greeted(addr).await;
    c.cmd("MAIL FROM:<a@corp.example>", "250").await;
    c.send(format!("RCPT TO:<{rcpt}>\r\n").as_bytes()).await;
    c.reply().await
}

/// Waits (bounded) until RCPT for `rcpt` is answered with `code`.
async fn until_rcpt(addr: SocketAddr, rcpt: &str, code: &str) -> bool {
    for _ in 0..100 {
        if rcpt_reply(addr, rcpt).await.starts_with(code) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

const STRICT: &str = "[defaults]\nencrypt = \"if-key\"\n\n[[rule]]\nname = \"secure\"\nto = \"secure.example\"\nencrypt = \"required\"\n";
const RELAXED: &str = "[defaults]\nencrypt = \"if-key\"\n";
const STRICTER: &str = "[defaults]\nencrypt = \"if-key\"\n\n[[rule]]\nname = \"other\"\nto = \"other.example\"\nencrypt = \"required\"\n";

#[tokio::test(flavor = "multi_thread")]
async fn edits_apply_to_the_next_transaction_and_broken_ones_are_refused() {
    let sink = Sink::start(&[]);
    let policies = tempfile::tempdir().unwrap();
    let keys = tempfile::tempdir().unwrap();
    let file = policies.path().join("10-rules.toml");
    std::fs::write(&file, STRICT).unwrap();
    let s = serve(
        &sink.addr,
        policies.path(),
        keys.path(),
        policies.path().with_extension("log"),
    )
    .await;

    let r = rcpt_reply(s.smtp, "bob@secure.example").await;
    assert!(
        r.starts_with("550 5.7.1") && r.contains("rule \"secure\""),
        "{r}"
    );

    // Relax the policy: the next transaction follows it.
    std::fs::write(&file, RELAXED).unwrap();
    assert!(
        until_rcpt(s.smtp, "bob@secure.example", "250").await,
        "the edit was not picked up"
    );

    // A transaction opened now keeps this set through a reload.
    let mut open = Client::greeted(s.smtp).await;
    open.cmd("MAIL FROM:<a@corp.example>", "250").await;
    open.cmd("RCPT TO:<x@other.example>", "250").await;
    std::fs::write(&file, STRICTER).unwrap();
    assert!(
        until_rcpt(s.smtp, "y@other.example", "550").await,
        "the stricter edit was not picked up"
    );
    open.cmd("RCPT TO:<z@other.example>", "250").await;
    open.cmd("DATA", "354").await;
    open.send(b"Subject: started before\r\n\r\nhi\r\n.\r\n")
        .await;
    assert!(open.reply().await.starts_with("250"));

    // A broken edit is refused; the stricter set stays in force.
    std::fs::write(&file, "[[rule]\nname = broken\n").unwrap();
    assert!(
        common::eventually(10, || std::fs::read_to_string(&s.log)
            .unwrap_or_default()
            .contains("policy_reload_refused"))
        .await,
        "no log line for the refused set"
    );
    let r = rcpt_reply(s.smtp, "w@other.example").await;
    assert!(
        r.starts_with("550 5.7.1"),
        "the last good set must stay: {r}"
    );

    // SIGHUP reloads too (here: the relaxed set, written while watched).
    std::fs::write(&file, RELAXED).unwrap();
    assert!(until_rcpt(s.smtp, "w@other.example", "250").await);
    let st = Command::new("kill")
        .args(["-HUP", &s.child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    assert!(
        common::eventually(10, || std::fs::read_to_string(&s.log)
            .unwrap_or_default()
            .contains("event=\"sighup\""))
        .await,
        "SIGHUP not seen: {}",
        std::fs::read_to_string(&s.log).unwrap_or_default()
    );
    assert_eq!(sink.messages().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_refuses_to_start_on_invalid_policies() {
    let policies = tempfile::tempdir().unwrap();
    std::fs::write(
        policies.path().join("10.toml"),
        "[defaults]\nencrypt = \"maybe\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sotto"))
        .arg("serve")
        .env("SOTTO_POLICY__DIR", policies.path())
        .env("SOTTO_SMTP__LISTEN", "127.0.0.1:0")
        .env("SOTTO_LMTP__LISTEN", "127.0.0.1:0")
        .env("SOTTO_ADMIN__LISTEN", "")
        .env("SOTTO_REDIRECT__LISTEN", "")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("10.toml:2:11: bad value for `encrypt`"),
        "{err}"
    );
}
