//! Bounds: size, recipients, line length, errors, commands, time and
//! connections — each with its standard reply, and the gateway keeps serving
//! other clients.

mod common;

use std::time::Duration;

use common::{Client, Sink, config, gateway};
use tokio::io::AsyncWriteExt;

#[tokio::test(flavor = "multi_thread")]
async fn oversized_message_is_refused_with_552() {
    let sink = Sink::start(&[]);
    let mut cfg = config(&sink.addr);
    cfg.limits.max_message_size = 10_000;
    let gw = gateway(&cfg).await;
    let mut c = Client::connect(gw.smtp.unwrap()).await;
    let ehlo = c.cmd("EHLO client", "250").await;
    assert!(ehlo.contains("SIZE 10000"), "{ehlo}");
    // Declared too big: refused at MAIL.
    c.cmd("MAIL FROM:<a@example.com> SIZE=20000", "552").await;
    // Undeclared, but too big: the whole message is read, then refused.
    let mut body = Vec::new();
    for _ in 0..300 {
        body.extend_from_slice(&[b'y'; 78]);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b".\r\n");
    let r = c
        .send_mail("a@example.com", &["b@example.org"], &body)
        .await;
    assert!(r.starts_with("552 5.3.4"), "{r}");
    // Still in step, still serving.
    let r = c
        .send_mail("a@example.com", &["b@example.org"], b"small\r\n.\r\n")
        .await;
    assert!(r.starts_with("250"), "{r}");
    assert_eq!(sink.messages().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn too_many_recipients_get_452() {
    let sink = Sink::start(&[]);
    let mut cfg = config(&sink.addr);
    cfg.limits.max_recipients = 3;
    let gw = gateway(&cfg).await;
    let mut c = Client::greeted(gw.smtp.unwrap()).await;
    c.cmd("MAIL FROM:<a@example.com>", "250").await;
    for i in 0..3 {
        c.cmd(&format!("RCPT TO:<r{i}@example.org>"), "250").await;
    }
    let r = c.cmd("RCPT TO:<r3@example.org>", "452").await;
    assert!(r.contains("4.5.3"), "{r}");
    c.cmd("DATA", "354").await;
    c.send(b"hi\r\n.\r\n").await;
    assert!(c.reply().await.starts_with("250"));
    assert_eq!(sink.messages()[0].rcpts.len(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn garbage_commands_are_answered_then_the_connection_is_closed() {
    let sink = Sink::start(&[]);
    let mut cfg = config(&sink.addr);
    cfg.limits.max_errors = 5;
    let gw = gateway(&cfg).await;
    let mut c = Client::connect(gw.smtp.unwrap()).await;
    c.cmd("XYZZY", "500").await;
    c.send(b"\x00\x01\xff\xfe garbage\r\n").await;
    assert!(c.reply().await.starts_with("500"));
    c.cmd("MAIL FROM:<a@example.com>", "503").await; // no EHLO yet
    c.cmd("EHLO client", "250").await;
    c.cmd("MAIL FROM:<not an address", "501").await;
    c.cmd("RCPT TO:<b@example.org>", "503").await;
    let r = c.reply().await;
    assert!(r.starts_with("421 4.7.0"), "the fifth error closes: {r:?}");
    c.expect_closed().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn over_long_command_line_is_refused_and_skipped() {
    let sink = Sink::start(&[]);
    let gw = gateway(&config(&sink.addr)).await;
    let mut c = Client::greeted(gw.smtp.unwrap()).await;
    let mut line = b"MAIL FROM:<".to_vec();
    line.extend(std::iter::repeat_n(b'a', 1 << 20));
    line.extend_from_slice(b"@example.com>\r\n");
    c.send(&line).await;
    let r = c.reply().await;
    assert!(r.starts_with("500 5.5.2"), "{r}");
    c.cmd("NOOP", "250").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn too_many_commands_close_the_connection() {
    let sink = Sink::start(&[]);
    let mut cfg = config(&sink.addr);
    cfg.limits.max_commands = 10;
    let gw = gateway(&cfg).await;
    let mut c = Client::connect(gw.smtp.unwrap()).await;
    for _ in 0..10 {
        c.cmd("NOOP", "250").await;
    }
    c.cmd("NOOP", "421").await;
    c.expect_closed().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_client_times_out_while_others_are_served() {
    let sink = Sink::start(&[]);
    let mut cfg = config(&sink.addr);
    cfg.timeouts.command = Duration::from_secs(2);
    let gw = gateway(&cfg).await;
    let addr = gw.smtp.unwrap();
    let slow = tokio::spawn(async move {
        let mut c = Client::connect(addr).await;
        // One byte a second, never a whole line within the command timeout.
        for b in b"EHLO slowpoke" {
            if !c.try_send(&[*b]).await {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1000)).await;
        }
        c
    });
    // Meanwhile another client gets its message through.
    let mut c = Client::connect(addr).await;
    c.cmd("EHLO fast", "250").await;
    let r = c
        .send_mail("a@example.com", &["b@example.org"], b"fast\r\n.\r\n")
        .await;
    assert!(r.starts_with("250"), "{r}");
    let mut slow = slow.await.unwrap();
    let r = slow.reply().await;
    assert!(r.starts_with("421 4.4.2"), "{r:?}");
    assert_eq!(sink.messages().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_data_is_bounded_by_the_data_timeout() {
    let sink = Sink::start(&[]);
    let mut cfg = config(&sink.addr);
    cfg.timeouts.data = Duration::from_secs(2);
    let gw = gateway(&cfg).await;
    let mut c = Client::greeted(gw.smtp.unwrap()).await;
    c.cmd("MAIL FROM:<a@example.com>", "250").await;
    c.cmd("RCPT TO:<b@example.org>", "250").await;
    c.cmd("DATA", "354").await;
    for _ in 0..4 {
        if !c.try_send(b"x").await {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1000)).await;
    }
    let r = c.reply().await;
    assert!(r.starts_with("421 4.4.2"), "{r:?}");
    assert!(sink.messages().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_over_the_limit_get_421() {
    let sink = Sink::start(&[]);
    let mut cfg = config(&sink.addr);
    cfg.limits.max_connections = 2;
    let gw = gateway(&cfg).await;
    let addr = gw.smtp.unwrap();
    let a = Client::connect(addr).await;
    let b = Client::connect(gw.lmtp.unwrap()).await; // the limit spans both listeners
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut buf = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut s, &mut buf)
        .await
        .unwrap();
    assert!(
        buf.starts_with(b"421 4.3.2"),
        "{:?}",
        String::from_utf8_lossy(&buf)
    );
    drop(a);
    drop(b);
    // Slots free again once the sessions end.
    let mut ok = false;
    for _ in 0..50 {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut first = [0u8; 3];
        tokio::io::AsyncReadExt::read_exact(&mut s, &mut first)
            .await
            .unwrap();
        let _ = s.shutdown().await;
        if &first == b"220" {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ok, "no slot freed after the first clients left");
}
