//! The mailbox test harness itself, with no sotto in the way: a real Dovecot
//! (tests/common/dovecot.rs), a tiny LMTP client delivering to it, and the
//! mailbox read back both from the Maildir and over IMAP. If these fail, the
//! mailbox delivery tests cannot be trusted either.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::dovecot::Dovecot;

/// A blocking LMTP client for dialogues line by line.
struct Lmtp {
    stream: BufReader<TcpStream>,
}

impl Lmtp {
    /// Connects, reads the greeting and says LHLO.
    fn connect(addr: &str) -> Lmtp {
        let stream = TcpStream::connect(addr).expect("connect to LMTP");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let mut c = Lmtp {
            stream: BufReader::new(stream),
        };
        let greeting = c.reply();
        assert!(greeting.starts_with("220 "), "greeting: {greeting}");
        c.cmd("LHLO client.test", "250");
        c
    }

    /// The next whole reply (all lines).
    fn reply(&mut self) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            let n = self.stream.read_line(&mut line).expect("LMTP reply");
            assert!(n > 0, "LMTP server closed the connection after {all:?}");
            all.push_str(&line);
            if line.as_bytes().get(3) != Some(&b'-') {
                return all;
            }
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.stream.get_mut().write_all(bytes).expect("write");
    }

    /// Sends one command and returns the reply, asserting it starts with
    /// `code`.
    fn cmd(&mut self, line: &str, code: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes());
        let r = self.reply();
        assert!(r.starts_with(code), "`{line}` expected {code}, got {r:?}");
        r
    }

    /// MAIL FROM, one RCPT TO per recipient (each reply kept, whatever it
    /// is), and, if any was accepted, DATA with `message` (CRLF) and then the
    /// one reply per accepted recipient that LMTP gives. Returns the RCPT
    /// replies and the data replies.
    fn deliver(&mut self, from: &str, to: &[&str], message: &[u8]) -> (Vec<String>, Vec<String>) {
        self.cmd(&format!("MAIL FROM:<{from}>"), "250");
        let rcpt: Vec<String> = to
            .iter()
            .map(|t| {
                self.send(format!("RCPT TO:<{t}>\r\n").as_bytes());
                self.reply()
            })
            .collect();
        let accepted = rcpt.iter().filter(|r| r.starts_with("250")).count();
        if accepted == 0 {
            self.cmd("RSET", "250");
            return (rcpt, Vec::new());
        }
        self.cmd("DATA", "354");
        let mut wire = common::dot_stuff(message);
        wire.extend_from_slice(b".\r\n");
        self.send(&wire);
        let data = (0..accepted).map(|_| self.reply()).collect();
        (rcpt, data)
    }
}

const MESSAGE: &[u8] = b"From: bob@sender.test\r\n\
To: alice@example.org\r\n\
Subject: harness check \xc3\xbc\r\n\
Message-ID: <harness-1@sender.test>\r\n\
\r\n\
First line of the body.\r\n\
.a line starting with a dot\r\n\
\r\n\
Last line.\r\n";

