//! Chat through sotto against the same clients talking to Prosody directly:
//! 100 concurrent sessions (50 sender → receiver pairs of local users), each
//! sender sending 20 chat messages of ~200 bytes to its partner, the next
//! one as soon as the server acks the last (XEP-0198 `<r/>`/`<a/>`).
//! Prints messages per second delivered and the latency of each message
//! (sent → its receiver read it; p50, p99) for
//!
//! - **direct**: plain TCP to Prosody, the baseline;
//! - **sotto**: direct TLS to sotto with `encrypt = "if-key"`, so every
//!   message is encrypted (OpenPGP for XMPP, signed) for the receiver on the
//!   way out and decrypted and verified for them on the way in,
//!
//! one after the other in this process against one Prosody (each path with
//! its own accounts, so both start with empty archives), and the ratio.
//! A first message per pair, not counted, warms up each path (sotto makes
//! each user's key then). Every message must arrive, decrypted on the
//! sotto path; timings are only printed.
//!
//! `cargo bench --bench xmpp`; `XMPP_BENCH_SESSIONS` (even, default 100)
//! and `XMPP_BENCH_MESSAGES` (per sender, default 20) change the load.
//! Needs Prosody (`tests/run` installs it).

#[path = "../tests/common/chatsetup.rs"]
mod chatsetup;
#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/common/rawxmpp.rs"]
mod rawxmpp;

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use common::prosody::Prosody;
use rawxmpp::{CLIENT_NS, Session, Transport};
use tokio::sync::Barrier;

const DOMAIN: &str = "example.org";
const BODY_BYTES: usize = 200;
const POLICY: &str = "[defaults]\nencrypt = \"if-key\"\nlinks = \"keep\"\n";

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name}={v:?}: not a number"))
        })
        .unwrap_or(default)
}

/// Time since the bench started, as written into each message's body.
fn now_us() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_micros() as u64
}

fn user(i: usize) -> String {
    format!("u{i:03}")
}

struct Path {
    name: &'static str,
    addr: SocketAddr,
    how: Transport,
    sotto: bool,
}

struct Figures {
    msgs_per_s: f64,
    p50: Duration,
    p99: Duration,
    /// The uncounted first round: logins done → one message per pair read.
    warm_up: Duration,
}

