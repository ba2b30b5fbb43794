//! Signcrypt elements in the shapes other OX implementations write them
//! (libstrophe under Profanity, nbxmpp under Gajim, Smack, XEP-0373's own
//! pretty-printed example, namespace prefixes, sloppy time stamps) and the
//! user IDs their key generators give: what sotto must open. And what it
//! must still refuse: another recipient, another signer.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sequoia_openpgp::cert::prelude::*;
use sequoia_openpgp::types::ReasonForRevocation;

use super::*;

/// 2026-11-23T14:00:00Z.
fn t() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_795_442_400)
}

/// `xml` signed by Alice and encrypted to Bob, opened by Bob.
fn open_as_bob(xml: &str) -> Result<Verified, OxError> {
    let msg = seal_to(xml.as_bytes(), &[public(bob())], Some(alice()), P, false).unwrap();
    let senders = [public(alice())];
    decrypt(&STANDARD.encode(msg), &as_bob(&senders, 65536))
}

/// The payload's `(name, namespace)` pairs.
fn names(v: &Verified) -> Vec<(&str, &str)> {
    v.signcrypt
        .payload
        .iter()
        .map(|e| (e.name.as_str(), e.ns.as_str()))
        .collect()
}

/// The text of the payload's `<body xmlns='jabber:client'>`.
fn body(v: &Verified) -> String {
    v.signcrypt
        .payload
        .iter()
        .find(|e| e.name == "body" && e.ns == CLIENT_NS)
        .map(Element::text)
        .unwrap_or_else(|| panic!("no jabber:client body in {:?}", v.signcrypt.payload))
}

const TO_BOB: &str = "<to jid='bob@example.org'/>";
const BODY: &str = "<payload><body xmlns='jabber:client'>hello</body></payload>";

/// A signcrypt to Bob with the body `hello` and this `<time/>`.
fn with_time(time: &str) -> String {
    format!("<signcrypt xmlns='urn:xmpp:openpgp:0'>{TO_BOB}{time}<rpad>x</rpad>{BODY}</signcrypt>")
}

#[test]
fn time_stamps_as_clients_write_them() {
    let ms = Duration::from_millis;
    let cases: &[(&str, Option<SystemTime>)] = &[
        // Profanity: strftime's %z, in UTC and in local time.
        ("2026-11-23T14:00:00+0000", Some(t())),
        ("2026-11-23T15:00:00+0100", Some(t())),
        ("2026-11-23T09:00:00-0500", Some(t())),
        // Smack (jxmpp): milliseconds and a colon offset.
        ("2026-11-23T14:00:00.000+00:00", Some(t())),
        // Gajim, sotto: whole seconds in UTC.
        ("2026-11-23T14:00:00Z", Some(t())),
        ("2026-11-23t14:00:00z", Some(t())),
        ("2026-11-23T14:00:00.5Z", Some(t() + ms(500))),
        (
            "2026-11-23T14:00:00.123456789123Z",
            Some(t() + Duration::from_nanos(123_456_789)),
        ),
        ("2026-11-23T14:00Z", Some(t())),
        ("2026-11-23T14:00+00", Some(t())),
        ("2026-11-23T14:00:00", Some(t())),
        ("2026-11-23 14:00:00Z", Some(t())),
        ("20261123T14:00:00", Some(t())),
        ("  2026-11-23T14:00:00Z\n", Some(t())),
        ("", None),
        ("yesterday", None),
        ("1416758400", None),
        ("2026-11-23", None),
        ("2026-13-23T14:00:00Z", None),
        ("2026-02-29T14:00:00Z", None),
        ("2026-11-23T24:00:00Z", None),
        ("2026-11-23T14:00:00+25:00", None),
        ("2026-11-23T14:00:00+1:00", None),
        ("2026-11-23T14:00:00Zulu", None),
        ("2026-11-23T14:00:00.Z", None),
        ("２０２６-11-23T14:00:00Z", None),
        ("2026-11-23T14:00:0é", None),
    ];
    for (stamp, want) in cases {
        assert_eq!(parse_datetime(stamp), *want, "{stamp:?}");
    }
    assert_eq!(
        parse_datetime("2024-02-29T00:00:00Z"),
        Some(UNIX_EPOCH + Duration::from_secs(1_709_164_800))
    );
    assert_eq!(
        parse_datetime("1969-12-31T23:59:59Z"),
        UNIX_EPOCH.checked_sub(Duration::from_secs(1))
    );
}

