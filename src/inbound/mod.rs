//! The inbound path: mail arriving for the organisation's users, between
//! the MTA (Postfix's LMTP client) and the mailbox server's LMTP (Dovecot).
//! A target in front of [`crate::relay::Lmtp`]: it learns correspondents'
//! Autocrypt keys, opens PGP/MIME and inline PGP addressed to a local
//! recipient's identity (made once the mailbox server accepted the RCPT),
//! verifies the signature against the sender's known keys, shows the
//! protected header fields, and records what it did in an
//! `X-Sotto-Inbound` field that it strips from everything arriving. What
//! it cannot open is delivered as it came. Each recipient's reply is the
//! mailbox server's; plaintext exists only in memory.

mod learn;
pub mod message;
pub mod preview;

use std::sync::Arc;

use sequoia_openpgp::Cert;
use sequoia_openpgp::policy::StandardPolicy;

use crate::envelope::{MailFrom, domain_of};
use crate::keys::KeyStore;
use crate::openpgp::identities::{Identities, IdentityError, IdentityKey, Uses};
use crate::openpgp::open::{OpenError, Opening, Sender, Verdict, open};
use crate::openpgp::pgpmime;
use crate::policy::{Channel, Policies, StoreMode};
use crate::relay::{Target, Transaction};
use crate::reply::Reply;
use message::Sealed;

/// What the inbound path needs.
pub struct Inbound<T: Target> {
    inner: T,
    identities: Arc<Identities>,
    keys: KeyStore,
    domains: Vec<String>,
    max_bytes: usize,
    policy: StandardPolicy<'static>,
    /// Make recipients' identities (serve), or only use existing ones (a
    /// preview).
    create: bool,
    /// The policy files: `store = "encrypted"` per recipient.
    policies: Arc<Policies>,
}

impl<T: Target> Inbound<T> {
    /// In front of `inner` (the mailbox server), for the local `domains`;
    /// decrypted content larger than `max_bytes` is not opened; `policies`
    /// say what each recipient's mailbox keeps (`store`).
    pub fn new(
        inner: T,
        identities: Arc<Identities>,
        keys: KeyStore,
        domains: &[String],
        max_bytes: usize,
        policies: Arc<Policies>,
    ) -> Arc<Self> {
        Arc::new(Inbound {
            inner,
            identities,
            keys,
            domains: domains.iter().map(|d| d.to_ascii_lowercase()).collect(),
            max_bytes,
            policy: StandardPolicy::new(),
            create: true,
            policies,
        })
    }

    /// Like [`Inbound::new`], making no identity and changing nothing in
    /// the store but what is learned (for `sotto transform --inbound`).
    pub fn preview(
        inner: T,
        identities: Arc<Identities>,
        keys: KeyStore,
        domains: &[String],
        max_bytes: usize,
        policies: Arc<Policies>,
    ) -> Arc<Self> {
        let mut me = Self::new(inner, identities, keys, domains, max_bytes, policies);
        if let Some(m) = Arc::get_mut(&mut me) {
            m.create = false;
        }
        me
    }

