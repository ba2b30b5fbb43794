//! `store = "encrypted"`: Postfix as the MX → sotto's inbound path →
//! Dovecot's LMTP, with a policy that keeps example.org's mailboxes
//! encrypted. Mail that arrives in clear and mail encrypted to alice
//! (GnuPG) are both stored as PGP/MIME (the Maildir files hold neither
//! body nor subject); mail encrypted to someone else is stored as it came;
//! through sotto's IMAP proxy alice reads the first two plain.

mod common;
#[path = "common/mailworld.rs"]
mod mailworld;

use common::imapworld::RawImap;
use common::pgp::{Gpg, pgp_mime, seal};
use mailworld::{ALICE, ALICE_PASSWORD, MailWorld};

const BOB: &str = "bob@outside.example";
const CAROL: &str = "carol@outside.example";

const POLICY: &str = "[defaults]\nencrypt = \"if-key\"\nlinks = \"keep\"\nsign = \"sender\"\n\n\
[[rule]]\nname = \"mailboxes hold ciphertext\"\nto = [\"*@example.org\"]\nstore = \"encrypted\"\n";

/// alice's identity (made when the MX's first RCPT for her was accepted),
/// public, from the world's store.
async fn alice_public(w: &MailWorld) -> Vec<u8> {
    use sotto::openpgp::identities::{Identities, Uses, read_passphrase};
    let store = w.store().await;
    let secret = w.cfg.store.secret_file.clone().unwrap();
    let ids = Identities::new(store.clone(), read_passphrase(&secret).unwrap());
    let alice = ids.get_or_create_for(ALICE, Uses::Mail).await.unwrap();
    store.close().await;
    sequoia_openpgp::serialize::SerializeInto::to_vec(alice.cert().as_ref()).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn mailboxes_hold_ciphertext_and_users_read_plain() {
    let w = MailWorld::start(POLICY).await;
    let proxy = w.running.imap.expect("imap listener").to_string();

    // 1. In clear.
    w.mx_receives(
        BOB,
        ALICE,
        format!("From: <{BOB}>\r\nTo: <{ALICE}>\r\nSubject: clear at rest 7070\r\n\r\nplain body 7070\r\n")
            .as_bytes(),
    )
    .await;
    w.inbox(1).await;

    // 2. Encrypted to alice, 3. encrypted to carol (alice cannot open it).
    let bob = Gpg::new();
    bob.generate(BOB, true, "1y", None);
    bob.generate(CAROL, true, "1y", None);
    bob.import(&alice_public(&w).await);
    let to_alice = pgp_mime(
        &format!("From: <{BOB}>\r\nTo: <{ALICE}>\r\n"),
        &seal(
            &bob,
            BOB,
            ALICE,
            b"Content-Type: text/plain; protected-headers=\"v1\"\r\nSubject: sealed 7171\r\n\r\nsecret body 7171\r\n",
        ),
    );
    w.mx_receives(BOB, ALICE, &to_alice).await;
    w.inbox(2).await;
    let to_carol = pgp_mime(
        &format!("From: <{BOB}>\r\nTo: <{ALICE}>\r\n"),
        &seal(
            &bob,
            BOB,
            CAROL,
            b"Content-Type: text/plain\r\n\r\nfor carol 7272\r\n",
        ),
    );
    w.mx_receives(BOB, ALICE, &to_carol).await;
    w.inbox(3).await;

    // The Maildir: PGP/MIME only, nothing readable; sotto's two copies
    // marked as its own, carol's as it came.
    let stored: Vec<String> = w
        .dovecot
        .messages(ALICE)
        .iter()
        .map(|m| String::from_utf8_lossy(m).into_owned())
        .collect();
    assert_eq!(stored.len(), 3);
    for m in &stored {
        assert!(m.contains("multipart/encrypted"), "{m}");
        for secret in ["7070", "7171", "7272"] {
            assert!(!m.contains(secret), "{secret} in the mailbox: {m}");
        }
    }
    assert_eq!(
        stored
            .iter()
            .filter(|m| m.contains("X-Sotto-Stored: whole"))
            .count(),
        2
    );

    // Through the proxy, alice reads plain.
    let mut c = RawImap::login_with(&proxy, ALICE_PASSWORD).await;
    c.send(b"s1 SELECT INBOX\r\n").await;
    c.until_tagged("s1").await;
    c.send(b"s2 UID FETCH 1:3 (BODY.PEEK[] ENVELOPE)\r\n").await;
    let shown = String::from_utf8_lossy(&c.until_tagged("s2").await).into_owned();
    assert!(shown.contains("plain body 7070"), "{shown}");
    assert!(
        shown.contains("\"clear at rest 7070\""),
        "ENVELOPE: {shown}"
    );
    assert!(shown.contains("secret body 7171"), "{shown}");
    assert!(
        shown.contains("\"sealed 7171\""),
        "protected Subject: {shown}"
    );
    assert!(
        shown.contains("X-Sotto-Inbound: decrypted; key="),
        "the inbound path's record, as it would have delivered: {shown}"
    );
    assert!(!shown.contains("7272"), "carol's stays sealed: {shown}");
    w.running.shutdown();
}
