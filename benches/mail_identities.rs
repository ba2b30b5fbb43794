//! Automatic encryption for mail, measured side by side in one run with
//! Postfix's `smtp-source` as the load (each path gets the same messages
//! and the same number of parallel sessions):
//!
//! - **inbound**: 10 KB PGP/MIME messages, encrypted to alice's identity
//!   and signed by bob, delivered over LMTP straight to Dovecot's LMTP (the
//!   baseline: Dovecot stores the ciphertext) against the same load through
//!   sotto's inbound listener (learn, decrypt, verify, record, deliver);
//! - **outgoing**: 10 KB messages from alice to bob over SMTP through sotto
//!   to `smtp-sink`, encrypted, with `sign = "sender"` (alice's identity)
//!   against `sign = false`, beside the same load straight to the sink.
//!
//! sotto runs as its own process (the release binary), so its CPU time per
//! message is read from `/proc/<pid>/stat` (utime + stime) around each run.
//! Prints messages per second, the ratio to the baseline, and sotto's CPU
//! microseconds per message.
//!
//! `cargo bench --bench mail_identities`; `MAIL_BENCH_MESSAGES` (default
//! 1000), `MAIL_BENCH_SESSIONS` (default 10); `PROFILE=1` records sotto with
//! `perf record -g` during the measured inbound run and prints where its CPU
//! time went (needs `perf`); `MAIL_BENCH_STORE=postgres` puts the state
//! store on a private PostgreSQL cluster instead of the SQLite file.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/common/postgres.rs"]
mod common_postgres;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sequoia_openpgp::Cert;
use sequoia_openpgp::cert::{CertBuilder, CipherSuite};
use sequoia_openpgp::policy::StandardPolicy;
use sequoia_openpgp::serialize::SerializeInto;
use sotto::openpgp::identities::{Identities, Uses, read_passphrase};
use sotto::openpgp::pgpmime::{Options, encrypt_mail};
use sotto::openpgp::seal::signing_keypair;

use common::dovecot::Dovecot;
use common::free_port;

const SOURCE: &str = "/usr/sbin/smtp-source";
const SINK: &str = "/usr/sbin/smtp-sink";

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A 10 KB plain-text message from `from` to `to`.
fn message(from: &str, to: &str) -> Vec<u8> {
    let mut body = String::new();
    while body.len() < 10 * 1024 {
        body.push_str(
            "The quarterly figures are attached below; nothing in them is final yet.\r\n",
        );
    }
    format!(
        "From: <{from}>\r\nTo: <{to}>\r\nSubject: figures\r\nDate: Wed, 02 Dec 2026 10:00:00 +0000\r\n\
         Message-ID: <bench@example.org>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}"
    )
    .into_bytes()
}

fn ticks_per_s() -> f64 {
    let out = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .expect("getconf");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(100.0)
}

/// What smtp-source sends: a message file, its envelope, and whether it
/// speaks LMTP.
struct Load {
    lmtp: bool,
    file: std::path::PathBuf,
    from: &'static str,
    to: &'static str,
}

