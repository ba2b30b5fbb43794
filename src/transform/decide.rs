//! One recipient's decision: the policy, with the key lookup it needs
//! (looked up only when the policy may encrypt or asks `to_has_key`, so
//! recipients never encrypted are not announced to key servers).

use std::path::PathBuf;
use std::sync::Arc;

use sequoia_openpgp::Cert;

use crate::config::{Encrypt, SubjectMode};
use crate::keys::Found;
use crate::keys::{KeyStore, Lookup};
use crate::openpgp::autocrypt::Recommendation;
use crate::policy::{
    Channel, Decision, LinkMode, PolicySet, PreferEncrypt, SignMode, StaleKey, XmppFormat,
};

/// Whether `found` is an Autocrypt key that Level 1 discourages.
fn discouraged(found: &Found, lookup: &Lookup) -> bool {
    found.source == crate::config::KeySource::Autocrypt
        && lookup
            .autocrypt
            .as_ref()
            .is_some_and(|a| a.recommendation == Recommendation::Discourage)
}
use crate::reply::Reply;

/// What actually happens to a recipient's copy: recipients of one
/// transaction must agree on it, since they share one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Effective {
    pub encrypt: bool,
    pub subject: SubjectMode,
    /// Whose key signs ([`SignMode::Off`] when not encrypted).
    pub sign: SignMode,
    pub encrypt_to_sender: bool,
    pub archive_key: Option<PathBuf>,
    /// The link treatment for what is readable (`links_when_encrypted` when encrypted).
    pub links: LinkMode,
    /// Chat only (the defaults on mail, so they never split a transaction).
    pub xmpp_format: XmppFormat,
    pub store: bool,
    /// A local sender's `Autocrypt:` header (mail; the default on chat).
    pub autocrypt: PreferEncrypt,
}

/// Where a recipient's key is looked up: the key store for mail; the chat
/// side adds its users' sotto-held keys.
pub trait RecipientKeys: Sync {
    fn lookup(&self, rcpt: &str) -> impl Future<Output = Lookup> + Send;
}

impl RecipientKeys for KeyStore {
    fn lookup(&self, rcpt: &str) -> impl Future<Output = Lookup> + Send {
        KeyStore::lookup(self, rcpt)
    }
}

/// The result of deciding one recipient.
pub enum Outcome {
    Accept {
        effective: Effective,
        cert: Option<Arc<Cert>>,
        decision: Decision,
        lookup: Option<Lookup>,
    },
    Refuse {
        reply: Reply,
        decision: Decision,
        lookup: Option<Lookup>,
    },
}

/// Decides `rcpt`'s treatment for a message from `from` on `channel`.
pub async fn decide(
    policy: &PolicySet,
    keys: &impl RecipientKeys,
    channel: Channel,
    from: &str,
    rcpt: &str,
) -> Outcome {
    let mut lookup: Option<Lookup> = None;
    let decision = match policy.decide(channel, from, rcpt, None) {
        Ok(d) => d,
        Err(_needs_key) => {
            let l = keys.lookup(rcpt).await;
            let has = l.found.is_some();
            lookup = Some(l);
            policy
                .decide(channel, from, rcpt, Some(has))
                .expect("the key answer was given")
        }
    };
    let t = &decision.treatment;
    if t.encrypt != Encrypt::Never && lookup.is_none() {
        lookup = Some(keys.lookup(rcpt).await);
    }
    let cert = match t.encrypt {
        Encrypt::Never => None,
        _ => lookup
            .as_ref()
            .and_then(|l| l.found.as_ref().map(|f| (f, l)))
            .filter(|(f, l)| !(t.stale_key == StaleKey::Plain && discouraged(f, l)))
            .map(|(f, _)| f.cert.clone()),
    };
    if cert.is_none() && t.refuses_without_key() {
        let why = lookup
            .as_ref()
            .map(Lookup::why_none)
            .unwrap_or_else(|| "no key found".into());
        let rule = decision
            .rule
            .as_deref()
            .map(|r| format!(" (policy rule \"{r}\")"))
            .unwrap_or_default();
        let reply = Reply::new(
            550,
            "5.7.1",
            format!("Encryption required{rule}, and no usable OpenPGP key for <{rcpt}>: {why}"),
        );
        return Outcome::Refuse {
            reply,
            decision,
            lookup,
        };
    }
    let encrypt = cert.is_some();
    let effective = Effective {
        encrypt,
        subject: if encrypt {
            t.subject
        } else {
            SubjectMode::Keep
        },
        sign: if encrypt { t.sign } else { SignMode::Off },
        encrypt_to_sender: encrypt && t.encrypt_to_sender,
        archive_key: if encrypt { t.archive_key.clone() } else { None },
        links: if encrypt {
            t.links_when_encrypted
        } else {
            t.links
        },
        xmpp_format: match channel {
            Channel::Xmpp => t.xmpp_format,
            Channel::Smtp => XmppFormat::Ox,
        },
        store: channel == Channel::Smtp || t.store.archived(),
        autocrypt: match channel {
            Channel::Smtp => t.autocrypt,
            Channel::Xmpp => PreferEncrypt::Mutual,
        },
    };
    Outcome::Accept {
        effective,
        cert,
        decision,
        lookup,
    }
}