#[test]
fn any_time_or_none_opens_the_message() {
    let cases: &[(&str, Option<SystemTime>)] = &[
        ("<time stamp='2026-11-23T14:00:00+0000'/>", Some(t())),
        (
            "<time stamp='2026-11-23T14:00:00.250000Z'/>",
            Some(t() + Duration::from_millis(250)),
        ),
        ("", None),
        ("<time/>", None),
        ("<time stamp='yesterday'/>", None),
        ("<time stamp=''/>", None),
        // The first stamp that reads counts.
        (
            "<time stamp='soon'/><time stamp='2026-11-23T14:00:00Z'/>",
            Some(t()),
        ),
        (
            "<time stamp='2026-11-23T14:00:00Z'/><time stamp='2030-01-01T00:00:00Z'/>",
            Some(t()),
        ),
    ];
    for (time, want) in cases {
        let got = open_as_bob(&with_time(time)).unwrap_or_else(|e| panic!("{time}: {e}"));
        assert_eq!(got.signcrypt.time, *want, "{time}");
        assert_eq!(body(&got), "hello", "{time}");
    }
}

/// A signcrypt's shape (what writes it so), its text, and the payload's
/// `(name, namespace)` pairs sotto reads from it.
type Shape = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

#[test]
fn signcrypts_as_other_clients_write_them() {
    let cases: &[Shape] = &[
        (
            "libstrophe (Profanity): double quotes, %z offset, short rpad",
            "<signcrypt xmlns=\"urn:xmpp:openpgp:0\"><to jid=\"bob@example.org\"/>\
             <time stamp=\"2026-11-23T14:00:00+0000\"/><rpad>ccc</rpad><payload>\
             <body xmlns=\"jabber:client\">hello</body></payload></signcrypt>",
            &[("body", CLIENT_NS)],
        ),
        (
            "libstrophe with an empty rpad",
            "<signcrypt xmlns=\"urn:xmpp:openpgp:0\"><to jid=\"bob@example.org\"/>\
             <time stamp=\"2026-11-23T14:00:00+0000\"/><rpad></rpad><payload>\
             <body xmlns=\"jabber:client\">hello</body></payload></signcrypt>",
            &[("body", CLIENT_NS)],
        ),
        (
            "nbxmpp (Gajim): the message's other children moved into the payload",
            "<signcrypt xmlns=\"urn:xmpp:openpgp:0\"><to jid=\"bob@example.org\" />\
             <time stamp=\"2026-11-23T14:00:00Z\" /><rpad>kJ3+/x9</rpad><payload>\
             <body xmlns=\"jabber:client\">hello</body>\
             <origin-id xmlns=\"urn:xmpp:sid:0\" id=\"6d3b1f0e-0c1a\" />\
             <request xmlns=\"urn:xmpp:receipts\" />\
             <active xmlns=\"http://jabber.org/protocol/chatstates\" />\
             <markable xmlns=\"urn:xmpp:chat-markers:0\" />\
             <store xmlns=\"urn:xmpp:hints\" /></payload></signcrypt>",
            &[
                ("body", CLIENT_NS),
                ("origin-id", "urn:xmpp:sid:0"),
                ("request", "urn:xmpp:receipts"),
                ("active", "http://jabber.org/protocol/chatstates"),
                ("markable", "urn:xmpp:chat-markers:0"),
                ("store", HINTS_NS),
            ],
        ),
        (
            "Smack: milliseconds, rpad after the payload",
            "<signcrypt xmlns='urn:xmpp:openpgp:0'><to jid='bob@example.org'/>\
             <time stamp='2026-11-23T14:00:00.000+00:00'/><payload>\
             <body xmlns='jabber:client'>hello</body></payload>\
             <rpad>Qw8Ex0fPq1</rpad></signcrypt>",
            &[("body", CLIENT_NS)],
        ),
        (
            "XEP-0373's example: pretty-printed, no padding",
            "<?xml version='1.0' encoding='UTF-8'?>\n\
             <signcrypt xmlns='urn:xmpp:openpgp:0'>\n  <to jid='bob@example.org'/>\n  \
             <time stamp='2026-11-23T16:00:00+02:00'/>\n  <payload>\n    \
             <body xmlns='jabber:client'>hello</body>\n  </payload>\n</signcrypt>\n",
            &[("body", CLIENT_NS)],
        ),
        (
            "prefixed, children prefixed too",
            "<ox:signcrypt xmlns:ox='urn:xmpp:openpgp:0'><ox:to jid='bob@example.org'/>\
             <ox:time stamp='2026-11-23T14:00:00Z'/><ox:rpad/><ox:payload>\
             <body xmlns='jabber:client'>hello</body></ox:payload></ox:signcrypt>",
            &[("body", CLIENT_NS)],
        ),
        (
            "prefixed root, unprefixed children, body without a namespace",
            "<ox:signcrypt xmlns:ox='urn:xmpp:openpgp:0'><to jid='bob@example.org'/>\
             <time stamp='2026-11-23T14:00:00Z'/><payload><body>hello</body></payload>\
             </ox:signcrypt>",
            &[("body", CLIENT_NS)],
        ),
        (
            "qualified attributes",
            "<ox:signcrypt xmlns:ox='urn:xmpp:openpgp:0'><ox:to ox:jid='bob@example.org'/>\
             <ox:time ox:stamp='2026-11-23T14:00:00Z'/><ox:payload>\
             <body xmlns='jabber:client'>hello</body></ox:payload></ox:signcrypt>",
            &[("body", CLIENT_NS)],
        ),
        (
            "body inheriting the OX namespace",
            "<signcrypt xmlns='urn:xmpp:openpgp:0'><to jid='bob@example.org'/>\
             <time stamp='2026-11-23T14:00:00Z'/><payload><body>hello</body>\
             <thread>t1</thread></payload></signcrypt>",
            &[("body", CLIENT_NS), ("thread", CLIENT_NS)],
        ),
        (
            "payload in jabber:client",
            "<signcrypt xmlns='urn:xmpp:openpgp:0'><to jid='bob@example.org'/>\
             <time stamp='2026-11-23T14:00:00Z'/><rpad>a</rpad>\
             <payload xmlns='jabber:client'><body>hello</body></payload></signcrypt>",
            &[("body", CLIENT_NS)],
        ),
        (
            "no namespace at all",
            "<signcrypt><to jid='bob@example.org'/><time stamp='2026-11-23T14:00:00Z'/>\
             <payload><body>hello</body></payload></signcrypt>",
            &[("body", CLIENT_NS)],
        ),
        (
            "unknown elements and text everywhere, several rpads, a to without jid",
            "<signcrypt xmlns='urn:xmpp:openpgp:0'>text<future xmlns='urn:example:x'>\
             <to jid='carol@example.org'/></future><to/><rpad>a</rpad>\
             <to jid='bob@example.org'/><hint level='2'/><rpad/><rpad>b</rpad>\
             <time stamp='2026-11-23T14:00:00Z'/><payload>\n <body xmlns='jabber:client'>hello</body>\n \
             <reactions xmlns='urn:xmpp:reactions:0' id='m1'><reaction>+1</reaction></reactions>\n\
             </payload><after/></signcrypt>",
            &[("body", CLIENT_NS), ("reactions", "urn:xmpp:reactions:0")],
        ),
        (
            "a recipient with a resource and capitals, beside another",
            "<signcrypt xmlns='urn:xmpp:openpgp:0'><to jid='carol@example.org'/>\
             <to jid=' Bob@Example.ORG/phone '/><time stamp='2026-11-23T14:00:00Z'/>\
             <payload><body xmlns='jabber:client'>hello</body></payload></signcrypt>",
            &[("body", CLIENT_NS)],
        ),
        (
            "two payloads",
            "<signcrypt xmlns='urn:xmpp:openpgp:0'><to jid='bob@example.org'/>\
             <payload><body xmlns='jabber:client'>hello</body></payload>\
             <payload><origin-id xmlns='urn:xmpp:sid:0' id='x'/></payload></signcrypt>",
            &[("body", CLIENT_NS), ("origin-id", "urn:xmpp:sid:0")],
        ),
        (
            "a byte order mark, a declaration, trailing NULs",
            "\u{FEFF}<?xml version=\"1.0\"?>\r\n<signcrypt xmlns='urn:xmpp:openpgp:0'>\r\n\
             <to jid='bob@example.org'/>\r\n<payload><body xmlns='jabber:client'>hello</body>\
             </payload></signcrypt>\r\n\0\0",
            &[("body", CLIENT_NS)],
        ),
    ];
    for (shape, xml, want) in cases {
        let got = open_as_bob(xml).unwrap_or_else(|e| panic!("{shape}: {e}"));
        assert_eq!(names(&got), *want, "{shape}");
        assert_eq!(body(&got), "hello", "{shape}");
        assert!(
            got.signcrypt.to.contains(&"bob@example.org".to_owned()),
            "{shape}"
        );
        assert_eq!(got.signer, alice().fingerprint(), "{shape}");
    }
}

