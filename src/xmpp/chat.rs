//! The chat pipeline, the XMPP side's counterpart of `crate::transform`:
//! what a user's outgoing `<message>` gets under policy channel `xmpp`
//! (encryption with OpenPGP for XMPP or XEP-0027, or its links rewritten,
//! and XEP-0334 hints), with the same policy, key store and link code as
//! mail. Incoming encrypted messages are opened in [`super::inbound`].
//!
//! Which messages: `type` chat or normal (or none), with a `<body>`, to a
//! user JID, not already end-to-end encrypted (OX, XEP-0027, OMEMO).
//! Groupchat, headline and error messages, and everything else, pass as
//! they came.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use sequoia_openpgp::Cert;
use sequoia_openpgp::policy::StandardPolicy;

use super::element::{Element, Node, serialize};
use super::identity::{bare_jid, domain};
use super::ox::{self, CLIENT_NS, HINTS_NS, LEGACY_NS, OX_NS};
use super::service::{Service, ServiceError};
use super::xhtml;
use crate::config::KeySource;
use crate::keys::web::Fetched;
use crate::keys::{Found, Lookup, PepFetcher, SourceError, XMPP_SCHEME};
use crate::openpgp::identities::Identities;
use crate::policy::{Channel, LinkMode, Policies, XmppFormat};
use crate::transform::{Crypt, Effective, Outcome, RecipientKeys, decide};

/// OMEMO (legacy and current): end-to-end already, left alone.
const OMEMO_NS: [&str; 2] = ["eu.siacs.conversations.axolotl", "urn:xmpp:omemo:2"];
/// XHTML-IM, and out-of-band data: content that moves into the payload.
pub const XHTML_IM_NS: &str = "http://jabber.org/protocol/xhtml-im";
pub const OOB_NS: &str = "jabber:x:oob";

/// What happens to one outgoing stanza.
#[derive(Debug)]
pub enum Verdict {
    /// Forward the bytes as they came.
    Pass,
    /// Forward these bytes (the changed stanza, serialized) instead.
    Replace(Vec<u8>),
    /// Do not send it; the client gets a stanza error.
    Refuse(Refusal),
}

/// Why a message was not sent: an RFC 6120 stanza error.
#[derive(Debug, Clone)]
pub struct Refusal {
    /// `cancel`, `modify`…
    pub kind: &'static str,
    /// The defined condition (`policy-violation`, `not-acceptable`…).
    pub condition: &'static str,
    /// Human-readable, for the user.
    pub text: String,
}

/// The chat pipeline, shared by every XMPP session.
pub struct Chat {
    /// The served domain: its users are local (their keys are sotto's).
    pub domain: String,
    policies: Arc<Policies>,
    crypt: Arc<Crypt>,
    users: Option<Arc<Identities>>,
    /// sotto's own connection to the server, for PEP.
    service: Option<Service>,
    /// Users whose key this process has published to their PEP nodes.
    published: Mutex<HashSet<String>>,
    /// Largest stanza the server takes: an encrypted message must fit.
    max_stanza: usize,
    policy: StandardPolicy<'static>,
    /// How long a live OX message is remembered against its replay.
    replay_ttl: std::time::Duration,
}

impl Chat {
    pub fn new(
        domain: String,
        policies: Arc<Policies>,
        crypt: Arc<Crypt>,
        users: Option<Arc<Identities>>,
        service: Option<Service>,
        max_stanza: usize,
    ) -> Self {
        if let Some(service) = &service {
            crypt.keys.set_pep(Arc::new(PepKeys(service.clone())));
        }
        Chat {
            domain: domain.to_lowercase(),
            policies,
            crypt,
            users,
            service,
            published: Mutex::new(HashSet::new()),
            max_stanza,
            policy: StandardPolicy::new(),
            replay_ttl: std::time::Duration::from_secs(30 * 24 * 3600),
        }
    }

    /// Remember live OX messages for `ttl` against their replay
    /// (`store.replay_ttl`).
    pub fn with_replay_ttl(mut self, ttl: std::time::Duration) -> Self {
        self.replay_ttl = ttl;
        self
    }

