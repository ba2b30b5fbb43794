//! sotto behind a real Postfix, with the recipes shipped in `deploy/postfix/`
//! applied as they are (only the ports changed to free ones on 127.0.0.1):
//!
//! - after-queue LMTP content filter: swaks → Postfix → sotto (LMTP) →
//!   Postfix's re-injection listener → aiosmtpd sink, which holds PGP/MIME
//!   that GnuPG decrypts; with sotto down Postfix keeps the mail deferred,
//!   and delivers it once sotto is back and the queue is flushed; a message
//!   near Postfix's size limit still fits once encrypted; recipients with
//!   different treatments (key / no key) are split, the later one waiting
//!   for Postfix's next queue run;
//! - before-queue `smtpd_proxy_filter`: sotto's answers reach the sending
//!   client itself (550 5.7.1 for a recipient without a key, 4xx with sotto
//!   down), nothing unfiltered is queued;
//! - smarthost: Postfix's `relayhost` is sotto, which relays with implicit
//!   TLS and AUTH (the shipped `smarthost/sotto.toml`) to the sink;
//! - a local user with identities on, through the after-queue recipe: her
//!   Autocrypt header and her signature reach the sink.
//!
//! Each test runs its own Postfix (`postfix -c DIR start`) with its own
//! configuration, queue and data directories in a tempdir, and stops it at
//! the end, also when an assertion fails (then the maillog is printed): the
//! harness is `tests/common/postfix.rs`.

mod common;

use std::path::Path;
use std::time::Duration;

use common::pgp::{Gpg, armored_part};
use common::postfix::{Postfix, recipe, subst};
use common::{Sink, Stored, eventually, free_port, gateway, swaks};
use sotto::config::Config;
use sotto::serve::Running;

/// Checks that `m` is PGP/MIME from alice to bob that GnuPG decrypts to an
/// entity containing `body` and the real Subject, and that `body` is not
/// readable outside.
fn assert_encrypted(gpg: &Gpg, m: &Stored, body: &str) {
    assert_eq!(m.from, "alice@example.com");
    assert_eq!(m.rcpts, vec!["bob@example.org".to_string()]);
    let outer = String::from_utf8_lossy(&m.data);
    let head = outer.split("\r\n\r\n").next().unwrap().to_ascii_lowercase();
    assert!(
        head.contains("content-type: multipart/encrypted"),
        "not PGP/MIME:\n{outer}"
    );
    assert!(
        !outer.contains(body),
        "the body is readable outside:\n{outer}"
    );
    let inner = gpg.decrypt(&armored_part(&m.data));
    let inner = String::from_utf8_lossy(&inner);
    assert!(
        inner.contains(body),
        "decrypted to something else:\n{inner}"
    );
    assert!(
        inner.contains("Subject: quarterly figures"),
        "the real Subject is not inside:\n{inner}"
    );
}

async fn send(pf: &Postfix, to: &str, body: &str) -> (bool, String) {
    swaks(
        pf.public,
        &[
            "--from",
            "alice@example.com",
            "--to",
            to,
            "--header",
            "Subject: quarterly figures",
            "--body",
            body,
        ],
    )
    .await
}

/// A key for bob@example.org in a key directory.
fn bob() -> Gpg {
    let gpg = Gpg::new();
    gpg.generate("bob@example.org", true, "1y", None);
    gpg.export("bob@example.org", "bob.asc");
    gpg
}

/// Keys from `gpg`'s directory, and a policy requiring encryption for
/// everybody; the policy directory lives as long as the returned guard.
#[must_use]
fn crypt(cfg: &mut Config, gpg: &Gpg) -> tempfile::TempDir {
    cfg.keys.dir = Some(gpg.keys.clone());
    let dir = common::policy(cfg, "[defaults]\nencrypt = \"required\"\n");
    assert!(cfg.validate().is_empty(), "{:?}", cfg.validate());
    dir
}

async fn stop(gw: Running) {
    gw.shutdown();
    tokio::time::timeout(Duration::from_secs(30), gw.wait())
        .await
        .expect("sotto stops within 30s");
}

