//! The IMAP proxy's test world: a private Dovecot with alice, sotto's IMAP
//! proxy in front of it, and Python's imaplib (`tests/peers/imap_client.py`)
//! as the scripted client.

use std::io::Write as _;
use std::process::{Command, Stdio};

use base64::Engine as _;
use serde_json::{Value, json};

use super::dovecot::Dovecot;
use super::pgp::{Gpg, pgp_mime, seal};
use super::{Sink, config, gateway};

pub const BOB: &str = "bob@outside.example";
pub const CAROL: &str = "carol@outside.example";

pub const ALICE: &str = "alice@example.org";
pub const PASSWORD: &str = "alice-imap-secret";

/// Runs `tests/peers/imap_client.py` against `addr` as alice; its JSON lines.
pub fn imap(addr: &str, steps: &Value) -> Vec<Value> {
    imap_with(addr, &[], steps)
}

/// [`imap`] with extra arguments (`--tls CAFILE`, `--starttls CAFILE`).
pub fn imap_with(addr: &str, extra: &[&str], steps: &Value) -> Vec<Value> {
    imap_as(addr, ALICE, PASSWORD, extra, steps)
        .unwrap_or_else(|stderr| panic!("imap client: {stderr}"))
}

/// The client as `user` with `secret` (a password, or a bearer token with
/// `--auth`): its JSON lines, or its standard error if it failed.
pub fn imap_as(
    addr: &str,
    user: &str,
    secret: &str,
    extra: &[&str],
    steps: &Value,
) -> Result<Vec<Value>, String> {
    let (host, port) = addr.rsplit_once(':').unwrap();
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/imap_client.py");
    let mut child = Command::new("python3")
        .arg(script)
        .args([host, port, user])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "{secret}").unwrap();
    stdin.write_all(steps.to_string().as_bytes()).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect())
}

/// sotto's configuration for the proxy tests, upstream not set: the
/// sink, the store in the returned tempdir, identities for example.org, the
/// plain IMAP listener on a free port.
pub fn proxy_config() -> (Sink, tempfile::TempDir, sotto::config::Config) {
    let sink = Sink::start(&[]);
    let state = tempfile::tempdir().unwrap();
    let secret = state.path().join("store.secret");
    std::fs::write(&secret, "imap passphrase\n").unwrap();
    let mut cfg = config(&sink.addr);
    cfg.store.url = Some(sotto::store::sqlite_url(&state.path().join("sotto.db")));
    cfg.store.secret_file = Some(secret);
    cfg.identities.domains = vec!["example.org".into()];
    cfg.identities.wkd_listen = String::new();
    cfg.imap.listen = "127.0.0.1:0".into();
    (sink, state, cfg)
}

/// Dovecot with alice, and sotto's IMAP proxy in front of it (identities
/// for example.org, a store in the returned tempdir).
pub async fn proxy_world_with(
    tune: impl FnOnce(&mut sotto::config::Config, &std::path::Path),
) -> (Dovecot, Sink, tempfile::TempDir, sotto::serve::Running) {
    let dovecot = Dovecot::start();
    dovecot.add_user(ALICE, PASSWORD);
    let (sink, state, mut cfg) = proxy_config();
    cfg.imap.upstream = dovecot.imap_addr();
    tune(&mut cfg, state.path());
    let running = gateway(&cfg).await;
    (dovecot, sink, state, running)
}

pub async fn proxy_world() -> (Dovecot, Sink, tempfile::TempDir, sotto::serve::Running) {
    proxy_world_with(|_, _| {}).await
}

pub fn body_of(step: &Value) -> Vec<u8> {
    let b64 = step["parts"][0]["body"].as_str().expect("a body");
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap()
}

/// A raw IMAP client for what imaplib cannot do: pipelining, hostile input.
pub struct RawImap {
    r: tokio::io::BufReader<tokio::net::TcpStream>,
    pub greeting: String,
}

impl RawImap {
    pub async fn connect(addr: &str) -> RawImap {
        use tokio::io::AsyncBufReadExt as _;
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut r = tokio::io::BufReader::new(tcp);
        let mut greeting = String::new();
        r.read_line(&mut greeting).await.unwrap();
        RawImap { r, greeting }
    }

    /// Connected and logged in as alice (tag `a0`).
    pub async fn login(addr: &str) -> RawImap {
        RawImap::login_with(addr, PASSWORD).await
    }

    /// Connected and logged in as alice with `password` (tag `a0`).
    pub async fn login_with(addr: &str, password: &str) -> RawImap {
        let mut c = RawImap::connect(addr).await;
        c.send(format!("a0 LOGIN {ALICE} {password}\r\n").as_bytes())
            .await;
        let out = c.until_tagged("a0").await;
        assert!(String::from_utf8_lossy(&out).contains("a0 OK"));
        c
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        use tokio::io::AsyncWriteExt as _;
        self.r.get_mut().write_all(bytes).await.unwrap();
    }

    /// One line (with its line end), or `None` at the end of the stream;
    /// fails the test after 20 s of silence.
    pub async fn line(&mut self) -> Option<Vec<u8>> {
        self.line_or(&[]).await
    }