    pub fn replay_ttl(&self) -> std::time::Duration {
        self.replay_ttl
    }

    pub fn users(&self) -> Option<&Arc<Identities>> {
        self.users.as_ref()
    }

    pub fn keys(&self) -> &crate::keys::KeyStore {
        &self.crypt.keys
    }

    pub fn max_stanza(&self) -> usize {
        self.max_stanza
    }

    /// A local user is on a stream: make their key if they have none (in
    /// the background) and, with a service connection, publish it to their
    /// PEP nodes (once per process, never over the user's stream).
    pub fn on_login(self: &Arc<Self>, bare: &str) {
        let Some(users) = self.users.clone() else {
            return;
        };
        let service = self.service.clone();
        if !self.is_local(bare) {
            return;
        }
        {
            let mut done = self.published.lock().unwrap_or_else(|p| p.into_inner());
            if !done.insert(bare.to_string()) {
                return;
            }
        }
        let chat = self.clone();
        let bare = bare.to_string();
        tokio::spawn(async move {
            let result = match (users.get_or_create(&bare).await, service) {
                (Ok(_), None) => return,
                (Ok(key), Some(service)) => service
                    .publish_key(&bare, key.cert())
                    .await
                    .map_err(|e| e.to_string()),
                (Err(e), _) => Err(e.to_string()),
            };
            match result {
                Ok(()) => {
                    metrics::counter!("sotto_xmpp_key_publications_total", "result" => "ok")
                        .increment(1);
                    tracing::info!(event = "xmpp_key_published", domain = %domain(&bare));
                }
                Err(why) => {
                    metrics::counter!("sotto_xmpp_key_publications_total", "result" => "failed")
                        .increment(1);
                    tracing::warn!(event = "xmpp_key_publish_failed", error = %why);
                    // Try again at the user's next login.
                    chat.published
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(&bare);
                }
            }
        });
    }

