//! The pipeline as a target (maddy's model): decide each recipient's
//! treatment at RCPT time — policy, and the key lookup it needs — transform
//! the message at commit (encrypt), then hand it to the inner target (the
//! relay). Where encryption is due and fails, the message is refused, never
//! sent in clear.

mod decide;
mod sender;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use sequoia_openpgp::Cert;
use sequoia_openpgp::policy::StandardPolicy;

pub use decide::{Effective, Outcome, RecipientKeys, decide};

use crate::config::LinksConfig;
use crate::config::{Config, SubjectMode};
use crate::envelope::{MailFrom, domain_of};
use crate::keys::{KeyStore, dir::read_certs};
use crate::links::token::TokenKeys;
use crate::links::{LinkRewriter, Redirect};
use crate::openpgp::identities::Identities;
use crate::openpgp::pgpmime::{self, Options};
use crate::openpgp::seal::signing_keypair;
use crate::policy::{Channel, LinkMode, Policies, PolicySet, SignMode};
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
    #[error("redirect.keys: {0}")]
    TokenKeys(String),
}

/// Keys and key material the pipeline uses.
pub struct Crypt {
    pub keys: KeyStore,
    /// The organisation's signing key (secret), for `sign = true`.
    pub signer: Option<Cert>,
    archives: Mutex<HashMap<PathBuf, Cert>>,
    policy: StandardPolicy<'static>,
    links: LinksConfig,
    /// Where `redirect` links point and the keys that seal them.
    pub redirect: Redirect,
    /// The organisation's identities, with `identities.domains`.
    pub identities: Option<Arc<Identities>>,
    /// `identities.domains`, lower-case.
    local_domains: Vec<String>,
}

impl Crypt {
    pub fn from_config(cfg: &Config, keys: KeyStore) -> Result<Self, SetupError> {
        let signer = match &cfg.crypt.signing_key {
            Some(p) => {
                let err = |why: String| SetupError::Key {
                    key: "crypt.signing_key",
                    path: p.display().to_string(),
                    why,
                };
                let tsk = read_certs(p)
                    .map_err(|e| err(e.to_string()))?
                    .into_iter()
                    .next()
                    .ok_or_else(|| err("no key".into()))?;
                signing_keypair(&tsk, &StandardPolicy::new()).map_err(|e| err(e.to_string()))?;
                Some(tsk)
            }
            None => None,
        };
        let token_keys = TokenKeys::from_config(&cfg.redirect)
            .map_err(|e| SetupError::TokenKeys(e.to_string()))?;
        Ok(Crypt {
            keys,
            signer,
            archives: Mutex::new(HashMap::new()),
            policy: StandardPolicy::new(),
            links: cfg.links.clone(),
            redirect: Redirect::from_config(&cfg.redirect, Arc::new(token_keys)),
            identities: None,
            local_domains: Vec::new(),
        })
    }

    /// Uses `identities` for senders at `domains` (their `Autocrypt:`
    /// header, `sign = "sender"`).
    pub fn with_identities(
        mut self,
        identities: Option<Arc<Identities>>,
        domains: Vec<String>,
    ) -> Self {
        self.identities = identities;
        self.local_domains = domains.iter().map(|d| d.to_ascii_lowercase()).collect();
        self
    }

    /// Whether `address` is at one of `identities.domains`.
    pub fn is_local(&self, address: &str) -> bool {
        let domain = domain_of(address);
        self.local_domains.contains(&domain)
    }

    /// A link rewriter for `mode`. Without a public redirector URL there
    /// is no redirect a reader could open, so `redirect` links are removed
    /// (`serve` and `check` refuse such a policy; this covers a reload).
    pub fn link_rewriter(&self, mode: LinkMode) -> LinkRewriter {
        let redirect = (!self.redirect.public_url.is_empty()).then(|| self.redirect.clone());
        LinkRewriter::new(mode, &self.links, redirect)
    }

