//! Tests of OpenPGP for XMPP: round trips, tampering, wrong keys, hostile
//! input; `shapes`: what other clients write.

mod shapes;

use std::sync::OnceLock;
use std::time::{Duration, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sequoia_openpgp::Cert;
use sequoia_openpgp::cert::CertBuilder;
use sequoia_openpgp::policy::StandardPolicy;
use sequoia_openpgp::types::Features;

use super::seal_to;
use super::*;
use crate::xmpp::framer::{Element, Node, parse_stanza, serialize};

/// A test user's key (secret parts unencrypted), user ID `xmpp:<jid>`.
fn key(jid: &str) -> Cert {
    CertBuilder::general_purpose(Some(format!("xmpp:{jid}")))
        .generate()
        .expect("generate")
        .0
}

fn alice() -> &'static Cert {
    static K: OnceLock<Cert> = OnceLock::new();
    K.get_or_init(|| key("alice@example.org"))
}

fn bob() -> &'static Cert {
    static K: OnceLock<Cert> = OnceLock::new();
    K.get_or_init(|| key("bob@example.org"))
}

fn eve() -> &'static Cert {
    static K: OnceLock<Cert> = OnceLock::new();
    K.get_or_init(|| key("eve@example.net"))
}

fn public(cert: &Cert) -> Cert {
    cert.clone().strip_secret_key_material()
}

const P: &StandardPolicy<'static> = &StandardPolicy::new();

fn el(xml: &str) -> Element {
    parse_stanza(xml.as_bytes()).expect("test XML parses")
}

fn payload() -> Vec<Element> {
    vec![
        el("<body>Hello Bob &amp; co — déjà vu</body>"),
        el(
            "<html xmlns='http://jabber.org/protocol/xhtml-im'><body xmlns='http://www.w3.org/1999/xhtml'><p>Hello <b>Bob</b></p></body></html>",
        ),
        el("<x xmlns='jabber:x:oob'><url>https://example.org/a?b=c</url></x>"),
    ]
}

/// Bob opening a message from Alice.
fn as_bob<'a>(senders: &'a [Cert], max: usize) -> Incoming<'a> {
    Incoming {
        tsk: bob(),
        sender: "alice@example.org",
        sender_certs: senders,
        recipient: Some("bob@example.org"),
        max_bytes: max,
        policy: P,
    }
}

fn alice_to_bob() -> (Signcrypt, String) {
    let sc = Signcrypt::new(vec!["bob@example.org".into()], payload());
    let b64 = encrypt(&sc, &[public(bob()), public(alice())], alice(), P).expect("encrypt");
    (sc, b64)
}

#[test]
fn signcrypt_round_trip() {
    let (sc, b64) = alice_to_bob();
    let senders = [public(alice())];
    let got = decrypt(&b64, &as_bob(&senders, 256 * 1024)).expect("decrypt");
    assert_eq!(got.signcrypt, sc);
    assert_eq!(got.signer, alice().fingerprint());
    assert_eq!(got.signcrypt.payload[0].text(), "Hello Bob & co — déjà vu");
    assert_eq!(got.signcrypt.payload[0].ns, CLIENT_NS);

    // The sender can read her own copy (e.g. from the archive).
    let mine = Incoming {
        tsk: alice(),
        recipient: None,
        ..as_bob(&senders, 256 * 1024)
    };
    assert_eq!(decrypt(&b64, &mine).expect("own copy").signcrypt, sc);
}

#[test]
fn the_message_is_binary_and_the_element_well_formed() {
    let (_, b64) = alice_to_bob();
    assert!(!b64.contains('\n') && !b64.contains('-'));
    let binary = STANDARD.decode(&b64).unwrap();
    // A binary OpenPGP message begins with a packet tag (bit 7 set).
    assert!(binary[0] & 0x80 != 0, "not binary: {:x}", binary[0]);

    let sc = Signcrypt::new(
        vec!["bob@example.org".into(), "carol@example.com".into()],
        payload(),
    );
    let xml = String::from_utf8(serialize(&sc.to_element())).unwrap();
    assert!(
        xml.starts_with("<signcrypt xmlns='urn:xmpp:openpgp:0'><to jid='bob@example.org'/><to jid='carol@example.com'/><time stamp='"),
        "{xml}"
    );
    assert!(xml.contains("<rpad"), "{xml}");
    assert!(
        xml.contains("<payload><body xmlns='jabber:client'>Hello Bob &amp; co"),
        "{xml}"
    );
    let back = Signcrypt::from_element(&parse_stanza(xml.as_bytes()).unwrap()).unwrap();
    assert_eq!(back, sc);
}