    /// Until `shutdown`: when a local user's identity is revoked (by any
    /// process: `sotto identities revoke`), publishes the revoked key on
    /// their PEP key node and drops it from their metadata list, so
    /// correspondents' clients learn of the revocation where they found the
    /// key. Their next login publishes the key that replaces it.
    pub fn publish_revocations(self: &Arc<Self>, shutdown: tokio_util::sync::CancellationToken) {
        let (Some(users), Some(service)) = (self.users.clone(), self.service.clone()) else {
            return;
        };
        let mut changes = users.changes();
        let chat = self.clone();
        tokio::spawn(async move {
            use sequoia_openpgp::types::RevocationStatus;
            use tokio::sync::broadcast::error::RecvError;
            loop {
                let address = tokio::select! {
                    () = shutdown.cancelled() => return,
                    r = changes.recv() => match r {
                        Ok(a) => a,
                        Err(RecvError::Lagged(_)) => continue,
                        Err(RecvError::Closed) => return,
                    },
                };
                if !chat.is_local(&address) {
                    continue;
                }
                let Ok(Some(cert)) = users.published(&address).await else {
                    continue;
                };
                let revoked = matches!(
                    cert.revocation_status(&chat.policy, None),
                    RevocationStatus::Revoked(_)
                );
                if !revoked {
                    continue;
                }
                chat.published
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&address);
                match service.publish_revocation(&address, &cert).await {
                    Ok(()) => {
                        metrics::counter!("sotto_xmpp_key_publications_total", "result" => "revocation")
                            .increment(1);
                        tracing::info!(event = "xmpp_key_revocation_published", domain = %domain(&address));
                    }
                    Err(e) => tracing::warn!(event = "xmpp_key_revocation_failed", error = %e),
                }
            }
        });
    }

    /// Whether `jid` (bare) is a user of the served domain.
    pub fn is_local(&self, jid: &str) -> bool {
        is_local_to(jid, &self.domain)
    }

    /// The treatment of a message `from` (the authenticated bare JID) on
    /// its way out. `msg` is the parsed stanza, `size` its size on the wire
    /// (which decides whether it is encrypted on this thread).
    pub async fn outgoing(&self, msg: Element, from: &str, size: usize) -> Verdict {
        if !wants(&msg) {
            return Verdict::Pass;
        }
        // No `to`: a note to the user's own account (RFC 6120 10.3).
        let to = msg.attr("to").map_or_else(|| from.to_string(), bare_jid);
        let started = std::time::Instant::now();
        let verdict = self.treat(msg, from, &to, size).await;
        metrics::histogram!("sotto_xmpp_message_duration_seconds")
            .record(started.elapsed().as_secs_f64());
        verdict
    }

    async fn treat(&self, msg: Element, from: &str, to: &str, size: usize) -> Verdict {
        let to = to.to_string();
        let policy = self.policies.current();
        let keys = ChatKeys { chat: self };
        let (effective, cert) = match decide(&policy, &keys, Channel::Xmpp, from, &to).await {
            Outcome::Accept {
                effective, cert, ..
            } => (effective, cert),
            Outcome::Refuse { reply, .. } => {
                count("refused");
                tracing::info!(event = "xmpp_message", action = "refused", to_domain = %domain(&to));
                return Verdict::Refuse(Refusal {
                    kind: "cancel",
                    condition: "policy-violation",
                    text: reply.text.clone(),
                });
            }
        };
        let verdict = match cert {
            Some(cert) if effective.encrypt => {
                self.encrypt(msg, size, from, &to, cert, &effective).await
            }
            _ => rewrite_only(msg, &effective, self),
        };
        if let Verdict::Replace(bytes) = &verdict {
            let size = bytes.len();
            if size > self.max_stanza {
                count("refused");
                tracing::info!(
                    event = "xmpp_message",
                    action = "too_large",
                    size,
                    limit = self.max_stanza
                );
                return Verdict::Refuse(Refusal {
                    kind: "modify",
                    condition: "not-acceptable",
                    text: format!(
                        "The message is too large once encrypted ({size} bytes; the server takes {} at most): send it in parts.",
                        self.max_stanza
                    ),
                });
            }
        }
        verdict
    }

    /// Encrypts `msg` for `to` (key `cert`) and the sender, signed with the
    /// sender's sotto-held key.
    async fn encrypt(
        &self,
        mut msg: Element,
        size: usize,
        from: &str,
        to: &str,
        cert: Arc<Cert>,
        effective: &Effective,
    ) -> Verdict {
        let Some(users) = &self.users else {
            // decide() never finds a key without user keys; be safe anyway.
            return refuse_internal("chat encryption is not configured (xmpp.user_keys)");
        };
        let sender = match users.get_or_create(from).await {
            Ok(k) => k,
            Err(e) => {
                tracing::warn!(event = "xmpp_user_key_failed", error = %e);
                return refuse_internal("the sender's key is not available");
            }
        };
        let mut payload = take_content(&mut msg);
        if effective.links != LinkMode::Keep {
            let rw = self.crypt.link_rewriter(effective.links);
            for el in &mut payload {
                xhtml::rewrite_element(el, &rw);
            }
            payload.retain(|e| !(e.name == "x" && e.ns == OOB_NS && e.children.is_empty()));
        }
        let format = effective.xmpp_format;
        let recipients = vec![(*cert).clone(), (**sender.cert()).clone()];
        let signer = sender.secret().clone();
        let to_jid = to.to_string();
        let policy = self.policy.clone();
        let sealed = crate::transform::cpu(size, move || match format {
            XmppFormat::Ox => {
                let sc = ox::Signcrypt::new(vec![to_jid], payload);
                ox::encrypt(&sc, &recipients, &signer, &policy).map(ox::message_children)
            }
            XmppFormat::Legacy => {
                let body: String = payload
                    .iter()
                    .find(|e| e.name == "body" && e.ns == CLIENT_NS)
                    .map(Element::text)
                    .unwrap_or_default();
                ox::legacy_encrypt(&body, &recipients, Some(&signer), &policy)
                    .map(ox::legacy_message_children)
            }
        })
        .await;
        let children = match sealed {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                tracing::warn!(event = "xmpp_encrypt_failed", error = %e);
                return refuse_internal("encryption failed");
            }
            Err(_) => return refuse_internal("encryption failed"),
        };
        for c in children {
            // The message keeps its own <store/> choice when it says no-store.
            if c.ns == HINTS_NS && !effective.store {
                continue;
            }
            msg.children.push(Node::Element(c));
        }
        if !effective.store {
            add_no_store(&mut msg);
        }
        count(match format {
            XmppFormat::Ox => "encrypted",
            XmppFormat::Legacy => "encrypted_legacy",
        });
        tracing::info!(event = "xmpp_message", action = "encrypted", format = ?format, to_domain = %domain(to));
        Verdict::Replace(serialize(&msg))
    }
}

