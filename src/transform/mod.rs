//! The pipeline as a target (maddy's model): decide each recipient's
//! treatment at RCPT time (key lookup included), transform the message at
//! commit (encrypt), then hand it to the inner target (the relay).
//!
//! Until policy files exist, the treatment is the configuration's
//! `[defaults]` for every message. Where encryption is due and fails, the
//! message is refused — never sent in clear.

use std::sync::Arc;
use std::time::Instant;

use sequoia_openpgp::Cert;
use sequoia_openpgp::policy::StandardPolicy;

use crate::config::{Config, Encrypt, SubjectMode};
use crate::crypt::{self, Options};
use crate::envelope::{MailFrom, domain_of};
use crate::keys::{KeyStore, dir::read_certs};
use crate::relay::{Target, Transaction};
use crate::reply::Reply;

/// Why the pipeline could not be set up from the configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SetupError {
    #[error("{key} `{path}`: {why}")]
    Key {
        key: &'static str,
        path: String,
        why: String,
    },
}

/// What the pipeline needs besides the target: keys and how to use them.
pub struct Crypt {
    pub encrypt: Encrypt,
    pub subject: SubjectMode,
    pub encrypt_to_sender: bool,
    pub archive: Option<Cert>,
    /// The organisation's signing key (secret), when `sign = true`.
    pub signer: Option<Cert>,
    pub keys: KeyStore,
    policy: StandardPolicy<'static>,
}

impl Crypt {
    pub fn from_config(cfg: &Config, keys: KeyStore) -> Result<Self, SetupError> {
        let load = |key: &'static str, path: &std::path::Path| -> Result<Cert, SetupError> {
            let err = |why: String| SetupError::Key {
                key,
                path: path.display().to_string(),
                why,
            };
            read_certs(path)
                .map_err(|e| err(e.to_string()))?
                .into_iter()
                .next()
                .ok_or_else(|| err("no certificate".into()))
        };
        let archive = cfg
            .defaults
            .archive_key
            .as_deref()
            .map(|p| load("defaults.archive_key", p))
            .transpose()?;
        let signer = match (&cfg.crypt.signing_key, cfg.defaults.sign) {
            (Some(p), true) => {
                let tsk = load("crypt.signing_key", p)?;
                crypt::signing_keypair(&tsk, &StandardPolicy::new()).map_err(|e| {
                    SetupError::Key {
                        key: "crypt.signing_key",
                        path: p.display().to_string(),
                        why: e.to_string(),
                    }
                })?;
                Some(tsk)
            }
            _ => None,
        };
        Ok(Crypt {
            encrypt: cfg.defaults.encrypt,
            subject: cfg.defaults.subject,
            encrypt_to_sender: cfg.defaults.encrypt_to_sender,
            archive,
            signer,
            keys,
            policy: StandardPolicy::new(),
        })
    }
}

/// The pipeline in front of a target.
#[derive(Clone)]
pub struct Gateway<T: Target> {
    inner: T,
    crypt: Arc<Crypt>,
}

impl<T: Target> Gateway<T> {
    pub fn new(inner: T, crypt: Crypt) -> Self {
        Gateway {
            inner,
            crypt: Arc::new(crypt),
        }
    }
}

impl<T: Target> Target for Gateway<T> {
    type Tx = GatewayTx<T::Tx>;

    async fn begin(&self, from: &MailFrom) -> Result<Self::Tx, Reply> {
        let inner = self.inner.begin(from).await?;
        Ok(GatewayTx {
            inner,
            crypt: self.crypt.clone(),
            from: from.address.clone(),
            encrypt: None,
            certs: Vec::new(),
            rcpts: Vec::new(),
        })
    }
}

/// A transaction through the pipeline.
pub struct GatewayTx<X> {
    inner: X,
    crypt: Arc<Crypt>,
    from: String,
    /// Whether this transaction's recipients are encrypted to (set by the first).
    encrypt: Option<bool>,
    certs: Vec<Cert>,
    rcpts: Vec<String>,
}

impl<X: Transaction> Transaction for GatewayTx<X> {
    async fn add_rcpt(&mut self, rcpt: &str) -> Reply {
        let (encrypt, cert) = match self.crypt.encrypt {
            Encrypt::Never => (false, None),
            mode => {
                let lookup = self.crypt.keys.lookup(rcpt).await;
                match lookup.found {
                    Some(found) => (true, Some(found.cert)),
                    None if mode == Encrypt::Required => {
                        let why = lookup.why_none();
                        tracing::info!(event = "rcpt_refused", domain = %domain_of(rcpt), reason = "no_key");
                        return Reply::new(
                            550,
                            "5.7.1",
                            format!(
                                "Encryption required, and no usable OpenPGP key for <{rcpt}>: {why}"
                            ),
                        );
                    }
                    None => (false, None),
                }
            }
        };
        if self.encrypt.is_some_and(|e| e != encrypt) {
            return Reply::new(
                452,
                "4.5.3",
                "This recipient needs a different treatment (encrypted or not); send it in a separate transaction",
            );
        }
        let reply = self.inner.add_rcpt(rcpt).await;
        if reply.is_positive() {
            self.encrypt = Some(encrypt);
            self.certs.extend(cert.map(|c| (*c).clone()));
            self.rcpts.push(rcpt.to_lowercase());
        }
        reply
    }

    async fn commit(self, message: Vec<u8>) -> Reply {
        if self.encrypt != Some(true) {
            return self.inner.commit(message).await;
        }
        let started = Instant::now();
        let parts = crate::mail::split(&message);
        let info = crate::mail::info(parts.header);
        if crate::mail::already_encrypted(&info, parts.body) {
            tracing::info!(event = "encrypt", result = "already_encrypted");
            return self.inner.commit(message).await;
        }
        let hide = self.rcpts.iter().any(|r| !info.visible_rcpts.contains(r));
        let mut certs = self.certs;
        if self.crypt.encrypt_to_sender
            && !self.from.is_empty()
            && let Some(found) = self.crypt.keys.lookup(&self.from).await.found
        {
            certs.push((*found.cert).clone());
        }
        certs.extend(self.crypt.archive.clone());
        let crypt = self.crypt.clone();
        let nrcpts = certs.len();
        let result = tokio::task::spawn_blocking(move || {
            let signer = match &crypt.signer {
                Some(tsk) => Some(crypt::signing_keypair(tsk, &crypt.policy)?),
                None => None,
            };
            let opts = Options {
                hide_recipients: hide,
                protect_subject: crypt.subject == SubjectMode::Protect,
                signer,
                policy: &crypt.policy,
            };
            crypt::encrypt_mail(&message, &certs, opts)
        })
        .await;
        match result {
            Ok(Ok(encrypted)) => {
                tracing::info!(
                    event = "encrypt",
                    result = "ok",
                    keys = nrcpts,
                    hidden_ids = hide,
                    signed = self.crypt.signer.is_some(),
                    ms = started.elapsed().as_millis() as u64,
                );
                self.inner.commit(encrypted).await
            }
            Ok(Err(e)) => {
                tracing::warn!(event = "encrypt", result = "failed", error = %e);
                self.inner.abort().await;
                Reply::new(
                    451,
                    "4.7.0",
                    "Could not encrypt the message; it was not sent. Try again later",
                )
            }
            Err(_) => {
                self.inner.abort().await;
                Reply::new(
                    451,
                    "4.3.0",
                    "Internal error while encrypting; the message was not sent",
                )
            }
        }
    }

    async fn abort(self) {
        self.inner.abort().await
    }
}
