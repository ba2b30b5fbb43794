//! Property: PGP/MIME round trip, checked with proptest on generated
//! messages. Decrypting what `encrypt_mail` made gives the content entity with
//! the original body, byte for byte, and the header fields inside.
//!
//! Case counts are kept low so CI stays fast (`PROPTEST_CASES` overrides);
//! the other families are in the other `tests/properties_*.rs`.

mod common;

use common::proptest_config;
use common::sequoia::{bob, decrypt};
use proptest::prelude::*;
use sequoia_openpgp::policy::StandardPolicy;
use sotto::mail::split;
use sotto::openpgp::pgpmime::{Options, encrypt_mail};

/// A header: some fields (folded sometimes), each `Name: value\r\n`.
fn header() -> impl Strategy<Value = Vec<u8>> {
    let name = prop::sample::select(vec![
        "From",
        "To",
        "Cc",
        "Subject",
        "Date",
        "Message-ID",
        "Received",
        "X-Mailer",
        "Content-Type",
        "Content-Transfer-Encoding",
        "MIME-Version",
        "Keywords",
    ]);
    let value = "[ -~]{0,60}";
    let fold = prop::option::weighted(0.2, "[ \t][ -~]{1,30}");
    prop::collection::vec((name, value, fold), 0..8).prop_map(|fields| {
        let mut h = Vec::new();
        for (name, value, fold) in fields {
            h.extend_from_slice(format!("{name}: {value}").as_bytes());
            if let Some(f) = fold {
                h.extend_from_slice(b"\r\n");
                h.extend_from_slice(f.as_bytes());
            }
            h.extend_from_slice(b"\r\n");
        }
        h
    })
}

proptest! {
    #![proptest_config(proptest_config(16))]

    #[test]
    fn pgp_mime_round_trip(
        header in header(),
        body in prop::collection::vec(any::<u8>(), 0..3000),
        hide in any::<bool>(),
        protect in any::<bool>(),
    ) {
        let mut message = header.clone();
        message.extend_from_slice(b"\r\n");
        message.extend_from_slice(&body);
        let policy = StandardPolicy::new();
        let opts = Options {
            hide_recipients: hide,
            protect_subject: protect,
            signer: None,
            policy: &policy,
        };
        let out = encrypt_mail(&message, &[bob().clone()], opts).expect("encrypt_mail");
        let inner = decrypt(&out);
        let original = split(&message);
        let entity = split(&inner);
        prop_assert_eq!(entity.body, original.body);
        prop_assert_eq!(entity.body, &body[..]);
        // Every field is inside as it was (the Content-Type with the
        // protected-headers parameter added), except MIME-Version and the
        // transport's trace fields.
        for f in &original.fields {
            if f.is("mime-version") || f.is("received") || f.is("return-path") {
                continue;
            }
            let inside = entity.fields.iter().any(|g| {
                g.raw == f.raw
                    || (f.is("content-type")
                        && g.is("content-type")
                        && g.raw.starts_with(f.raw.strip_suffix(b"\r\n").unwrap_or(f.raw)))
            });
            prop_assert!(inside, "{:?} is not inside", String::from_utf8_lossy(f.raw));
        }
    }
}
