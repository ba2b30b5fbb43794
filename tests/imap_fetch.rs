//! FETCH of an encrypted message through sotto agrees with Dovecot, item by
//! item. One structured message (multipart/mixed with quoted-printable
//! text, HTML, a base64 attachment and a forwarded message/rfc822 holding a
//! multipart/alternative; encoded words, a group, Sender) is APPENDed
//! through sotto, so the mailbox holds PGP/MIME, and the same message is
//! APPENDed in clear straight to Dovecot in another mailbox. Every FETCH
//! item a client may ask for is then fetched both ways: through sotto from
//! the encrypted copy, and straight from Dovecot from the clear copy
//! (Dovecot's own answer is the reference). Answers are compared after
//! writing every IMAP literal as a quoted string, since a server may send
//! the same string either way.
//!
//! Then a mixed mailbox as mail arrives in it (plain, PGP/MIME to the user,
//! PGP/MIME to someone else, signed only; written by GnuPG): each shown as
//! it should be; and a client that pipelines commands behind such a FETCH.

mod common;

use base64::Engine as _;
use common::imapworld::{ALICE, BOB, RawImap, alice_public, imap, mixed_mailbox, proxy_world};
use common::pgp::{Gpg, pgp_mime, seal};
use serde_json::{Value, json};

/// Each FETCH item compared, one per command.
const ITEMS: &[&str] = &[
    "BODY.PEEK[]",
    "RFC822.SIZE",
    "RFC822.HEADER",
    "BODY.PEEK[HEADER]",
    "BODY.PEEK[TEXT]",
    "BODY.PEEK[1]",
    "BODY.PEEK[1.MIME]",
    "BODY.PEEK[2]",
    "BODY.PEEK[3]",
    "BODY.PEEK[3.MIME]",
    "BODY.PEEK[4]",
    "BODY.PEEK[4.HEADER]",
    "BODY.PEEK[4.TEXT]",
    "BODY.PEEK[4.1]",
    "BODY.PEEK[4.2.MIME]",
    "BODY.PEEK[4.HEADER.FIELDS (SUBJECT)]",
    "BODY.PEEK[HEADER.FIELDS (SUBJECT FROM CC)]",
    "BODY.PEEK[HEADER.FIELDS.NOT (SUBJECT DATE)]",
    "BODY.PEEK[]<10.40>",
    "BODY.PEEK[TEXT]<0.20>",
    "BODY.PEEK[1]<5.1000>",
    "ENVELOPE",
    "BODYSTRUCTURE",
    "BODY",
];

/// A FETCH response with every literal (`{n}` CRLF and n bytes) written as
/// a quoted string, CR and LF shown as `\r` and `\n`.
fn canonical(raw: &[u8]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'{'
            && let Some(close) = raw[i..].iter().position(|b| *b == b'}')
            && let Ok(n) = std::str::from_utf8(&raw[i + 1..i + close])
                .unwrap_or("")
                .parse::<usize>()
            && raw[i + close + 1..].starts_with(b"\r\n")
        {
            let start = i + close + 3;
            let data = &raw[start..start + n];
            out.push('"');
            for b in data {
                match b {
                    b'"' => out.push_str("\\\""),
                    b'\\' => out.push_str("\\\\"),
                    b'\r' => out.push_str("\\r"),
                    b'\n' => out.push_str("\\n"),
                    _ => out.push(*b as char),
                }
            }
            out.push('"');
            i = start + n;
            continue;
        }
        out.push(raw[i] as char);
        i += 1;
    }
    out.trim_end().to_string()
}

/// [`canonical`] of a response through sotto. imap-codec writes the media
/// type of text and message/rfc822 parts in upper case (`"TEXT"`,
/// `"MESSAGE" "RFC822"`), Dovecot as the header does; media types are
/// case-insensitive (RFC 2045).
fn through_sotto(raw: &[u8]) -> String {
    canonical(raw)
        .replace("(\"TEXT\" ", "(\"text\" ")
        .replace("(\"MESSAGE\" \"RFC822\" ", "(\"message\" \"rfc822\" ")
}

