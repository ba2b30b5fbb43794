//! The organisation's identities for mail, as the outside sees them: a
//! local sender's first message makes their identity and carries its
//! `Autocrypt:` header; GnuPG (the correspondent) reads the key from it,
//! finds the same key over sotto's WKD (the URL from GnuPG's own
//! `gpg-wks-client`), verifies the sender's signature on encrypted mail
//! (`sign = "sender"`), reads `Autocrypt-Gossip` inside mail to several
//! recipients, and sees the key revoked after `identities revoke`.

mod common;

use std::process::Command;

use common::pgp::{Gpg, armored_part};
use common::{Client, Sink, config, gateway, policy};
use sotto::openpgp::autocrypt;
use sotto::openpgp::identities::cli::{IdentitiesAction, run as identities_cli};

const POLICY: &str = "[defaults]\nencrypt = \"if-key\"\nlinks = \"keep\"\nsign = \"sender\"\n";
const WKS_CLIENT: &str = "/usr/lib/gnupg/gpg-wks-client";

/// A message on the wire (ending in CRLF.CRLF; nothing to dot-stuff).
fn message(from: &str, to: &str, subject: &str, body: &str) -> Vec<u8> {
    format!(
        "From: <{from}>\r\nTo: <{to}>\r\nSubject: {subject}\r\nMessage-ID: <{subject}@example.org>\r\n\
         Date: Wed, 02 Dec 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n.\r\n"
    )
    .into_bytes()
}

/// alice sends `subject`/`body` to `to` through sotto; the reply to DATA
/// must be 250.
async fn alice_sends(smtp: std::net::SocketAddr, to: &[&str], subject: &str, body: &str) {
    let reply = Client::greeted(smtp)
        .await
        .send_mail(
            "alice@example.org",
            to,
            &message("alice@example.org", to[0], subject, body),
        )
        .await;
    assert!(reply.starts_with("250"), "{reply}");
}

/// The key GET `url` serves when asked of sotto's WKD listener at `wkd`,
/// with the URL's host in `Host` (as a TLS proxy in front would pass it).
async fn wkd_get(wkd: std::net::SocketAddr, url: &str) -> (u16, Vec<u8>) {
    let rest = url.strip_prefix("https://").expect("https URL");
    let (host, path) = rest.split_once('/').unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(wkd).await.unwrap();
    s.write_all(
        format!("GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).await.unwrap();
    let at = resp.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&resp[..at]).into_owned();
    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, resp[at + 4..].to_vec())
}