    /// [`RawImap::line`], showing `so_far` if it fails.
    async fn line_or(&mut self, so_far: &[u8]) -> Option<Vec<u8>> {
        use tokio::io::AsyncBufReadExt as _;
        let mut line = Vec::new();
        let n = tokio::time::timeout(
            std::time::Duration::from_secs(20),
            self.r.read_until(b'\n', &mut line),
        )
        .await
        .unwrap_or_else(|_| {
            panic!(
                "no answer within 20 s; so far: {}",
                String::from_utf8_lossy(so_far)
            )
        })
        .unwrap_or(0);
        (n > 0).then_some(line)
    }

    /// Lines (with literals) until the tagged response of `tag`.
    pub async fn until_tagged(&mut self, tag: &str) -> Vec<u8> {
        use tokio::io::AsyncReadExt as _;
        let mut out = Vec::new();
        loop {
            let Some(line) = self.line().await else {
                panic!(
                    "connection closed; so far: {}",
                    String::from_utf8_lossy(&out)
                );
            };
            out.extend_from_slice(&line);
            let text = String::from_utf8_lossy(&line).into_owned();
            if let Some(len) = text
                .trim_end()
                .strip_suffix('}')
                .and_then(|t| t.rfind('{').map(|i| &t[i + 1..]))
                .and_then(|n| n.parse::<usize>().ok())
            {
                let mut lit = vec![0u8; len];
                self.r.read_exact(&mut lit).await.unwrap();
                out.extend_from_slice(&lit);
                continue;
            }
            if text.starts_with(&format!("{tag} ")) {
                return out;
            }
        }
    }
}

/// alice's identity, from the store of the running gateway (made at her
/// first login through sotto), as a certificate GnuPG can import.
pub async fn alice_public(state: &std::path::Path) -> Vec<u8> {
    use sotto::openpgp::identities::{Identities, Uses, read_passphrase};
    let url = sotto::store::sqlite_url(&state.join("sotto.db"));
    let store = sotto::store::Store::open(&sotto::store::Options::new(url))
        .await
        .unwrap();
    let ids = Identities::new(
        store.clone(),
        read_passphrase(&state.join("store.secret")).unwrap(),
    );
    let alice = ids.get_or_create_for(ALICE, Uses::Mail).await.unwrap();
    store.close().await;
    sequoia_openpgp::serialize::SerializeInto::to_vec(alice.cert().as_ref()).unwrap()
}

/// Four messages as they arrive, straight into alice's INBOX: plain, to
/// alice (protected Subject), to carol, signed only. UIDs 1 to 4.
pub async fn mixed_mailbox(dovecot: &Dovecot, state: &std::path::Path) {
    let bob = Gpg::new();
    bob.generate(BOB, true, "1y", None);
    bob.generate(CAROL, true, "1y", None);
    bob.import(&alice_public(state).await);
    let head = |to: &str| {
        format!(
            "From: Bob <{BOB}>\r\nTo: <{to}>\r\nDate: Wed, 02 Dec 2026 11:00:00 +0000\r\n\
             Message-ID: <{}@outside.example>\r\n",
            to.len()
        )
    };
    let plain = format!(
        "{}Subject: plain one 3131\r\nContent-Type: text/plain\r\n\r\nplain words 3131\r\n",
        head(ALICE)
    );
    let to_alice = pgp_mime(
        &head(ALICE),
        &seal(
            &bob,
            BOB,
            ALICE,
            b"Content-Type: text/plain; protected-headers=\"v1\"\r\nSubject: secret subject 3232\r\n\r\nsecret words 3232\r\n",
        ),
    );
    let to_carol = pgp_mime(
        &head(CAROL),
        &seal(
            &bob,
            BOB,
            CAROL,
            b"Content-Type: text/plain\r\n\r\nfor carol 3333\r\n",
        ),
    );
    let signed_part = b"Content-Type: text/plain\r\n\r\nsigned words 3434\r\n";
    let sig = bob.piped(
        &["--armor", "--detach-sign", "--local-user", BOB],
        signed_part,
    );
    assert!(sig.status.success());
    let signed = format!(
        "{}Subject: signed 3434\r\nMIME-Version: 1.0\r\nContent-Type: multipart/signed; \
         micalg=pgp-sha512; protocol=\"application/pgp-signature\"; boundary=\"s-1\"\r\n\r\n\
         --s-1\r\n{}\r\n--s-1\r\nContent-Type: application/pgp-signature\r\n\r\n{}\r\n--s-1--\r\n",
        head(ALICE),
        String::from_utf8_lossy(signed_part).trim_end(),
        String::from_utf8_lossy(&sig.stdout)
            .replace('\n', "\r\n")
            .trim_end()
    );
    let b64 = |m: &[u8]| base64::engine::general_purpose::STANDARD.encode(m);
    let steps: Vec<Value> = [plain.as_bytes(), &to_alice, &to_carol, signed.as_bytes()]
        .iter()
        .map(|m| json!({ "op": "append", "message": b64(m) }))
        .collect();
    let r = imap(&dovecot.imap_addr(), &Value::Array(steps));
    assert!(r[2..].iter().all(|s| s["status"] == "OK"), "{r:?}");
}
