//! sotto's own service connection to the XMPP server, for PEP: an XEP-0114
//! component with XEP-0356 privileges (Prosody's `mod_privilege`).
//!
//! Only an account's owner may publish to its PEP nodes, so sotto publishes
//! each local user's public key (XEP-0373 §4: the key node
//! `urn:xmpp:openpgp:0:public-keys:<FPR>` and the metadata node
//! `urn:xmpp:openpgp:0:public-keys`, both access model `open`) in a
//! `<privileged_iq>` sent as that user. Fetching other users' keys is an
//! ordinary pubsub `items` get from the component's JID, which the `open`
//! access model allows.
//!
//! [`Service`] is a cheap handle; a background task (`stream`) keeps the
//! connection, reconnects with backoff, answers the server's disco#info and
//! pings, and matches iq answers to requests by id. A request made while
//! the connection is down fails at once with [`ServiceError::NotConnected`];
//! every request is bounded by [`ServiceSettings::request_timeout`].
//!
//! This file holds the handle and the requests it makes; the connection
//! task is in `stream`, the stanzas it builds and reads in `pep`, the
//! settings in `settings` and the error types in `errors`.
//!
//! This module must never touch a user's own stream (one stanza out for one
//! in stays true there), and never logs keys or users' JIDs.
//!
//! # Security
//!
//! The component secret proves to the server that this is sotto; with the
//! privilege it carries, whoever holds it can publish to every local user's
//! PEP. It is read from a file, sent only as the XEP-0114 SHA-1 digest, and
//! the connection is meant for loopback.

mod errors;
mod pep;
mod settings;
mod stream;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sequoia_openpgp::Cert;
use sequoia_openpgp::serialize::SerializeInto as _;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use super::framer::Element;

pub use errors::{ConnectError, ServiceError};
pub use pep::{KeyMetadata, METADATA_NODE, Malformed, key_node};
pub use settings::{ServiceSettings, SettingsError, component_names};

/// The connection's state, as the task publishes it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Status {
    Starting,
    Connected,
    Down(ConnectError),
}

/// What the server granted on the current connection: XEP-0356 §4.2
/// `<privilege/>` messages, one from each host that has mod_privilege and
/// lists the component, sent right after the handshake.
#[derive(Debug, Clone, Default)]
struct Grants {
    /// When the current connection was authenticated; `None` while down.
    since: Option<tokio::time::Instant>,
    /// Hosts (lower-case) whose users the component may send pubsub `set`s
    /// for.
    pubsub_set: BTreeSet<String>,
}

/// How long after connecting a missing grant may still be on its way.
const GRANT_GRACE: Duration = Duration::from_secs(2);

/// What the connection task reports to the handles.
struct Reports {
    status: watch::Sender<Status>,
    grants: watch::Sender<Grants>,
    /// The component name of the current (or last) connection.
    name: watch::Sender<String>,
}

/// A request for the connection task: an iq (id set) and where its answer
/// goes.
struct Request {
    iq: Element,
    id: String,
    reply: oneshot::Sender<Element>,
}

/// Handle on sotto's service connection; clone freely. See the
/// [module docs](self).
#[derive(Clone)]
pub struct Service {
    inner: Arc<Inner>,
}

struct Inner {
    name: watch::Receiver<String>,
    requests: mpsc::Sender<Request>,
    status: watch::Receiver<Status>,
    grants: watch::Receiver<Grants>,
    request_timeout: Duration,
    id_prefix: String,
    next_id: AtomicU64,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("jid", &self.jid())
            .field("connected", &self.is_connected())
            .finish()
    }
}

