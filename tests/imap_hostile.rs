//! Hostile or broken peers of the IMAP proxy. Clients: a synchronizing
//! literal over the limit is refused before it is sent, a LITERAL+ one is
//! read and dropped, an endless line and an unreadable command get BAD, and
//! the session goes on; meanwhile another client (imaplib) works as usual
//! against the real Dovecot. Server: one that announces a response larger
//! than sotto takes can only be a scripted server (no real one lies), so a
//! small one stands in; the session it feeds ends with BYE, and another
//! session through the same sotto goes on.

mod common;

use std::io::{BufRead as _, BufReader, Write as _};

use base64::Engine as _;
use common::imapworld::{ALICE, PASSWORD, RawImap, body_of, imap, proxy_config, proxy_world_with};
use serde_json::json;

/// sotto's limit here: `limits.max_message_size` 64 KiB, so commands and
/// responses up to 128 KiB.
const SMALL: usize = 64 * 1024;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_clients_get_clear_errors_and_other_sessions_go_on() {
    let (dovecot, _sink, _state, running) =
        proxy_world_with(|cfg, _| cfg.limits.max_message_size = SMALL).await;
    let proxy = running.imap.expect("imap listener").to_string();
    let mut c = RawImap::login(&proxy).await;
    c.send(b"h0 SELECT INBOX\r\n").await;
    c.until_tagged("h0").await;

    // A synchronizing literal over the limit: refused at once, no "+".
    c.send(b"h1 APPEND INBOX {999999999}\r\n").await;
    let h1 = text(&c.until_tagged("h1").await);
    assert!(h1.starts_with("h1 NO [TOOBIG]"), "{h1}");
    c.send(b"h2 NOOP\r\n").await;
    assert!(text(&c.until_tagged("h2").await).contains("h2 OK"));

    // Something sotto cannot read: BAD, never passed on.
    c.send(b"h3 FROBNICATE (((\r\n").await;
    let h3 = text(&c.until_tagged("h3").await);
    assert!(h3.starts_with("h3 BAD sotto cannot read"), "{h3}");

    // LITERAL+ over the limit: the client sends it anyway; sotto reads and
    // drops it, answers BAD, and nothing reaches the mailbox.
    let big = vec![b'x'; 3 * SMALL];
    c.send(format!("h4 APPEND INBOX {{{}+}}\r\n", big.len()).as_bytes())
        .await;
    c.send(&big).await;
    c.send(b"\r\n").await;
    let h4 = text(&c.until_tagged("h4").await);
    assert!(h4.starts_with("h4 BAD [TOOBIG]"), "{h4}");

    // A line longer than the limit.
    let mut long = b"h5 NOOP ".to_vec();
    long.extend(std::iter::repeat_n(b'a', 3 * SMALL));
    long.extend_from_slice(b"\r\n");
    c.send(&long).await;
    let h5 = text(&c.until_tagged("h5").await);
    assert!(h5.starts_with("h5 BAD [TOOBIG]"), "{h5}");
    c.send(b"h6 NOOP\r\n").await;
    assert!(text(&c.until_tagged("h6").await).contains("h6 OK"));

    // Meanwhile, with the hostile session still open, another client's
    // APPEND and FETCH work, and only its message was stored.
    let original = b"Subject: unaffected 4545\r\n\r\nbody 4545\r\n";
    let b64 = base64::engine::general_purpose::STANDARD.encode(original);
    let r = imap(
        &proxy,
        &json!([
            { "op": "append", "message": b64 },
            { "op": "fetch", "uid": "1" },
        ]),
    );
    assert_eq!(body_of(&r[3]), original.to_vec(), "{r:?}");
    assert_eq!(dovecot.messages(ALICE).len(), 1);
    running.shutdown();
}

