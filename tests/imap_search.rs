//! SEARCH through the IMAP proxy finds text inside encrypted mail: the
//! mixed mailbox of `tests/imap_fetch.rs` (plain, PGP/MIME to alice, to
//! carol, signed only; written by GnuPG) plus a copy alice's client saved
//! through sotto. Searched through sotto, body text and the protected
//! Subject are found; straight to Dovecot they are not; carol's message
//! stays unsearchable; keys the server evaluates (flags, NOT, OR, FROM)
//! combine with them; a SEARCH without content keys passes as it came.

mod common;

use base64::Engine as _;
use common::imapworld::{RawImap, imap, mixed_mailbox, proxy_world};
use serde_json::json;

/// The UIDs of a `* SEARCH` answer.
fn uids(answer: &[u8]) -> Vec<u32> {
    let text = String::from_utf8_lossy(answer);
    let line = text
        .lines()
        .find(|l| l.starts_with("* SEARCH"))
        .unwrap_or_else(|| panic!("no SEARCH answer: {text}"));
    let mut v: Vec<u32> = line["* SEARCH".len()..]
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread")]
async fn search_finds_text_inside_encrypted_mail() {
    let (dovecot, _sink, state, running) = proxy_world().await;
    let proxy = running.imap.expect("imap listener").to_string();
    imap(&proxy, &json!([]));
    mixed_mailbox(&dovecot, state.path()).await;
    let saved = b"Subject: draft 3535\r\nContent-Type: text/plain\r\n\r\nthrough sotto 3535\r\n";
    let b64 = base64::engine::general_purpose::STANDARD.encode(saved);
    let r = imap(&proxy, &json!([{ "op": "append", "message": b64 }]));
    assert_eq!(r[2]["status"], "OK", "{r:?}");

    let mut via = RawImap::login(&proxy).await;
    via.send(b"s0 SELECT INBOX\r\n").await;
    via.until_tagged("s0").await;
    let mut direct = RawImap::login(&dovecot.imap_addr()).await;
    direct.send(b"s0 SELECT INBOX\r\n").await;
    direct.until_tagged("s0").await;
    let mut n = 0;
    let mut search = async |c: &mut RawImap, criteria: &str| -> Vec<u32> {
        n += 1;
        let tag = format!("q{n}");
        c.send(format!("{tag} UID SEARCH {criteria}\r\n").as_bytes())
            .await;
        let answer = c.until_tagged(&tag).await;
        assert!(
            String::from_utf8_lossy(&answer).contains(&format!("{tag} OK")),
            "{}",
            String::from_utf8_lossy(&answer)
        );
        uids(&answer)
    };

    // Inside alice's encrypted messages: found through sotto only.
    assert_eq!(search(&mut via, "BODY \"secret words\"").await, [2]);
    assert_eq!(
        search(&mut direct, "BODY \"secret words\"").await,
        Vec::<u32>::new()
    );
    assert_eq!(search(&mut via, "SUBJECT \"Secret Subject\"").await, [2]);
    assert_eq!(search(&mut via, "TEXT 3535").await, [5]);
    assert_eq!(search(&mut direct, "TEXT 3535").await, Vec::<u32>::new());
    assert_eq!(search(&mut via, "HEADER Subject draft").await, [5]);
    // Plain and signed messages, as the server would find them.
    assert_eq!(search(&mut via, "BODY \"plain words\"").await, [1]);
    assert_eq!(search(&mut via, "BODY \"signed words\"").await, [4]);
    // Encrypted to carol: alice cannot read it, nor can sotto for her.
    assert_eq!(
        search(&mut via, "BODY \"for carol\"").await,
        Vec::<u32>::new()
    );
    // Combined with what the server evaluates.
    assert_eq!(search(&mut via, "NOT BODY words").await, [3, 5]);
    assert_eq!(
        search(&mut via, "OR SUBJECT draft BODY \"plain words\"").await,
        [1, 5]
    );
    via.send(b"f1 UID STORE 2 +FLAGS.SILENT (\\Flagged)\r\n")
        .await;
    via.until_tagged("f1").await;
    assert_eq!(search(&mut via, "FLAGGED BODY words").await, [2]);
    assert_eq!(
        search(&mut via, "UNFLAGGED BODY words FROM bob").await,
        [1, 4]
    );
    // No content key: the server's own answer.
    assert_eq!(search(&mut via, "FROM bob").await, [1, 2, 3, 4]);
    running.shutdown();
}