#[test]
fn only_a_to_of_the_signcrypt_naming_the_user_counts() {
    let other = "<to jid='carol@example.org'/>";
    for (shape, inside) in [
        ("someone else", other.to_owned()),
        (
            "a longer domain",
            "<to jid='bob@example.org.evil.example'/>".into(),
        ),
        (
            "a longer local part",
            "<to jid='evil.bob@example.org'/>".into(),
        ),
        ("a domain only", "<to jid='example.org'/>".into()),
        (
            "a to inside the payload",
            format!(
                "{other}<payload><to xmlns='urn:xmpp:openpgp:0' jid='bob@example.org'/></payload>"
            ),
        ),
        (
            "a to in another namespace",
            format!("{other}<to xmlns='urn:example:x' jid='bob@example.org'/>"),
        ),
        (
            "a to inside an unknown element",
            format!("{other}<x><to jid='bob@example.org'/></x>"),
        ),
    ] {
        let xml = format!("<signcrypt xmlns='urn:xmpp:openpgp:0'>{inside}{BODY}</signcrypt>");
        assert_eq!(
            open_as_bob(&xml).map(|v| v.signcrypt.to),
            Err(OxError::RecipientMismatch {
                expected: "bob@example.org".into()
            }),
            "{shape}"
        );
    }
    for (shape, xml) in [
        (
            "no to",
            format!("<signcrypt xmlns='urn:xmpp:openpgp:0'>{BODY}</signcrypt>"),
        ),
        (
            "only a to without jid",
            format!("<signcrypt xmlns='urn:xmpp:openpgp:0'><to/><to jid=' '/>{BODY}</signcrypt>"),
        ),
        (
            "no payload",
            format!("<signcrypt xmlns='urn:xmpp:openpgp:0'>{TO_BOB}</signcrypt>"),
        ),
        (
            "a foreign root",
            format!("<signcrypt xmlns='urn:example:x'>{TO_BOB}{BODY}</signcrypt>"),
        ),
        (
            "another root",
            format!("<crypt xmlns='urn:xmpp:openpgp:0'>{TO_BOB}{BODY}</crypt>"),
        ),
        ("two roots", format!("{}{}", with_time(""), with_time(""))),
    ] {
        let got = open_as_bob(&xml);
        assert!(
            matches!(got, Err(OxError::MalformedSigncrypt(_))),
            "{shape}: {got:?}"
        );
    }
}

