//! Hostile SMTP: the dialogues in `tests/data/hostile/smtp/` (outcome in
//! `MANIFEST.toml`) and megabyte command lines, sent pipelined and raw; the
//! replies, whether the connection closes, and what reaches the upstream are
//! checked.
//!
//! A dialogue marked `bug` in the manifest is checked by the `bug_*` test
//! named for it below and skipped by `stored_smtp_dialogues`.

mod common;

use common::hostile::{PLAIN, data, files, gw_config, string, strings, wire};
use common::{Client, Sink, assert_same_bytes, gateway};

/// The bytes an escaped `.smtp` file stands for.
fn unescape(name: &str, text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut it = text.bytes();
    while let Some(b) = it.next() {
        match b {
            b'\n' | b'\r' => {}
            b'\\' => match it.next() {
                Some(b'r') => out.push(b'\r'),
                Some(b'n') => out.push(b'\n'),
                Some(b't') => out.push(b'\t'),
                Some(b'0') => out.push(0),
                Some(b'\\') => out.push(b'\\'),
                Some(b'x') => {
                    let hex = [it.next().unwrap(), it.next().unwrap()];
                    let hex = std::str::from_utf8(&hex).unwrap();
                    out.push(u8::from_str_radix(hex, 16).expect("\\xHH"));
                }
                other => panic!("{name}: unknown escape {other:?}"),
            },
            _ => out.push(b),
        }
    }
    out
}

struct Dialogue {
    name: String,
    input: Vec<u8>,
    replies: Vec<String>,
    closed: bool,
    stored: usize,
    never: Vec<String>,
    data: Option<String>,
    bug: Option<String>,
}

fn dialogues() -> Vec<Dialogue> {
    files("smtp", "smtp")
        .into_iter()
        .map(|(name, t)| {
            let text = std::fs::read_to_string(data().join("smtp").join(&name)).unwrap();
            Dialogue {
                input: unescape(&name, &text),
                replies: strings(t, "replies"),
                closed: t.get("closed").and_then(|v| v.as_bool()).unwrap_or(false),
                stored: t
                    .get("stored")
                    .and_then(|v| v.as_integer())
                    .expect("stored") as usize,
                never: strings(t, "never"),
                data: string(t, "data"),
                bug: string(t, "bug"),
                name,
            }
        })
        .collect()
}

async fn run_dialogue(d: &Dialogue) {
    let sink = Sink::start(&[]);
    let gw = gateway(&gw_config(&sink, PLAIN, 1 << 20).0).await;
    let mut c = Client::connect(gw.smtp.unwrap()).await;
    c.send(&d.input).await;
    for (i, want) in d.replies.iter().enumerate() {
        let r = c.reply().await;
        assert!(
            r.starts_with(want.as_str()),
            "{}: reply {} should start with {want:?}, got {r:?}",
            d.name,
            i + 1
        );
    }
    if d.closed {
        c.expect_closed().await;
    } else {
        c.cmd("QUIT", "221").await;
    }
    let stored = sink.messages();
    assert_eq!(stored.len(), d.stored, "{}: messages stored", d.name);
    for m in &stored {
        assert_eq!(m.from, "alice@example.com", "{}: a smuggled sender", d.name);
        assert_eq!(m.rcpts, vec!["bob@example.org"], "{}", d.name);
        let text = String::from_utf8_lossy(&m.data);
        for n in &d.never {
            assert!(
                !text.contains(n.as_str()),
                "{}: {n} reached the upstream",
                d.name
            );
        }
    }
    if let Some(want) = &d.data {
        assert_same_bytes(&stored[0].data, want.as_bytes());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn stored_smtp_dialogues() {
    let all = dialogues();
    assert!(all.len() >= 15, "corpus too small");
    for d in all.iter().filter(|d| d.bug.is_none()) {
        run_dialogue(d).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bug_error_budget_bad_lines() {
    let all = dialogues();
    let bugs: Vec<&Dialogue> = all
        .iter()
        .filter(|d| d.bug.as_deref() == Some("error-budget-bad-lines"))
        .collect();
    assert!(!bugs.is_empty());
    for d in bugs {
        run_dialogue(d).await;
    }
}

/// `MAIL FROM:<` + 1 MB + `@example.com>`.
fn megabyte_mail_from() -> Vec<u8> {
    let mut line = b"MAIL FROM:<".to_vec();
    line.extend(std::iter::repeat_n(b'a', 1 << 20));
    line.extend_from_slice(b"@example.com>\r\n");
    line
}

#[tokio::test(flavor = "multi_thread")]
async fn megabyte_command_lines() {
    let sink = Sink::start(&[]);
    let gw = gateway(&gw_config(&sink, PLAIN, 4 << 20).0).await;
    let addr = gw.smtp.unwrap();

    // Before a transaction: refused, skipped, the session goes on.
    let mut c = Client::connect(addr).await;
    c.cmd("EHLO client.example", "250").await;
    c.send(&megabyte_mail_from()).await;
    let r = c.reply().await;
    assert!(r.starts_with("500 5.5.2"), "{r}");
    c.cmd("NOOP", "250").await;

    // Inside a transaction, in pieces, pipelined with what follows: the
    // transaction survives it.
    c.cmd("MAIL FROM:<alice@example.com>", "250").await;
    c.cmd("RCPT TO:<bob@example.org>", "250").await;
    let mut rcpt = b"RCPT TO:<".to_vec();
    rcpt.extend(std::iter::repeat_n(b'r', 1 << 20));
    rcpt.extend_from_slice(b"@example.org>\r\nDATA\r\n");
    for chunk in rcpt.chunks(65_537) {
        c.send(chunk).await;
    }
    let r = c.reply().await;
    assert!(r.starts_with("500 5.5.2"), "{r}");
    let r = c.reply().await;
    assert!(r.starts_with("354"), "{r}");
    // A body line of a million bytes is data, not a command: relayed whole.
    let mut message = b"Subject: long data line\r\n\r\n".to_vec();
    message.extend(std::iter::repeat_n(b'd', 1_000_000));
    message.extend_from_slice(b"\r\n");
    c.send(&wire(&message)).await;
    let r = c.reply().await;
    assert!(r.starts_with("250"), "{r}");
    c.cmd("QUIT", "221").await;
    let stored = sink.messages();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].rcpts, vec!["bob@example.org"]);
    assert_same_bytes(&stored[0].data, &message);

    // A megabyte with no line end, then the client goes away: nothing
    // breaks, the next client is served.
    let mut c = Client::connect(addr).await;
    c.send(&vec![b'z'; 1 << 20]).await;
    let r = c.reply().await;
    assert!(r.starts_with("500 5.5.2"), "{r}");
    drop(c);
    let mut c = Client::connect(addr).await;
    c.cmd("EHLO client.example", "250").await;
    c.cmd("QUIT", "221").await;
    assert_eq!(sink.messages().len(), 1);
}