fn wkd_url(address: &str) -> String {
    common::require(WKS_CLIENT);
    let out = Command::new(WKS_CLIENT)
        .args(["--print-wkd-url", address])
        .output()
        .expect("gpg-wks-client");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Imports `key` (binary or armoured) into `gpg`; its `--with-colons`
/// listing of `address`.
fn import_and_list(gpg: &Gpg, key: &[u8], address: &str) -> String {
    let file = gpg.home.path().join("in.key");
    std::fs::write(&file, key).unwrap();
    let out = gpg.cmd().args(["--import"]).arg(&file).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = gpg
        .cmd()
        .args(["--with-colons", "--list-keys", address])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn fingerprint_of(listing: &str) -> String {
    listing
        .lines()
        .find(|l| l.starts_with("fpr:"))
        .and_then(|l| l.split(':').nth(9))
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn autocrypt_wkd_signatures_gossip_and_revocation_as_gnupg_sees_them() {
    let sink = Sink::start(&[]);
    // Correspondents bob and dave (outside), with keys sotto knows.
    let outside = Gpg::new();
    for who in ["bob", "dave"] {
        outside.generate(&format!("{who}@outside.example"), true, "1y", None);
        outside.export(&format!("{who}@outside.example"), &format!("{who}.asc"));
    }
    let state = tempfile::tempdir().unwrap();
    let secret = state.path().join("store.secret");
    std::fs::write(&secret, "identities passphrase\n").unwrap();
    let mut cfg = config(&sink.addr);
    cfg.keys.dir = Some(outside.keys.clone());
    cfg.store.url = Some(sotto::store::sqlite_url(&state.path().join("sotto.db")));
    cfg.store.secret_file = Some(secret);
    cfg.identities.domains = vec!["example.org".into()];
    cfg.identities.wkd_listen = "127.0.0.1:0".into();
    let _p = policy(&mut cfg, POLICY);
    let running = gateway(&cfg).await;
    let smtp = running.smtp.unwrap();
    let wkd = running.wkd.expect("WKD listener");

    // 1. alice's first message, to carol (no key): in clear, with the
    // Autocrypt header of the identity it just made.
    alice_sends(smtp, &["carol@else.example"], "hello", "first words 5150").await;
    let first = &sink.messages()[0];
    let text = String::from_utf8_lossy(&first.data);
    assert!(text.contains("first words 5150"), "clear text: {text}");
    let headers = common::header_values(&first.data, "Autocrypt");
    assert_eq!(headers.len(), 1, "{text}");
    assert!(
        headers[0].starts_with("addr=alice@example.org; prefer-encrypt=mutual; keydata="),
        "{}",
        headers[0]
    );
    let header = autocrypt::parse(&headers[0], false).expect("Level 1 header");
    let carol = Gpg::new();
    let listing = import_and_list(&carol, &header.keydata, "alice@example.org");
    assert!(listing.contains("<alice@example.org>"), "{listing}");
    assert_eq!(
        listing.lines().filter(|l| l.starts_with("uid:")).count(),
        1,
        "minimal keydata: one user ID"
    );
    let alice_fpr = fingerprint_of(&listing);

    // 2. WKD: the URL GnuPG computes, served by sotto (advanced method),
    // and the direct method; the same key. Unknown users: 404.
    let url = wkd_url("alice@example.org");
    let (status, key) = wkd_get(wkd, &url).await;
    assert_eq!(status, 200, "{url}");
    let wkd_gpg = Gpg::new();
    let listing = import_and_list(&wkd_gpg, &key, "alice@example.org");
    assert_eq!(fingerprint_of(&listing), alice_fpr);
    let direct = url
        .replace("openpgpkey.example.org", "example.org")
        .replace("/openpgpkey/example.org/", "/openpgpkey/");
    assert_eq!(wkd_get(wkd, &direct).await.0, 200, "{direct}");
    let policy_url = "https://openpgpkey.example.org/.well-known/openpgpkey/example.org/policy";
    assert_eq!(wkd_get(wkd, policy_url).await.0, 200);
    assert_eq!(wkd_get(wkd, &wkd_url("nobody@example.org")).await.0, 404);
    assert_eq!(
        wkd_get(wkd, &wkd_url("alice@elsewhere.example")).await.0,
        404
    );

    // 3. To bob (key known): encrypted and signed with alice's identity;
    // bob's GnuPG, knowing alice's key from Autocrypt, says GOODSIG.
    outside.import(&{
        let mut w = Vec::new();
        w.extend_from_slice(&header.keydata);
        w
    });
    alice_sends(smtp, &["bob@outside.example"], "secret", "plans 6262").await;
    let second = &sink.messages()[1];
    let text = String::from_utf8_lossy(&second.data).into_owned();
    assert!(!text.contains("plans 6262"), "encrypted: {text}");
    assert_eq!(
        common::header_values(&second.data, "Autocrypt").len(),
        1,
        "the Autocrypt header stays readable outside: {text}"
    );
    let (plain, status) = outside.decrypt_status(&armored_part(&second.data));
    assert!(plain.contains("plans 6262"), "{plain}\n{status}");
    assert!(status.contains("[GNUPG:] GOODSIG"), "{status}");
    assert!(
        status.contains(&format!("[GNUPG:] VALIDSIG {alice_fpr}")),
        "signed by alice's identity: {status}"
    );

    // 4. To bob and dave: each gets Autocrypt-Gossip for both inside.
    alice_sends(
        smtp,
        &["bob@outside.example", "dave@outside.example"],
        "both",
        "to you both 7373",
    )
    .await;
    let third = &sink.messages()[2];
    let (plain, _) = outside.decrypt_status(&armored_part(&third.data));
    let inner = plain.replace("\r\n", "\n");
    let gossip = common::header_values(inner.as_bytes(), "Autocrypt-Gossip");
    let mut addrs: Vec<String> = gossip
        .iter()
        .map(|g| autocrypt::parse(g, true).expect("gossip header").addr)
        .collect();
    addrs.sort();
    assert_eq!(
        addrs,
        ["bob@outside.example", "dave@outside.example"],
        "{inner}"
    );
    assert!(
        common::header_values(&third.data, "Autocrypt-Gossip").is_empty(),
        "gossip only inside"
    );

    // 5. Revoked: WKD and the next message's Autocrypt header carry the
    // revoked key; GnuPG reports it revoked.
    assert_eq!(
        identities_cli(
            cfg.clone(),
            IdentitiesAction::Revoke {
                address: "alice@example.org".into()
            }
        )
        .await,
        std::process::ExitCode::SUCCESS
    );
    let (status, key) = wkd_get(wkd, &url).await;
    assert_eq!(status, 200);
    let listing = import_and_list(&wkd_gpg, &key, "alice@example.org");
    assert!(
        listing.lines().any(|l| l.starts_with("pub:r:")),
        "revoked: {listing}"
    );
    // Within the identities' watch interval, every process sees it.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    alice_sends(smtp, &["carol@else.example"], "after", "revoked now").await;
    let fourth = &sink.messages()[3];
    let headers = common::header_values(&fourth.data, "Autocrypt");
    let header = autocrypt::parse(&headers[0], false).unwrap();
    assert!(!header.mutual, "a revoked key asks for no encryption");
    let listing = import_and_list(&carol, &header.keydata, "alice@example.org");
    assert_eq!(fingerprint_of(&listing), alice_fpr);
    assert!(
        listing.lines().any(|l| l.starts_with("pub:r:")),
        "revoked: {listing}"
    );
    running.shutdown();
}
