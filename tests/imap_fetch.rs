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

mod common;

use base64::Engine as _;
use common::imapworld::{ALICE, imap, proxy_world};
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
        // imap-codec writes the media type of text and message/rfc822
        // parts in upper case (`"TEXT"`, `"MESSAGE" "RFC822"`), Dovecot as
        // the header does; media types are case-insensitive (RFC 2045).
        let ours = canonical(&raw_of(&via[2 + i]))
            .replace("(\"TEXT\" ", "(\"text\" ")
            .replace("(\"MESSAGE\" \"RFC822\" ", "(\"message\" \"rfc822\" ");
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