#[test]
fn message_children_carry_fallback_and_hints() {
    let children = message_children("QUJD".into());
    let names: Vec<(&str, &str)> = children
        .iter()
        .map(|e| (e.name.as_str(), e.ns.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("openpgp", OX_NS),
            ("body", CLIENT_NS),
            ("encryption", EME_NS),
            ("store", HINTS_NS)
        ]
    );
    assert_eq!(children[0].text(), "QUJD");
    assert!(children[1].text().contains("XEP-0373"));
    assert_eq!(children[2].attr("namespace"), Some(OX_NS));
}

#[test]
fn any_flipped_byte_is_an_error() {
    // Bob with a key advertising SEIPDv1 only, as GnuPG's do.
    let (bob_v1, _) = CertBuilder::general_purpose(Some("xmpp:bob@example.org"))
        .set_features(Features::empty().set_seipdv1())
        .unwrap()
        .generate()
        .unwrap();
    for bob in [bob(), &bob_v1] {
        // To Bob alone, so that every packet is one Bob's key depends on.
        let sc = Signcrypt::new(vec!["bob@example.org".into()], payload());
        let b64 = encrypt(&sc, &[public(bob)], alice(), P).unwrap();
        let binary = STANDARD.decode(&b64).unwrap();
        let senders = [public(alice())];
        let how = Incoming {
            tsk: bob,
            ..as_bob(&senders, 256 * 1024)
        };
        assert!(decrypt(&b64, &how).is_ok());
        // After the packet header and version, the PKESK names its
        // recipient (v3: key ID; v6: length, version, fingerprint), which is
        // not authenticated and is ignored: every PKESK is tried.
        let recipient_end = if binary[2] == 6 { 25 } else { 11 };
        let step = (binary.len() / 50).max(1);
        let mut positions: Vec<usize> = (0..3)
            .chain((recipient_end..binary.len()).step_by(step))
            .collect();
        positions.push(binary.len() - 1);
        for i in positions {
            let mut bad = binary.clone();
            bad[i] ^= 0x01;
            let got = decrypt(&STANDARD.encode(&bad), &how);
            assert!(got.is_err(), "byte {i} flipped, still accepted");
        }
    }
}

#[test]
fn not_for_us() {
    let (_, b64) = alice_to_bob();
    let senders = [public(alice())];
    let how = Incoming {
        tsk: eve(),
        ..as_bob(&senders, 256 * 1024)
    };
    assert_eq!(decrypt(&b64, &how), Err(OxError::NotForUs));
}

#[test]
fn signer_must_be_the_senders_key() {
    // Eve signs a message claiming to come from Alice.
    let sc = Signcrypt::new(vec!["bob@example.org".into()], payload());
    let b64 = encrypt(&sc, &[public(bob())], eve(), P).unwrap();

    let only_alice = [public(alice())];
    assert_eq!(
        decrypt(&b64, &as_bob(&only_alice, 65536)),
        Err(OxError::UnknownSigner)
    );
    // Eve's certificate offered as Alice's: it verifies but is not hers.
    let with_eve = [public(alice()), public(eve())];
    assert_eq!(
        decrypt(&b64, &as_bob(&with_eve, 65536)),
        Err(OxError::SignerMismatch {
            expected: "alice@example.org".into()
        })
    );
}

#[test]
fn unsigned_and_unencrypted_messages_are_refused() {
    let xml = serialize(&Signcrypt::new(vec!["bob@example.org".into()], payload()).to_element());
    let senders = [public(alice())];

    let unsigned = seal_to(&xml, &[public(bob())], None, P, false).unwrap();
    assert_eq!(
        decrypt(&STANDARD.encode(unsigned), &as_bob(&senders, 65536)),
        Err(OxError::NoSignature)
    );

    // Signed by Alice, not encrypted at all.
    let mut signed = Vec::new();
    {
        use sequoia_openpgp::serialize::stream::{LiteralWriter, Message, Signer};
        use std::io::Write;
        let kp = crate::openpgp::seal::signing_keypair(alice(), P).unwrap();
        let m = Signer::new(Message::new(&mut signed), kp)
            .unwrap()
            .build()
            .unwrap();
        let mut lit = LiteralWriter::new(m).build().unwrap();
        lit.write_all(&xml).unwrap();
        lit.finalize().unwrap();
    }
    assert_eq!(
        decrypt(&STANDARD.encode(signed), &as_bob(&senders, 65536)),
        Err(OxError::NotEncrypted)
    );
}

