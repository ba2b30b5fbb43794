//! Helpers shared by the end-to-end tests: the real peers (an aiosmtpd sink,
//! swaks, Postfix's smtp-source), the gateway on 127.0.0.1:0, and a raw SMTP
//! client that reads like the dialogue it checks.
//!
//! A missing peer fails the test loudly; `tests/run` installs them.
#![allow(dead_code)]

pub mod deploy;
pub mod dovecot;
pub mod hostile;
pub mod imapworld;
pub mod pgp;
pub mod postfix;
pub mod prosody;
pub mod sequoia;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sotto::config::Config;
use sotto::serve::Running;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader as TokioBufReader};
use tokio::net::TcpStream;

/// Path of an interop peer program, or a loud failure saying how to get it.
pub fn require(tool: &str) -> PathBuf {
    for dir in [
        "/usr/bin",
        "/usr/sbin",
        "/usr/local/bin",
        "/usr/local/sbin",
        "/bin",
        "/sbin",
    ] {
        let p = Path::new(dir).join(tool);
        if p.exists() {
            return p;
        }
    }
    panic!(
        "interop peer `{tool}` is not installed: run tests/run, which installs every peer the tests need"
    );
}

/// Fails loudly unless python3 can import `module` (from the PyPI package
/// `package`).
pub fn require_python_module(module: &str, package: &str) {
    let ok = Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "python module `{module}` is missing: it comes with the PyPI package `{package}`; run tests/run, which installs it with pip"
    );
}

/// The built `sotto` binary, with none of the test's own SOTTO_* variables.
pub fn sotto() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sotto"));
    for (k, _) in std::env::vars() {
        if k.starts_with("SOTTO_") {
            c.env_remove(k);
        }
    }
    c
}

/// What a finished process printed: stdout, then stderr.
pub fn output_text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A port on 127.0.0.1 that nothing listened on a moment ago, for a peer
/// (or `sotto` itself) that must be told its port before it starts.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// Dot-stuffs a CRLF message for DATA: a dot at the start of a line gets
/// another (no end-of-data line is added).
pub fn dot_stuff(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + message.len() / 50 + 8);
    let mut line_start = true;
    for (i, &b) in message.iter().enumerate() {
        if line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        line_start = b == b'\n' && i > 0 && message[i - 1] == b'\r';
    }
    out
}

/// Proptest settings for the property tests: `cases` cases
/// (`PROPTEST_CASES` overrides), and no regression file: a failure prints its
/// minimal input.
pub fn proptest_config(cases: u32) -> proptest::test_runner::Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(cases);
    proptest::test_runner::Config {
        failure_persistence: None,
        ..proptest::test_runner::Config::with_cases(cases)
    }
}

/// One message as the sink stored it.
#[derive(Debug, Clone)]
pub struct Stored {
    pub from: String,
    pub rcpts: Vec<String>,
    pub mail_options: Vec<String>,
    pub data: Vec<u8>,
}

/// The upstream: `tests/peers/sink.py` (aiosmtpd) recording what it accepts.
pub struct Sink {
    pub addr: String,
    dir: tempfile::TempDir,
    child: Child,
}

impl Sink {
    pub fn start(args: &[&str]) -> Sink {
        require_python_module("aiosmtpd", "aiosmtpd");
        let dir = tempfile::tempdir().expect("tempdir");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/sink.py");
        let mut child = Command::new("python3")
            .arg(script)
            .arg("--dir")
            .arg(dir.path())
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("start python3 sink");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("sink output");
        let port: u16 = line
            .trim()
            .strip_prefix("READY ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("sink did not start: {line:?}"));
        Sink {
            addr: format!("127.0.0.1:{port}"),
            dir,
            child,
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Every stored message, in order of arrival.
    pub fn messages(&self) -> Vec<Stored> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .expect("read sink dir")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "eml"))
            .collect();
        names.sort();
        names
            .into_iter()
            .map(|eml| {
                let meta: serde_json::Value = serde_json::from_slice(
                    &std::fs::read(eml.with_extension("json")).expect("json"),
                )
                .expect("json");
                let strings = |k: &str| -> Vec<String> {
                    meta[k]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|v| v.as_str().unwrap().to_string())
                        .collect()
                };
                Stored {
                    from: meta["from"].as_str().unwrap_or_default().to_string(),
                    rcpts: strings("rcpts"),
                    mail_options: strings("mail_options"),
                    data: std::fs::read(&eml).expect("eml"),
                }
            })
            .collect()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A configuration for tests: every listener on 127.0.0.1:0, short timeouts.
pub fn config(upstream: &str) -> Config {
    let mut cfg = Config::default();
    cfg.smtp.listen = "127.0.0.1:0".into();
    cfg.lmtp.listen = "127.0.0.1:0".into();
    cfg.admin.listen = "127.0.0.1:0".into();
    cfg.redirect.listen = "127.0.0.1:0".into();
    cfg.upstream.address = upstream.into();
    cfg.timeouts.command = Duration::from_secs(10);
    cfg.timeouts.data = Duration::from_secs(20);
    cfg.timeouts.upstream = Duration::from_secs(5);
    cfg.timeouts.upstream_data = Duration::from_secs(10);
    cfg.timeouts.shutdown = Duration::from_secs(10);
    // No web key lookups unless a test asks for them.
    cfg.keys.sources = vec![sotto::config::KeySource::Dir];
    assert!(cfg.validate().is_empty(), "{:?}", cfg.validate());
    cfg
}

/// Points `cfg` at a policy directory holding one file with `text`.
pub fn policy(cfg: &mut Config, text: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("00-test.toml"), text).expect("write policy");
    cfg.policy.dir = Some(dir.path().to_path_buf());
    dir
}

