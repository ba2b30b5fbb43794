//! Secrets stay secret (issue 9): the real `sotto` binary, logging at
//! trace level in text and in JSON, relays messages whose bodies, Subjects,
//! URLs (query secrets too), attachment names and an armored key carry
//! marker strings — in clear, links stripped, defanged, redacted and
//! redirected, encrypted, refused for a missing key, refused by the
//! upstream at RCPT and at DATA — and opens the redirect links; `sotto
//! transform` and `sotto redirect` run the same way. None of the markers
//! may appear in what the processes print, nor in any file under their
//! working directory, TMPDIR or HOME.
//!
//! Each run also checks that the log is the real thing (the events of the
//! paths taken, and lines at trace/debug level), so an empty or filtered log
//! cannot pass for a clean one.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use base64::Engine;
use sequoia_openpgp::cert::CertBuilder;
use sequoia_openpgp::serialize::SerializeInto;
use sotto::links::token::TokenKeys;

use common::sequoia::bob;
use common::{Client, Sink, free_port};

// ---------------------------------------------------------------------------
// Markers

const BODY: &str = "bodymarkerq7xv2";
const SUBJECT: &str = "subjectmarkerhd9p";
const URL_HOST: &str = "hostmarkergv5q";
const URL_PATH: &str = "pathmarkerzr4k";
const URL_QUERY: &str = "querysecretwt8s";
const SUBJECT_URL: &str = "subjecturlmarkerux1a";
const HTML_TEXT: &str = "htmlmarkerkk3d";
const ATTACHMENT_NAME: &str = "attachnamemarkerbn6c";
const ATTACHMENT_BODY: &str = "attachbodymarkeryp2e";

/// The secret URL of the messages.
fn secret_url() -> String {
    format!("https://{URL_HOST}.example/{URL_PATH}/doc?token={URL_QUERY}&x=1")
}

/// Token key (id 1) of the gateway and the redirector.
const TOKEN_SECRET: [u8; 32] = [42; 32];

/// An armored key the messages carry, and a line of its armor.
fn carried_key() -> &'static (String, String) {
    static KEY: OnceLock<(String, String)> = OnceLock::new();
    KEY.get_or_init(|| {
        let (cert, _) = CertBuilder::general_purpose(Some("<dave@example.net>"))
            .generate()
            .expect("generate key");
        let armored = String::from_utf8(cert.armored().to_vec().unwrap()).unwrap();
        let line = armor_line(&armored);
        (armored, line)
    })
}

/// A full base64 line from the middle of an armored block.
fn armor_line(armored: &str) -> String {
    armored
        .lines()
        .filter(|l| l.len() == 64)
        .nth(2)
        .expect("an armor line")
        .to_string()
}