#[test]
fn recipient_must_be_named_in_to() {
    let sc = Signcrypt::new(vec!["carol@example.com".into()], payload());
    let b64 = encrypt(&sc, &[public(bob())], alice(), P).unwrap();
    let senders = [public(alice())];
    assert_eq!(
        decrypt(&b64, &as_bob(&senders, 65536)),
        Err(OxError::RecipientMismatch {
            expected: "bob@example.org".into()
        })
    );
    // Left to the caller: accepted, `to` returned.
    let how = Incoming {
        recipient: None,
        ..as_bob(&senders, 65536)
    };
    assert_eq!(
        decrypt(&b64, &how).unwrap().signcrypt.to,
        ["carol@example.com"]
    );
}

#[test]
fn malformed_content_and_size_bound() {
    let senders = [public(alice())];
    for content in [
        &b"not XML at all"[..],
        b"<signcrypt xmlns='urn:xmpp:openpgp:0'><time stamp='2026-01-01T00:00:00Z'/><payload/></signcrypt>",
        b"<signcrypt xmlns='urn:xmpp:openpgp:0'><to jid='bob@example.org'/><time stamp='2026-01-01T00:00:00Z'/></signcrypt>",
        b"<signcrypt xmlns='urn:other'/>",
        b"<!DOCTYPE x [<!ENTITY a 'b'>]><signcrypt xmlns='urn:xmpp:openpgp:0'/>",
    ] {
        let msg = seal_to(content, &[public(bob())], Some(alice()), P, false).unwrap();
        let got = decrypt(&STANDARD.encode(msg), &as_bob(&senders, 65536));
        assert!(
            matches!(got, Err(OxError::MalformedSigncrypt(_))),
            "{}: {got:?}",
            String::from_utf8_lossy(content)
        );
    }

    let big = vec![b'a'; 100_000];
    let msg = seal_to(&big, &[public(bob())], Some(alice()), P, false).unwrap();
    assert_eq!(
        decrypt(&STANDARD.encode(&msg), &as_bob(&senders, 10_000)),
        Err(OxError::TooLarge { limit: 10_000 })
    );
    // A well-formed signcrypt with an XML declaration in front is read.
    let sc = Signcrypt::new(vec!["bob@example.org".into()], payload());
    let mut xml = b"<?xml version='1.0' encoding='UTF-8'?>\n".to_vec();
    xml.extend(serialize(&sc.to_element()));
    let msg = seal_to(&xml, &[public(bob())], Some(alice()), P, false).unwrap();
    let got = decrypt(&STANDARD.encode(msg), &as_bob(&senders, 65536)).unwrap();
    assert_eq!(got.signcrypt, sc);
}

#[test]
fn hostile_base64_is_an_error_not_a_panic() {
    let senders = [public(alice())];
    let (_, good) = alice_to_bob();
    let mut random = vec![0u8; 4096];
    sequoia_openpgp::crypto::random(&mut random).unwrap();
    let cases: Vec<String> = vec![
        String::new(),
        "   \n\t ".into(),
        "!!!!".into(),
        "====".into(),
        "QUJD=QUJD".into(),
        "é€𝄞".into(),
        "\0\0\0\0".into(),
        "A".repeat(1_000_001),
        STANDARD.encode(&random),
        STANDARD.encode(b"\x85\xff\xff\xff\xff"),
        STANDARD.encode(b"-----BEGIN PGP MESSAGE-----\n\n-----END PGP MESSAGE-----\n"),
        good[..good.len() / 2].into(),
        format!("{good}{good}"),
    ];
    for text in cases {
        let got = decrypt(&text, &as_bob(&senders, 256 * 1024));
        assert!(got.is_err(), "{:.40}: accepted", text);
    }
    // Line breaks and missing padding are tolerated.
    let wrapped: String = good
        .trim_end_matches('=')
        .as_bytes()
        .chunks(76)
        .map(|c| format!("{}\n", std::str::from_utf8(c).unwrap()))
        .collect();
    assert!(decrypt(&wrapped, &as_bob(&senders, 256 * 1024)).is_ok());
}