/// A scripted IMAP server: greets, accepts LOGIN and SELECT, answers NOOP,
/// and answers any FETCH with a literal of 999,999,999 bytes that never
/// comes.
fn lying_server() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            std::thread::spawn(move || {
                let mut w = conn.try_clone().unwrap();
                let mut r = BufReader::new(conn);
                let _ = w.write_all(b"* OK [CAPABILITY IMAP4rev1 LITERAL+] lying server\r\n");
                let mut line = String::new();
                while r.read_line(&mut line).unwrap_or(0) > 0 {
                    let mut words = line.split_whitespace();
                    let tag = words.next().unwrap_or("*").to_string();
                    let verb = words.next().unwrap_or("").to_ascii_uppercase();
                    let verb = if verb == "UID" {
                        words.next().unwrap_or("").to_ascii_uppercase()
                    } else {
                        verb
                    };
                    let answer = match verb.as_str() {
                        "SELECT" => format!("* 1 EXISTS\r\n{tag} OK [READ-WRITE] done\r\n"),
                        "FETCH" => "* 1 FETCH (UID 1 BODY[] {999999999}\r\nFrom: x\r\n".into(),
                        _ => format!("{tag} OK done\r\n"),
                    };
                    if w.write_all(answer.as_bytes()).is_err() {
                        return;
                    }
                    line.clear();
                }
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_that_announces_too_much_ends_only_its_own_session() {
    let (_sink, _state, mut cfg) = proxy_config();
    cfg.limits.max_message_size = SMALL;
    cfg.imap.upstream = lying_server();
    let running = common::gateway(&cfg).await;
    let proxy = running.imap.expect("imap listener").to_string();

    let mut other = RawImap::login(&proxy).await;
    let mut c = RawImap::login(&proxy).await;
    c.send(b"f0 SELECT INBOX\r\n").await;
    c.until_tagged("f0").await;
    c.send(b"f1 UID FETCH 1 (BODY.PEEK[])\r\n").await;
    let bye = text(&c.line().await.expect("a BYE"));
    assert!(
        bye.starts_with("* BYE sotto: the server sent a response over"),
        "{bye}"
    );
    assert!(c.line().await.is_none(), "the session ends after BYE");

    other.send(b"n1 NOOP\r\n").await;
    assert!(text(&other.until_tagged("n1").await).contains("n1 OK"));
    running.shutdown();
}

/// The identities in the gateway's store, as debug text.
async fn identities(state: &std::path::Path) -> String {
    let store = sotto::store::Store::open(&sotto::store::Options::new(sotto::store::sqlite_url(
        &state.join("sotto.db"),
    )))
    .await
    .unwrap();
    let ids = format!("{:?}", store.list_identities().await.unwrap());
    store.close().await;
    ids
}

/// A user of the server cannot take another's identity: mallory logs in
/// with her own password and, in the same write, sends a second SASL line
/// naming alice, or a second LOGIN with the same tag. sotto takes the user
/// from the first response only, refuses a second login, and reads a line
/// as SASL data only when the server asked for one; a command pipelined
/// behind the login waits for its answer and is never passed unread.
#[tokio::test(flavor = "multi_thread")]
async fn a_login_cannot_be_credited_to_another_user() {
    use base64::Engine as _;
    const MALLORY: &str = "mallory@example.org";
    let (dovecot, _sink, state, running) = common::imapworld::proxy_world().await;
    dovecot.add_user(MALLORY, "mallory-pw");
    let proxy = running.imap.expect("imap listener").to_string();
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);

    let mut c = RawImap::connect(&proxy).await;
    c.send(
        format!(
            "a AUTHENTICATE PLAIN {}\r\n{}\r\nb APPEND INBOX {{10+}}\r\nhello 7474\r\n",
            b64(&format!("\0{MALLORY}\0mallory-pw")),
            b64(&format!("\0{ALICE}\0x"))
        )
        .as_bytes(),
    )
    .await;
    // The second SASL line came unasked: a command sotto cannot read. The
    // APPEND was read before the login's answer: refused, not stored in
    // clear (a client that pipelines behind its login retries).
    let mut answers = text(&c.until_tagged("a").await);
    if !answers.contains("\r\nb ") && !answers.starts_with("b ") {
        answers += &text(&c.until_tagged("b").await);
    }
    assert!(
        answers.contains("* BAD sotto cannot read this command"),
        "{answers}"
    );
    assert!(answers.contains("a OK"), "{answers}");
    assert!(answers.contains("b NO [CANNOT]"), "{answers}");
    drop(c);

    let mut c = RawImap::connect(&proxy).await;
    c.send(format!("a LOGIN {MALLORY} mallory-pw\r\na LOGIN {ALICE} x\r\n").as_bytes())
        .await;
    let both = text(&c.until_tagged("a").await) + &text(&c.until_tagged("a").await);
    assert!(
        both.contains("a BAD already logged in, or a login is under way"),
        "{both}"
    );
    assert!(both.contains("a OK"), "{both}");
    drop(c);

    let ids = identities(state.path()).await;
    assert!(ids.contains(MALLORY), "{ids}");
    assert!(!ids.contains(ALICE), "alice never logged in: {ids}");
    for m in dovecot.messages(MALLORY) {
        assert!(!text(&m).contains("7474"), "stored in clear: {}", text(&m));
    }
    running.shutdown();
}

/// With TLS for clients, LOGIN before STARTTLS is refused (passwords never
/// cross in the clear; LOGINDISABLED is offered), and a command pipelined
/// after STARTTLS in the clear is dropped, never passed on.
#[tokio::test(flavor = "multi_thread")]
async fn nothing_before_tls_is_passed_on() {
    let (dovecot, _sink, _state, running) = common::imapworld::proxy_world_with(|cfg, dir| {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let (cert, key) = (dir.join("c.pem"), dir.join("k.pem"));
        std::fs::write(&cert, ck.cert.pem()).unwrap();
        std::fs::write(&key, ck.key_pair.serialize_pem()).unwrap();
        cfg.imap.tls_cert = Some(cert);
        cfg.imap.tls_key = Some(key);
    })
    .await;
    let proxy = running.imap.expect("imap listener").to_string();
    let mut c = RawImap::connect(&proxy).await;
    c.send(b"c CAPABILITY\r\n").await;
    let caps = text(&c.until_tagged("c").await);
    assert!(
        caps.contains("STARTTLS") && caps.contains("LOGINDISABLED"),
        "{caps}"
    );
    c.send(format!("l LOGIN {ALICE} {PASSWORD}\r\n").as_bytes())
        .await;
    let l = text(&c.until_tagged("l").await);
    assert!(l.starts_with("l NO [PRIVACYREQUIRED]"), "{l}");
    c.send(format!("s STARTTLS\r\nx LOGIN {ALICE} {PASSWORD}\r\n").as_bytes())
        .await;
    let s = text(&c.until_tagged("s").await);
    assert!(s.starts_with("s OK"), "{s}");
    drop(c);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let log = dovecot.log();
    assert!(
        !log.contains("Login: user=<alice@example.org>"),
        "a login reached the server: {log}"
    );
    running.shutdown();
}
