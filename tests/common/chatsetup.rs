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

/// The passphrase of the local users' keys at rest.
pub const PASSPHRASE: &str = "chat keys passphrase for the tests";

/// A running sotto with chat encryption, and its files.
pub struct ChatGateway {
    pub running: Running,
    /// The certificate sotto serves (self-signed): trust it as the CA.
    pub ca: PathBuf,
    /// `[xmpp] user_keys` and `user_keys_secret`.
    pub user_keys: PathBuf,
    pub user_keys_secret: PathBuf,
    _dirs: Vec<TempDir>,
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
        let user_keys = dir.path().join("user-keys");
        let keys_dir = dir.path().join("keys");
        std::fs::create_dir(&keys_dir).expect("mkdir keys");

        let mut cfg = crate::common::config("127.0.0.1:1");
        cfg.xmpp.listen = "127.0.0.1:0".into();
        cfg.xmpp.listen_tls = "127.0.0.1:0".into();
        cfg.xmpp.upstream = prosody.addr();
        cfg.xmpp.domain = domain;
        cfg.xmpp.tls_cert = Some(cert.clone());
        cfg.xmpp.tls_key = Some(key);
        cfg.xmpp.user_keys = Some(user_keys.clone());
        cfg.xmpp.user_keys_secret = Some(secret.clone());
        cfg.keys.dir = Some(keys_dir);
        let policy_dir = crate::common::policy(&mut cfg, policy);
        tune(&mut cfg);
        let running = crate::common::gateway(&cfg).await;
        ChatGateway {
            running,
            ca: cert,
            user_keys,
            user_keys_secret: secret,
            _dirs: vec![dir, policy_dir],
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