#[test]
fn rpad_is_random_in_length_and_content() {
    let pads: Vec<String> = (0..64).map(|_| rpad()).collect();
    assert!(pads.iter().all(|p| p.len() <= 200));
    assert!(pads.iter().all(|p| {
        p.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
    }));
    let mut lengths: Vec<usize> = pads.iter().map(String::len).collect();
    lengths.sort_unstable();
    lengths.dedup();
    assert!(lengths.len() > 20, "lengths {lengths:?}");
    let mut long: Vec<&String> = pads.iter().filter(|p| p.len() >= 8).collect();
    let n = long.len();
    long.sort();
    long.dedup();
    assert_eq!(long.len(), n, "repeated padding");

    // Two encryptions of the same signcrypt differ in their rpad.
    let sc = Signcrypt::new(vec!["bob@example.org".into()], payload());
    let a = serialize(&sc.to_element());
    let b = serialize(&sc.to_element());
    assert!(a != b || rpad() != rpad());
}

#[test]
fn xep_0082_datetimes() {
    let t = UNIX_EPOCH + Duration::from_secs(1_795_442_400);
    assert_eq!(format_datetime(t), "2026-11-23T14:00:00Z");
    assert_eq!(parse_datetime("2026-11-23T14:00:00Z"), Some(t));
    assert_eq!(parse_datetime("2026-11-23T15:30:00+01:30"), Some(t));
    assert_eq!(parse_datetime("2026-11-23T09:00:00-05:00"), Some(t));
    assert_eq!(
        parse_datetime("2026-11-23T14:00:00.250Z"),
        Some(t + Duration::from_millis(250))
    );
    for bad in [
        "",
        "yesterday",
        "2026-11-23T14:00:00+25:00",
        "2026-13-23T14:00:00Z",
        "2026-11-23T14:00:00+1:00",
    ] {
        assert_eq!(parse_datetime(bad), None, "{bad}");
    }
}

#[test]
fn legacy_round_trip_and_format() {
    let body = "Meet at noon — bring the keys";
    let text = legacy_encrypt(body, &[public(bob()), public(alice())], None, P).unwrap();
    assert!(!text.contains("-----"), "{text}");
    assert!(!text.contains(": "), "armour headers left: {text}");
    assert!(text.lines().all(|l| !l.is_empty() && l.len() <= 76));

    let senders = [public(alice())];
    let opened = legacy_decrypt(&text, &as_bob(&senders, 65536)).unwrap();
    assert_eq!(opened.body, body);
    assert_eq!(opened.signer, None);

    // Signed by Alice: the signature is reported; a full armour is read too.
    let signed = legacy_encrypt(body, &[public(bob())], Some(alice()), P).unwrap();
    let armored =
        format!("-----BEGIN PGP MESSAGE-----\nComment: x\n\n{signed}\n-----END PGP MESSAGE-----\n");
    let opened = legacy_decrypt(&armored, &as_bob(&senders, 65536)).unwrap();
    assert_eq!(opened.signer, Some(alice().fingerprint()));

    // Not for Eve; a flipped character breaks it.
    let how = Incoming {
        tsk: eve(),
        ..as_bob(&senders, 65536)
    };
    assert_eq!(legacy_decrypt(&text, &how), Err(OxError::NotForUs));
    let to_bob = legacy_encrypt(body, &[public(bob())], None, P).unwrap();
    let mut chars: Vec<char> = to_bob.chars().collect();
    let i = chars.len() * 2 / 3;
    chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
    let broken: String = chars.into_iter().collect();
    assert!(legacy_decrypt(&broken, &as_bob(&senders, 65536)).is_err());

    let children = legacy_message_children(text.clone());
    assert_eq!(
        (children[0].name.as_str(), children[0].ns.as_str()),
        ("x", LEGACY_NS)
    );
    assert_eq!(children[0].text(), text);
    assert_eq!(children[2].attr("namespace"), Some(LEGACY_NS));
    assert!(matches!(&children[1].children[0], Node::Text(t) if t.contains("XEP-0027")));
}

#[test]
fn no_recipient_key_is_an_error() {
    let sc = Signcrypt::new(vec!["bob@example.org".into()], payload());
    assert_eq!(encrypt(&sc, &[], alice(), P), Err(OxError::NoRecipients));
}