/// Every marker, lower-cased (logs are compared lower-cased): the message
/// parts, the carried key, and bob's key that the gateway loads.
fn markers() -> Vec<String> {
    let mut m: Vec<String> = [
        BODY,
        SUBJECT,
        URL_HOST,
        URL_PATH,
        URL_QUERY,
        SUBJECT_URL,
        HTML_TEXT,
        ATTACHMENT_NAME,
        ATTACHMENT_BODY,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    m.push(carried_key().1.clone());
    m.push(armor_line(&bob_public()));
    m.into_iter().map(|s| s.to_lowercase()).collect()
}

fn bob_public() -> String {
    String::from_utf8(bob().armored().to_vec().unwrap()).unwrap()
}

/// Panics naming each marker found in `text` and where.
fn assert_no_markers(what: &str, text: &str) {
    let lower = text.to_lowercase();
    let mut found = Vec::new();
    for m in markers() {
        if let Some(at) = lower.find(&m) {
            let from = lower.floor_char_boundary(at.saturating_sub(200));
            let to = lower.ceil_char_boundary((at + m.len() + 100).min(lower.len()));
            found.push(format!("{m}: …{}…", &lower[from..to]));
        }
    }
    assert!(
        found.is_empty(),
        "{what} holds markers:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_check_catches_every_marker() {
    for m in markers() {
        let log = format!("INFO x: event=\"message\" subject=\"{}\"", m.to_uppercase());
        let caught = std::panic::catch_unwind(|| assert_no_markers("log", &log));
        assert!(caught.is_err(), "{m} went unnoticed");
    }
    assert_no_markers("clean", "INFO x: event=\"message\" size=10");
}

/// The message: text with a URL, HTML with a link, a text attachment with a
/// marked name, and an armored key; the Subject has a URL too.
fn message(to: &str) -> Vec<u8> {
    let url = secret_url();
    let key = &carried_key().0;
    let m = format!(
        "From: Alice <alice@example.com>\r\nTo: <{to}>\r\nSubject: Plans {SUBJECT} https://{SUBJECT_URL}.example/s?k={URL_QUERY}\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: multipart/alternative; boundary=\"b2\"\r\n\r\n--b2\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHi, {BODY}: {url}\r\n--b2\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>{HTML_TEXT} <a href=\"{url}\">here</a></p>\r\n--b2--\r\n--b1\r\nContent-Type: text/plain; name=\"{ATTACHMENT_NAME}.txt\"\r\nContent-Disposition: attachment; filename=\"{ATTACHMENT_NAME}.txt\"\r\n\r\n{ATTACHMENT_BODY}\r\n--b1\r\nContent-Type: application/pgp-keys; name=\"key.asc\"\r\n\r\n{key}--b1--\r\n"
    );
    m.replace("\r\n", "\n").replace('\n', "\r\n").into_bytes()
}

// ---------------------------------------------------------------------------
// The gateway as a process

const POLICY: &str = r#"[defaults]
encrypt = "never"
links = "keep"
subject = "protect"

[[rule]]
name = "strip"
to = ["*@strip.example"]
links = "strip"

[[rule]]
name = "defang"
to = ["*@defang.example"]
links = "defang"

[[rule]]
name = "redact"
to = ["*@redact.example"]
links = "redact"

[[rule]]
name = "redirect"
to = ["*@redirect.example"]
links = "redirect"

[[rule]]
name = "encrypted"
to = ["*@example.org", "*@legal.example"]
encrypt = "required"
"#;

/// Configuration, policies and keys, in a directory of their own (none of
/// the directories searched for files).
struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("policies")).unwrap();
        std::fs::write(dir.path().join("policies/00.toml"), POLICY).unwrap();
        std::fs::create_dir(dir.path().join("keys")).unwrap();
        std::fs::write(dir.path().join("keys/bob.asc"), bob_public()).unwrap();
        Setup { dir }
    }

    /// A config file for these listeners and upstream; returns its path.
    fn config(&self, name: &str, smtp: u16, redirect: u16, upstream: &str, json: bool) -> PathBuf {
        let d = self.dir.path();
        let secret = base64::engine::general_purpose::STANDARD.encode(TOKEN_SECRET);
        let text = format!(
            r#"[smtp]
listen = "127.0.0.1:{smtp}"
[lmtp]
listen = "127.0.0.1:0"
[admin]
listen = "127.0.0.1:0"
[upstream]
address = "{upstream}"
[keys]
dir = "{keys}"
sources = ["dir"]
[policy]
dir = "{policies}"
[redirect]
listen = "127.0.0.1:{redirect}"
public_url = "http://127.0.0.1:{redirect}"
[[redirect.keys]]
id = 1
secret = "{secret}"
[log]
level = "trace"
format = "{format}"
"#,
            keys = d.join("keys").display(),
            policies = d.join("policies").display(),
            format = if json { "json" } else { "text" },
        );
        let path = d.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Where a process's output goes.
    fn output(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// `sotto` with RUST_LOG=trace, no SOTTO_* from the test's environment, and
/// stdout and stderr into files.
fn sotto(out: &Path, err: &Path) -> Command {
    let mut c = common::sotto();
    c.env("RUST_LOG", "trace")
        .stdout(std::fs::File::create(out).unwrap())
        .stderr(std::fs::File::create(err).unwrap());
    c
}

/// A running `sotto serve` or `sotto redirect`.
struct Process {
    child: Child,
    out: PathBuf,
    err: PathBuf,
}

impl Process {
    async fn wait_for(port: u16, child: &mut Child) {
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return;
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!("sotto exited at start: {status}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("sotto did not listen on {port}");
    }

    /// SIGTERM, wait; what it printed on stdout and stderr.
    async fn stop(mut self) -> String {
        let kill = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(kill.success());
        let status = tokio::task::spawn_blocking(move || self.child.wait())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(status.code(), Some(0), "sotto did not exit cleanly");
        format!(
            "{}{}",
            std::fs::read_to_string(&self.out).unwrap(),
            std::fs::read_to_string(&self.err).unwrap()
        )
    }
}

/// `sotto serve` on fresh ports; `dirs` = (cwd, TMPDIR, HOME) if given.
async fn serve(
    setup: &Setup,
    name: &str,
    upstream: &str,
    json: bool,
    dirs: Option<(&Path, &Path, &Path)>,
) -> (Process, SocketAddr, String) {
    let (smtp, redirect) = (free_port(), free_port());
    let config = setup.config(&format!("{name}.toml"), smtp, redirect, upstream, json);
    let (out, err) = (
        setup.output(&format!("{name}.out")),
        setup.output(&format!("{name}.err")),
    );
    let mut cmd = sotto(&out, &err);
    cmd.arg("serve").arg("--config").arg(&config);
    if let Some((cwd, tmp, home)) = dirs {
        cmd.current_dir(cwd).env("TMPDIR", tmp).env("HOME", home);
    }
    let mut child = cmd.spawn().unwrap();
    Process::wait_for(smtp, &mut child).await;
    Process::wait_for(redirect, &mut child).await;
    (
        Process { child, out, err },
        format!("127.0.0.1:{smtp}").parse().unwrap(),
        format!("http://127.0.0.1:{redirect}"),
    )
}

// ---------------------------------------------------------------------------
// What goes through

/// One transaction to `to`; the reply to RCPT if it was refused, else to
/// the data.
async fn send(addr: SocketAddr, to: &str) -> String {
    let mut c = Client::greeted(addr).await;
    c.cmd("MAIL FROM:<alice@example.com>", "250").await;
    c.send(format!("RCPT TO:<{to}>\r\n").as_bytes()).await;
    let r = c.reply().await;
    if !r.starts_with("250") {
        c.cmd("QUIT", "221").await;
        return r;
    }
    c.cmd("DATA", "354").await;
    let mut data = message(to);
    data.extend_from_slice(b".\r\n");
    c.send(&data).await;
    let r = c.reply().await;
    c.cmd("QUIT", "221").await;
    r
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .unwrap()
}

/// Opens a redirect link as scanners (HEAD) and people (GET, then POST)
/// do; the POST leads to the secret URL.
async fn open_link(link: &str) {
    let c = http();
    let head = c.head(link).send().await.unwrap();
    assert_eq!(head.status(), reqwest::StatusCode::OK, "HEAD {link}");
    let get = c.get(link).send().await.unwrap();
    assert_eq!(get.status(), reqwest::StatusCode::OK, "GET {link}");
    let post = c.post(link).send().await.unwrap();
    assert_eq!(post.status(), reqwest::StatusCode::SEE_OTHER, "POST {link}");
    let to = post.headers()["location"].to_str().unwrap().to_string();
    assert!(to.contains(URL_QUERY), "the redirect leads on: {to}");
}

/// Every path through the gateway with the marker message: each treatment,
/// each refusal; then the redirect links of what was relayed are opened.
async fn exercise(addr: SocketAddr, redirect_base: &str, sink: &Sink) {
    for to in [
        "keep@plain.example",
        "strip@strip.example",
        "defang@defang.example",
        "redact@redact.example",
        "redirect@redirect.example",
        "bob@example.org",
    ] {
        let r = send(addr, to).await;
        assert!(r.starts_with("250"), "{to}: {r}");
    }
    let r = send(addr, "nokey@legal.example").await;
    assert!(r.starts_with("550 5.7.1"), "no key: {r}");
    let r = send(addr, "refused@plain.example").await;
    assert!(r.starts_with('5'), "the upstream refuses: {r}");

    let stored = sink.messages();
    let of = |to: &str| {
        // The latest: the sink may be shared by several gateway runs.
        let m = stored
            .iter()
            .rev()
            .find(|m| m.rcpts.iter().any(|r| r == to))
            .unwrap_or_else(|| panic!("nothing stored for {to}"));
        String::from_utf8_lossy(&m.data).into_owned()
    };
    // The treatments really happened: the paths the logs are checked on.
    assert!(of("keep@plain.example").contains(URL_QUERY));
    assert!(!of("strip@strip.example").contains(URL_QUERY));
    let encrypted = of("bob@example.org");
    assert!(encrypted.contains("multipart/encrypted"));
    assert!(!encrypted.contains(BODY) && !encrypted.contains(SUBJECT));
    let redirected = of("redirect@redirect.example");
    assert!(!redirected.contains(URL_QUERY));
    let prefix = format!("{redirect_base}/l/");
    let at = redirected
        .find(&prefix)
        .unwrap_or_else(|| panic!("no redirect link in {redirected}"))
        + prefix.len();
    let token: String = redirected[at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    open_link(&format!("{prefix}{token}")).await;
}

/// The log is the real thing: the events of the paths taken, and lines
/// below info level.
fn assert_real_log(what: &str, log: &str, json: bool, events: &[&str]) {
    assert!(log.lines().count() > 5, "{what}: log too short:\n{log}");
    for e in events {
        let needle = if json {
            format!("\"event\":\"{e}\"")
        } else {
            format!("event=\"{e}\"")
        };
        let bare = format!("event={e}");
        assert!(
            log.contains(&needle) || log.contains(&bare),
            "{what}: no {e} event in the log:\n{log}"
        );
    }
    let low = if json {
        log.contains("\"level\":\"TRACE\"") || log.contains("\"level\":\"DEBUG\"")
    } else {
        log.contains(" TRACE ") || log.contains(" DEBUG ")
    };
    assert!(low, "{what}: nothing below info level in the log");
}

const SERVE_EVENTS: &[&str] = &[
    "listening",
    "message",
    "links",
    "encrypt",
    "rcpt_refused",
    "redirect",
];

// ---------------------------------------------------------------------------
// Logs

#[tokio::test(flavor = "multi_thread")]
async fn no_marker_in_logs_at_any_level() {
    let setup = Setup::new();
    let sink = Sink::start(&[
        "--reject-rcpt",
        "refused@plain.example=550 5.1.1 no such user here",
    ]);
    for json in [false, true] {
        let name = if json { "serve-json" } else { "serve-text" };
        let (gw, addr, redirect) = serve(&setup, name, &sink.addr, json, None).await;
        exercise(addr, &redirect, &sink).await;
        let log = gw.stop().await;
        assert_real_log(name, &log, json, SERVE_EVENTS);
        assert_no_markers(name, &log);
    }

    // The upstream refuses the data itself.
    let refusing = Sink::start(&["--data-reply", "554 5.6.0 content refused here"]);
    let (gw, addr, _) = serve(&setup, "serve-refused", &refusing.addr, false, None).await;
    for to in ["keep@plain.example", "bob@example.org"] {
        let r = send(addr, to).await;
        assert!(r.starts_with("554"), "{to}: {r}");
    }
    let log = gw.stop().await;
    assert_real_log("serve-refused", &log, false, &["message", "encrypt"]);
    assert_no_markers("serve-refused", &log);
}

#[test]
fn no_marker_from_transform() {
    let setup = Setup::new();
    let config = setup.config("transform.toml", 0, 0, "127.0.0.1:1", false);
    for (to, code) in [
        ("strip@strip.example", 0),
        ("redirect@redirect.example", 0),
        ("bob@example.org", 0),
        ("nokey@legal.example", 2),
    ] {
        let (out, err) = (setup.output("t.out"), setup.output("t.err"));
        let mut child = sotto(&out, &err)
            .args(["transform", "--config"])
            .arg(&config)
            .args(["--from", "alice@example.com", "--to", to])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(&message(to)).unwrap();
        let status = child.wait().unwrap();
        let (out, err) = (
            std::fs::read_to_string(&out).unwrap(),
            std::fs::read_to_string(&err).unwrap(),
        );
        assert_eq!(status.code(), Some(code), "{to}: {err}");
        assert_no_markers(&format!("transform to {to}: stderr"), &err);
        if code == 0 {
            // Rewritten (or encrypted), not echoed.
            assert!(!out.contains(URL_QUERY), "{to}: {out}");
        } else {
            assert!(err.contains("550 5.7.1"), "{err}");
        }
        if to.ends_with("example.org") {
            assert!(out.contains("multipart/encrypted"));
            assert_no_markers("transform to bob: stdout", &out);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn no_marker_from_redirect() {
    let setup = Setup::new();
    let port = free_port();
    let config = setup.config("redirect.toml", 0, port, "127.0.0.1:1", false);
    let (out, err) = (setup.output("r.out"), setup.output("r.err"));
    let mut child = sotto(&out, &err)
        .args(["redirect", "--config"])
        .arg(&config)
        .spawn()
        .unwrap();
    Process::wait_for(port, &mut child).await;
    let redirector = Process { child, out, err };
    let keys = TokenKeys::from_secrets(vec![(1, TOKEN_SECRET)]);
    let token = keys.seal(&secret_url(), Duration::from_secs(600)).unwrap();
    open_link(&format!("http://127.0.0.1:{port}/l/{token}")).await;
    // A bad token too.
    let bad = http()
        .get(format!("http://127.0.0.1:{port}/l/{URL_QUERY}"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), reqwest::StatusCode::NOT_FOUND);
    let log = redirector.stop().await;
    assert_real_log("redirect", &log, false, &["listening", "redirect"]);
    assert_no_markers("sotto redirect", &log);
}

// ---------------------------------------------------------------------------
// Files

/// Every file under `dir`, with its contents.
fn files_under(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                let bytes = std::fs::read(&p).unwrap_or_default();
                out.push((p, bytes));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn no_plaintext_files_written() {
    let setup = Setup::new();
    let sink = Sink::start(&[
        "--reject-rcpt",
        "refused@plain.example=550 5.1.1 no such user here",
    ]);
    let (cwd, tmp, home) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let (gw, addr, redirect) = serve(
        &setup,
        "files",
        &sink.addr,
        false,
        Some((cwd.path(), tmp.path(), home.path())),
    )
    .await;
    exercise(addr, &redirect, &sink).await;
    let log = gw.stop().await;
    assert_real_log("files", &log, false, SERVE_EVENTS);

    let mut all = Vec::new();
    for dir in [cwd.path(), tmp.path(), home.path()] {
        all.extend(files_under(dir));
    }
    let listing: Vec<String> = all
        .iter()
        .map(|(p, b)| format!("{} ({} bytes)", p.display(), b.len()))
        .collect();
    for (path, bytes) in &all {
        assert_no_markers(
            &format!("{} (files written: {})", path.display(), listing.join(", ")),
            &String::from_utf8_lossy(bytes),
        );
    }
    // The check itself finds a marker where there is one.
    let planted = cwd.path().join("planted");
    std::fs::write(&planted, format!("x {BODY} y")).unwrap();
    let caught = std::panic::catch_unwind(|| {
        for (path, bytes) in files_under(cwd.path()) {
            assert_no_markers(
                &path.display().to_string(),
                &String::from_utf8_lossy(&bytes),
            );
        }
    });
    assert!(caught.is_err(), "a planted marker went unnoticed");
}