fn main() {
    let sessions = env_or("XMPP_BENCH_SESSIONS", 100);
    let messages = env_or("XMPP_BENCH_MESSAGES", 20);
    assert!(
        sessions >= 2 && sessions.is_multiple_of(2),
        "XMPP_BENCH_SESSIONS must be even"
    );
    let pairs = sessions / 2;
    now_us();

    let t = Instant::now();
    let prosody = Prosody::start_default();
    println!("prosody started in {:.1} s", t.elapsed().as_secs_f64());
    // prosodyctl is a Lua start-up per account: run a few at once.
    let t = Instant::now();
    let accounts = 2 * sessions;
    let threads = 8.min(accounts);
    std::thread::scope(|scope| {
        for k in 0..threads {
            let prosody = &prosody;
            scope.spawn(move || {
                for i in (k..accounts).step_by(threads) {
                    prosody.register(&user(i), &format!("{}-pw", user(i)));
                }
            });
        }
    });
    println!(
        "{accounts} accounts made with prosodyctl ({threads} at a time) in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let gw = chatsetup::ChatGateway::start(&prosody, POLICY, |_| {}).await;
        let paths = [
            Path {
                name: "direct to Prosody",
                addr: prosody.addr().parse().expect("addr"),
                how: Transport::Plain,
                sotto: false,
            },
            Path {
                name: "through sotto (OX)",
                addr: gw.direct_tls_addr(),
                how: Transport::DirectTls(rawxmpp::trust(&gw.ca)),
                sotto: true,
            },
        ];
        let mut rows = Vec::new();
        for (k, path) in paths.iter().enumerate() {
            rows.push(run(path, k * sessions, pairs, messages).await);
        }
        println!(
            "\n{sessions} sessions ({pairs} pairs), {messages} messages per sender, {BODY_BYTES}-byte bodies, {} CPUs",
            std::thread::available_parallelism().map_or(1, |n| n.get())
        );
        println!(
            "{:<20} {:>9} {:>9} {:>9} {:>11}",
            "", "msgs/s", "p50 ms", "p99 ms", "warm-up s"
        );
        for (path, f) in paths.iter().zip(&rows) {
            println!(
                "{:<20} {:>9.0} {:>9.2} {:>9.2} {:>11.2}",
                path.name,
                f.msgs_per_s,
                ms(f.p50),
                ms(f.p99),
                f.warm_up.as_secs_f64()
            );
        }
        let (d, s) = (&rows[0], &rows[1]);
        println!(
            "{:<20} {:>9.2} {:>+9.2} {:>+9.2}",
            "sotto/direct, added",
            s.msgs_per_s / d.msgs_per_s,
            ms(s.p50) - ms(d.p50),
            ms(s.p99) - ms(d.p99)
        );
        gw.running.shutdown();
    });
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// One path: all sessions logged in, the warm-up round, then the measured one.
/// Users `first`… are this path's, so that each starts with empty archives.
async fn run(path: &Path, first: usize, pairs: usize, messages: usize) -> Figures {
    let mut senders = Vec::new();
    let mut receivers = Vec::new();
    for p in 0..pairs {
        let (from, to) = (user(first + 2 * p), user(first + 2 * p + 1));
        let (addr, how) = (path.addr, path.how.clone());
        senders.push(tokio::spawn(async move {
            let mut s =
                Session::connect(addr, DOMAIN, &how, &from, &format!("{from}-pw"), "bench").await;
            assert!(s.enable(false).await.is("enabled", rawxmpp::SM_NS));
            s
        }));
        let how = path.how.clone();
        receivers.push(tokio::spawn(async move {
            let mut s =
                Session::connect(addr, DOMAIN, &how, &to, &format!("{to}-pw"), "bench").await;
            s.send("<presence/>").await;
            let me = s.jid.clone();
            s.expect_any(|g| g.is("presence", CLIENT_NS) && g.attr("from") == Some(me.as_str()))
                .await;
            s
        }));
    }
    let mut senders = join(senders).await;
    let mut receivers = join(receivers).await;

    // Warm-up: one uncounted message per pair.
    let t = Instant::now();
    let mut tasks = Vec::new();
    for (p, (mut tx, mut rx)) in senders.drain(..).zip(receivers.drain(..)).enumerate() {
        let to = format!("{}@{DOMAIN}", user(first + 2 * p + 1));
        tasks.push(tokio::spawn(async move {
            tx.send(&message(&to, "warm", "warm-up")).await;
            tx.ack().await;
            rx.expect_id("warm").await;
            (tx, rx)
        }));
    }
    for (tx, rx) in join(tasks).await {
        senders.push(tx);
        receivers.push(rx);
    }
    let warm_up = t.elapsed();

    // The measured round: all senders start together.
    let barrier = Arc::new(Barrier::new(pairs + 1));
    let mut sending = Vec::new();
    for (p, mut tx) in senders.into_iter().enumerate() {
        let to = format!("{}@{DOMAIN}", user(first + 2 * p + 1));
        let barrier = barrier.clone();
        sending.push(tokio::spawn(async move {
            barrier.wait().await;
            for i in 0..messages {
                let text = format!("seq={i} t={} ", now_us());
                let pad = "x".repeat(BODY_BYTES.saturating_sub(text.len()));
                tx.send(&message(&to, &format!("b{i}"), &format!("{text}{pad}")))
                    .await;
                assert_eq!(tx.ack().await as usize, i + 2, "the server's count");
            }
            tx
        }));
    }
    let sotto = path.sotto;
    let mut receiving = Vec::new();
    for mut rx in receivers {
        receiving.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(messages);
            while latencies.len() < messages {
                let got = rx.next().await;
                if !got.is("message", CLIENT_NS) || got.attr("type") != Some("chat") {
                    continue;
                }
                let body = got
                    .el
                    .child("body", CLIENT_NS)
                    .map(|b| b.text())
                    .unwrap_or_default();
                let sent: u64 = body
                    .split_once(" t=")
                    .and_then(|(_, rest)| rest.split(' ').next())
                    .and_then(|t| t.parse().ok())
                    .unwrap_or_else(|| panic!("{}: no timestamp in {}", rx.jid, got.xml));
                assert_eq!(
                    got.xml.contains("encrypted-in-transit"),
                    sotto,
                    "encrypted on the sotto path only: {}",
                    got.xml
                );
                latencies.push(Duration::from_micros(now_us() - sent));
            }
            (latencies, Instant::now(), rx)
        }));
    }
    barrier.wait().await;
    let t = Instant::now();
    let received = join(receiving).await;
    let elapsed = received
        .iter()
        .map(|(_, end, _)| *end - t)
        .max()
        .unwrap_or_default();
    let mut all = Vec::new();
    let mut sessions = Vec::new();
    for (latencies, _, rx) in received {
        all.extend(latencies);
        sessions.push(rx);
    }
    sessions.extend(join(sending).await);
    for s in sessions {
        s.close().await;
    }
    assert_eq!(all.len(), pairs * messages, "every message arrived");
    all.sort();
    let at = |q: usize| all[(all.len() * q / 100).min(all.len() - 1)];
    Figures {
        msgs_per_s: all.len() as f64 / elapsed.as_secs_f64(),
        p50: at(50),
        p99: at(99),
        warm_up,
    }
}

fn message(to: &str, id: &str, text: &str) -> String {
    format!("<message to='{to}' type='chat' id='{id}'><body>{text}</body></message>")
}

async fn join<T>(tasks: Vec<tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(t.await.expect("a bench task failed"));
    }
    out
}
