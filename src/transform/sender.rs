//! The local sender's side of a message (`identities.domains`): their
//! identity, made with their first message, and the `Autocrypt:` header
//! (with `Autocrypt-Gossip:` inside encrypted mail to several recipients)
//! that lets correspondents encrypt back.

use std::sync::Arc;

use sequoia_openpgp::Cert;
use sequoia_openpgp::policy::Policy;

use super::Crypt;
use crate::mail::Parsed;
use crate::openpgp::autocrypt;
use crate::openpgp::identities::{IdentityKey, MailIdentity};
use crate::policy::PreferEncrypt;
use crate::reply::Reply;

/// The sender's identity if the sender is a local user: made on their
/// first message (sotto trusts the envelope sender the MTA in front
/// authenticated). `Ok(None)` for a sender who is not local; a store that
/// cannot answer is a temporary refusal (the message is not sent without
/// the header that lets replies be encrypted).
pub(super) async fn identity(crypt: &Crypt, from: &str) -> Result<Option<MailIdentity>, Reply> {
    let Some(ids) = &crypt.identities else {
        return Ok(None);
    };
    if from.is_empty() || !crypt.is_local(from) {
        return Ok(None);
    }
    match ids.for_mail(from).await {
        Ok(id) => Ok(Some(id)),
        Err(e) => {
            tracing::warn!(event = "identity", result = "failed", error = %e);
            metrics::counter!("sotto_identity_failures_total").increment(1);
            Err(Reply::new(
                451,
                "4.3.0",
                "The sender's identity is not available right now; try again later",
            ))
        }
    }
}

/// The key that signs for `sender`: only an active identity's.
pub(super) fn signing_key(sender: &Option<MailIdentity>) -> Option<&Arc<IdentityKey>> {
    match sender {
        Some(MailIdentity::Active(key)) => Some(key),
        _ => None,
    }
}

/// `message` with the sender's `Autocrypt:` header in place of any it
/// carried (a user with their own key keeps the header their client
/// wrote), and `Autocrypt-Gossip:` for each of `gossip` (the recipients'
/// keys, only when encrypting to several). A message without a header
/// section is left as it is.
pub(super) fn with_autocrypt(
    message: Parsed,
    from: &str,
    sender: &MailIdentity,
    prefer: PreferEncrypt,
    gossip: &[(String, Cert)],
    policy: &dyn Policy,
) -> Parsed {
    if !message.has_header() {
        return message;
    }
    let split = message.split();
    let has_own_header = split.fields.iter().any(|f| f.is("autocrypt"));
    let (cert, prefer) = match sender {
        MailIdentity::Active(key) => (key.cert().as_ref(), prefer),
        // A revoked key is announced without asking for encryption.
        MailIdentity::Revoked(cert) => (cert, PreferEncrypt::NoPreference),
        MailIdentity::Own(_) if has_own_header => return message,
        MailIdentity::Own(cert) => (cert, prefer),
    };
    let mut out = Vec::with_capacity(message.bytes().len() + 2048);
    out.extend(autocrypt::field(
        "Autocrypt",
        &autocrypt::header_value(from, cert, prefer, policy),
    ));
    for (addr, cert) in gossip {
        out.extend(autocrypt::field(
            "Autocrypt-Gossip",
            &autocrypt::gossip_value(addr, cert, policy),
        ));
    }
    for f in &split.fields {
        if !(f.is("autocrypt") || f.is("autocrypt-gossip")) {
            out.extend_from_slice(f.raw);
        }
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(split.body);
    Parsed::new(out)
}
