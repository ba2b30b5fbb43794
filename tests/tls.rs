//! TLS on both sides: STARTTLS and AUTH for clients (swaks), STARTTLS and
//! implicit TLS with AUTH towards the upstream (aiosmtpd), and refusals
//! where TLS is required but missing.

mod common;

use std::sync::Arc;

use common::{Client, Sink, config, gateway, swaks};
use sotto::config::{UpstreamAuth, UpstreamTls, User};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio_rustls::rustls;

struct Pki {
    dir: tempfile::TempDir,
    cert_pem: String,
}

impl Pki {
    fn new() -> Pki {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("cert.pem"), ck.cert.pem()).unwrap();
        std::fs::write(dir.path().join("key.pem"), ck.key_pair.serialize_pem()).unwrap();
        Pki {
            cert_pem: ck.cert.pem(),
            dir,
        }
    }
    fn cert(&self) -> std::path::PathBuf {
        self.dir.path().join("cert.pem")
    }
    fn key(&self) -> std::path::PathBuf {
        self.dir.path().join("key.pem")
    }
    fn s(p: std::path::PathBuf) -> String {
        p.to_string_lossy().into_owned()
    }
}

fn user() -> User {
    User {
        name: "relay@example.com".into(),
        password: "s3cret pass".into(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn starttls_and_auth_with_swaks() {
    let pki = Pki::new();
    let sink = Sink::start(&[]);
    let mut cfg = config(&sink.addr);
    cfg.smtp.tls_cert = Some(pki.cert());
    cfg.smtp.tls_key = Some(pki.key());
    cfg.smtp.auth.required = true;
    cfg.smtp.auth.users = vec![user()];
    let gw = gateway(&cfg).await;
    let base = [
        "--from",
        "relay@example.com",
        "--to",
        "b@example.org",
        "--tls",
        "--auth",
        "PLAIN",
    ];
    let (ok, out) = swaks(
        gw.smtp.unwrap(),
        &[
            &base[..],
            &[
                "--auth-user",
                "relay@example.com",
                "--auth-password",
                "s3cret pass",
            ],
        ]
        .concat(),
    )
    .await;
    assert!(ok, "{out}");
    assert!(out.contains("235 2.7.0"), "{out}");
    assert_eq!(sink.messages().len(), 1);
    let (ok, out) = swaks(
        gw.smtp.unwrap(),
        &[
            &base[..],
            &[
                "--auth-user",
                "relay@example.com",
                "--auth-password",
                "wrong",
            ],
        ]
        .concat(),
    )
    .await;
    assert!(!ok);
    assert!(out.contains("535 5.7.8"), "{out}");
    // LOGIN works too.
    let (ok, out) = swaks(
        gw.smtp.unwrap(),
        &[
            "--from",
            "relay@example.com",
            "--to",
            "b@example.org",
            "--tls",
            "--auth",
            "LOGIN",
            "--auth-user",
            "relay@example.com",
            "--auth-password",
            "s3cret pass",
        ],
    )
    .await;
    assert!(ok, "{out}");
    assert_eq!(sink.messages().len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn auth_needs_tls_and_required_auth_blocks_mail() {
    let pki = Pki::new();
    let sink = Sink::start(&[]);
    let mut cfg = config(&sink.addr);
    cfg.smtp.tls_cert = Some(pki.cert());
    cfg.smtp.tls_key = Some(pki.key());
    cfg.smtp.auth.required = true;
    cfg.smtp.auth.users = vec![user()];
    let gw = gateway(&cfg).await;
    let mut c = Client::connect(gw.smtp.unwrap()).await;
    let ehlo = c.cmd("EHLO client", "250").await;
    assert!(
        ehlo.contains("STARTTLS") && !ehlo.contains("AUTH"),
        "{ehlo}"
    );
    c.cmd("AUTH PLAIN AHJlbGF5QGV4YW1wbGUuY29tAHMzY3JldCBwYXNz", "538")
        .await;
    c.cmd("MAIL FROM:<a@example.com>", "530").await;
    assert!(sink.messages().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn require_tls_refuses_mail_in_clear() {
    let pki = Pki::new();
    let sink = Sink::start(&[]);
    let mut cfg = config(&sink.addr);
    cfg.smtp.tls_cert = Some(pki.cert());
    cfg.smtp.tls_key = Some(pki.key());
    cfg.smtp.require_tls = true;
    let gw = gateway(&cfg).await;
    let mut c = Client::greeted(gw.smtp.unwrap()).await;
    let r = c.cmd("MAIL FROM:<a@example.com>", "530").await;
    assert!(r.contains("STARTTLS"), "{r}");
    let (ok, out) = swaks(
        gw.smtp.unwrap(),
        &["--from", "a@example.com", "--to", "b@example.org", "--tls"],
    )
    .await;
    assert!(ok, "{out}");
    assert_eq!(sink.messages().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn commands_pipelined_after_starttls_are_discarded() {
    let pki = Pki::new();
    let sink = Sink::start(&[]);
    let mut cfg = config(&sink.addr);
    cfg.smtp.tls_cert = Some(pki.cert());
    cfg.smtp.tls_key = Some(pki.key());
    let gw = gateway(&cfg).await;
    let mut c = Client::greeted(gw.smtp.unwrap()).await;
    // Sent in clear together with STARTTLS: must not count as sent over TLS.
    c.send(b"STARTTLS\r\nMAIL FROM:<injected@evil.example>\r\n")
        .await;
    let r = c.reply().await;
    assert!(r.starts_with("220"), "{r}");
    let tcp = c.into_inner();

    let mut roots = rustls::RootCertStore::empty();
    let der = rustls_pemfile::certs(&mut pki.cert_pem.as_bytes())
        .next()
        .unwrap()
        .unwrap();
    roots.add(der).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls_cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(tls_cfg));
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = connector.connect(name, tcp).await.expect("TLS handshake");
    let mut tls = BufReader::new(tls);
    tls.get_mut()
        .write_all(b"RCPT TO:<b@example.org>\r\n")
        .await
        .unwrap();
    let mut line = String::new();
    tls.read_line(&mut line).await.unwrap();
    // Had the injected MAIL been taken, RCPT would be accepted.
    assert!(line.starts_with("503"), "{line}");
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_starttls_with_custom_ca() {
    let pki = Pki::new();
    let sink = Sink::start(&[
        "--tls-cert",
        &Pki::s(pki.cert()),
        "--tls-key",
        &Pki::s(pki.key()),
    ]);
    let mut cfg = config(&sink.addr);
    cfg.upstream.tls = UpstreamTls::Starttls;
    cfg.upstream.tls_ca = Some(pki.cert());
    cfg.upstream.tls_name = Some("localhost".into());
    let gw = gateway(&cfg).await;
    let mut c = Client::greeted(gw.smtp.unwrap()).await;
    let r = c
        .send_mail("a@example.com", &["b@example.org"], b"over tls\r\n.\r\n")
        .await;
    assert!(r.starts_with("250"), "{r}");
    assert_eq!(sink.messages()[0].data, b"over tls\r\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_implicit_tls_with_auth() {
    let pki = Pki::new();
    let sink = Sink::start(&[
        "--tls-cert",
        &Pki::s(pki.cert()),
        "--tls-key",
        &Pki::s(pki.key()),
        "--implicit-tls",
        "--auth",
        "sotto:relay-pass",
    ]);
    let mut cfg = config(&sink.addr);
    cfg.upstream.tls = UpstreamTls::Tls;
    cfg.upstream.tls_ca = Some(pki.cert());
    cfg.upstream.tls_name = Some("localhost".into());
    cfg.upstream.auth = Some(UpstreamAuth {
        username: "sotto".into(),
        password: "relay-pass".into(),
    });
    let gw = gateway(&cfg).await;
    let mut c = Client::greeted(gw.smtp.unwrap()).await;
    let r = c
        .send_mail(
            "a@example.com",
            &["b@example.org"],
            b"tls and auth\r\n.\r\n",
        )
        .await;
    assert!(r.starts_with("250"), "{r}");
    assert_eq!(sink.messages().len(), 1);

    // Wrong credentials are sotto's configuration problem, not the sender's:
    // a temporary failure, so the client keeps the message; nothing relayed.
    cfg.upstream.auth = Some(UpstreamAuth {
        username: "sotto".into(),
        password: "wrong".into(),
    });
    let gw2 = gateway(&cfg).await;
    let mut c = Client::greeted(gw2.smtp.unwrap()).await;
    let r = c.cmd("MAIL FROM:<a@example.com>", "451").await;
    assert!(r.contains("4.7.0"), "{r}");
    assert_eq!(sink.messages().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn untrusted_or_missing_upstream_tls_is_never_skipped() {
    let pki = Pki::new();
    // Certificate not trusted: no relaying, in clear or otherwise.
    let sink = Sink::start(&[
        "--tls-cert",
        &Pki::s(pki.cert()),
        "--tls-key",
        &Pki::s(pki.key()),
    ]);
    let mut cfg = config(&sink.addr);
    cfg.upstream.tls = UpstreamTls::Starttls;
    let gw = gateway(&cfg).await;
    let mut c = Client::greeted(gw.smtp.unwrap()).await;
    let r = c.cmd("MAIL FROM:<a@example.com>", "451").await;
    assert!(r.contains("4.7.5"), "{r}");
    // The same with implicit TLS.
    let tls_sink = Sink::start(&[
        "--tls-cert",
        &Pki::s(pki.cert()),
        "--tls-key",
        &Pki::s(pki.key()),
        "--implicit-tls",
    ]);
    let mut cfg = config(&tls_sink.addr);
    cfg.upstream.tls = UpstreamTls::Tls;
    let gw = gateway(&cfg).await;
    let mut c = Client::greeted(gw.smtp.unwrap()).await;
    let r = c.cmd("MAIL FROM:<a@example.com>", "451").await;
    assert!(r.contains("4.7.5"), "{r}");
    assert!(tls_sink.messages().is_empty());
    // Upstream without STARTTLS while the config demands it.
    let plain = Sink::start(&[]);
    let mut cfg = config(&plain.addr);
    cfg.upstream.tls = UpstreamTls::Starttls;
    let gw = gateway(&cfg).await;
    let mut c = Client::greeted(gw.smtp.unwrap()).await;
    let r = c.cmd("MAIL FROM:<a@example.com>", "451").await;
    assert!(r.contains("4.7.5"), "{r}");
    assert!(sink.messages().is_empty() && plain.messages().is_empty());
}
