//! Extensions that keep working through the IMAP proxy, against Dovecot:
//! UIDPLUS (APPENDUID of a message sotto encrypted, COPYUID), CONDSTORE and
//! QRESYNC (ENABLE, SELECT's HIGHESTMODSEQ, MODSEQ and CHANGEDSINCE on a
//! FETCH that sotto answers), MOVE (the moved message still opens), with a
//! SPECIAL-USE (LIST shows `\Sent`), with a raw client since imaplib knows
//! none of them.

mod common;

use common::dovecot::{Dovecot, Options};
use common::imapworld::{ALICE, PASSWORD, RawImap, proxy_config};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn uidplus_condstore_qresync_and_move_work_through_sotto() {
    // SPECIAL-USE: a Sent mailbox Dovecot marks \Sent.
    let dovecot = Dovecot::start_with(Options::default().config(
        "namespace inbox {\n  inbox = yes\n  mailbox Sent {\n    special_use = \\Sent\n    auto = create\n  }\n}",
    ));
    dovecot.add_user(ALICE, PASSWORD);
    let (_sink, _state, mut cfg) = proxy_config();
    cfg.imap.upstream = dovecot.imap_addr();
    let running = common::gateway(&cfg).await;
    let proxy = running.imap.expect("imap listener").to_string();
    let mut c = RawImap::login(&proxy).await;

    c.send(b"x0 LIST \"\" \"*\"\r\n").await;
    let listed = text(&c.until_tagged("x0").await);
    assert!(
        listed.contains("\\Sent") && listed.contains("Sent"),
        "{listed}"
    );

    c.send(b"x1 ENABLE QRESYNC\r\n").await;
    let enabled = text(&c.until_tagged("x1").await);
    assert!(
        enabled.contains("* ENABLED") && enabled.contains("QRESYNC"),
        "{enabled}"
    );
    c.send(b"x2 SELECT INBOX (CONDSTORE)\r\n").await;
    let selected = text(&c.until_tagged("x2").await);
    assert!(selected.contains("HIGHESTMODSEQ"), "{selected}");

    // APPEND with a synchronizing literal: sotto answers the continuation,
    // the server's APPENDUID comes back.
    let message = b"From: <alice@example.org>\r\nSubject: extensions 8181\r\n\r\nbody 8181\r\n";
    c.send(format!("x3 APPEND INBOX (\\Seen $Label1) {{{}}}\r\n", message.len()).as_bytes())
        .await;
    let go = text(&c.line().await.unwrap());
    assert!(go.starts_with('+'), "{go}");
    c.send(message).await;
    c.send(b"\r\n").await;
    let appended = text(&c.until_tagged("x3").await);
    assert!(appended.contains("x3 OK [APPENDUID "), "{appended}");
    assert!(!text(&dovecot.messages(ALICE)[0]).contains("8181"));

    // A FETCH sotto answers, with CHANGEDSINCE: MODSEQ and FLAGS from the
    // server, the header field from the opened message.
    c.send(b"x4 UID FETCH 1 (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)]) (CHANGEDSINCE 1)\r\n")
        .await;
    let fetched = text(&c.until_tagged("x4").await);
    assert!(fetched.contains("MODSEQ ("), "{fetched}");
    assert!(
        fetched.contains("$Label1") && fetched.contains("\\Seen"),
        "{fetched}"
    );
    assert!(fetched.contains("Subject: extensions 8181"), "{fetched}");

    // One at a time: Dovecot may finish pipelined commands out of order.
    c.send(b"x5 UID STORE 1 +FLAGS.SILENT (\\Flagged)\r\n")
        .await;
    assert!(text(&c.until_tagged("x5").await).contains("x5 OK"));
    c.send(b"x6 CREATE Archive\r\n").await;
    assert!(text(&c.until_tagged("x6").await).contains("x6 OK"));
    c.send(b"x7 UID MOVE 1 Archive\r\n").await;
    let moved = text(&c.until_tagged("x7").await);
    assert!(
        moved.contains("COPYUID") && moved.contains("x7 OK"),
        "{moved}"
    );
    c.send(b"x8 SELECT Archive\r\n").await;
    c.until_tagged("x8").await;
    c.send(b"x9 UID FETCH 1:* (FLAGS BODY.PEEK[TEXT])\r\n")
        .await;
    let archived = text(&c.until_tagged("x9").await);
    assert!(archived.contains("\\Flagged"), "{archived}");
    assert!(archived.contains("body 8181"), "{archived}");
    running.shutdown();
}
