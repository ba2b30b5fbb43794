//! The IMAP proxy measured: a mailbox of 1,000 10 KB messages, all
//! encrypted to the user (APPENDed through sotto), fetched whole one by
//! one through sotto, against the same messages in clear fetched straight
//! from Dovecot, in the same run, by the same client (Python's imaplib,
//! one connection, `benches/imap_fetch.py`). sotto runs as its own process
//! (the release binary): its CPU per message comes from `/proc/<pid>/stat`
//! and its peak memory from `VmHWM`.
//!
//! Then the same pass again (opened messages come from sotto's cache) and
//! a listing of the whole mailbox in one command, both ways.
//!
//! `cargo bench --bench imap`; `IMAP_BENCH_MESSAGES` (default 1000).

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::dovecot::Dovecot;
use common::free_port;

const ALICE: &str = "alice@example.org";
const PASSWORD: &str = "bench-password";

fn peak_rss_mb(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Runs the Python load against `addr`; its output line.
fn py(addr: &str, mailbox: &str, mode: &str, n: usize, message: &[u8]) -> String {
    let (host, port) = addr.rsplit_once(':').unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/imap_fetch.py");
    let mut child = Command::new("python3")
        .args([script, host, port, ALICE, mailbox, mode, &n.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3");
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "{PASSWORD}").unwrap();
    stdin.write_all(message).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "imap_fetch.py {mode} at {addr} failed"
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn main() {
    let n: usize = std::env::var("IMAP_BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let mut body = String::new();
    while body.len() < 10 * 1024 {
        body.push_str("Minutes of the board meeting, section by section, still in draft form.\r\n");
    }
    let message = format!(
        "From: <alice@example.org>\r\nTo: <bob@outside.example>\r\nSubject: minutes\r\nDate: Wed, 02 Dec 2026 10:00:00 +0000\r\nMessage-ID: <m@example.org>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}"
    );
    let dovecot = Dovecot::start();
    dovecot.add_user(ALICE, PASSWORD);
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("store.secret");
    std::fs::write(&secret, "bench passphrase\n").unwrap();
    let port = free_port();
    let config = dir.path().join("sotto.toml");
    std::fs::write(
        &config,
        format!(
            "[smtp]\nlisten = \"127.0.0.1:{}\"\n[lmtp]\nlisten = \"\"\n[admin]\nlisten = \"\"\n[redirect]\nlisten = \"\"\n\
             [store]\nurl = {:?}\nsecret_file = {secret:?}\n[identities]\ndomains = [\"example.org\"]\nwkd_listen = \"\"\n\
             [imap]\nlisten = \"127.0.0.1:{port}\"\nupstream = \"{}\"\n",
            free_port(),
            sotto::store::sqlite_url(&dir.path().join("sotto.db")),
            dovecot.imap_addr()
        ),
    )
    .unwrap();
    let mut sotto = Command::new(env!("CARGO_BIN_EXE_sotto"))
        .args(["serve", "--config"])
        .arg(&config)
        .env("SOTTO_LOG__LEVEL", "warn")
        .spawn()
        .expect("sotto");
    let end = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < end, "sotto does not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    let proxy = format!("127.0.0.1:{port}");
    let t = Instant::now();
    py(&proxy, "INBOX", "fill", n, message.as_bytes());
    let fill = t.elapsed();
    let t = Instant::now();
    py(&dovecot.imap_addr(), "Plain", "fill", n, message.as_bytes());
    let fill_direct = t.elapsed();
    let stored = dovecot.messages(ALICE);
    assert!(
        String::from_utf8_lossy(&stored[0]).contains("multipart/encrypted"),
        "the proxy's copies are encrypted"
    );

    let parse = |line: &str| -> (usize, f64, f64, f64, usize) {
        let f: Vec<&str> = line.split_whitespace().collect();
        (
            f[0].parse().unwrap(),
            f[1].parse().unwrap(),
            f[2].parse().unwrap(),
            f[3].parse().unwrap(),
            f[4].parse().unwrap(),
        )
    };
    let (dn, dt, dp50, dp99, dbytes) = parse(&py(&dovecot.imap_addr(), "Plain", "fetch", n, b""));
    let before = common::cpu_ticks(sotto.id());
    let (sn, st, sp50, sp99, sbytes) = parse(&py(&proxy, "INBOX", "fetch", n, b""));
    let ticks = common::cpu_ticks(sotto.id()) - before;
    let tps: f64 = String::from_utf8_lossy(
        &Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .unwrap()
            .stdout,
    )
    .trim()
    .parse()
    .unwrap_or(100.0);
    // Again: every message now comes from sotto's cache of opened messages
    // (no decryption); then a client listing the mailbox in one command.
    let before = common::cpu_ticks(sotto.id());
    let (wn, wt, wp50, _, _) = parse(&py(&proxy, "INBOX", "fetch", n, b""));
    let warm_ticks = common::cpu_ticks(sotto.id()) - before;
    let listed = |addr: &str, mailbox: &str| -> (usize, f64) {
        let out = py(addr, mailbox, "list", n, b"");
        let f: Vec<&str> = out.split_whitespace().collect();
        (f[0].parse().unwrap(), f[1].parse().unwrap())
    };
    let (ln_direct, lt_direct) = listed(&dovecot.imap_addr(), "Plain");
    let (ln_sotto, lt_sotto) = listed(&proxy, "INBOX");
    let rss = peak_rss_mb(sotto.id());
    let _ = sotto.kill();
    let _ = sotto.wait();
    assert_eq!((dn, sn), (n, n));
    assert_eq!(
        dbytes, sbytes,
        "sotto returned the plaintext, same size as the clear mailbox"
    );
    println!("{n} messages of 10 KB, fetched whole one by one over one connection, one run:");
    println!(
        "  straight to Dovecot (clear)    {:>8.1} msgs/s  p50 {:>6.0} µs  p99 {:>6.0} µs",
        dn as f64 / dt,
        dp50,
        dp99
    );
    println!(
        "  through sotto (decrypting)     {:>8.1} msgs/s  p50 {:>6.0} µs  p99 {:>6.0} µs  ({:.2} of direct; +{:.0} µs p50, +{:.0} µs p99)",
        sn as f64 / st,
        sp50,
        sp99,
        (dt / st),
        sp50 - dp50,
        sp99 - dp99
    );
    println!(
        "  sotto: {:.0} µs CPU per FETCH, peak memory {rss:.1} MB",
        ticks as f64 / tps * 1e6 / n as f64
    );
    println!(
        "  second pass through sotto (opened messages cached) {:>8.1} msgs/s  p50 {:>6.0} µs  ({:.2} of direct); {:.0} µs CPU per FETCH",
        wn as f64 / wt,
        wp50,
        dt / wt,
        warm_ticks as f64 / tps * 1e6 / n as f64
    );
    assert_eq!((ln_direct, ln_sotto), (n, n));
    println!(
        "  listing all {n} (FLAGS ENVELOPE RFC822.SIZE, one command): straight {:.0} ms, through sotto {:.0} ms (whole messages fetched from the server, opened from the cache)",
        lt_direct * 1e3,
        lt_sotto * 1e3
    );
    println!(
        "  APPEND to fill the mailbox: through sotto (encrypting) {:.0}/s, straight to Dovecot {:.0}/s",
        n as f64 / fill.as_secs_f64(),
        n as f64 / fill_direct.as_secs_f64()
    );
}
