//! Whether a certificate may be used to encrypt to an address, now.

use std::fmt;

use sequoia_openpgp::Cert;
use sequoia_openpgp::cert::amalgamation::ValidAmalgamation;
use sequoia_openpgp::packet::UserID;
use sequoia_openpgp::policy::Policy;
use sequoia_openpgp::types::RevocationStatus;

/// Why a certificate was not used.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rejection {
    /// Not valid under the policy (e.g. only SHA-1 self-signatures).
    Invalid(String),
    Revoked,
    Expired,
    /// No valid user ID carries the address.
    WrongUserId,
    /// No subkey (or primary) that may encrypt for transport.
    NoEncryptionKey,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejection::Invalid(why) => write!(f, "not valid under the standard policy ({why})"),
            Rejection::Revoked => f.write_str("revoked"),
            Rejection::Expired => f.write_str("expired"),
            Rejection::WrongUserId => f.write_str("no valid user ID with this address"),
            Rejection::NoEncryptionKey => f.write_str("no valid encryption-capable key"),
        }
    }
}

/// The prefix of a chat address (`xmpp:user@domain`), as XEP-0373 user IDs
/// carry it.
pub const XMPP_SCHEME: &str = "xmpp:";

/// Normalises an address for comparison the way user IDs are normalised
/// (sequoia's rules: case folded, internationalised domains in punycode), so
/// `Bob@Example.ORG` and `élève@école.example` match their user IDs.
pub fn normalize(address: &str) -> String {
    let trimmed = address.trim();
    if let Some(jid) = trimmed.strip_prefix(XMPP_SCHEME) {
        return format!("{XMPP_SCHEME}{}", normalize(jid));
    }
    UserID::from(format!("<{trimmed}>"))
        .email_normalized()
        .ok()
        .flatten()
        .unwrap_or_else(|| trimmed.to_lowercase())
}

/// Checks `cert` for encryption to `address` under `policy` now.
pub fn usable_for(cert: &Cert, address: &str, policy: &dyn Policy) -> Result<(), Rejection> {
    let vc = cert
        .with_policy(policy, None)
        .map_err(|e| Rejection::Invalid(e.to_string()))?;
    if let RevocationStatus::Revoked(_) = vc.revocation_status() {
        return Err(Rejection::Revoked);
    }
    if vc.alive().is_err() {
        return Err(Rejection::Expired);
    }
    let want = normalize(address);
    let has_uid = vc.userids().any(|u| {
        !matches!(u.revocation_status(), RevocationStatus::Revoked(_))
            && uid_names(u.userid(), &want)
    });
    if !has_uid {
        return Err(Rejection::WrongUserId);
    }
    let can_encrypt = vc
        .keys()
        .supported()
        .alive()
        .revoked(false)
        .for_transport_encryption()
        .next()
        .is_some();
    if !can_encrypt {
        return Err(Rejection::NoEncryptionKey);
    }
    Ok(())
}

/// Whether any user ID of `cert` (valid or not) names `address`: the
/// certificates worth checking for it.
pub fn names(cert: &Cert, address: &str) -> bool {
    let want = normalize(address);
    cert.userids().any(|u| uid_names(u.userid(), &want))
}

/// Whether a user ID names the normalised address `want`: its e-mail
/// address; for a chat address (`xmpp:…`) also the URI user ID of XEP-0373
/// (`xmpp:user@domain`, bare or in angle brackets) or the bare address as
/// an e-mail user ID.
fn uid_names(uid: &UserID, want: &str) -> bool {
    let email = uid.email_normalized().ok().flatten();
    let Some(jid) = want.strip_prefix(XMPP_SCHEME) else {
        return email.is_some_and(|e| e == want);
    };
    if email.is_some_and(|e| e == jid) {
        return true;
    }
    let text = String::from_utf8_lossy(uid.value());
    let text = text.trim();
    let inner = match (text.rfind('<'), text.ends_with('>')) {
        (Some(i), true) => &text[i + 1..text.len() - 1],
        _ => text,
    };
    inner
        .get(..XMPP_SCHEME.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(XMPP_SCHEME))
        && normalize(&inner[XMPP_SCHEME.len()..]) == jid
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn chat_addresses_match_xmpp_uri_user_ids() {
        use sequoia_openpgp::packet::UserID;
        let want = normalize("xmpp:Bob@Example.org");
        assert_eq!(want, "xmpp:bob@example.org");
        for uid in [
            "xmpp:bob@example.org",
            "<xmpp:Bob@example.org>",
            "Bob <xmpp:bob@example.org>",
            "Bob <bob@example.org>",
        ] {
            assert!(super::uid_names(&UserID::from(uid), &want), "{uid}");
        }
        for uid in [
            "xmpp:eve@example.org",
            "xmpp:bob@example.org.evil",
            "mailto:bob@example.org",
        ] {
            assert!(!super::uid_names(&UserID::from(uid), &want), "{uid}");
        }
        // Mail lookups do not take an xmpp: user ID.
        assert!(!super::uid_names(
            &UserID::from("xmpp:bob@example.org"),
            "bob@example.org"
        ));
    }

    #[test]
    fn addresses_normalise_like_user_ids() {
        assert_eq!(normalize("Bob@Example.ORG"), "bob@example.org");
        assert_eq!(
            normalize("élève@école.example"),
            normalize("ÉLÈVE@ÉCOLE.example")
        );
    }
}
