//! Logins through the IMAP proxy. OAuth: Dovecot checks bearer tokens with its
//! `oauth2` passdb against a token-introspection endpoint (RFC 7662) that
//! the test serves, standing in for the provider's identity provider (no
//! real one runs here). imaplib logs in through sotto with XOAUTH2 and
//! with OAUTHBEARER: the token reaches Dovecot untouched, sotto maps the
//! user to alice's identity, so her APPEND is stored encrypted and her
//! FETCH reads plain. A refused token makes no identity. Bare user names:
//! with `imap.login_domain`, Dovecot's user `alice` is alice@example.org.

mod common;

use std::io::{BufRead as _, BufReader, Read as _, Write as _};

use base64::Engine as _;
use common::dovecot::{Dovecot, Options};
use common::imapworld::{ALICE, PASSWORD, body_of, imap_as, proxy_config};
use serde_json::json;

const TOKEN: &str = "alice-bearer-token-3e1f";

/// An RFC 7662 introspection endpoint: `token=TOKEN` is alice's, anything
/// else inactive.
fn introspection() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let mut r = BufReader::new(conn.try_clone().unwrap());
            let mut length = 0usize;
            let mut line = String::new();
            while r.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                line.clear();
            }
            let mut body = vec![0u8; length];
            let _ = r.read_exact(&mut body);
            let active = String::from_utf8_lossy(&body)
                .split('&')
                .any(|kv| kv == format!("token={TOKEN}"));
            let json = if active {
                format!("{{\"active\":true,\"email\":\"{ALICE}\"}}")
            } else {
                "{\"active\":false}".to_string()
            };
            let mut w = conn;
            let _ = write!(
                w,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{json}",
                json.len()
            );
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread")]
async fn oauth_logins_pass_through_and_map_to_the_identity() {
    let endpoint = introspection();
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("dovecot-oauth2.conf.ext");
    std::fs::write(
        &conf,
        format!(
            "introspection_mode = post\nintrospection_url = http://{endpoint}/introspect\n\
             username_attribute = email\nactive_attribute = active\nactive_value = true\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let dovecot = Dovecot::start_with(
        Options::default()
            .config("auth_mechanisms = plain login xoauth2 oauthbearer")
            .config(&format!(
                "passdb {{\n  driver = oauth2\n  mechanisms = xoauth2 oauthbearer\n  args = {}\n}}",
                conf.display()
            )),
    );
    dovecot.add_user(ALICE, PASSWORD);
    let (_sink, state, mut cfg) = proxy_config();
    cfg.imap.upstream = dovecot.imap_addr();
    let running = common::gateway(&cfg).await;
    let proxy = running.imap.expect("imap listener").to_string();

    // XOAUTH2: APPEND through sotto is stored encrypted to alice.
    let original = b"Subject: via oauth 6161\r\n\r\nbody 6161\r\n";
    let b64 = base64::engine::general_purpose::STANDARD.encode(original);
    let r = imap_as(
        &proxy,
        ALICE,
        TOKEN,
        &["--auth", "XOAUTH2"],
        &json!([{ "op": "append", "message": b64 }]),
    )
    .unwrap_or_else(|e| panic!("XOAUTH2 through sotto: {e}\n{}", dovecot.log()));
    assert_eq!(r[1]["status"], "OK", "{r:?}");
    assert_eq!(r[2]["status"], "OK", "{r:?}");
    let stored = String::from_utf8_lossy(&dovecot.messages(ALICE)[0]).into_owned();
    assert!(
        stored.contains("multipart/encrypted") && !stored.contains("6161"),
        "{stored}"
    );

    // OAUTHBEARER: FETCH reads it plain.
    let r = imap_as(
        &proxy,
        ALICE,
        TOKEN,
        &["--auth", "OAUTHBEARER"],
        &json!([{ "op": "fetch", "uid": "1" }]),
    )
    .unwrap_or_else(|e| panic!("OAUTHBEARER through sotto: {e}\n{}", dovecot.log()));
    assert_eq!(body_of(&r[2]), original.to_vec());

    // A token the provider does not accept: refused by Dovecot, and sotto
    // made no identity for the user it named.
    let refused = imap_as(
        &proxy,
        "mallory@example.org",
        "stolen-or-made-up",
        &["--auth", "XOAUTH2"],
        &json!([]),
    );
    assert!(refused.is_err(), "{refused:?}");
    let store = sotto::store::Store::open(&sotto::store::Options::new(sotto::store::sqlite_url(
        &state.path().join("sotto.db"),
    )))
    .await
    .unwrap();
    let ids: Vec<String> = store
        .list_identities()
        .await
        .unwrap()
        .into_iter()
        .map(|i| format!("{i:?}"))
        .collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert!(ids[0].contains(ALICE), "{ids:?}");
    running.shutdown();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bare_login_is_completed_with_the_login_domain() {
    let dovecot = Dovecot::start();
    dovecot.add_user("alice", PASSWORD);
    let (_sink, state, mut cfg) = proxy_config();
    cfg.imap.upstream = dovecot.imap_addr();
    cfg.imap.login_domain = "Example.org".into();
    let running = common::gateway(&cfg).await;
    let proxy = running.imap.expect("imap listener").to_string();
    let b64 = base64::engine::general_purpose::STANDARD
        .encode(b"Subject: bare 6262\r\n\r\nbody 6262\r\n");
    let r = imap_as(
        &proxy,
        "alice",
        PASSWORD,
        &[],
        &json!([{ "op": "append", "message": b64 }]),
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", dovecot.log()));
    assert_eq!(r[2]["status"], "OK", "{r:?}");
    let stored = String::from_utf8_lossy(&dovecot.messages("alice")[0]).into_owned();
    assert!(
        stored.contains("multipart/encrypted") && !stored.contains("6262"),
        "{stored}"
    );
    let store = sotto::store::Store::open(&sotto::store::Options::new(sotto::store::sqlite_url(
        &state.path().join("sotto.db"),
    )))
    .await
    .unwrap();
    let ids = format!("{:?}", store.list_identities().await.unwrap());
    assert!(ids.contains(ALICE), "{ids}");
    running.shutdown();
}
