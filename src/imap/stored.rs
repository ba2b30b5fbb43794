//! What the mailbox holds and what the user sees: messages sealed to the
//! user's identity on their way in (APPEND), opened on their way out
//! (FETCH), and a bounded in-memory cache of opened messages so that a
//! message is decrypted once however many FETCHes ask for its parts.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use sequoia_openpgp::policy::StandardPolicy;
use sha2::{Digest as _, Sha256};

use crate::inbound::message::{Sealed, delivered_pgp_mime, sealed};
use crate::openpgp::identities::IdentityKey;
use crate::openpgp::open::{Opening, Sender, Verdict, open};
use crate::openpgp::pgpmime;

/// The message to store for `message` that a client APPENDs: encrypted to
/// the user's identity unless it already is encrypted.
pub fn seal(
    message: Vec<u8>,
    key: &IdentityKey,
    policy: &StandardPolicy<'static>,
) -> Result<Vec<u8>, crate::openpgp::seal::CryptError> {
    pgpmime::mailbox_copy(message, key.secret(), policy)
}

/// The plaintext of a stored message encrypted to `key`: the whole message
/// for sotto's own mailbox copies (`X-Sotto-Stored: whole` and signed by
/// the owner's identity: a sender cannot pass off what they encrypted to
/// the user as such a copy, with header fields of their choosing), else
/// the message as the inbound path shows it. `None` for anything else
/// (shown as stored).
pub fn open_stored(
    key: &IdentityKey,
    message: &[u8],
    max_bytes: usize,
    policy: &StandardPolicy<'static>,
) -> Option<Vec<u8>> {
    let armored = match sealed(message)? {
        Sealed::PgpMime(a) => a,
        Sealed::Inline { .. } => return None,
    };
    let opening = Opening {
        tsk: key.secret(),
        sender: Sender::Mail(key.jid()),
        sender_certs: std::slice::from_ref(key.cert().as_ref()),
        max_bytes,
        policy,
    };
    let opened = open(&armored, &opening).ok()?;
    let marked = crate::mail::split(message)
        .fields
        .iter()
        .any(|f| f.is(pgpmime::STORED_WHOLE));
    let own = matches!(&opened.verdict, Verdict::Good(f) if *f == key.fingerprint());
    if marked && own {
        return Some(opened.plaintext);
    }
    Some(delivered_pgp_mime(
        message,
        &opened.plaintext,
        &format!("decrypted; key={}", key.fingerprint().to_hex()),
    ))
}

/// Opened messages by (identity, ciphertext digest), at most `max_bytes`
/// of plaintext in all, oldest dropped first. The identity is part of the
/// key: a user who stores a copy of someone else's ciphertext never gets
/// that person's plaintext from the cache. Held in memory only.
pub struct OpenedCache {
    max_bytes: usize,
    inner: Mutex<CacheInner>,
}

#[derive(Default)]
struct CacheInner {
    /// `None`: the message is not encrypted to this identity (shown as
    /// stored), remembered so that it is not tried again.
    map: HashMap<[u8; 32], Option<Arc<Vec<u8>>>>,
    order: VecDeque<[u8; 32]>,
    bytes: usize,
}

impl OpenedCache {
    pub fn new(max_bytes: usize) -> OpenedCache {
        OpenedCache {
            max_bytes,
            inner: Mutex::new(CacheInner::default()),
        }
    }

    /// The message the user sees for the stored `message`: opened (from
    /// the cache or now), or `None` when it is not encrypted to `key`.
    pub fn view(
        &self,
        key: &IdentityKey,
        message: &[u8],
        max_bytes: usize,
        policy: &StandardPolicy<'static>,
    ) -> Option<Arc<Vec<u8>>> {
        let mut h = Sha256::new();
        h.update(key.fingerprint().as_bytes());
        h.update(message);
        let id: [u8; 32] = h.finalize().into();
        if let Some(hit) = self.lock().map.get(&id) {
            metrics::counter!("sotto_imap_cache_hits_total").increment(1);
            return hit.clone();
        }
        let opened = open_stored(key, message, max_bytes, policy).map(Arc::new);
        if opened.is_some() {
            metrics::counter!("sotto_imap_fetches_opened_total").increment(1);
        }
        let size = opened.as_ref().map_or(0, |o| o.len()) + 64;
        if size <= self.max_bytes {
            let mut c = self.lock();
            if c.map.insert(id, opened.clone()).is_none() {
                c.order.push_back(id);
                c.bytes += size;
            }
            while c.bytes > self.max_bytes {
                let Some(old) = c.order.pop_front() else {
                    break;
                };
                if let Some(gone) = c.map.remove(&old) {
                    c.bytes -= gone.map_or(0, |o| o.len()) + 64;
                }
            }
        }
        opened
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CacheInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}