impl Service {
    /// Starts the connection task (on the current Tokio runtime) and
    /// returns at once; the task connects, and reconnects with backoff,
    /// until `shutdown` is cancelled or every handle is dropped.
    pub fn start(settings: ServiceSettings, shutdown: CancellationToken) -> Service {
        let (requests, rx) = mpsc::channel(64);
        let (status_tx, status) = watch::channel(Status::Starting);
        let (grants_tx, grants) = watch::channel(Grants::default());
        let first = settings.names.first().cloned().unwrap_or_default();
        let (name_tx, name) = watch::channel(first);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let inner = Inner {
            name,
            requests,
            status,
            grants,
            request_timeout: settings.request_timeout,
            id_prefix: format!("sotto-{:x}", nanos & 0xffff_ffff_ffff),
            next_id: AtomicU64::new(1),
        };
        let reports = Reports {
            status: status_tx,
            grants: grants_tx,
            name: name_tx,
        };
        tokio::spawn(stream::run(settings, rx, reports, shutdown));
        Service {
            inner: Arc::new(inner),
        }
    }

    /// The component JID this process connected as (while connecting
    /// first: the first name it will try).
    pub fn jid(&self) -> String {
        self.inner.name.borrow().clone()
    }

    /// Whether the connection is up and authenticated.
    pub fn is_connected(&self) -> bool {
        *self.inner.status.borrow() == Status::Connected
    }

    /// Waits up to `within` for the connection to be up. Fails with
    /// [`ServiceError::NotConnected`] carrying the last reason it is down
    /// (e.g. [`ConnectError::NotAuthorized`] for a wrong secret).
    pub async fn wait_connected(&self, within: Duration) -> Result<(), ServiceError> {
        let mut status = self.inner.status.clone();
        let up = tokio::time::timeout(within, status.wait_for(|s| *s == Status::Connected)).await;
        match up {
            Ok(Ok(_)) => Ok(()),
            _ => Err(self.not_connected()),
        }
    }

    fn not_connected(&self) -> ServiceError {
        let last = match &*self.inner.status.borrow() {
            Status::Down(e) => Some(e.clone()),
            Status::Starting | Status::Connected => None,
        };
        ServiceError::NotConnected { last }
    }

    fn new_id(&self) -> String {
        let n = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        format!("{}-{n}", self.inner.id_prefix)
    }

    /// Sends `iq` (its `id` is set here) and returns the answer, a result
    /// or an error iq; fails fast when the connection is down.
    async fn request(&self, mut iq: Element) -> Result<Element, ServiceError> {
        if !self.is_connected() {
            return Err(self.not_connected());
        }
        let id = self.new_id();
        iq.set_attr("id", id.clone());
        let (reply, answer) = oneshot::channel();
        let request = Request { iq, id, reply };
        let exchange = async {
            if self.inner.requests.send(request).await.is_err() {
                return None;
            }
            answer.await.ok()
        };
        match tokio::time::timeout(self.inner.request_timeout, exchange).await {
            Err(_) => Err(ServiceError::Timeout),
            Ok(None) => Err(self.not_connected()),
            Ok(Some(answer)) => Ok(answer),
        }
    }

    /// Whether the server granted pubsub `set` for users of `host` on this
    /// connection, waiting for the grant while it may still be on its way.
    /// Checked before sending, also because mod_privilege (2023-02) writes
    /// stray text on the stream when it refuses an iq for lack of a
    /// permission, which breaks the connection.
    async fn check_privilege(&self, host: &str) -> Result<(), ServiceError> {
        let host = host.to_ascii_lowercase();
        let mut grants = self.inner.grants.clone();
        let Some(since) = grants.borrow().since else {
            return Err(self.not_connected());
        };
        let granted = tokio::time::timeout_at(
            since + GRANT_GRACE,
            grants.wait_for(|g| g.pubsub_set.contains(&host)),
        )
        .await;
        match granted {
            Ok(Ok(_)) => Ok(()),
            _ if self.is_connected() => Err(ServiceError::NotPrivileged),
            _ => Err(self.not_connected()),
        }
    }

    /// An ordinary iq from the component: the answer if it is a result.
    async fn get(&self, to: &str, payload: Element) -> Result<Element, ServiceError> {
        // The connection task sets `from` to the name it holds.
        let iq = pep::iq("get", "", to, "", payload);
        let answer = self.request(iq).await?;
        match pep::error_condition(&answer) {
            Some(condition) => Err(ServiceError::from_condition(condition)),
            None => Ok(answer),
        }
    }

