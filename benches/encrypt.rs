//! Where an encrypted message's time goes: the key lookup at RCPT (local
//! directory), the policy decision, and PGP/MIME encryption of a 10 KB
//! message, each per operation, beside the cost of copying the message (the
//! floor). Run with `cargo bench --bench encrypt`.

use std::hint::black_box;
use std::time::Instant;

use sequoia_openpgp::cert::CertBuilder;
use sequoia_openpgp::policy::StandardPolicy;
use sequoia_openpgp::serialize::SerializeInto;
use sotto::config::{Config, KeySource};
use sotto::keys::KeyStore;
use sotto::openpgp::pgpmime::{Options, encrypt_mail};

fn time<F: FnMut()>(what: &str, n: u32, mut f: F) -> f64 {
    f();
    let t = Instant::now();
    for _ in 0..n {
        f();
    }
    let us = t.elapsed().as_secs_f64() * 1e6 / f64::from(n);
    println!("{what:<42} {us:>10.1} µs");
    us
}

fn main() {
    let (cert, _) = CertBuilder::general_purpose(Some("<bob@example.org>"))
        .generate()
        .expect("key");
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("bob.asc"),
        cert.armored().to_vec().expect("armor"),
    )
    .expect("write");
    let mut cfg = Config::default();
    cfg.keys.dir = Some(dir.path().to_path_buf());
    cfg.keys.sources = vec![KeySource::Dir];
    let keys = KeyStore::from_config(&cfg);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");

    let mut msg = b"From: a@example.com\r\nTo: bob@example.org\r\nSubject: bench\r\nContent-Type: text/plain\r\n\r\n".to_vec();
    while msg.len() < 10 * 1024 {
        msg.extend_from_slice(b"The quick brown fox jumps over the lazy dog, again and again.\r\n");
    }
    let policy = StandardPolicy::new();
    println!("per operation, 10 KB message, one Curve25519 recipient:");
    time("copy the message (floor)", 20_000, || {
        black_box(msg.clone());
    });
    time("key lookup (local directory)", 2_000, || {
        black_box(rt.block_on(keys.lookup("bob@example.org")));
    });
    let set = sotto::policy::PolicySet::load(None).expect("policy");
    time("policy decision (shipped policies)", 20_000, || {
        black_box(
            set.decide(
                sotto::policy::Channel::Smtp,
                "a@example.com",
                "bob@example.org",
                Some(true),
            )
            .ok(),
        );
    });
    time("certificate validation (with_policy, keys)", 2_000, || {
        let vc = cert.with_policy(&policy, None).expect("valid");
        black_box(
            vc.keys()
                .supported()
                .alive()
                .revoked(false)
                .for_transport_encryption()
                .count(),
        );
    });
    let certs = vec![cert.clone()];
    time("PGP/MIME encryption", 2_000, || {
        let opts = Options {
            hide_recipients: false,
            protect_subject: true,
            signer: None,
            policy: &policy,
        };
        black_box(encrypt_mail(&msg, &certs, opts).expect("encrypt"));
    });
}
