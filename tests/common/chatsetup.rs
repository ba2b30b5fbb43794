//! sotto in front of a test Prosody with chat encryption on, as the chat
//! tests and the XMPP benchmark run it: both XMPP listeners (STARTTLS and
//! direct TLS) on 127.0.0.1:0 with a self-signed certificate for the
//! Prosody's domain, the Prosody as upstream, local users' keys in a
//! tempdir under a passphrase, and one policy file.
//!
//! Included beside `common` (`#[path = "common/chatsetup.rs"] mod
//! chatsetup;`), which it uses as `crate::common`. Reach it with `rawxmpp`
//! (trusting [`ChatGateway::ca`]) or the slixmpp client
//! (`XmppClient::cafile`).
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;

use sotto::config::Config;
use sotto::serve::Running;
use tempfile::TempDir;

use crate::common::prosody::Prosody;

#[path = "postgres.rs"]
pub mod postgres;

/// The passphrase of the local users' keys at rest.
pub const PASSPHRASE: &str = "chat keys passphrase for the tests";

/// A running sotto with chat encryption, and its files.
pub struct ChatGateway {
    pub running: Running,
    /// The certificate sotto serves (self-signed): trust it as the CA.
    pub ca: PathBuf,
    /// `[store] url`, and the passphrase file (`xmpp.user_keys_secret`).
    pub store_url: String,
    pub user_keys_secret: PathBuf,
    /// Where helpers write files for the peers (e.g. exported keys).
    pub scratch: PathBuf,
    _dirs: Vec<TempDir>,
    _postgres: Option<postgres::Postgres>,
}

impl ChatGateway {
    /// Starts sotto for `prosody`'s domain with the policy file `policy`;
    /// `tune` may change the configuration last.
    pub async fn start(prosody: &Prosody, policy: &str, tune: impl FnOnce(&mut Config)) -> Self {
        let domain = prosody.domain.clone();
        let ck = rcgen::generate_simple_self_signed(vec![domain.clone()]).expect("certificate");
        let dir = tempfile::tempdir().expect("tempdir");
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        std::fs::write(&cert, ck.cert.pem()).expect("write cert");
        std::fs::write(&key, ck.key_pair.serialize_pem()).expect("write key");
        let secret = dir.path().join("user-keys.secret");
        std::fs::write(&secret, format!("{PASSPHRASE}\n")).expect("write secret");
        let postgres = (std::env::var("SOTTO_TEST_STORE").as_deref() == Ok("postgres"))
            .then(postgres::Postgres::start);
        let store_url = match &postgres {
            Some(pg) => pg.database(),
            None => sotto::store::sqlite_url(&dir.path().join("sotto.db")),
        };
        let scratch = dir.path().join("scratch");
        std::fs::create_dir(&scratch).expect("mkdir scratch");
        let keys_dir = dir.path().join("keys");
        std::fs::create_dir(&keys_dir).expect("mkdir keys");

        let mut cfg = crate::common::config("127.0.0.1:1");
        cfg.xmpp.listen = "127.0.0.1:0".into();
        cfg.xmpp.listen_tls = "127.0.0.1:0".into();
        cfg.xmpp.upstream = prosody.addr();
        cfg.xmpp.domain = domain;
        cfg.xmpp.tls_cert = Some(cert.clone());
        cfg.xmpp.tls_key = Some(key);
        cfg.store.url = Some(store_url.clone());
        cfg.xmpp.user_keys_secret = Some(secret.clone());
        cfg.keys.dir = Some(keys_dir);
        let policy_dir = crate::common::policy(&mut cfg, policy);
        tune(&mut cfg);
        // `tune` may have pointed it at another store (a shared one).
        let store_url = cfg.store.url.clone().unwrap_or(store_url);
        let running = crate::common::gateway(&cfg).await;
        ChatGateway {
            running,
            ca: cert,
            store_url,
            user_keys_secret: secret,
            scratch,
            _dirs: vec![dir, policy_dir],
            _postgres: postgres,
        }
    }

    /// The STARTTLS listener.
    pub fn starttls_addr(&self) -> SocketAddr {
        self.running.xmpp.expect("xmpp.listen is on")
    }

    /// The direct TLS (XEP-0368) listener.
    pub fn direct_tls_addr(&self) -> SocketAddr {
        self.running.xmpp_tls.expect("xmpp.listen_tls is on")
    }
}

impl ChatGateway {
    /// The stored identity of `jid` (its secret parts passphrase-protected),
    /// read from the store by a separate connection; `None` if it has none.
    pub fn stored_key(&self, jid: &str) -> Option<Vec<u8>> {
        let jid = jid.to_string();
        self.read_store(move |store| {
            Box::pin(async move {
                let row = store.identity(&jid).await.expect("read the store");
                row.map(|r| r.tsk)
            })
        })
    }

    /// The correspondents' keys the store learned for `address`.
    pub fn learned_keys(&self, address: &str) -> Vec<sotto::store::LearnedKey> {
        let address = address.to_string();
        self.read_store(move |store| {
            Box::pin(async move { store.learned_keys(&address).await.expect("read the store") })
        })
    }

    /// Runs `read` on the store, opened by a separate connection on a
    /// thread of its own.
    fn read_store<T: Send + 'static>(
        &self,
        read: impl FnOnce(
            sotto::store::Store,
        ) -> std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>
        + Send
        + 'static,
    ) -> T {
        let url = self.store_url.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                let store = sotto::store::Store::open(&sotto::store::Options::new(url))
                    .await
                    .expect("open the store");
                let out = read(store.clone()).await;
                store.close().await;
                out
            })
        })
        .join()
        .expect("store reader")
    }
}