    /// A pubsub `set` sent as `user_bare` through the privilege: the
    /// forwarded answer if it is a result.
    async fn set_as(&self, user_bare: &str, pubsub: Element) -> Result<(), ServiceError> {
        let inner_id = self.new_id();
        let iq = pep::privileged_set("", user_bare, "", &inner_id, pubsub);
        let answer = self.request(iq).await?;
        if let Some(condition) = pep::error_condition(&answer) {
            return Err(ServiceError::from_condition(condition));
        }
        let forwarded = pep::unwrap_privileged(&answer)?;
        match pep::error_condition(forwarded) {
            Some(condition) => Err(ServiceError::from_condition(condition)),
            None => Ok(()),
        }
    }

    /// Publishes `cert` (its public parts only) as `user_bare`'s OpenPGP key
    /// (XEP-0373 §4.1): first the key node `…:public-keys:<FPR>` (item id
    /// the key's date), then the metadata node (item `current`) listing its
    /// fingerprint, both with access model `open`.
    ///
    /// Other fingerprints the user already lists are kept: a key the user
    /// published from a client of their own stays discoverable, and senders
    /// who encrypt to every listed key still reach sotto's. Publishing the
    /// same cert again only refreshes its date. The existing list is read
    /// first (as the component: the node is open); if that fails for
    /// another reason than not existing or not being readable, nothing is
    /// changed and that error is returned. A list that exists but is not
    /// open is never overwritten: the publication then fails (Prosody's
    /// `precondition-not-met`, which mod_privilege reports as
    /// `internal-server-error`).
    pub async fn publish_key(&self, user_bare: &str, cert: &Cert) -> Result<(), ServiceError> {
        check_bare(user_bare)?;
        if !self.is_connected() {
            return Err(self.not_connected());
        }
        let domain = user_bare.split_once('@').map_or("", |(_, d)| d);
        self.check_privilege(domain).await?;
        let fpr = cert.fingerprint().to_hex();
        if fpr.len() != 40 {
            return Err(ServiceError::Invalid("XEP-0373 lists only v4 keys"));
        }
        // A Cert serializes without secret key material (that needs a TSK).
        let bytes = cert
            .to_vec()
            .map_err(|_| ServiceError::Invalid("the certificate does not serialize"))?;
        let date = pep::cert_date(cert);
        let key = pep::publish_open(&key_node(&fpr), &date, pep::pubkey(&bytes, &date));
        self.set_as(user_bare, key).await?;

        // Prosody answers `forbidden` to non-owners for a node that does not
        // exist; a node that exists but is not open cannot be read either,
        // and then the publish below fails its `open` precondition, so
        // nothing the user listed is ever overwritten unseen.
        let listed = match self.listed_keys(user_bare).await {
            Ok(listed) => listed,
            Err(ServiceError::ItemNotFound | ServiceError::Forbidden { .. }) => Vec::new(),
            Err(e) => return Err(e),
        };
        let list = pep::merge(
            listed,
            KeyMetadata {
                fingerprint: fpr,
                date,
            },
        );
        let metadata = pep::publish_open(
            METADATA_NODE,
            pep::METADATA_ITEM,
            pep::public_keys_list(&list),
        );
        self.set_as(user_bare, metadata).await
    }