/// Messages the pipeline treats (see the module docs).
pub fn wants(msg: &Element) -> bool {
    if msg.name != "message" || msg.ns != CLIENT_NS {
        return false;
    }
    // Groupchat, headline and error messages pass as they are; any other
    // type (unknown ones are "normal" to servers) is treated.
    if matches!(msg.attr("type"), Some("groupchat" | "headline" | "error")) {
        return false;
    }
    msg.elements().any(is_content)
        && !msg.elements().any(|e| {
            let encrypted = (e.name == "openpgp" && e.ns == OX_NS)
                || (e.name == "x" && e.ns == LEGACY_NS)
                || (e.name == "encrypted" && OMEMO_NS.contains(&e.ns.as_str()));
            // An empty one is not end-to-end encryption, only a way out.
            encrypted && (!e.text().trim().is_empty() || e.elements().next().is_some())
        })
}

/// Links rewritten (body, XHTML-IM, OOB) and hints, without encryption.
fn rewrite_only(mut msg: Element, effective: &Effective, chat: &Chat) -> Verdict {
    let mut changed = false;
    if effective.links != LinkMode::Keep {
        let rw = chat.crypt.link_rewriter(effective.links);
        for node in &mut msg.children {
            if let Node::Element(el) = node
                && is_content(el)
            {
                changed |= xhtml::rewrite_element(el, &rw);
            }
        }
        // A stripped OOB link leaves nothing to show.
        let before = msg.children.len();
        msg.children.retain(|n| {
            !matches!(n, Node::Element(e) if e.name == "x" && e.ns == OOB_NS && !e.elements().any(|u| u.name == "url"))
        });
        changed |= msg.children.len() != before;
        if changed {
            metrics::counter!("sotto_link_rewrites_total", "mode" => effective.links.name())
                .increment(1);
        }
    }
    if !effective.store {
        add_no_store(&mut msg);
        changed = true;
    }
    count(if changed { "rewritten" } else { "unchanged" });
    if changed {
        Verdict::Replace(serialize(&msg))
    } else {
        Verdict::Pass
    }
}

/// Body, subject, XHTML-IM and OOB: what is readable content.
pub fn is_content(el: &Element) -> bool {
    (el.ns == CLIENT_NS && (el.name == "body" || el.name == "subject"))
        || (el.name == "html" && el.ns == XHTML_IM_NS)
        || (el.name == "x" && el.ns == OOB_NS)
        || CONTENT_NS.contains(&el.ns.as_str())
}

/// Extensions that carry what a user wrote or shared: references and
/// media sharing (XEP-0372, XEP-0385), stateless file sharing (XEP-0447).
const CONTENT_NS: [&str; 3] = ["urn:xmpp:reference:0", "urn:xmpp:sims:1", "urn:xmpp:sfs:0"];

/// Moves the readable content out of `msg` (for the encrypted payload).
fn take_content(msg: &mut Element) -> Vec<Element> {
    let mut taken = Vec::new();
    msg.children.retain(|n| match n {
        Node::Element(e) if is_content(e) => {
            taken.push(e.clone());
            false
        }
        _ => true,
    });
    taken
}