    /// The archive certificate at `path`, read once.
    fn archive(&self, path: &Path) -> Result<Cert, String> {
        let mut cache = self.archives.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = cache.get(path) {
            return Ok(c.clone());
        }
        let cert = read_certs(path)
            .map_err(|e| e.to_string())?
            .into_iter()
            .next()
            .ok_or("no certificate")?;
        cache.insert(path.to_path_buf(), cert.clone());
        Ok(cert)
    }
}

/// The pipeline in front of a target.
#[derive(Clone)]
pub struct Gateway<T: Target> {
    inner: T,
    crypt: Arc<Crypt>,
    policies: Arc<Policies>,
}

impl<T: Target> Gateway<T> {
    pub fn new(inner: T, crypt: Crypt, policies: Arc<Policies>) -> Self {
        Gateway {
            inner,
            crypt: Arc::new(crypt),
            policies,
        }
    }

    /// The keys and link rewriters, for the chat side to share.
    pub fn crypt(&self) -> Arc<Crypt> {
        self.crypt.clone()
    }

    /// The policy set (reloaded on change), for the chat side to share.
    pub fn policies(&self) -> Arc<Policies> {
        self.policies.clone()
    }
}

impl<T: Target> Target for Gateway<T> {
    type Tx = GatewayTx<T>;

    async fn begin(&self, from: &MailFrom) -> Result<Self::Tx, Reply> {
        let inner = self.inner.begin(from).await?;
        Ok(GatewayTx {
            target: self.inner.clone(),
            crypt: self.crypt.clone(),
            // The transaction keeps the set it started with, whatever reloads.
            policy: self.policies.current(),
            mail: from.clone(),
            groups: vec![Group::new(inner)],
            order: Vec::new(),
        })
    }
}

/// Recipients that share one treatment, and the inner transaction that
/// delivers their one message.
struct Group<X> {
    inner: X,
    /// Set by the group's first recipient.
    effective: Option<Effective>,
    certs: Vec<Cert>,
    rcpts: Vec<String>,
}

impl<X> Group<X> {
    fn new(inner: X) -> Self {
        Group {
            inner,
            effective: None,
            certs: Vec::new(),
            rcpts: Vec::new(),
        }
    }
}

/// A transaction through the pipeline. Over SMTP it is one group: a
/// recipient with another treatment gets `452 4.5.3`. Over LMTP, where each
/// recipient gets its own reply, each treatment gets its own group and its
/// own inner transaction, so mixed recipients need no second round.
pub struct GatewayTx<T: Target> {
    target: T,
    crypt: Arc<Crypt>,
    policy: Arc<PolicySet>,
    mail: MailFrom,
    groups: Vec<Group<T::Tx>>,
    /// The group of each accepted recipient, in order.
    order: Vec<usize>,
}

impl<T: Target> Transaction for GatewayTx<T> {
    async fn add_rcpt(&mut self, rcpt: &str) -> Reply {
        let (effective, cert) = match decide(
            &self.policy,
            &self.crypt.keys,
            Channel::Smtp,
            &self.mail.address,
            rcpt,
        )
        .await
        {
            Outcome::Accept {
                effective, cert, ..
            } => (effective, cert),
            Outcome::Refuse { reply, .. } => {
                tracing::info!(event = "rcpt_refused", domain = %domain_of(rcpt), reason = "policy");
                metrics::counter!("sotto_recipients_refused_total").increment(1);
                return reply;
            }
        };
        let fits = |g: &Group<T::Tx>| g.effective.as_ref().is_none_or(|e| *e == effective);
        // (Computed apart: the borrow must end before the await below.)
        let found = self.groups.iter().position(fits);
        let idx = match found {
            Some(i) => i,
            None if self.mail.per_recipient => match self.target.begin(&self.mail).await {
                Ok(tx) => {
                    self.groups.push(Group::new(tx));
                    self.groups.len() - 1
                }
                Err(reply) => return reply,
            },
            None => {
                return Reply::new(
                    452,
                    "4.5.3",
                    "This recipient needs a different treatment than the others; send it in a separate transaction",
                );
            }
        };
        let group = &mut self.groups[idx];
        let reply = group.inner.add_rcpt(rcpt).await;
        if reply.is_positive() {
            group.effective = Some(effective);
            group.certs.extend(cert.map(|c| (*c).clone()));
            group.rcpts.push(rcpt.to_lowercase());
            self.order.push(idx);
        }
        reply
    }