/// The relayhost that delivers to `sink`.
fn relay_to(sink: &Sink) -> String {
    format!("[127.0.0.1]:{}", sink.addr.rsplit(':').next().unwrap())
}

/// Postfix with the after-queue recipe: clients on `public`, the content
/// filter sotto's LMTP `lmtp`, the re-injection listener `reinject`, the
/// final delivery to `sink`; `main_more` is added to main.cf.
fn after_queue(public: u16, lmtp: u16, reinject: u16, sink: &Sink, main_more: &str) -> Postfix {
    let main_extra = subst(
        &recipe("after-queue/main.cf"),
        "lmtp:[127.0.0.1]:10024",
        &format!("lmtp:[127.0.0.1]:{lmtp}"),
    );
    let master_extra = format!(
        "127.0.0.1:{public} inet n - n - - smtpd\n{}",
        subst(
            &recipe("after-queue/master.cf"),
            "127.0.0.1:10026 inet",
            &format!("127.0.0.1:{reinject} inet"),
        )
    );
    Postfix::start(
        Some(&relay_to(sink)),
        &format!("{main_extra}\n{main_more}"),
        &master_extra,
        public,
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn after_queue_lmtp_filter_encrypts_and_postfix_keeps_mail_while_sotto_is_down() {
    let gpg = bob();
    let sink = Sink::start(&[]);
    let (public, reinject) = (free_port(), free_port());

    // sotto as the recipe expects it: LMTP in, relaying to the re-injection
    // listener; SMTP not needed here.
    let mut cfg = common::config(&format!("127.0.0.1:{reinject}"));
    cfg.smtp.listen = String::new();
    let _policy = crypt(&mut cfg, &gpg);
    let gw = gateway(&cfg).await;
    let lmtp = gw.lmtp.unwrap();

    let pf = after_queue(public, lmtp.port(), reinject, &sink, "");

    // 1. Through Postfix, sotto and Postfix again to the sink, encrypted.
    let (ok, out) = send(&pf, "bob@example.org", "first-secret-body-5d1c").await;
    assert!(ok, "Postfix refused the message:\n{out}");
    let delivered = eventually(60, || sink.messages().len() == 1 && pf.queue().is_empty()).await;
    assert!(
        delivered,
        "not delivered within 60s: sink holds {}, queue: {:?}",
        sink.messages().len(),
        pf.queue()
    );
    let m = &sink.messages()[0];
    assert_encrypted(&gpg, m, "first-secret-body-5d1c");
    // Both Postfix hops left their trace outside the encryption.
    let received = String::from_utf8_lossy(&m.data)
        .split("\r\n\r\n")
        .next()
        .unwrap()
        .matches("\r\nReceived: ")
        .count()
        + usize::from(m.data.starts_with(b"Received: "));
    assert!(
        received >= 2,
        "expected two Received fields, got {received}"
    );

    // 2. sotto down: Postfix accepts, keeps the message deferred, sends
    // nothing on.
    stop(gw).await;
    assert!(
        tokio::net::TcpStream::connect(lmtp).await.is_err(),
        "sotto still listens on {lmtp}"
    );
    let (ok, out) = send(&pf, "bob@example.org", "second-secret-body-88e0").await;
    assert!(ok, "Postfix refused the message:\n{out}");
    let deferred = eventually(60, || {
        let q = pf.queue();
        q.len() == 1 && q[0]["queue_name"] == "deferred"
    })
    .await;
    let q = pf.queue();
    assert!(deferred, "expected one deferred message, queue: {q:?}");
    let reason = q[0]["recipients"][0]["delay_reason"]
        .as_str()
        .unwrap_or_default();
    assert!(
        reason.contains(&lmtp.port().to_string()),
        "deferred for another reason: {reason}"
    );
    assert_eq!(sink.messages().len(), 1, "nothing may pass without sotto");

    // 3. sotto back on the same port; the flushed queue delivers, encrypted.
    let mut again = cfg.clone();
    again.lmtp.listen = lmtp.to_string();
    let gw = gateway(&again).await;
    pf.flush();
    let delivered = eventually(60, || sink.messages().len() == 2 && pf.queue().is_empty()).await;
    assert!(
        delivered,
        "not delivered after the flush within 60s: sink holds {}, queue: {:?}",
        sink.messages().len(),
        pf.queue()
    );
    assert_encrypted(&gpg, &sink.messages()[1], "second-secret-body-88e0");
    pf.assert_no_warnings();
    stop(gw).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn before_queue_proxy_filter_answers_the_sending_client() {
    let gpg = bob();
    let sink = Sink::start(&[]);
    let (public, afterfilter) = (free_port(), free_port());
    let mut cfg = common::config(&format!("127.0.0.1:{afterfilter}"));
    cfg.lmtp.listen = String::new();
    let _policy = crypt(&mut cfg, &gpg);
    let gw = gateway(&cfg).await;
    let smtp = gw.smtp.unwrap();

    assert!(
        recipe("before-queue/main.cf")
            .lines()
            .all(|l| l.trim().is_empty() || l.starts_with('#')),
        "before-queue/main.cf is expected to hold comments only"
    );
    let mut master_extra = recipe("before-queue/master.cf");
    for (from, to) in [
        ("\nsmtp      inet", format!("\n127.0.0.1:{public} inet")),
        (
            "smtpd_proxy_filter=127.0.0.1:10025",
            format!("smtpd_proxy_filter={smtp}"),
        ),
        (
            "127.0.0.1:10026 inet",
            format!("127.0.0.1:{afterfilter} inet"),
        ),
    ] {
        master_extra = subst(&master_extra, from, &to);
    }
    let pf = Postfix::start(Some(&relay_to(&sink)), "", &master_extra, public);

    let (ok, out) = send(&pf, "bob@example.org", "proxied-secret-body-31aa").await;
    assert!(ok, "refused:\n{out}");
    let delivered = eventually(60, || sink.messages().len() == 1 && pf.queue().is_empty()).await;
    assert!(
        delivered,
        "not delivered within 60s: sink holds {}, queue: {:?}",
        sink.messages().len(),
        pf.queue()
    );
    assert_encrypted(&gpg, &sink.messages()[0], "proxied-secret-body-31aa");

    // No key under "required": the sending client hears sotto's refusal; no
    // bounce, nothing queued.
    let (ok, out) = send(&pf, "nokey@example.org", "never-in-clear-0b7e").await;
    assert!(!ok, "accepted a recipient without a key:\n{out}");
    assert!(out.contains("550 5.7.1"), "{out}");
    assert!(pf.queue().is_empty(), "queued: {:?}", pf.queue());

    // sotto down: the client gets a temporary failure and keeps the message.
    stop(gw).await;
    let (ok, out) = send(&pf, "bob@example.org", "kept-by-the-client-c2f9").await;
    assert!(!ok, "accepted without sotto:\n{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("<** ") && l[4..].starts_with('4')),
        "expected a 4xx:\n{out}"
    );
    assert!(pf.queue().is_empty(), "queued: {:?}", pf.queue());
    assert_eq!(sink.messages().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn smarthost_relayhost_through_sotto_with_upstream_tls_and_auth() {
    let gpg = bob();
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let pki = tempfile::tempdir().unwrap();
    let (cert, key) = (pki.path().join("cert.pem"), pki.path().join("key.pem"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.key_pair.serialize_pem()).unwrap();
    let sink = Sink::start(&[
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
        "--implicit-tls",
        "--auth",
        "relay@example.com:change me",
    ]);

    // The shipped smarthost configuration, its directories replaced (from
    // the environment, as an admin could) and pointed at the sink.
    let policy = tempfile::tempdir().unwrap();
    std::fs::write(
        policy.path().join("00-required.toml"),
        "[defaults]\nencrypt = \"required\"\n",
    )
    .unwrap();
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/postfix/smarthost/sotto.toml");
    let env = [
        ("SOTTO_KEYS__DIR", gpg.keys.display().to_string()),
        ("SOTTO_POLICY__DIR", policy.path().display().to_string()),
    ]
    .map(|(k, v)| (k.to_string(), v));
    let mut cfg =
        Config::load(Some(&shipped), env).unwrap_or_else(|e| panic!("{}: {e}", shipped.display()));
    assert_eq!(cfg.upstream.tls, sotto::config::UpstreamTls::Tls);
    assert!(cfg.upstream.auth.is_some());
    cfg.smtp.listen = "127.0.0.1:0".into();
    cfg.admin.listen = "127.0.0.1:0".into();
    cfg.upstream.address = sink.addr.clone();
    cfg.upstream.tls_ca = Some(cert.clone());
    cfg.upstream.tls_name = Some("localhost".into());
    cfg.keys.sources = vec![sotto::config::KeySource::Dir];
    assert!(cfg.validate().is_empty(), "{:?}", cfg.validate());
    let gw = gateway(&cfg).await;
    let smtp = gw.smtp.unwrap();

    let public = free_port();
    let main_extra = subst(
        &recipe("smarthost/main.cf"),
        "relayhost = [127.0.0.1]:10025",
        &format!("relayhost = [127.0.0.1]:{}", smtp.port()),
    );
    let master_extra = format!("127.0.0.1:{public} inet n - n - - smtpd\n");
    let pf = Postfix::start(None, &main_extra, &master_extra, public);

    let (ok, out) = send(&pf, "bob@example.org", "smarthost-secret-body-e412").await;
    assert!(ok, "refused:\n{out}");
    let delivered = eventually(60, || sink.messages().len() == 1 && pf.queue().is_empty()).await;
    assert!(
        delivered,
        "not delivered within 60s: sink holds {}, queue: {:?}",
        sink.messages().len(),
        pf.queue()
    );
    assert_encrypted(&gpg, &sink.messages()[0], "smarthost-secret-body-e412");
    pf.assert_no_warnings();
    stop(gw).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn after_queue_reinjection_takes_the_larger_encrypted_message() {
    // A message just under Postfix's size limit grows by the ASCII armour;
    // the recipe's re-injection listener must still take it.
    let gpg = bob();
    let sink = Sink::start(&[]);
    let (public, reinject) = (free_port(), free_port());
    let mut cfg = common::config(&format!("127.0.0.1:{reinject}"));
    cfg.smtp.listen = String::new();
    let _policy = crypt(&mut cfg, &gpg);
    let gw = gateway(&cfg).await;
    let limit = 40_000;
    let pf = after_queue(
        public,
        gw.lmtp.unwrap().port(),
        reinject,
        &sink,
        &format!("message_size_limit = {limit}\n"),
    );
    let mut body: String = (0..)
        .map(|i| format!("line {i} of a long message, close to the size limit\n"))
        .take_while({
            let mut n = 0;
            move |l: &String| {
                n += l.len() + 1;
                n < limit - 4_000
            }
        })
        .collect();
    body.push_str("large-secret-body-end-4c01");
    let (ok, out) = send(&pf, "bob@example.org", &body).await;
    assert!(ok, "Postfix refused the message:\n{out}");
    let delivered = eventually(60, || sink.messages().len() == 1 && pf.queue().is_empty()).await;
    assert!(
        delivered,
        "not delivered within 60s: sink holds {}, queue: {:?}",
        sink.messages().len(),
        pf.queue()
    );
    let m = &sink.messages()[0];
    assert!(
        m.data.len() > limit,
        "the encrypted message ({} bytes) was expected to exceed {limit}",
        m.data.len()
    );
    assert_encrypted(&gpg, m, "large-secret-body-end-4c01");
    pf.assert_no_warnings();
    stop(gw).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn after_queue_recipients_with_different_treatment_are_delivered_at_once() {
    // With "if-key", bob (key) is encrypted and carol (none) relayed as is.
    // Over LMTP each recipient gets its own reply, so sotto delivers each
    // treatment in its own upstream transaction: nothing waits for a
    // second queue run.
    let gpg = bob();
    let sink = Sink::start(&[]);
    let (public, reinject) = (free_port(), free_port());
    let mut cfg = common::config(&format!("127.0.0.1:{reinject}"));
    cfg.smtp.listen = String::new();
    cfg.keys.dir = Some(gpg.keys.clone());
    let _policy = common::policy(&mut cfg, "[defaults]\nencrypt = \"if-key\"\n");
    let gw = gateway(&cfg).await;
    let pf = after_queue(public, gw.lmtp.unwrap().port(), reinject, &sink, "");

    let (ok, out) = send(&pf, "bob@example.org,carol@example.org", "mixed-body-9a7d").await;
    assert!(ok, "Postfix refused the message:\n{out}");
    let delivered = eventually(60, || sink.messages().len() == 2 && pf.queue().is_empty()).await;
    assert!(
        delivered,
        "expected both recipients delivered without deferral: sink holds {}, queue: {:?}",
        sink.messages().len(),
        pf.queue()
    );
    let mut rcpts: Vec<String> = sink
        .messages()
        .iter()
        .flat_map(|m| m.rcpts.clone())
        .collect();
    rcpts.sort();
    assert_eq!(rcpts, ["bob@example.org", "carol@example.org"]);
    for m in sink.messages() {
        let text = String::from_utf8_lossy(&m.data).into_owned();
        if m.rcpts == ["bob@example.org"] {
            assert_encrypted(&gpg, &m, "mixed-body-9a7d");
        } else {
            assert!(text.contains("mixed-body-9a7d"), "carol's copy:\n{text}");
        }
    }
    pf.assert_no_warnings();
    stop(gw).await;
}

/// A local user's mail out through Postfix (the after-queue recipe) and
/// sotto with identities: it reaches the sink encrypted to bob, with
/// alice's Autocrypt header, signed by her identity (GnuPG verifies it with
/// the key from that header).
#[tokio::test(flavor = "multi_thread")]
async fn a_local_users_mail_through_postfix_carries_her_key_and_signature() {
    let gpg = bob();
    let sink = Sink::start(&[]);
    let (public, reinject) = (free_port(), free_port());
    let state = tempfile::tempdir().unwrap();
    let secret = state.path().join("store.secret");
    std::fs::write(&secret, "postfix identities passphrase\n").unwrap();
    let mut cfg = common::config(&format!("127.0.0.1:{reinject}"));
    cfg.smtp.listen = String::new();
    cfg.keys.dir = Some(gpg.keys.clone());
    cfg.store.url = Some(sotto::store::sqlite_url(&state.path().join("sotto.db")));
    cfg.store.secret_file = Some(secret);
    cfg.identities.domains = vec!["example.com".into()];
    cfg.identities.wkd_listen = String::new();
    let _policy = common::policy(
        &mut cfg,
        "[defaults]\nencrypt = \"required\"\nsign = \"sender\"\n",
    );
    let gw = gateway(&cfg).await;
    let pf = after_queue(public, gw.lmtp.unwrap().port(), reinject, &sink, "");

    let (ok, out) = send(&pf, "bob@example.org", "signed-secret-body-41aa").await;
    assert!(ok, "Postfix refused the message:\n{out}");
    let delivered = eventually(60, || sink.messages().len() == 1 && pf.queue().is_empty()).await;
    assert!(delivered, "not delivered: queue {:?}", pf.queue());
    let m = &sink.messages()[0];
    let headers = common::header_values(&m.data, "Autocrypt");
    assert_eq!(headers.len(), 1, "{}", String::from_utf8_lossy(&m.data));
    let header = sotto::openpgp::autocrypt::parse(&headers[0], false).expect("Level 1 header");
    assert_eq!(header.addr, "alice@example.com");
    // bob learns alice's key from the header (gpg refuses a signature it
    // cannot check), then reads the message.
    gpg.import(&header.keydata);
    assert_encrypted(&gpg, m, "signed-secret-body-41aa");
    let alice = header.cert().unwrap().fingerprint().to_hex();
    let (_, status) = gpg.decrypt_status(&armored_part(&m.data));
    assert!(
        status.contains(&format!("[GNUPG:] VALIDSIG {alice}")),
        "signed by alice's identity: {status}"
    );
    stop(gw).await;
}
