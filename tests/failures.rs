//! Nothing lost: when the upstream is down, refuses, or goes away, the client
//! hears a 4xx/5xx and keeps the message; the sink holds nothing half-sent.

mod common;

use std::net::TcpListener;

use common::{Client, Sink, config, gateway};

/// A port on which nothing listens.
fn closed_port() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    drop(l);
    addr
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_down_is_a_temporary_failure() {
    let gw = gateway(&config(&closed_port())).await;
    let mut c = Client::greeted(gw.smtp.unwrap()).await;
    let r = c.cmd("MAIL FROM:<a@example.com>", "451").await;
    assert!(r.contains("4.4.1"), "{r}");
    // Nothing is open, so RCPT and DATA are out of sequence, never accepted.
    c.cmd("RCPT TO:<b@example.org>", "503").await;
    c.cmd("DATA", "503").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_451_at_data_reaches_the_client_and_nothing_is_stored() {
    let sink = Sink::start(&["--data-reply", "451 4.3.0 try again later"]);
    let gw = gateway(&config(&sink.addr)).await;
    let mut c = Client::greeted(gw.smtp.unwrap()).await;
    let r = c
        .send_mail(
            "a@example.com",
            &["b@example.org"],
            b"Subject: x\r\n\r\nbody\r\n.\r\n",
        )
        .await;
    assert!(r.starts_with("451 4.3.0"), "{r}");
    assert!(sink.messages().is_empty());
    // The session goes on: the next transaction is tried afresh.
    let r = c
        .send_mail(
            "a@example.com",
            &["b@example.org"],
            b"Subject: y\r\n\r\nbody\r\n.\r\n",
        )
        .await;
    assert!(r.starts_with("451 4.3.0"), "{r}");
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_550_at_mail_reaches_the_client() {
    let sink = Sink::start(&["--mail-reply", "550 5.7.1 sender blocked"]);
    let gw = gateway(&config(&sink.addr)).await;
    let mut c = Client::greeted(gw.smtp.unwrap()).await;
    let r = c.cmd("MAIL FROM:<a@example.com>", "550").await;
    assert!(r.contains("5.7.1") && r.contains("sender blocked"), "{r}");
    assert!(sink.messages().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_refusing_a_recipient_refuses_only_that_one() {
    let sink = Sink::start(&[
        "--reject-rcpt",
        "gone@example.org=550 5.1.1 mailbox unavailable",
    ]);
    let gw = gateway(&config(&sink.addr)).await;
    let mut c = Client::greeted(gw.smtp.unwrap()).await;
    c.cmd("MAIL FROM:<a@example.com>", "250").await;
    c.cmd("RCPT TO:<here@example.org>", "250").await;
    let r = c.cmd("RCPT TO:<gone@example.org>", "550").await;
    assert!(r.contains("5.1.1"), "{r}");
    c.cmd("DATA", "354").await;
    c.send(b"hi\r\n.\r\n").await;
    assert!(c.reply().await.starts_with("250"));
    assert_eq!(sink.messages()[0].rcpts, vec!["here@example.org"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_vanishing_after_data_is_not_reported_as_accepted() {
    let sink = Sink::start(&["--drop-after-data"]);
    let gw = gateway(&config(&sink.addr)).await;
    let mut c = Client::greeted(gw.smtp.unwrap()).await;
    let r = c
        .send_mail(
            "a@example.com",
            &["b@example.org"],
            b"Subject: x\r\n\r\nbody\r\n.\r\n",
        )
        .await;
    assert!(r.starts_with("451 4.4.2"), "{r}");
    assert!(sink.messages().is_empty());
    // A fresh upstream connection is used for the next transaction.
    let r = c
        .send_mail(
            "a@example.com",
            &["b@example.org"],
            b"Subject: y\r\n\r\nbody\r\n.\r\n",
        )
        .await;
    assert!(r.starts_with("451 4.4.2"), "{r}");
}

#[tokio::test(flavor = "multi_thread")]
async fn lmtp_upstream_failure_is_reported_for_every_recipient() {
    let sink = Sink::start(&["--data-reply", "452 4.3.1 insufficient storage"]);
    let gw = gateway(&config(&sink.addr)).await;
    let mut c = Client::connect(gw.lmtp.unwrap()).await;
    c.cmd("LHLO client", "250").await;
    c.cmd("MAIL FROM:<a@example.com>", "250").await;
    c.cmd("RCPT TO:<one@example.org>", "250").await;
    c.cmd("RCPT TO:<two@example.org>", "250").await;
    c.cmd("DATA", "354").await;
    c.send(b"hi\r\n.\r\n").await;
    assert!(c.reply().await.starts_with("452 4.3.1"));
    assert!(c.reply().await.starts_with("452 4.3.1"));
    assert!(sink.messages().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn client_vanishing_mid_data_sends_nothing_upstream() {
    let sink = Sink::start(&[]);
    let gw = gateway(&config(&sink.addr)).await;
    {
        let mut c = Client::greeted(gw.smtp.unwrap()).await;
        c.cmd("MAIL FROM:<a@example.com>", "250").await;
        c.cmd("RCPT TO:<b@example.org>", "250").await;
        c.cmd("DATA", "354").await;
        c.send(b"Subject: half\r\n\r\nhalf a mess").await;
    }
    // A later transaction still works, and only it arrives.
    let mut c = Client::greeted(gw.smtp.unwrap()).await;
    let r = c
        .send_mail("a@example.com", &["b@example.org"], b"whole\r\n.\r\n")
        .await;
    assert!(r.starts_with("250"), "{r}");
    let stored = sink.messages();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].data, b"whole\r\n");
}
