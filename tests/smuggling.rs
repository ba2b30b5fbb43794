//! SMTP smuggling: only CRLF.CRLF ends a message. Each variant is sent raw;
//! the tainted message is refused whole, and no smuggled MAIL FROM ever
//! reaches the upstream.

mod common;

use common::{Client, Sink, config, gateway};

const VARIANTS: &[&[u8]] = &[
    b"\n.\n", b"\n.\r\n", b"\r.\r\n", b"\r\n.\n", b"\r\n.\r", b"\r.\n", b"\n.\r",
];

#[tokio::test(flavor = "multi_thread")]
async fn smuggled_messages_never_reach_the_upstream() {
    let sink = Sink::start(&[]);
    let gw = gateway(&config(&sink.addr)).await;
    for (i, end) in VARIANTS.iter().enumerate() {
        let mut c = Client::greeted(gw.smtp.unwrap()).await;
        // A clean message first: it must arrive.
        let r = c
            .send_mail(
                "a@example.com",
                &["b@example.org"],
                format!("clean {i}\r\n.\r\n").as_bytes(),
            )
            .await;
        assert!(r.starts_with("250"), "{r}");
        // Then one with a smuggled second transaction inside.
        let mut body = format!("Subject: outer {i}\r\n\r\nouter").into_bytes();
        body.extend_from_slice(end);
        body.extend_from_slice(
            b"MAIL FROM:<smuggled@evil.example>\r\nRCPT TO:<victim@example.org>\r\nDATA\r\nSubject: smuggled\r\n\r\nevil",
        );
        body.extend_from_slice(end);
        body.extend_from_slice(b"\r\n.\r\n");
        let r = c
            .send_mail("a@example.com", &["b@example.org"], &body)
            .await;
        assert!(r.starts_with("550 5.6.0"), "variant {end:?}: {r}");
        // The session is in step with the client: the next command is a command.
        c.cmd("NOOP", "250").await;
        let r = c
            .send_mail(
                "a@example.com",
                &["b@example.org"],
                format!("after {i}\r\n.\r\n").as_bytes(),
            )
            .await;
        assert!(r.starts_with("250"), "{r}");
        c.cmd("QUIT", "221").await;
    }
    let stored = sink.messages();
    assert_eq!(
        stored.len(),
        2 * VARIANTS.len(),
        "only the clean messages arrive"
    );
    for m in &stored {
        assert_eq!(m.from, "a@example.com");
        let text = String::from_utf8_lossy(&m.data);
        assert!(
            !text.contains("smuggled") && !text.contains("outer"),
            "{text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bare_newlines_in_commands_are_refused() {
    let sink = Sink::start(&[]);
    let gw = gateway(&config(&sink.addr)).await;
    let mut c = Client::greeted(gw.smtp.unwrap()).await;
    c.send(b"MAIL FROM:<smuggled@evil.example>\nRCPT TO:<victim@example.org>\r\n")
        .await;
    let r = c.reply().await;
    assert!(r.starts_with("500 5.5.2"), "{r}");
    // The rest of that line is a separate (out of sequence) command.
    let r = c.reply().await;
    assert!(r.starts_with("503"), "{r}");
    c.send(b"MAIL FROM:<a@example.com>\rRCPT TO:<b@example.org>\r\n")
        .await;
    assert!(c.reply().await.starts_with("500 5.5.2"));
    c.cmd("NOOP", "250").await;
    assert!(sink.messages().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn bdat_without_chunking_closes_rather_than_reading_chunk_as_commands() {
    let sink = Sink::start(&[]);
    let gw = gateway(&config(&sink.addr)).await;
    let mut c = Client::greeted(gw.smtp.unwrap()).await;
    c.cmd("MAIL FROM:<a@example.com>", "250").await;
    c.cmd("RCPT TO:<b@example.org>", "250").await;
    c.send(
        b"BDAT 64 LAST\r\nMAIL FROM:<smuggled@evil.example>\r\nRCPT TO:<v@example.org>\r\nDATA\r\n",
    )
    .await;
    let r = c.reply().await;
    assert!(r.starts_with("500 5.5.1"), "{r}");
    c.expect_closed().await;
    assert!(sink.messages().is_empty());
}