    /// `rcpt`'s identity: made on first need by serve, only an existing
    /// one in a preview; `Ok(None)` when there is none to use.
    async fn identity(&self, rcpt: &str) -> Result<Option<Arc<IdentityKey>>, IdentityError> {
        if !self.create {
            return self.identities.existing(rcpt).await;
        }
        match self.identities.get_or_create_for(rcpt, Uses::Mail).await {
            Ok(key) => Ok(Some(key)),
            Err(IdentityError::OwnKey(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn is_local(&self, address: &str) -> bool {
        self.domains.contains(&domain_of(address))
    }

    /// Whether the policy wants `rcpt`'s mailbox to hold only ciphertext.
    fn store_encrypted(&self, from: &str, rcpt: &str) -> bool {
        // A local recipient has an identity: a rule on `to_has_key` sees
        // that.
        self.policies
            .current()
            .decide(Channel::Smtp, from, rcpt, Some(true))
            .is_ok_and(|d| d.treatment.store == StoreMode::Encrypted)
    }
}

/// The inbound path as a listener's target (cheap to clone).
pub struct InboundTarget<T: Target>(pub Arc<Inbound<T>>);

impl<T: Target> Clone for InboundTarget<T> {
    fn clone(&self) -> Self {
        InboundTarget(self.0.clone())
    }
}

impl<T: Target> Target for InboundTarget<T> {
    type Tx = InboundTx<T>;

    async fn begin(&self, from: &MailFrom) -> Result<Self::Tx, Reply> {
        let tx = self.0.inner.begin(from).await?;
        Ok(InboundTx {
            inbound: self.0.clone(),
            tx,
            from: from.clone(),
            rcpts: Vec::new(),
        })
    }
}

/// One transaction on the inbound path.
pub struct InboundTx<T: Target> {
    inbound: Arc<Inbound<T>>,
    tx: T::Tx,
    from: MailFrom,
    /// Recipients the mailbox server accepted, in order.
    rcpts: Vec<String>,
}

/// What one recipient gets: the message as it came, another one, or a
/// temporary refusal.
type Copy = Result<Option<Vec<u8>>, Reply>;

impl<T: Target> Transaction for InboundTx<T> {
    async fn add_rcpt(&mut self, rcpt: &str) -> Reply {
        let reply = self.tx.add_rcpt(rcpt).await;
        if reply.is_positive() {
            let rcpt = rcpt.to_ascii_lowercase();
            // The mailbox exists: its identity is made now (so it can be
            // published before anyone writes encrypted), never for an
            // address the mailbox server refused. A failure here is only
            // logged; opening a message asks again.
            if self.inbound.is_local(&rcpt)
                && let Err(e) = self.inbound.identity(&rcpt).await
            {
                tracing::warn!(
                    event = "inbound",
                    result = "identity_failed",
                    error = e.kind()
                );
            }
            self.rcpts.push(rcpt);
        }
        reply
    }

    async fn commit(self, message: Vec<u8>) -> Reply {
        let n = self.rcpts.len();
        let replies = self.commit_each(message, n).await;
        Reply::combined(
            &replies,
            Reply::new(451, "4.3.0", "Internal error: no recipient"),
        )
    }

    async fn commit_each(self, message: Vec<u8>, rcpts: usize) -> Vec<Reply> {
        let InboundTx {
            inbound,
            tx,
            from,
            rcpts: list,
        } = self;
        let message = message::strip_record(&message).unwrap_or(message);
        let facts = learn::read(&message);
        let sender_certs = learn::learn(&inbound, &facts).await;
        let copies = match message::sealed(&message) {
            None => vec![Ok(None); list.len()],
            Some(sealed) => {
                let mut copies = Vec::with_capacity(list.len());
                for rcpt in &list {
                    copies.push(
                        open_for(&inbound, &message, &sealed, rcpt, &facts, &sender_certs).await,
                    );
                }
                copies
            }
        };
        let mut copies = copies;
        for (copy, rcpt) in copies.iter_mut().zip(&list) {
            if inbound.is_local(rcpt) && inbound.store_encrypted(&from.address, rcpt) {
                *copy = at_rest(&inbound, rcpt, std::mem::replace(copy, Ok(None)), &message).await;
            }
        }
        if copies.iter().all(|c| matches!(c, Ok(None))) {
            return tx.commit_each(message, rcpts).await;
        }
        // Every recipient gets the same copy (one recipient, the usual
        // case): the transaction already open delivers it.
        if let Some(Ok(Some(first))) = copies.first()
            && copies
                .iter()
                .all(|c| matches!(c, Ok(Some(x)) if x == first))
        {
            let first = first.clone();
            return tx.commit_each(first, rcpts).await;
        }
        tx.abort().await;
        deliver_apart(&inbound, &from, &list, copies, message).await
    }

    async fn abort(self) {
        self.tx.abort().await;
    }
}

/// Delivers each distinct copy in a transaction of its own, to the
/// recipients that get it; the replies in recipient order.
async fn deliver_apart<T: Target>(
    inbound: &Inbound<T>,
    from: &MailFrom,
    rcpts: &[String],
    copies: Vec<Copy>,
    original: Vec<u8>,
) -> Vec<Reply> {
    let mut replies: Vec<Option<Reply>> = vec![None; rcpts.len()];
    let mut groups: Vec<(Vec<u8>, Vec<usize>)> = Vec::new();
    for (i, copy) in copies.into_iter().enumerate() {
        match copy {
            Err(reply) => replies[i] = Some(reply),
            Ok(content) => {
                let content = content.unwrap_or_else(|| original.clone());
                match groups.iter_mut().find(|(c, _)| *c == content) {
                    Some((_, members)) => members.push(i),
                    None => groups.push((content, vec![i])),
                }
            }
        }
    }
    for (content, members) in groups {
        let mut tx = match inbound.inner.begin(from).await {
            Ok(tx) => tx,
            Err(reply) => {
                for &i in &members {
                    replies[i] = Some(reply.clone());
                }
                continue;
            }
        };
        let mut accepted = Vec::new();
        for &i in &members {
            let reply = tx.add_rcpt(&rcpts[i]).await;
            if reply.is_positive() {
                accepted.push(i);
            } else {
                replies[i] = Some(reply);
            }
        }
        if accepted.is_empty() {
            tx.abort().await;
            continue;
        }
        let got = tx.commit_each(content, accepted.len()).await;
        for (i, reply) in accepted.into_iter().zip(got) {
            replies[i] = Some(reply);
        }
    }
    replies
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Reply::new(451, "4.3.0", "Internal error: no reply")))
        .collect()
}

/// `copy` (`None`: `original`) as `rcpt`'s mailbox keeps it under
/// `store = "encrypted"`: encrypted to their identity, whole, unless it
/// already is encrypted. Never delivered in clear instead: without the
/// identity, a temporary refusal. A user who brought their own key is
/// delivered to as before (sotto cannot sign a mailbox copy for them).
async fn at_rest<T: Target>(inbound: &Inbound<T>, rcpt: &str, copy: Copy, original: &[u8]) -> Copy {
    let content = match copy {
        Err(reply) => return Err(reply),
        Ok(c) => c.unwrap_or_else(|| original.to_vec()),
    };
    let refuse = |why: &str| {
        tracing::warn!(event = "inbound", result = "store_encrypted_failed", error = %why);
        Err(Reply::new(
            451,
            "4.3.0",
            "The recipient's mailbox keeps only encrypted mail and sotto cannot encrypt it right now; try again later",
        ))
    };
    let key = match inbound.identity(rcpt).await {
        Ok(Some(key)) => key,
        Ok(None) => return Ok(Some(content)),
        Err(e) => return refuse(e.kind()),
    };
    match pgpmime::mailbox_copy(content, key.secret(), &inbound.policy) {
        Ok(sealed) => {
            metrics::counter!("sotto_inbound_total", "result" => "stored_encrypted").increment(1);
            Ok(Some(sealed))
        }
        Err(e) => refuse(&e.to_string()),
    }
}

/// The copy `rcpt` gets of a sealed message: opened with their identity
/// if they are local and it is addressed to it; `Ok(None)` (as it came)
/// otherwise.
async fn open_for<T: Target>(
    inbound: &Inbound<T>,
    message: &[u8],
    sealed: &Sealed,
    rcpt: &str,
    facts: &learn::Facts,
    sender_certs: &[Cert],
) -> Copy {
    if !inbound.is_local(rcpt) {
        return Ok(None);
    }
    let key = match inbound.identity(rcpt).await {
        Ok(Some(key)) => key,
        Ok(None) => return Ok(None),
        Err(e) if e.is_transient() => {
            tracing::warn!(
                event = "inbound",
                result = "identity_unavailable",
                error = e.kind()
            );
            return Err(Reply::new(
                451,
                "4.3.0",
                "The recipient's key is not available right now; try again later",
            ));
        }
        Err(e) => {
            tracing::warn!(
                event = "inbound",
                result = "identity_failed",
                error = e.kind()
            );
            return Ok(None);
        }
    };
    let armored = match sealed {
        Sealed::PgpMime(a) => a.as_slice(),
        Sealed::Inline { armored, .. } => armored.as_slice(),
    };
    let sender = facts.from.clone().unwrap_or_default();
    let opening = Opening {
        tsk: key.secret(),
        sender: Sender::Mail(&sender),
        sender_certs,
        max_bytes: inbound.max_bytes,
        policy: &inbound.policy,
    };
    let opened = match open(armored, &opening) {
        Ok(o) => o,
        Err(e) => {
            let why = match e {
                OpenError::NotForUs => "not_for_recipient",
                OpenError::NotEncrypted => "not_encrypted",
                OpenError::TooLarge { .. } => "too_large",
                OpenError::OpenPgp(_) => "openpgp_error",
            };
            tracing::info!(event = "inbound", result = why);
            metrics::counter!("sotto_inbound_total", "result" => why).increment(1);
            return Ok(None);
        }
    };
    let signature = match &opened.verdict {
        Verdict::Good(fpr) => format!("good; signer={}", fpr.to_hex()),
        Verdict::Bad => "bad".into(),
        Verdict::Mismatch => "not-the-sender's".into(),
        Verdict::UnknownSigner => "unknown-key".into(),
        Verdict::Unsigned => "none".into(),
    };
    let record = format!(
        "decrypted; key={}; signature={signature}",
        key.fingerprint().to_hex()
    );
    let result = match &opened.verdict {
        Verdict::Good(_) => "decrypted_signed",
        Verdict::Bad | Verdict::Mismatch => "decrypted_bad_signature",
        _ => "decrypted",
    };
    tracing::info!(event = "inbound", result);
    metrics::counter!("sotto_inbound_total", "result" => result).increment(1);
    let out = match sealed {
        Sealed::PgpMime(_) => message::delivered_pgp_mime(message, &opened.plaintext, &record),
        Sealed::Inline { before, after, .. } => {
            message::delivered_inline(message, before, &opened.plaintext, after, &record)
        }
    };
    learn::gossip(inbound, facts, &opened.plaintext).await;
    Ok(Some(out))
}
