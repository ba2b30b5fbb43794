//! Header protection as RFC 9788 was published, checked against the RFC's
//! own test vector (Appendix C.3.1, `tests/data/rfc9788/`): sotto is given
//! the message that vector protects, GnuPG decrypts what sotto produced, and
//! Python's `email` package (an independent MIME reader) reads the
//! Cryptographic Payload. The protected fields must be the vector's, the
//! payload marked `hp="cipher"` (and `protected-headers="v1"` for older
//! readers), and every non-structural field sotto leaves outside recorded
//! in an `HP-Outer` field exactly as the RFC writes it.

mod common;

use std::path::Path;
use std::process::Command;

use common::pgp::{Gpg, armored_part};
use sequoia_openpgp::Cert;
use sequoia_openpgp::parse::Parse;
use sequoia_openpgp::policy::StandardPolicy;
use sotto::mail::split;
use sotto::openpgp::pgpmime::{Options, encrypt_mail};

fn vector(name: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/rfc9788")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Raw fields (folding kept) of a header section, as text.
fn fields(message: &[u8]) -> Vec<String> {
    split(message)
        .fields
        .iter()
        .map(|f| String::from_utf8_lossy(f.raw).into_owned())
        .collect()
}

fn structural(field: &str) -> bool {
    let name = field.split(':').next().unwrap_or("").to_ascii_lowercase();
    name == "mime-version" || name.starts_with("content-")
}

/// The message the vector protects, as its author's client hands it over:
/// the payload's fields without the HP-Outer records and the hp marker.
fn original(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for f in fields(payload) {
        if f.starts_with("HP-Outer:") {
            continue;
        }
        out.extend_from_slice(f.replace("; hp=\"cipher\"", "").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(split(payload).body);
    out
}

/// What Python's email package reads in a Cryptographic Payload: the
/// Content-Type's `hp` and `protected-headers` parameters, then each
/// HP-Outer value, one per line.
fn python_reads(payload: &[u8]) -> Vec<String> {
    common::require("python3");
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("payload.eml");
    std::fs::write(&file, payload).expect("write");
    let script = "import sys, email, email.policy\n\
        m = email.message_from_binary_file(open(sys.argv[1], 'rb'), policy=email.policy.compat32)\n\
        print(m.get_param('hp'))\n\
        print(m.get_param('protected-headers'))\n\
        for v in m.get_all('HP-Outer') or []:\n\
        \x20   print(' '.join(v.split()))\n";
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&file)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn protects_the_rfc_9788_c_3_1_message_as_the_rfc_does() {
    let rfc_payload = vector("c.3.1-payload.eml");
    let rfc_outer: Vec<String> = fields(&vector("c.3.1-outer-fields.txt"));
    let message = original(&rfc_payload);

    let gpg = Gpg::new();
    gpg.generate("bob@smime.example", true, "1y", None);
    let cert = Cert::from_bytes(&gpg.public("bob@smime.example")).expect("cert");
    let policy = StandardPolicy::new();
    let opts = Options {
        hide_recipients: false,
        protect_subject: true,
        signer: None,
        policy: &policy,
    };
    let sent = encrypt_mail(&message, &[cert], opts).expect("encrypt");
    let payload = gpg.decrypt(&armored_part(&sent));

    // The body is the vector's, byte for byte.
    assert_eq!(split(&payload).body, split(&rfc_payload).body);

    // The protected fields are the vector's, in its order.
    let protected = |p: &[u8]| -> Vec<String> {
        fields(p)
            .into_iter()
            .filter(|f| !structural(f) && !f.starts_with("HP-Outer:"))
            .collect()
    };
    assert_eq!(protected(&payload), protected(&rfc_payload));

    // Outside: the vector's outer fields, less those sotto's confidentiality
    // policy removes beyond hcp_baseline (User-Agent: nothing delivery or
    // threading needs), with the Subject obscured to `[...]` as the RFC does.
    let outer: Vec<String> = fields(&sent)
        .into_iter()
        .filter(|f| !structural(f))
        .collect();
    let removed: Vec<&String> = rfc_outer.iter().filter(|f| !outer.contains(f)).collect();
    assert_eq!(removed, vec!["User-Agent: Sample MUA Version 1.0\r\n"]);
    assert!(outer.iter().all(|f| rfc_outer.contains(f)), "{outer:?}");
    assert!(outer.contains(&"Subject: [...]\r\n".to_string()));

    // One HP-Outer for each of them, written as the vector writes it.
    let records: Vec<String> = fields(&payload)
        .into_iter()
        .filter(|f| f.starts_with("HP-Outer:"))
        .collect();
    let rfc_records: Vec<String> = fields(&rfc_payload)
        .into_iter()
        .filter(|f| f.starts_with("HP-Outer:"))
        .collect();
    assert_eq!(records.len(), outer.len(), "{records:?}");
    for f in &outer {
        let record = format!("HP-Outer: {f}");
        assert!(records.contains(&record), "no {record:?} in {records:?}");
        assert!(
            rfc_records.contains(&record),
            "the RFC writes {rfc_records:?}"
        );
    }

    // An independent MIME reader sees the markers and the records.
    let read = python_reads(&payload);
    assert_eq!(read[0], "cipher", "hp parameter: {read:?}");
    assert_eq!(read[1], "v1", "protected-headers parameter: {read:?}");
    let mut values: Vec<&str> = read[2..].iter().map(String::as_str).collect();
    values.sort();
    let mut expected: Vec<String> = outer.iter().map(|f| f.trim_end().to_string()).collect();
    expected.sort();
    assert_eq!(values, expected);
    // And reads the vector itself the same way (the check is not sotto's own).
    let rfc_read = python_reads(&rfc_payload);
    assert_eq!(rfc_read[0], "cipher");
    assert_eq!(rfc_read.len() - 2, rfc_records.len());
}