fn raw_of(step: &Value) -> Vec<u8> {
    assert_eq!(step["status"], "OK", "{step}");
    base64::engine::general_purpose::STANDARD
        .decode(step["raw"].as_str().unwrap())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_fetch_item_of_an_encrypted_message_matches_dovecot_on_the_clear_copy() {
    let (dovecot, _sink, _state, running) = proxy_world().await;
    let proxy = running.imap.expect("imap listener").to_string();
    let message = sotto::mail::crlf(
        &std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/imap/structured.eml"),
        )
        .unwrap(),
    );
    let b64 = base64::engine::general_purpose::STANDARD.encode(&message);

    // Through sotto into INBOX (stored encrypted); straight into "Clear".
    let r = imap(&proxy, &json!([{ "op": "append", "message": b64 }]));
    assert_eq!(r[2]["status"], "OK", "{r:?}");
    let r = imap(
        &dovecot.imap_addr(),
        &json!([
            { "op": "create", "mailbox": "Clear" },
            { "op": "append", "mailbox": "Clear", "message": b64 },
        ]),
    );
    assert_eq!(r[3]["status"], "OK", "{r:?}");
    let stored = dovecot.messages(ALICE);
    assert_eq!(stored.len(), 1, "INBOX holds one message");
    let stored = String::from_utf8_lossy(&stored[0]);
    assert!(stored.contains("multipart/encrypted"), "{stored}");
    assert!(!stored.contains("Quartalsbericht") && !stored.contains("forwarded plain"));

    let fetches: Vec<Value> = ITEMS
        .iter()
        .map(|item| json!({ "op": "raw", "uid": "1", "items": format!("({item})") }))
        .collect();
    let via = imap(&proxy, &Value::Array(fetches.clone()));
    let mut direct_steps = vec![json!({ "op": "select", "mailbox": "Clear" })];
    direct_steps.extend(fetches.clone());
    let direct = imap(&dovecot.imap_addr(), &Value::Array(direct_steps));
    let mut differ = Vec::new();
    for (i, item) in ITEMS.iter().enumerate() {
        let ours = through_sotto(&raw_of(&via[2 + i]));
        let reference = canonical(&raw_of(&direct[3 + i]));
        if ours != reference {
            differ.push(format!(
                "{item}\n  through sotto: {ours}\n  Dovecot:       {reference}"
            ));
        }
    }
    assert!(differ.is_empty(), "differences:\n{}", differ.join("\n"));

    // The comparison is not one of ciphertext with ciphertext: straight
    // from Dovecot, INBOX's text is the PGP/MIME.
    let inbox = imap(
        &dovecot.imap_addr(),
        &json!([{ "op": "raw", "uid": "1", "items": "(BODY.PEEK[TEXT] ENVELOPE)" }]),
    );
    let inbox = String::from_utf8_lossy(&raw_of(&inbox[2])).into_owned();
    assert!(inbox.contains("BEGIN PGP MESSAGE"), "{inbox}");
    assert!(!inbox.contains("Quartalsbericht"), "{inbox}");
    running.shutdown();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_mixed_mailbox_shows_each_message_as_it_should() {
    let (dovecot, _sink, state, running) = proxy_world().await;
    let proxy = running.imap.expect("imap listener").to_string();
    imap(&proxy, &json!([])); // alice's first login: her identity
    mixed_mailbox(&dovecot, state.path()).await;

    // One item per command, so that answers compare whole (a server orders
    // the items of one answer as it likes).
    let items = [
        "BODY.PEEK[]",
        "ENVELOPE",
        "BODYSTRUCTURE",
        "RFC822.SIZE",
        "BODY.PEEK[HEADER.FIELDS (SUBJECT)]",
    ];
    let fetches: Vec<Value> = (1..=4)
        .flat_map(|uid| items.iter().map(move |item| (uid, item)))
        .map(|(uid, item)| json!({ "op": "raw", "uid": uid.to_string(), "items": format!("({item})") }))
        .collect();
    let via = imap(&proxy, &Value::Array(fetches.clone()));
    let direct = imap(&dovecot.imap_addr(), &Value::Array(fetches));
    // Per message, its answers joined.
    let per_message = |steps: &[Value], f: fn(&[u8]) -> String| -> Vec<String> {
        steps[2..]
            .chunks(items.len())
            .map(|c| {
                c.iter()
                    .map(|s| f(&raw_of(s)))
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .collect()
    };
    let shown = per_message(&via, through_sotto);
    let stored = per_message(&direct, canonical);

    // Plain, to someone else, signed only: exactly what the server holds
    // (ENVELOPE and BODYSTRUCTURE, computed by sotto, equal Dovecot's).
    for i in [0, 2, 3] {
        assert_eq!(shown[i], stored[i], "message {}", i + 1);
    }
    assert!(shown[0].contains("plain words 3131"));
    assert!(shown[2].contains("BEGIN PGP MESSAGE") && !shown[2].contains("3333"));
    assert!(shown[3].contains("signed words 3434") && shown[3].contains("\"signed\""));
    // To alice: opened, in every item; on the server, ciphertext.
    let opened = &shown[1];
    assert!(opened.contains("secret words 3232"), "{opened}");
    assert!(
        opened.contains("ENVELOPE (\"Wed, 02 Dec 2026 11:00:00 +0000\" \"secret subject 3232\""),
        "{opened}"
    );
    assert!(
        opened
            .contains("BODY[HEADER.FIELDS (SUBJECT)] \"Subject: secret subject 3232\\r\\n\\r\\n\""),
        "{opened}"
    );
    assert!(
        opened.contains("BODYSTRUCTURE (\"text\" \"plain\""),
        "{opened}"
    );
    assert!(!opened.contains("BEGIN PGP MESSAGE"), "{opened}");
    assert!(stored[1].contains("BEGIN PGP MESSAGE") && !stored[1].contains("3232"));
    let body = opened.split("BODY[] \"").nth(1).unwrap();
    let size = opened.split("RFC822.SIZE ").nth(1).unwrap();
    let size: usize = size[..size.find(|c: char| !c.is_ascii_digit()).unwrap()]
        .parse()
        .unwrap();
    let body_len = body[..body.find("\")").unwrap()]
        .replace("\\r", "\r")
        .replace("\\n", "\n")
        .replace("\\\"", "\"")
        .len();
    assert_eq!(size, body_len, "RFC822.SIZE follows the opened message");
    running.shutdown();
}

/// A client that pipelines: FETCHes sotto answers and a NOOP written at
/// once. Each FETCH response belongs to its command, tags come back in
/// order, and the opened message shows in the second FETCH only.
#[tokio::test(flavor = "multi_thread")]
async fn pipelined_commands_behind_an_answered_fetch_keep_their_order() {
    let (dovecot, _sink, state, running) = proxy_world().await;
    let proxy = running.imap.expect("imap listener").to_string();
    imap(&proxy, &json!([]));
    mixed_mailbox(&dovecot, state.path()).await;

    let mut c = RawImap::login(&proxy).await;
    c.send(b"a1 SELECT INBOX\r\n").await;
    c.until_tagged("a1").await;
    c.send(b"a2 UID FETCH 1:4 (FLAGS ENVELOPE)\r\na3 NOOP\r\na4 UID FETCH 2 (BODY.PEEK[TEXT])\r\na5 UID FETCH 1 (FLAGS)\r\n")
        .await;
    let a2 = String::from_utf8_lossy(&c.until_tagged("a2").await).into_owned();
    // After a2, the server may send a4's FETCH data before a3's OK: it runs
    // pipelined commands at once (RFC 9051 section 5.5).
    let rest = String::from_utf8_lossy(&c.until_tagged("a5").await).into_owned();
    assert_eq!(a2.matches(" FETCH (").count(), 4, "{a2}");
    assert!(
        a2.contains("secret subject 3232") && a2.contains("plain one 3131"),
        "{a2}"
    );
    assert!(a2.contains("\r\na2 OK Fetch completed"), "{a2}");
    let tags: Vec<&str> = rest
        .lines()
        .filter(|l| l.starts_with('a'))
        .map(|l| &l[..2])
        .collect();
    // a3 and a4 go to the server together (Dovecot may finish them in
    // either order); a5 only after a4's answer.
    let mut sorted = tags.clone();
    sorted.sort();
    assert_eq!(sorted, ["a3", "a4", "a5"], "{rest}");
    assert_eq!(tags[2], "a5", "{rest}");
    assert!(
        rest.contains("BODY[TEXT] {19}\r\nsecret words 3232\r\n)"),
        "{rest}"
    );
    assert!(!rest.contains("PGP"), "{rest}");
    assert!(
        rest.contains("* 1 FETCH (UID 1 FLAGS ("),
        "a5's answer: {rest}"
    );
    assert!(rest.contains("\r\na5 OK"), "{rest}");
    running.shutdown();
}

/// A sender cannot pass off what they encrypted to alice as sotto's own
/// mailbox copy: bob (GnuPG) encrypts a whole message with a forged
/// `X-Sotto-Inbound` record inside and marks it `X-Sotto-Stored: whole`
/// outside. sotto's copies are signed by alice's identity; this one is not,
/// so it is shown as any mail that arrived encrypted: sotto's own record
/// first, the forged one and the marker gone. (The inbound path drops a
/// protected `X-Sotto-Inbound` the same way.)
#[tokio::test(flavor = "multi_thread")]
async fn a_forged_mailbox_copy_is_not_shown_as_sottos_own() {
    let (dovecot, _sink, state, running) = proxy_world().await;
    let proxy = running.imap.expect("imap listener").to_string();
    imap(&proxy, &json!([]));
    let bob = Gpg::new();
    bob.generate(BOB, true, "1y", None);
    bob.import(&alice_public(state.path()).await);
    let payload = b"X-Sotto-Inbound: decrypted; signature=good; signer=FORGED\r\n\
From: The CEO <ceo@example.org>\r\nSubject: wire the money 5656\r\n\r\nurgent 5656\r\n";
    let armored = seal(&bob, BOB, ALICE, payload);
    let forged = pgp_mime(
        &format!("From: <{BOB}>\r\nTo: <{ALICE}>\r\nX-Sotto-Stored: whole\r\n"),
        &armored,
    );
    let b64 = base64::engine::general_purpose::STANDARD.encode(&forged);
    let r = imap(
        &dovecot.imap_addr(),
        &json!([{ "op": "append", "message": b64 }]),
    );
    assert_eq!(r[2]["status"], "OK", "{r:?}");
    let r = imap(&proxy, &json!([{ "op": "fetch", "uid": "1" }]));
    let shown = String::from_utf8_lossy(&common::imapworld::body_of(&r[2])).into_owned();
    assert!(shown.contains("urgent 5656"), "opened: {shown}");
    assert!(
        shown.starts_with("X-Sotto-Inbound: decrypted; key="),
        "{shown}"
    );
    assert!(!shown.contains("FORGED"), "{shown}");
    assert!(!shown.contains("X-Sotto-Stored"), "{shown}");
    // bob's key is unknown to sotto: nothing says the message is signed.
    assert!(!shown.contains("signature=good"), "{shown}");
    running.shutdown();
}