    async fn commit(self, message: Vec<u8>) -> Reply {
        let mut groups = self.groups.into_iter();
        let Some(first) = groups.next() else {
            return Reply::new(451, "4.3.0", "Internal error: no transaction");
        };
        for rest in groups {
            rest.inner.abort().await;
        }
        deliver(&self.crypt, first, &self.mail.address, message).await
    }

    async fn commit_each(self, message: Vec<u8>, rcpts: usize) -> Vec<Reply> {
        let mut replies: Vec<Option<Reply>> = Vec::with_capacity(self.groups.len());
        for group in self.groups {
            if group.rcpts.is_empty() {
                group.inner.abort().await;
                replies.push(None);
            } else {
                replies.push(Some(
                    deliver(&self.crypt, group, &self.mail.address, message.clone()).await,
                ));
            }
        }
        let internal = Reply::new(
            451,
            "4.3.0",
            "Internal error: recipient without a transaction",
        );
        let out: Vec<Reply> = self
            .order
            .iter()
            .map(|&g| replies[g].clone().unwrap_or_else(|| internal.clone()))
            .collect();
        debug_assert_eq!(out.len(), rcpts);
        out
    }

    async fn abort(self) {
        for group in self.groups {
            group.inner.abort().await;
        }
    }
}

/// Transforms one group's message (links, then encryption) and commits it.
async fn deliver<X: Transaction>(
    crypt: &Arc<Crypt>,
    group: Group<X>,
    from: &str,
    message: Vec<u8>,
) -> Reply {
    let Group {
        inner,
        effective,
        mut certs,
        rcpts,
    } = group;
    // Read once here; link rewriting and encryption work on this parsed form.
    let message = crate::mail::Parsed::new(message);
    let message = match &effective {
        Some(e) if e.links != LinkMode::Keep => {
            match rewrite_links(crypt.clone(), message, e.links).await {
                Some(m) => m,
                None => {
                    inner.abort().await;
                    return Reply::new(
                        451,
                        "4.3.0",
                        "Internal error while rewriting links; the message was not sent",
                    );
                }
            }
        }
        _ => message,
    };
    let sender = match sender::identity(crypt, from).await {
        Ok(s) => s,
        Err(reply) => {
            inner.abort().await;
            return reply;
        }
    };
    let encrypting = effective.as_ref().is_some_and(|e| e.encrypt);
    let message = match (&sender, &effective) {
        (Some(key), Some(e)) => {
            // Gossip only inside encrypted mail to several recipients.
            let gossip: Vec<(String, Cert)> = if encrypting && rcpts.len() > 1 {
                rcpts.iter().cloned().zip(certs.iter().cloned()).collect()
            } else {
                Vec::new()
            };
            sender::with_autocrypt(message, from, key, e.autocrypt, &gossip, &crypt.policy)
        }
        _ => message,
    };
    let Some(effective) = effective.filter(|e| e.encrypt) else {
        return inner.commit(message.into_bytes()).await;
    };
    let started = Instant::now();
    if message.already_encrypted() {
        tracing::info!(event = "encrypt", result = "already_encrypted");
        metrics::counter!("sotto_encryptions_total", "result" => "already_encrypted").increment(1);
        return inner.commit(message.into_bytes()).await;
    }
    let hide = rcpts
        .iter()
        .any(|r| !message.info().visible_rcpts.contains(r));
    if effective.encrypt_to_sender
        && !from.is_empty()
        && let Some(found) = crypt.keys.lookup(from).await.found
    {
        certs.push((*found.cert).clone());
    }
    if let Some(path) = &effective.archive_key {
        match crypt.archive(path) {
            Ok(c) => certs.push(c),
            Err(e) => {
                tracing::warn!(event = "encrypt", result = "failed", error = %e, "archive key unreadable");
                inner.abort().await;
                return Reply::new(
                    451,
                    "4.7.0",
                    "Could not encrypt the message (archive key); it was not sent",
                );
            }
        }
    }
    if effective.sign == SignMode::Organisation && crypt.signer.is_none() {
        inner.abort().await;
        tracing::warn!(
            event = "encrypt",
            result = "failed",
            error = "sign = true but crypt.signing_key is not set"
        );
        return Reply::new(
            451,
            "4.7.0",
            "Policy asks to sign, but no signing key is configured; the message was not sent",
        );
    }
    let work = crypt.clone();
    let nkeys = certs.len();
    let result = cpu(message.bytes().len(), move || {
        let signer = match (effective.sign, &work.signer, &sender) {
            (SignMode::Organisation, Some(tsk), _) => Some(signing_keypair(tsk, &work.policy)?),
            (SignMode::Sender, _, sender) => match sender::signing_key(sender) {
                Some(key) => Some(signing_keypair(key.secret(), &work.policy)?),
                None => None,
            },
            _ => None,
        };
        let opts = Options {
            hide_recipients: hide,
            protect_subject: effective.subject == SubjectMode::Protect,
            signer,
            policy: &work.policy,
        };
        pgpmime::encrypt_split(&message.split(), &certs, opts)
    })
    .await;
    match result {
        Ok(Ok(encrypted)) => {
            metrics::counter!("sotto_encryptions_total", "result" => "ok").increment(1);
            metrics::histogram!("sotto_encryption_duration_seconds")
                .record(started.elapsed().as_secs_f64());
            tracing::info!(
                event = "encrypt",
                result = "ok",
                keys = nkeys,
                hidden_ids = hide,
                ms = started.elapsed().as_millis() as u64,
            );
            inner.commit(encrypted).await
        }
        Ok(Err(e)) => {
            tracing::warn!(event = "encrypt", result = "failed", error = %e);
            metrics::counter!("sotto_encryptions_total", "result" => "failed").increment(1);
            inner.abort().await;
            Reply::new(
                451,
                "4.7.0",
                "Could not encrypt the message; it was not sent. Try again later",
            )
        }
        Err(_) => {
            inner.abort().await;
            Reply::new(
                451,
                "4.3.0",
                "Internal error while encrypting; the message was not sent",
            )
        }
    }
}