/// Dovecot keeps Maildir files with bare LF; IMAP sends CRLF.
fn crlf(lf: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(lf.len() + lf.len() / 40);
    for (i, &b) in lf.iter().enumerate() {
        if b == b'\n' && (i == 0 || lf[i - 1] != b'\r') {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}

fn has(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn lmtp_delivers_to_known_users_refuses_unknown_ones_at_rcpt_and_imap_reads_it_back() {
    let started = Instant::now();
    let d = Dovecot::start();
    eprintln!("Dovecot::start() took {:?}", started.elapsed());
    // Added after the start: the passwd-file is read again.
    d.add_user("alice@example.org", "alice-secret");
    d.add_user("bob@example.org", "bob secret ü");

    let mut lmtp = Lmtp::connect(&d.lmtp_addr());
    let (rcpt, data) = lmtp.deliver(
        "bob@sender.test",
        &["alice@example.org", "nobody@example.org", "bob@example.org"],
        MESSAGE,
    );
    assert!(rcpt[0].starts_with("250 "), "alice: {rcpt:?}\n{}", d.log());
    assert!(
        rcpt[1].starts_with("550 ") && rcpt[1].contains("5.1.1"),
        "unknown recipient refused at RCPT: {rcpt:?}\n{}",
        d.log()
    );
    assert!(rcpt[2].starts_with("250 "), "bob: {rcpt:?}\n{}", d.log());
    assert_eq!(data.len(), 2, "one reply per accepted recipient");
    assert!(
        data[0].starts_with("250 ") && data[0].contains("<alice@example.org>"),
        "{data:?}\n{}",
        d.log()
    );
    assert!(
        data[1].starts_with("250 ") && data[1].contains("<bob@example.org>"),
        "{data:?}\n{}",
        d.log()
    );
    lmtp.cmd("QUIT", "221");

    for (user, password) in [
        ("alice@example.org", "alice-secret"),
        ("bob@example.org", "bob secret ü"),
    ] {
        let stored = d.messages(user);
        assert_eq!(stored.len(), 1, "{user}'s Maildir\n{}", d.log());
        let file = &stored[0];
        assert!(has(file, b"\nSubject: harness check \xc3\xbc\n"), "{user}");
        assert!(
            has(
                file,
                b"\n\nFirst line of the body.\n.a line starting with a dot\n\nLast line.\n"
            ),
            "{user}: {}",
            String::from_utf8_lossy(file)
        );
        let shown = String::from_utf8_lossy(file);
        assert!(
            file.starts_with(b"Return-Path: <bob@sender.test>\n"),
            "{user}: {shown}"
        );
        // Delivered to two users in one transaction, the copies share
        // their headers: no Delivered-To (see carol's below).
        assert!(!has(file, b"\nDelivered-To:"), "{user}: {shown}");

        let read = d.fetch_all(user, password);
        assert_eq!(read.len(), 1, "{user}'s INBOX over IMAP");
        // The same message: the Maildir file with CRLF, which is what was
        // delivered with Dovecot's trace headers on top.
        common::assert_same_bytes(&read[0], &crlf(file));
        assert!(read[0].ends_with(MESSAGE), "{user}: delivered bytes intact");
    }

    // A user added later is known at once, even right after a lookup
    // found nobody (Dovecot rereads a passwd-file once a second at most);
    // names are matched in any case.
    let mut lmtp = Lmtp::connect(&d.lmtp_addr());
    let (rcpt, data) = lmtp.deliver("", &["carol@example.org"], MESSAGE);
    assert!(rcpt[0].starts_with("550 "), "carol not yet: {rcpt:?}");
    assert!(data.is_empty());
    d.add_user("Carol@example.org", "carol");
    let (rcpt, _) = lmtp.deliver("", &["CAROL@example.org"], MESSAGE);
    assert!(rcpt[0].starts_with("250 "), "carol: {rcpt:?}\n{}", d.log());
    let (rcpt, _) = lmtp.deliver("", &["dave@example.org"], MESSAGE);
    assert!(rcpt[0].starts_with("550 "), "dave: {rcpt:?}");
    let carol = d.fetch_all("carol@example.org", "carol");
    assert_eq!(carol.len(), 1);
    assert!(
        carol[0].starts_with(b"Return-Path: <>\r\nDelivered-To: CAROL@example.org\r\n"),
        "one recipient: Delivered-To added, as RCPT gave it\n{}",
        String::from_utf8_lossy(&carol[0])
    );
    assert!(carol[0].ends_with(MESSAGE));
    assert_eq!(d.messages("Carol@example.org").len(), 1);
    assert!(d.messages("dave@example.org").is_empty());

    // A new password holds at once too.
    let changed = Instant::now();
    d.add_user("carol@example.org", "new carol");
    eprintln!("changing a password took {:?}", changed.elapsed());
    assert_eq!(d.fetch_all("carol@example.org", "new carol").len(), 1);
}

#[test]
fn two_instances_run_side_by_side_and_stop_on_drop() {
    let a = Dovecot::start();
    let b = Dovecot::start();
    assert_ne!(a.imap_port, b.imap_port);
    a.add_user("alice@example.org", "a");
    let mut lmtp = Lmtp::connect(&b.lmtp_addr());
    let (rcpt, _) = lmtp.deliver("", &["alice@example.org"], MESSAGE);
    assert!(
        rcpt[0].starts_with("550 "),
        "alice exists on a only: {rcpt:?}"
    );
    drop(lmtp);

    let (imap, lmtp, dir) = (a.imap_addr(), a.lmtp_addr(), a.dir().to_path_buf());
    drop(a);
    assert!(
        TcpStream::connect(&imap).is_err(),
        "IMAP still open after drop"
    );
    assert!(
        TcpStream::connect(&lmtp).is_err(),
        "LMTP still open after drop"
    );
    assert!(!dir.exists(), "tempdir removed");
    // The other one is unaffected.
    assert!(TcpStream::connect(b.lmtp_addr()).is_ok());
}