/// A key of Alice's (Ed25519, Curve25519 subkey) with these user IDs, made
/// a minute ago.
fn alice_with(uids: &[&str]) -> Cert {
    let mut builder = CertBuilder::new()
        .set_creation_time(SystemTime::now() - Duration::from_secs(60))
        .add_signing_subkey()
        .add_transport_encryption_subkey();
    for uid in uids {
        builder = builder.add_userid(*uid);
    }
    builder.generate().unwrap().0
}

/// Alice's `with_time("")` signed with `key`, opened by Bob who has `key`'s
/// certificate as hers.
fn signed_by(key: &Cert) -> Result<Verified, OxError> {
    let msg = seal_to(
        with_time("").as_bytes(),
        &[public(bob())],
        Some(key),
        P,
        false,
    )
    .unwrap();
    let senders = [public(key)];
    decrypt(&STANDARD.encode(msg), &as_bob(&senders, 65536))
}

#[test]
fn the_signers_user_id_is_the_senders_xmpp_uri() {
    // As key generators write it: Smack/PGPainless and Profanity's guide
    // `xmpp:jid`; OpenPGP tools put an address in angle brackets.
    for uids in [
        &["xmpp:alice@example.org"][..],
        &["<xmpp:alice@example.org>"],
        &["Alice <XMPP:Alice@Example.ORG>"],
        &["Alice <alice@example.org>", " xmpp:alice@example.org "],
    ] {
        let key = alice_with(uids);
        let got = signed_by(&key).unwrap_or_else(|e| panic!("{uids:?}: {e}"));
        assert_eq!(got.signer, key.fingerprint(), "{uids:?}");
    }
    let mismatch = Err(OxError::SignerMismatch {
        expected: "alice@example.org".into(),
    });
    for uids in [
        &["alice@example.org"][..],
        &["Alice <alice@example.org>"],
        &["xmpp:alice@example.org.evil.example"],
        &["xmpp:mallory@example.org", "Alice"],
        &["mailto:alice@example.org"],
        &["<xmpp:alice@example.org"],
    ] {
        let key = alice_with(uids);
        assert_eq!(signed_by(&key).map(|v| v.signer), mismatch, "{uids:?}");
    }

    // A revoked xmpp: user ID does not count.
    let key = alice_with(&["xmpp:alice@example.org", "<alice@example.org>"]);
    let mut primary = key
        .primary_key()
        .key()
        .clone()
        .parts_into_secret()
        .unwrap()
        .into_keypair()
        .unwrap();
    let uid = key
        .userids()
        .find(|u| u.userid().value().starts_with(b"xmpp:"))
        .unwrap();
    let revocation = UserIDRevocationBuilder::new()
        .set_reason_for_revocation(ReasonForRevocation::UIDRetired, b"")
        .unwrap()
        .set_signature_creation_time(SystemTime::now() - Duration::from_secs(30))
        .unwrap()
        .build(&mut primary, &key, uid.userid(), None)
        .unwrap();
    let revoked = key.clone().insert_packets(revocation).unwrap().0;
    assert_eq!(signed_by(&revoked).map(|v| v.signer), mismatch);
}