    /// Publishes `revoked` (public parts, with its revocation) on its key
    /// node as `user_bare`, and drops its fingerprint from the user's
    /// metadata list (other keys stay listed), so clients that fetched it
    /// learn it is revoked and stop encrypting to it.
    pub async fn publish_revocation(
        &self,
        user_bare: &str,
        revoked: &Cert,
    ) -> Result<(), ServiceError> {
        check_bare(user_bare)?;
        if !self.is_connected() {
            return Err(self.not_connected());
        }
        let domain = user_bare.split_once('@').map_or("", |(_, d)| d);
        self.check_privilege(domain).await?;
        let fpr = revoked.fingerprint().to_hex();
        let bytes = revoked
            .to_vec()
            .map_err(|_| ServiceError::Invalid("the certificate does not serialize"))?;
        let date = pep::xep0082(SystemTime::now());
        let key = pep::publish_open(&key_node(&fpr), &date, pep::pubkey(&bytes, &date));
        self.set_as(user_bare, key).await?;
        let listed = match self.listed_keys(user_bare).await {
            Ok(listed) => listed,
            Err(ServiceError::ItemNotFound | ServiceError::Forbidden { .. }) => return Ok(()),
            Err(e) => return Err(e),
        };
        if !listed
            .iter()
            .any(|k| k.fingerprint.eq_ignore_ascii_case(&fpr))
        {
            return Ok(());
        }
        let list: Vec<KeyMetadata> = listed
            .into_iter()
            .filter(|k| !k.fingerprint.eq_ignore_ascii_case(&fpr))
            .collect();
        let metadata = pep::publish_open(
            METADATA_NODE,
            pep::METADATA_ITEM,
            pep::public_keys_list(&list),
        );
        self.set_as(user_bare, metadata).await
    }

    /// The keys `bare` lists in its metadata node (latest item), as listed.
    /// [`ServiceError::ItemNotFound`] when there is no node or no item;
    /// Prosody answers [`ServiceError::Forbidden`] for a node that does not
    /// exist (or is not open).
    pub async fn listed_keys(&self, bare: &str) -> Result<Vec<KeyMetadata>, ServiceError> {
        check_bare(bare)?;
        let answer = self.get(bare, pep::items_query(METADATA_NODE)).await?;
        let item = pep::latest_item(&answer)?.ok_or(ServiceError::ItemNotFound)?;
        Ok(pep::parse_public_keys_list(item)?)
    }

    /// The OpenPGP certificates `bare` publishes (XEP-0373 §4.3): the
    /// metadata node, then each listed key node's latest item, each checked
    /// to hold the listed fingerprint. Not checked here: validity under a
    /// policy, user IDs (the key store's job).
    ///
    /// `Ok` always holds at least one certificate. A user who publishes no
    /// key sotto may read is [`ServiceError::NoKeys`]. Listed keys that
    /// cannot be fetched or parsed are skipped; if none is left, the first
    /// such error is returned.
    pub async fn fetch_keys(&self, bare: &str) -> Result<Vec<Cert>, ServiceError> {
        let listed = match self.listed_keys(bare).await {
            Ok(listed) if !listed.is_empty() => listed,
            Ok(_) | Err(ServiceError::ItemNotFound | ServiceError::Forbidden { .. }) => {
                return Err(ServiceError::NoKeys);
            }
            Err(e) => return Err(e),
        };
        let mut certs = Vec::new();
        let mut first_error = None;
        for key in &listed {
            let fetched = async {
                let answer = self
                    .get(bare, pep::items_query(&key_node(&key.fingerprint)))
                    .await?;
                let item = pep::latest_item(&answer)?.ok_or(ServiceError::ItemNotFound)?;
                Ok::<_, ServiceError>(pep::parse_pubkey(item, &key.fingerprint)?)
            };
            match fetched.await {
                Ok(cert) => certs.push(cert),
                Err(e) => {
                    tracing::debug!(event = "xmpp_service_key_skipped", error = %e);
                    first_error.get_or_insert(e);
                }
            }
        }
        match (certs.is_empty(), first_error) {
            (true, Some(e)) => Err(e),
            _ => Ok(certs),
        }
    }
}

/// A bare JID sotto may address: `local@domain`, no resource.
fn check_bare(jid: &str) -> Result<(), ServiceError> {
    match jid.split_once('@') {
        Some((local, domain))
            if !local.is_empty()
                && !domain.is_empty()
                && !domain.contains(['@', '/'])
                && !jid.contains(|c: char| c.is_whitespace() || c.is_control()) =>
        {
            Ok(())
        }
        _ => Err(ServiceError::Invalid("not a bare JID (local@domain)")),
    }
}

#[cfg(test)]
mod tests;
