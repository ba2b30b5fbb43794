//! The lossless relay with real clients (swaks, lettre, smtp-source) and a
//! real upstream (aiosmtpd): what the client sends is what arrives.

mod common;

use common::{Client, Sink, assert_same_bytes, config, gateway, require, swaks};
use lettre::AsyncTransport;
use lettre::address::Envelope;

/// A message exercising dot-stuffing, 8-bit text, a long line and CRLF.
fn tricky_message(id: usize) -> Vec<u8> {
    let mut m = format!(
        "From: a@example.com\r\nTo: b@example.org\r\nSubject: test {id}\r\nMessage-ID: <{id}@sotto.test>\r\n\r\n"
    )
    .into_bytes();
    m.extend_from_slice(
        b".a line that starts with a dot\r\n..two dots\r\n.\r\nnot the end above\r\n",
    );
    m.extend_from_slice("Grüße, naïve café — 8-bit\r\n".as_bytes());
    m.extend_from_slice(&[b'x'; 5000]);
    m.extend_from_slice(b"\r\n\r\n\tindented\r\nlast line\r\n");
    m
}

fn without_last_crlf(m: &[u8]) -> &[u8] {
    m.strip_suffix(b"\r\n").unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn lettre_client_message_arrives_byte_identical() {
    let sink = Sink::start(&[]);
    let gw = gateway(&config(&sink.addr)).await;
    let addr = gw.smtp.unwrap();
    let transport =
        lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::builder_dangerous("127.0.0.1")
            .port(addr.port())
            .build();
    let env = Envelope::new(
        Some("a@example.com".parse().unwrap()),
        vec!["b@example.org".parse().unwrap()],
    )
    .unwrap();
    let msg = tricky_message(1);
    // lettre ends the data with CRLF.CRLF itself: what it is given lacks the
    // last CRLF, which it adds on the wire.
    let resp = transport
        .send_raw(&env, without_last_crlf(&msg))
        .await
        .expect("accepted");
    assert!(resp.code().to_string().starts_with('2'));
    let stored = sink.messages();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].from, "a@example.com");
    assert_eq!(stored[0].rcpts, vec!["b@example.org"]);
    assert_same_bytes(&stored[0].data, &msg);
    assert!(
        stored[0].mail_options.iter().any(|o| o == "BODY=8BITMIME"),
        "{:?}",
        stored[0].mail_options
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn swaks_message_arrives_byte_identical() {
    let sink = Sink::start(&[]);
    let gw = gateway(&config(&sink.addr)).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("msg.eml");
    let msg = tricky_message(2);
    // Like lettre, swaks adds the CRLF before the final dot itself.
    std::fs::write(&file, without_last_crlf(&msg)).unwrap();
    let (ok, out) = swaks(
        gw.smtp.unwrap(),
        &[
            "--from",
            "a@example.com",
            "--to",
            "b@example.org",
            "--data",
            file.to_str().unwrap(),
        ],
    )
    .await;
    assert!(ok, "{out}");
    assert!(out.contains("250 2.0.0 relayed"), "{out}");
    let stored = sink.messages();
    assert_eq!(stored.len(), 1);
    assert_same_bytes(&stored[0].data, &msg);
}

#[tokio::test(flavor = "multi_thread")]
async fn thousand_messages_over_ten_connections_arrive_once_each() {
    let sink = Sink::start(&[]);
    let gw = gateway(&config(&sink.addr)).await;
    let port = gw.smtp.unwrap().port();
    let mut tasks = Vec::new();
    for conn in 0..10 {
        tasks.push(tokio::spawn(async move {
            // One pooled connection per task: ten client connections in all.
            let transport =
                lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::builder_dangerous(
                    "127.0.0.1",
                )
                .port(port)
                .pool_config(lettre::transport::smtp::PoolConfig::new().max_size(1))
                .build();
            let env = Envelope::new(
                Some("a@example.com".parse().unwrap()),
                vec!["b@example.org".parse().unwrap()],
            )
            .unwrap();
            for i in 0..100 {
                let id = conn * 100 + i;
                transport
                    .send_raw(&env, without_last_crlf(&tricky_message(id)))
                    .await
                    .expect("accepted");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let stored = sink.messages();
    assert_eq!(stored.len(), 1000);
    let mut ids: Vec<usize> = stored
        .iter()
        .map(|m| {
            let text = String::from_utf8_lossy(&m.data);
            let id = text
                .split("Message-ID: <")
                .nth(1)
                .unwrap()
                .split('@')
                .next()
                .unwrap();
            assert_same_bytes(&m.data, &tricky_message(id.parse().unwrap()));
            id.parse().unwrap()
        })
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 1000, "some message arrived twice or not at all");
}

#[tokio::test(flavor = "multi_thread")]
async fn smtp_source_load_arrives() {
    let source = require("smtp-source");
    let sink = Sink::start(&[]);
    let gw = gateway(&config(&sink.addr)).await;
    let status = tokio::process::Command::new(source)
        .args([
            "-s",
            "5",
            "-m",
            "50",
            "-l",
            "10240",
            "-f",
            "a@example.com",
            "-t",
            "b@example.org",
        ])
        .arg(gw.smtp.unwrap().to_string())
        .status()
        .await
        .unwrap();
    assert!(status.success());
    assert!(
        common::eventually(10, || sink.messages().len() == 50).await,
        "got {}",
        sink.messages().len()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn lmtp_answers_per_recipient() {
    let sink = Sink::start(&["--reject-rcpt", "nobody@example.org=550 5.1.1 no such user"]);
    let gw = gateway(&config(&sink.addr)).await;
    let mut c = Client::connect(gw.lmtp.unwrap()).await;
    c.cmd("EHLO client", "500").await;
    c.cmd("LHLO client", "250").await;
    c.cmd("MAIL FROM:<a@example.com>", "250").await;
    c.cmd("RCPT TO:<one@example.org>", "250").await;
    let r = c.cmd("RCPT TO:<nobody@example.org>", "550").await;
    assert!(r.contains("5.1.1"), "{r}");
    c.cmd("RCPT TO:<two@example.org>", "250").await;
    c.cmd("DATA", "354").await;
    c.send(b"Subject: lmtp\r\n\r\nhello\r\n.\r\n").await;
    // One reply per accepted recipient, in order.
    assert!(c.reply().await.starts_with("250 2.0.0"));
    assert!(c.reply().await.starts_with("250 2.0.0"));
    c.cmd("QUIT", "221").await;
    let stored = sink.messages();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].rcpts, vec!["one@example.org", "two@example.org"]);
    assert_eq!(stored[0].data, b"Subject: lmtp\r\n\r\nhello\r\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn smtputf8_and_null_sender_pass_through() {
    let sink = Sink::start(&[]);
    let gw = gateway(&config(&sink.addr)).await;
    let mut c = Client::connect(gw.smtp.unwrap()).await;
    let ehlo = c.cmd("EHLO client", "250").await;
    for ext in [
        "PIPELINING",
        "SIZE",
        "8BITMIME",
        "SMTPUTF8",
        "ENHANCEDSTATUSCODES",
    ] {
        assert!(ehlo.contains(ext), "{ehlo}");
    }
    c.cmd("MAIL FROM:<> BODY=8BITMIME SMTPUTF8", "250").await;
    c.cmd("RCPT TO:<jörg@bücher.example>", "250").await;
    c.cmd("DATA", "354").await;
    c.send("Subject: ümlaut\r\n\r\nbody\r\n.\r\n".as_bytes())
        .await;
    assert!(c.reply().await.starts_with("250"));
    let m = &sink.messages()[0];
    assert_eq!(m.from, "<>", "the sink records the null sender as <>");
    assert_eq!(m.rcpts, vec!["jörg@bücher.example"]);
    assert!(
        m.mail_options.iter().any(|o| o == "SMTPUTF8"),
        "{:?}",
        m.mail_options
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn pipelined_commands_get_replies_in_order() {
    let sink = Sink::start(&[]);
    let gw = gateway(&config(&sink.addr)).await;
    let mut c = Client::greeted(gw.smtp.unwrap()).await;
    c.send(b"MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.org>\r\nRCPT TO:<c@example.org>\r\nDATA\r\n").await;
    for code in ["250", "250", "250", "354"] {
        let r = c.reply().await;
        assert!(r.starts_with(code), "{r}");
    }
    c.send(b"hi\r\n.\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<d@example.org>\r\nDATA\r\nagain\r\n.\r\nQUIT\r\n")
        .await;
    for code in ["250", "250", "250", "354", "250", "221"] {
        let r = c.reply().await;
        assert!(r.starts_with(code), "{r}");
    }
    let stored = sink.messages();
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[0].rcpts, vec!["b@example.org", "c@example.org"]);
    assert_eq!(stored[1].data, b"again\r\n");
}
