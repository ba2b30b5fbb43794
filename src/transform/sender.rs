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
use crate::openpgp::identities::{IdentityError, IdentityKey, Uses};
use crate::policy::PreferEncrypt;
use crate::reply::Reply;

/// The sender's identity if the sender is a local user: made on their
/// first message (sotto trusts the envelope sender the MTA in front
/// authenticated). `Ok(None)` for a sender who is not local, or who keeps
/// their own key; a store that cannot answer is a temporary refusal (the
/// message is not sent without the header that lets replies be encrypted).
pub(super) async fn identity(crypt: &Crypt, from: &str) -> Result<Option<Arc<IdentityKey>>, Reply> {
    let Some(ids) = &crypt.identities else {
        return Ok(None);
    };
    if from.is_empty() || !crypt.is_local(from) {
        return Ok(None);
    }
    match ids.get_or_create_for(from, Uses::Mail).await {
        Ok(key) => Ok(Some(key)),
        Err(IdentityError::OwnKey(_)) => Ok(None),
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

/// `message` with the sender's `Autocrypt:` header in place of any it
/// carried, and `Autocrypt-Gossip:` for each of `gossip` (the recipients'
/// keys, only when encrypting to several). A message without a header
/// section is left as it is.
pub(super) fn with_autocrypt(
    message: Parsed,
    from: &str,
    key: &IdentityKey,
    prefer: PreferEncrypt,
    gossip: &[(String, Cert)],
    policy: &dyn Policy,
) -> Parsed {
    if !message.has_header() {
        return message;
    }
    let mut out = Vec::with_capacity(message.bytes().len() + 2048);
    out.extend(autocrypt::field(
        "Autocrypt",
        &autocrypt::header_value(from, key.cert(), prefer, policy),
    ));
    for (addr, cert) in gossip {
        out.extend(autocrypt::field(
            "Autocrypt-Gossip",
            &autocrypt::gossip_value(addr, cert, policy),
        ));
    }
    {
        let split = message.split();
        for f in &split.fields {
            if !(f.is("autocrypt") || f.is("autocrypt-gossip")) {
                out.extend_from_slice(f.raw);
            }
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(split.body);
    }
    Parsed::new(out)
}