/// Rewrites the message's links per `mode`, off the async threads; `None`
/// only if that work died. A changed message is read again (its bytes are
/// new); an unchanged one is handed on as it was read.
async fn rewrite_links(
    crypt: Arc<Crypt>,
    message: crate::mail::Parsed,
    mode: LinkMode,
) -> Option<crate::mail::Parsed> {
    let rw = crypt.link_rewriter(mode);
    let started = Instant::now();
    let work = cpu(
        message.bytes().len(),
        move || match crate::mail::rewrite::rewrite_parsed(&message, &rw) {
            Some((rewritten, report)) => (crate::mail::Parsed::new(rewritten), Some(report)),
            None => (message, None),
        },
    );
    match work.await {
        Ok((rewritten, Some(report))) => {
            metrics::counter!("sotto_link_rewrites_total", "mode" => mode.name())
                .increment(report.urls as u64);
            tracing::info!(
                event = "links",
                mode = mode.name(),
                parts = report.parts,
                urls = report.urls,
                ms = started.elapsed().as_millis() as u64,
            );
            Some(rewritten)
        }
        Ok((message, None)) => Some(message),
        Err(_) => {
            tracing::warn!(event = "links", result = "failed");
            None
        }
    }
}

/// Messages up to this size are transformed on the async thread that has
/// them: well under a millisecond of CPU (about 0.2 ms to encrypt 10 KB),
/// less than handing them to the blocking pool and back costs under load.
/// Larger ones are transformed off the async threads.
const INLINE_BYTES: usize = 32 * 1024;

/// Runs CPU work `f` on a message of `len` bytes (see `INLINE_BYTES`);
/// `Err` only if the work panicked.
pub async fn cpu<T: Send + 'static>(
    len: usize,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ()> {
    if len <= INLINE_BYTES {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|_| ())
    } else {
        tokio::task::spawn_blocking(f).await.map_err(|_| ())
    }
}
