//! The mail world of the inbound-path tests: Dovecot holding alice's
//! mailbox (alice@example.org, password `alice-secret`), an aiosmtpd sink
//! as sotto's upstream (alice's provider on the way out), sotto with
//! identities for example.org, its inbound listener in front of Dovecot's
//! LMTP and keys from `dir` and `autocrypt`, its IMAP proxy in front of
//! Dovecot's IMAP, and Postfix as the MX with the
//! shipped recipe `deploy/postfix/inbound/`. Included beside `common`
//! (`#[path = "common/mailworld.rs"] mod mailworld;`), which it uses as
//! `crate::common`.
#![allow(dead_code)]

use std::time::Duration;

use crate::common::dovecot::Dovecot;
use crate::common::postfix::{Postfix, recipe, subst};
use crate::common::{Client, Sink, config, dot_stuff, free_port, gateway, policy};

pub const ALICE: &str = "alice@example.org";
pub const ALICE_PASSWORD: &str = "alice-secret";

pub struct MailWorld {
    /// sotto's configuration (the running one).
    pub cfg: sotto::config::Config,
    pub dovecot: Dovecot,
    pub postfix: Postfix,
    pub sink: Sink,
    pub running: sotto::serve::Running,
    pub store_url: String,
    _dirs: Vec<tempfile::TempDir>,
}

impl MailWorld {
    /// Everything up, sotto with the policy file `policy_text`.
    pub async fn start(policy_text: &str) -> MailWorld {
        let dovecot = Dovecot::start();
        dovecot.add_user(ALICE, ALICE_PASSWORD);
        let sink = Sink::start(&[]);
        let state = tempfile::tempdir().unwrap();
        let secret = state.path().join("store.secret");
        std::fs::write(&secret, "mail world passphrase\n").unwrap();
        let mut cfg = config(&sink.addr);
        let store_url = sotto::store::sqlite_url(&state.path().join("sotto.db"));
        cfg.store.url = Some(store_url.clone());
        cfg.store.secret_file = Some(secret);
        cfg.identities.domains = vec!["example.org".into()];
        cfg.identities.wkd_listen = String::new();
        cfg.inbound.listen = "127.0.0.1:0".into();
        cfg.inbound.upstream = dovecot.lmtp_addr();
        // The IMAP proxy in front of the same Dovecot.
        cfg.imap.listen = "127.0.0.1:0".into();
        cfg.imap.upstream = dovecot.imap_addr();
        cfg.keys.sources = vec![
            sotto::config::KeySource::Dir,
            sotto::config::KeySource::Autocrypt,
        ];
        let p = policy(&mut cfg, policy_text);
        let running = gateway(&cfg).await;
        let inbound = running.inbound.expect("inbound listener");
        let public = free_port();
        let main = subst(
            &recipe("inbound/main.cf"),
            "127.0.0.1:10027",
            &format!("127.0.0.1:{}", inbound.port()),
        );
        let master = subst(
            &recipe("inbound/master.cf"),
            "smtp      inet",
            &format!("127.0.0.1:{public} inet"),
        );
        let postfix = Postfix::start(None, &main, &master, public);
        MailWorld {
            cfg,
            dovecot,
            postfix,
            sink,
            running,
            store_url,
            _dirs: vec![state, p],
        }
    }

    /// Hands `message` (CRLF, not dot-stuffed) to the MX, `from` to `to`.
    pub async fn mx_receives(&self, from: &str, to: &str, message: &[u8]) {
        let mut wire = dot_stuff(message);
        wire.extend_from_slice(b".\r\n");
        let mut c = Client::greeted(self.postfix.public).await;
        c.cmd("EHLO outside.example", "250").await;
        let reply = c.send_mail(from, &[to], &wire).await;
        assert!(reply.starts_with("250"), "the MX took it: {reply}");
    }

    /// alice's INBOX over IMAP once it holds `n` messages.
    pub async fn inbox(&self, n: usize) -> Vec<String> {
        for _ in 0..300 {
            if self.dovecot.messages(ALICE).len() >= n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let got = self.dovecot.fetch_all(ALICE, ALICE_PASSWORD);
        assert_eq!(
            got.len(),
            n,
            "{}\n{}",
            self.postfix.maillog(),
            self.dovecot.log()
        );
        got.iter()
            .map(|m| String::from_utf8_lossy(m).into_owned())
            .collect()
    }

    /// The state store, opened by a connection of the test's own.
    pub async fn store(&self) -> sotto::store::Store {
        sotto::store::Store::open(&sotto::store::Options::new(self.store_url.clone()))
            .await
            .expect("open the store")
    }
}

/// The `X-Sotto-Inbound` record of a delivered message, if any.
pub fn record(msg: &str) -> Option<&str> {
    msg.lines()
        .find_map(|l| l.strip_prefix("X-Sotto-Inbound: "))
}
