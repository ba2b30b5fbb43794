//! What the inbound path learns from a message (Autocrypt Level 1, section
//! 2.3): the sender's `Autocrypt:` header, when its `addr` is the From
//! address, updates their state in the store by the message's effective
//! date (its Date, never later than now); a message without one only moves
//! `last_seen`. Gossip inside a decrypted message updates the gossiped
//! state of the recipients it names. Failures are logged: delivery never
//! waits on learning.

use mail_parser::MessageParser;
use sequoia_openpgp::Cert;
use sequoia_openpgp::parse::Parse as _;

use super::Inbound;
use crate::mail::split;
use crate::openpgp::autocrypt::{self, Header};
use crate::relay::Target;

/// What the header of an arriving message says.
#[derive(Debug, Default)]
pub struct Facts {
    /// The From address, lower-case, if there is exactly one.
    pub from: Option<String>,
    /// The effective date (Unix seconds).
    pub date: i64,
    /// The one valid `Autocrypt:` header for `from`, if there is exactly one.
    pub autocrypt: Option<Header>,
    /// The To and Cc addresses, lower-case (whom gossip may be about).
    pub recipients: Vec<String>,
}

/// The unfolded value of a header field, whitespace runs made one space.
fn value(f: &crate::mail::Field<'_>) -> String {
    let text = String::from_utf8_lossy(f.value());
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Reads `message`'s header.
pub fn read(message: &[u8]) -> Facts {
    let s = split(message);
    let now = crate::store::now();
    let mut facts = Facts {
        date: now,
        ..Facts::default()
    };
    let mut block = Vec::new();
    for f in &s.fields {
        block.extend_from_slice(f.raw);
    }
    block.extend_from_slice(b"\r\n");
    if let Some(h) = MessageParser::default().parse_headers(&block) {
        let froms: Vec<String> = h
            .from()
            .map(|l| {
                l.iter()
                    .filter_map(|a| a.address())
                    .map(str::to_lowercase)
                    .collect()
            })
            .unwrap_or_default();
        if froms.len() == 1 {
            facts.from = froms.into_iter().next();
        }
        if let Some(d) = h.date() {
            facts.date = d.to_timestamp().min(now);
        }
        for list in [h.to(), h.cc()].into_iter().flatten() {
            facts.recipients.extend(
                list.iter()
                    .filter_map(|a| a.address())
                    .map(str::to_lowercase),
            );
        }
    }
    if let Some(from) = &facts.from {
        let mine: Vec<Header> = s
            .fields
            .iter()
            .filter(|f| f.is("autocrypt"))
            .filter_map(|f| autocrypt::parse(&value(f), false))
            .filter(|h| h.addr == *from)
            .collect();
        if mine.len() == 1 {
            facts.autocrypt = mine.into_iter().next();
        }
    }
    facts
}

/// Updates the sender's Autocrypt state; the certificates the sender may
/// have signed with: the key of their header, the key sotto finds for them
/// (key directory, WKD, …) and the one their earlier headers gave.
pub async fn learn<T: Target>(inbound: &Inbound<T>, facts: &Facts) -> Vec<Cert> {
    let Some(from) = &facts.from else {
        return Vec::new();
    };
    let store = inbound.identities.store();
    let header = facts
        .autocrypt
        .as_ref()
        .filter(|h| h.cert().is_some())
        .map(|h| (h.keydata.as_slice(), h.mutual));
    if let Err(e) = store.autocrypt_seen(from, facts.date, header).await {
        tracing::warn!(event = "autocrypt_learn_failed", error = %e);
    }
    let mut certs: Vec<Cert> = Vec::new();
    if let Some(c) = facts.autocrypt.as_ref().and_then(Header::cert) {
        certs.push(c);
    }
    if let Ok(Some(peer)) = store.autocrypt_peer(from).await
        && let Some(c) = peer.public_key.and_then(|k| Cert::from_bytes(&k).ok())
    {
        certs.push(c);
    }
    if let Some(found) = inbound.keys.lookup(from).await.found {
        certs.push((*found.cert).clone());
    }
    certs
}

/// Records the `Autocrypt-Gossip:` keys of a decrypted entity for the
/// message's recipients.
pub async fn gossip<T: Target>(inbound: &Inbound<T>, facts: &Facts, plaintext: &[u8]) {
    let inner = crate::mail::crlf(plaintext);
    let s = split(&inner);
    let store = inbound.identities.store();
    for f in s.fields.iter().filter(|f| f.is("autocrypt-gossip")) {
        let Some(h) = autocrypt::parse(&value(f), true) else {
            continue;
        };
        if !facts.recipients.contains(&h.addr) || h.cert().is_none() {
            continue;
        }
        if let Err(e) = store
            .autocrypt_gossip(&h.addr, facts.date, &h.keydata)
            .await
        {
            tracing::warn!(event = "autocrypt_learn_failed", error = %e);
        }
    }
}