/// Runs smtp-source: `count` messages of `what` over `sessions` sessions
/// to `addr`; the wall time.
fn load(addr: &str, what: &Load, count: usize, sessions: usize) -> Duration {
    let mut c = Command::new(SOURCE);
    if what.lmtp {
        c.arg("-L");
    }
    c.args([
        "-s",
        &sessions.to_string(),
        "-m",
        &count.to_string(),
        "-f",
        what.from,
        "-t",
        what.to,
    ])
    .arg("-F")
    .arg(&what.file)
    .arg(addr);
    let t = Instant::now();
    let out = c.output().expect("smtp-source");
    assert!(
        out.status.success(),
        "smtp-source to {addr}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    t.elapsed()
}

struct Sotto {
    child: Child,
}

impl Sotto {
    fn start(config: &Path, wait_for: &[u16]) -> Sotto {
        let child = Command::new(env!("CARGO_BIN_EXE_sotto"))
            .args(["serve", "--config"])
            .arg(config)
            .env("SOTTO_LOG__LEVEL", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start sotto");
        for port in wait_for {
            let end = Instant::now() + Duration::from_secs(20);
            while std::net::TcpStream::connect(("127.0.0.1", *port)).is_err() {
                assert!(Instant::now() < end, "sotto does not listen on {port}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Sotto { child }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Sotto {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

struct Row {
    name: String,
    per_s: f64,
    ratio: f64,
    cpu_us: Option<f64>,
}

fn main() {
    let count = env_or("MAIL_BENCH_MESSAGES", 1000);
    let sessions = env_or("MAIL_BENCH_SESSIONS", 10);
    for tool in [SOURCE, SINK] {
        assert!(
            Path::new(tool).exists(),
            "need {tool}: install the Debian package postfix"
        );
    }
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = dir.path().join("store.secret");
    std::fs::write(&secret, "benchmark passphrase\n").unwrap();
    let postgres = (std::env::var("MAIL_BENCH_STORE").as_deref() == Ok("postgres"))
        .then(common_postgres::Postgres::start);
    let url = match &postgres {
        Some(pg) => pg.database(),
        None => sotto::store::sqlite_url(&dir.path().join("sotto.db")),
    };
    let policy = StandardPolicy::new();

    // alice's identity, made in the store sotto will use; bob's key.
    let alice: Cert = rt.block_on(async {
        let store = sotto::store::Store::open(&sotto::store::Options::new(url.clone()))
            .await
            .expect("store");
        let ids = Identities::new(store.clone(), read_passphrase(&secret).unwrap());
        let key = ids
            .get_or_create_for("alice@example.org", Uses::Mail)
            .await
            .expect("alice");
        store.close().await;
        Cert::clone(key.cert())
    });
    let (bob, _) = CertBuilder::general_purpose(Some("<bob@outside.example>"))
        .set_cipher_suite(CipherSuite::Cv25519)
        .generate()
        .unwrap();
    let keys = dir.path().join("keys");
    std::fs::create_dir(&keys).unwrap();
    std::fs::write(keys.join("bob.pgp"), bob.to_vec().unwrap()).unwrap();

    // The inbound message: encrypted to alice, signed by bob.
    let plain = message("bob@outside.example", "alice@example.org");
    let sealed = encrypt_mail(
        &plain,
        std::slice::from_ref(&alice),
        Options {
            hide_recipients: false,
            protect_subject: true,
            signer: Some(signing_keypair(&bob, &policy).unwrap()),
            policy: &policy,
        },
    )
    .expect("encrypt");
    let inbound_file = dir.path().join("inbound.eml");
    // smtp-source -F ends each line of the file with CRLF itself.
    let lf = |m: &[u8]| String::from_utf8_lossy(m).replace("\r\n", "\n");
    std::fs::write(&inbound_file, lf(&sealed)).unwrap();
    let outgoing_file = dir.path().join("outgoing.eml");
    std::fs::write(
        &outgoing_file,
        lf(&message("alice@example.org", "bob@outside.example")),
    )
    .unwrap();

    let dovecot = Dovecot::start();
    dovecot.add_user("alice@example.org", "alice-pw");
    let sink_port = free_port();
    let mut sink_proc = Command::new(SINK)
        .args(["-u", "nobody", &format!("127.0.0.1:{sink_port}"), "1024"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("smtp-sink");
    std::thread::sleep(Duration::from_millis(300));

    let config = |smtp: u16, inbound: u16, sign: &str| {
        let policies = dir.path().join(format!("policies-{sign}"));
        std::fs::create_dir_all(&policies).unwrap();
        std::fs::write(
            policies.join("00.toml"),
            format!("[defaults]\nencrypt = \"if-key\"\nlinks = \"keep\"\nsign = {sign}\n"),
        )
        .unwrap();
        let path = dir.path().join(format!("sotto-{sign}.toml"));
        std::fs::write(
            &path,
            format!(
                "[smtp]\nlisten = \"127.0.0.1:{smtp}\"\n[lmtp]\nlisten = \"\"\n[admin]\nlisten = \"\"\n\
                 [redirect]\nlisten = \"\"\n[upstream]\naddress = \"127.0.0.1:{sink_port}\"\npool_size = 64\n\
                 [limits]\nmax_connections = 256\n[keys]\ndir = {keys:?}\nsources = [\"dir\", \"autocrypt\"]\n\
                 [policy]\ndir = {policies:?}\n[store]\nurl = {url:?}\nsecret_file = {secret:?}\n\
                 [identities]\ndomains = [\"example.org\"]\nwkd_listen = \"\"\n\
                 [inbound]\nlisten = \"127.0.0.1:{inbound}\"\nupstream = \"{}\"\n",
                dovecot.lmtp_addr()
            ),
        )
        .unwrap();
        path
    };
    let tps = ticks_per_s();
    let mut rows: Vec<Row> = Vec::new();
    let warm = count / 10;

    // One measured run of smtp-source's `count` messages (after `warm`
    // unmeasured): a row with msgs/s, the ratio to `base` (none: this is
    // the baseline) and, when `pid` is sotto's, its CPU per message.
    let measure = |rows: &mut Vec<Row>,
                   name: &str,
                   addr: &str,
                   what: &Load,
                   pid: Option<u32>,
                   base: Option<f64>| {
        load(addr, what, warm, sessions);
        let before = pid.map(common::cpu_ticks);
        let t = load(addr, what, count, sessions);
        let cpu_us = pid
            .zip(before)
            .map(|(p, b)| (common::cpu_ticks(p) - b) as f64 / tps * 1e6 / count as f64);
        let per_s = count as f64 / t.as_secs_f64();
        rows.push(Row {
            name: name.into(),
            per_s,
            ratio: base.map_or(1.0, |b| per_s / b),
            cpu_us,
        });
        per_s
    };
    let inbound = Load {
        lmtp: true,
        file: inbound_file.clone(),
        from: "bob@outside.example",
        to: "alice@example.org",
    };
    let outgoing = Load {
        lmtp: false,
        file: outgoing_file.clone(),
        from: "alice@example.org",
        to: "bob@outside.example",
    };

    // Inbound, and outgoing with sign = "sender", on one sotto.
    let (smtp_a, inbound_a) = (free_port(), free_port());
    let sotto = Sotto::start(
        &config(smtp_a, inbound_a, "\"sender\""),
        &[smtp_a, inbound_a],
    );
    let base = measure(
        &mut rows,
        "inbound: straight to Dovecot LMTP (ciphertext)",
        &dovecot.lmtp_addr(),
        &inbound,
        None,
        None,
    );
    let via = format!("127.0.0.1:{inbound_a}");
    let perf_data = dir.path().join("perf.data");
    let profiling = (std::env::var("PROFILE").as_deref() == Ok("1")).then(|| {
        let child = Command::new("perf")
            .args(["record", "-q", "-e", "cpu-clock", "-F", "1999", "-g", "-p"])
            .arg(sotto.pid().to_string())
            .arg("-o")
            .arg(&perf_data)
            .stderr(Stdio::null())
            .spawn()
            .expect("perf (Debian package linux-perf)");
        std::thread::sleep(Duration::from_millis(500));
        child
    });
    measure(
        &mut rows,
        "inbound: through sotto (decrypt + verify)",
        &via,
        &inbound,
        Some(sotto.pid()),
        Some(base),
    );
    if let Some(child) = profiling {
        let _ = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status();
        let _ = child.wait_with_output();
        let report = Command::new("perf")
            .args([
                "report",
                "--no-children",
                "--stdio",
                "--sort",
                "symbol",
                "-g",
                "none",
                "-i",
            ])
            .arg(&perf_data)
            .output()
            .expect("perf report");
        let text = String::from_utf8_lossy(&report.stdout);
        println!("where sotto's CPU went on the inbound path (self time, top 25):");
        for line in text
            .lines()
            .filter(|l| l.trim_start().starts_with(|c: char| c.is_ascii_digit()))
            .take(25)
        {
            let line = line.trim();
            println!("  {}", line.split("  ").next().unwrap_or(line).trim_end());
        }
    }
    let opened = dovecot
        .messages("alice@example.org")
        .iter()
        .filter(|m| String::from_utf8_lossy(m).contains("X-Sotto-Inbound: decrypted"))
        .count();
    assert_eq!(
        opened,
        count + warm,
        "every message through sotto was decrypted"
    );
    let sink = format!("127.0.0.1:{sink_port}");
    let base = measure(
        &mut rows,
        "outgoing: straight to smtp-sink",
        &sink,
        &outgoing,
        None,
        None,
    );
    let smtp = format!("127.0.0.1:{smtp_a}");
    measure(
        &mut rows,
        "outgoing: sotto, encrypt + sign = \"sender\"",
        &smtp,
        &outgoing,
        Some(sotto.pid()),
        Some(base),
    );
    drop(sotto);

    // Outgoing with sign = false.
    let (smtp_b, inbound_b) = (free_port(), free_port());
    let sotto = Sotto::start(&config(smtp_b, inbound_b, "false"), &[smtp_b, inbound_b]);
    let smtp = format!("127.0.0.1:{smtp_b}");
    measure(
        &mut rows,
        "outgoing: sotto, encrypt + sign = false",
        &smtp,
        &outgoing,
        Some(sotto.pid()),
        Some(base),
    );
    drop(sotto);
    let _ = sink_proc.kill();
    let _ = sink_proc.wait();

    println!(
        "{count} messages of 10 KB, {sessions} sessions, state store on {}, one run:",
        if postgres.is_some() {
            "PostgreSQL"
        } else {
            "SQLite"
        }
    );
    for r in &rows {
        println!(
            "  {:<48} {:>8.1} msgs/s  {:>5.2} of baseline  {}",
            r.name,
            r.per_s,
            r.ratio,
            r.cpu_us
                .map(|c| format!("sotto CPU {c:.0} µs/msg"))
                .unwrap_or_default()
        );
    }
}