pub async fn gateway(cfg: &Config) -> Running {
    sotto::serve::start(cfg).await.expect("gateway starts")
}

/// A raw SMTP client for dialogues byte by byte.
pub struct Client {
    stream: TokioBufReader<TcpStream>,
}

impl Client {
    /// Connects and reads the greeting.
    pub async fn connect(addr: std::net::SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).await.expect("connect to gateway");
        let mut c = Client {
            stream: TokioBufReader::new(stream),
        };
        let greeting = c.reply().await;
        assert!(greeting.starts_with("220 "), "greeting: {greeting}");
        c
    }

    /// Connects and says `EHLO client`.
    pub async fn greeted(addr: std::net::SocketAddr) -> Client {
        let mut c = Client::connect(addr).await;
        c.cmd("EHLO client", "250").await;
        c
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.get_mut().write_all(bytes).await.expect("write");
    }

    /// The TCP stream, for a TLS handshake after STARTTLS.
    pub fn into_inner(self) -> TcpStream {
        assert!(
            self.stream.buffer().is_empty(),
            "unread bytes before the TLS handshake"
        );
        self.stream.into_inner()
    }

    /// Sends unless the server has closed the connection; false if it has.
    pub async fn try_send(&mut self, bytes: &[u8]) -> bool {
        self.stream.get_mut().write_all(bytes).await.is_ok()
    }

    /// The next whole reply (all lines), or "" when the connection closed.
    pub async fn reply(&mut self) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout(Duration::from_secs(30), self.stream.read_line(&mut line))
                .await
                .expect("reply within 30s")
                .unwrap_or(0);
            if n == 0 {
                return all;
            }
            all.push_str(&line);
            if line.as_bytes().get(3) != Some(&b'-') {
                return all;
            }
        }
    }

    /// Sends one command line and asserts the reply starts with `code`.
    pub async fn cmd(&mut self, line: &str, code: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes()).await;
        let r = self.reply().await;
        assert!(r.starts_with(code), "`{line}` expected {code}, got {r:?}");
        r
    }

    /// Asserts the server closed the connection (after any final reply).
    pub async fn expect_closed(&mut self) {
        let mut rest = Vec::new();
        let n = tokio::time::timeout(Duration::from_secs(30), self.stream.read_to_end(&mut rest))
            .await
            .expect("close within 30s")
            .unwrap_or(0);
        assert_eq!(
            n,
            0,
            "expected close, got {:?}",
            String::from_utf8_lossy(&rest)
        );
    }

    /// EHLO, MAIL, RCPT…, DATA with `body` (already dot-stuffed, ending in
    /// CRLF.CRLF); returns the reply to the data.
    pub async fn send_mail(&mut self, from: &str, to: &[&str], wire_body: &[u8]) -> String {
        self.cmd(&format!("MAIL FROM:<{from}>"), "250").await;
        for t in to {
            self.cmd(&format!("RCPT TO:<{t}>"), "250").await;
        }
        self.cmd("DATA", "354").await;
        self.send(wire_body).await;
        self.reply().await
    }
}

/// Runs swaks against `server` with extra arguments; returns (success, transcript).
pub async fn swaks(server: std::net::SocketAddr, args: &[&str]) -> (bool, String) {
    let swaks = require("swaks");
    let out = tokio::process::Command::new(swaks)
        .arg("--server")
        .arg(server.to_string())
        .args(["--timeout", "30"])
        .args(args)
        .output()
        .await
        .expect("run swaks");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Waits until `cond` holds, for at most `secs` seconds.
pub async fn eventually(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    let end = tokio::time::Instant::now() + Duration::from_secs(secs);
    while tokio::time::Instant::now() < end {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cond()
}

/// Asserts two byte strings are equal; on failure shows where they differ
/// rather than dumping both.
pub fn assert_same_bytes(got: &[u8], want: &[u8]) {
    if got == want {
        return;
    }
    let at = got
        .iter()
        .zip(want)
        .position(|(a, b)| a != b)
        .unwrap_or(got.len().min(want.len()));
    let show = |b: &[u8]| {
        String::from_utf8_lossy(&b[at.saturating_sub(20)..(at + 40).min(b.len())]).into_owned()
    };
    panic!(
        "bytes differ at offset {at} (got {} bytes, want {}): got …{:?}…, want …{:?}…",
        got.len(),
        want.len(),
        show(got),
        show(want)
    );
}

/// The header fields named `name` of `mail` (unfolded values), read with
/// Python's email package.
pub fn header_values(mail: &[u8], name: &str) -> Vec<String> {
    let script = format!(
        "import sys, email, email.policy\n\
         m = email.message_from_binary_file(sys.stdin.buffer, policy=email.policy.compat32)\n\
         for v in m.get_all({name:?}) or []:\n    print(' '.join(str(v).split()))\n"
    );
    let mut child = Command::new("python3")
        .args(["-c", &script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    use std::io::Write;
    child.stdin.take().unwrap().write_all(mail).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The CPU time (user + system, in clock ticks) process `pid` has used,
/// from `/proc/<pid>/stat` (benchmarks read it around a run).
pub fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit_once(") ").map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
}