/// XEP-0334 `<no-store/>` and `<no-copy/>`, replacing any `<store/>`.
fn add_no_store(msg: &mut Element) {
    msg.children
        .retain(|n| !matches!(n, Node::Element(e) if e.ns == HINTS_NS));
    for hint in ["no-store", "no-copy"] {
        msg.children
            .push(Node::Element(Element::new(hint, HINTS_NS)));
    }
}

fn refuse_internal(why: &str) -> Verdict {
    count("refused");
    Verdict::Refuse(Refusal {
        kind: "wait",
        condition: "internal-server-error",
        text: format!("The message was not sent: {why}."),
    })
}

fn count(action: &'static str) {
    metrics::counter!("sotto_xmpp_messages_total", "direction" => "out", "action" => action)
        .increment(1);
}

/// Whether the bare JID `jid` is a user of `domain`.
fn is_local_to(jid: &str, domain: &str) -> bool {
    jid.rsplit_once('@')
        .is_some_and(|(_, d)| d.eq_ignore_ascii_case(domain))
}

/// Recipient keys for chat: a local user's sotto-held key (made on first
/// need), else the key store (dir, WKD, VKS, PEP) by `xmpp:` address.
pub struct ChatKeys<'a> {
    pub chat: &'a Chat,
}

impl RecipientKeys for ChatKeys<'_> {
    async fn lookup(&self, rcpt: &str) -> Lookup {
        let c = self.chat;
        chat_lookup(&c.crypt.keys, c.users.as_deref(), &c.domain, rcpt, true).await
    }
}

/// What [`PreviewKeys`] reports for a local user without a key yet (whom
/// `serve` would give one).
pub const NO_KEY_YET: &str =
    "a local user without a key yet: sotto makes one on their first message";

/// The same lookups as [`ChatKeys`] for `sotto explain`, which only reads:
/// a local user without a key yet is reported, not given one.
pub struct PreviewKeys {
    pub keys: crate::keys::KeyStore,
    pub users: Option<Identities>,
    pub domain: String,
}

impl RecipientKeys for PreviewKeys {
    async fn lookup(&self, rcpt: &str) -> Lookup {
        chat_lookup(&self.keys, self.users.as_ref(), &self.domain, rcpt, false).await
    }
}

async fn chat_lookup(
    keys: &crate::keys::KeyStore,
    users: Option<&Identities>,
    domain: &str,
    rcpt: &str,
    create: bool,
) -> Lookup {
    let failed = |error: String| Lookup {
        errors: vec![SourceError {
            source: KeySource::Sotto,
            error,
        }],
        ..Lookup::default()
    };
    let Some(users) = users else {
        return failed("chat encryption needs xmpp.user_keys in the configuration".into());
    };
    if !is_local_to(rcpt, domain) {
        return keys.lookup(&format!("{XMPP_SCHEME}{rcpt}")).await;
    }
    let found = |cert: Arc<Cert>| Lookup {
        found: Some(Found {
            cert,
            source: KeySource::Sotto,
        }),
        ..Lookup::default()
    };
    if create {
        return match users.get_or_create(rcpt).await {
            Ok(key) => found(key.cert().clone()),
            Err(e) => failed(e.to_string()),
        };
    }
    match users.public_cert(rcpt).await {
        Ok(Some(cert)) => found(Arc::new(cert)),
        Ok(None) => failed(NO_KEY_YET.into()),
        Err(e) => failed(e.to_string()),
    }
}

/// The key store's PEP source: recipients' keys fetched over the service
/// connection.
struct PepKeys(Service);

impl PepFetcher for PepKeys {
    fn fetch<'a>(
        &'a self,
        bare_jid: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Fetched> + Send + 'a>> {
        Box::pin(async move {
            match self.0.fetch_keys(bare_jid).await {
                Ok(certs) => Fetched::Certs(certs),
                Err(ServiceError::NoKeys) => Fetched::NotFound,
                Err(e) => Fetched::Failed(e.to_string()),
            }
        })
    }
}
