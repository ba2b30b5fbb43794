//! Autocrypt Level 1 headers: the `Autocrypt:` header a local sender's
//! mail carries (its identity's minimal key), `Autocrypt-Gossip:` inside
//! encrypted mail to several recipients, and reading both from mail that
//! arrives. No I/O.

use base64::Engine as _;
use sequoia_openpgp::Cert;
use sequoia_openpgp::parse::Parse as _;
use sequoia_openpgp::policy::Policy;
use sequoia_openpgp::serialize::SerializeInto as _;

use crate::policy::PreferEncrypt;

/// Autocrypt Level 1's recommendation for encrypting to a peer (section
/// 2.4), for a sender whose own preference is `mutual`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recommendation {
    /// No key: cannot encrypt.
    Disable,
    /// A key, but it may be stale (the peer's newest mail carried no
    /// header for over 35 days) or only gossiped: encrypting may leave the
    /// peer unable to read.
    Discourage,
    /// A current key; the peer did not ask for encryption by default.
    Available,
    /// A current key, and the peer asked for encryption (`mutual`).
    Encrypt,
}

impl Recommendation {
    pub fn name(self) -> &'static str {
        match self {
            Recommendation::Disable => "disable",
            Recommendation::Discourage => "discourage",
            Recommendation::Available => "available",
            Recommendation::Encrypt => "encrypt",
        }
    }
}

/// How long a peer's mail may come without an Autocrypt header before its
/// key counts as stale (Level 1: 35 days).
pub const STALE_AFTER: i64 = 35 * 24 * 3600;

/// The recommendation for a peer's state (times in Unix seconds).
pub fn recommend(
    last_seen: i64,
    autocrypt_timestamp: Option<i64>,
    has_key: bool,
    prefer_mutual: bool,
    has_gossip: bool,
) -> Recommendation {
    match (has_key, autocrypt_timestamp) {
        (true, Some(t)) if t < last_seen - STALE_AFTER => Recommendation::Discourage,
        (true, _) if prefer_mutual => Recommendation::Encrypt,
        (true, _) => Recommendation::Available,
        (false, _) if has_gossip => Recommendation::Discourage,
        (false, _) => Recommendation::Disable,
    }
}

/// A parsed `Autocrypt:` or `Autocrypt-Gossip:` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// `addr`, lower-case.
    pub addr: String,
    /// `prefer-encrypt=mutual` (only meaningful in `Autocrypt:`).
    pub mutual: bool,
    /// The key, binary OpenPGP.
    pub keydata: Vec<u8>,
}

impl Header {
    /// The key, if it parses as one certificate.
    pub fn cert(&self) -> Option<Cert> {
        Cert::from_bytes(&self.keydata).ok()
    }
}

/// `cert` reduced to what Autocrypt Level 1 sends (section 2.1.1): the
/// primary key, the user ID naming `addr` (with its binding), the newest
/// valid encryption subkey, and any revocation of the primary key; public
/// parts only.
pub fn minimal(cert: &Cert, addr: &str, policy: &dyn Policy) -> Cert {
    let addr = addr.to_ascii_lowercase();
    let public = cert.clone().strip_secret_key_material();
    let subkey = public.with_policy(policy, None).ok().and_then(|vc| {
        vc.keys()
            .subkeys()
            .for_transport_encryption()
            .max_by_key(|k| k.key().creation_time())
            .map(|k| k.key().fingerprint())
    });
    public
        .retain_userids(|u| {
            let text = String::from_utf8_lossy(u.userid().value()).to_ascii_lowercase();
            text == addr || text.ends_with(&format!("<{addr}>"))
        })
        .retain_subkeys(|k| Some(k.key().fingerprint()) == subkey)
}

/// The value of an `Autocrypt:` header for `addr` with `cert` (made
/// minimal here), folded for a header field: `addr=…;
/// prefer-encrypt=mutual; keydata=` and the base64 on continuation lines.
pub fn header_value(addr: &str, cert: &Cert, prefer: PreferEncrypt, policy: &dyn Policy) -> String {
    let mut value = format!("addr={}", addr.to_ascii_lowercase());
    if prefer == PreferEncrypt::Mutual {
        value.push_str("; prefer-encrypt=mutual");
    }
    value.push_str("; keydata=");
    push_keydata(&mut value, &minimal(cert, addr, policy));
    value
}

/// The value of an `Autocrypt-Gossip:` header for `addr` with `cert`.
pub fn gossip_value(addr: &str, cert: &Cert, policy: &dyn Policy) -> String {
    let mut value = format!("addr={}; keydata=", addr.to_ascii_lowercase());
    push_keydata(&mut value, &minimal(cert, addr, policy));
    value
}

/// Base64 of `cert` on folded lines of 76 characters, each after CRLF and
/// a space.
fn push_keydata(out: &mut String, cert: &Cert) {
    let bytes = cert.to_vec().unwrap_or_default();
    let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
    for chunk in b64.as_bytes().chunks(76) {
        out.push_str("\r\n ");
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
    }
}

/// The header field `name: value` with CRLF, for a message's header.
pub fn field(name: &str, value: &str) -> Vec<u8> {
    format!("{name}: {value}\r\n").into_bytes()
}

/// Reads an `Autocrypt:` (or, with `gossip`, `Autocrypt-Gossip:`) header
/// value (unfolded or not) as Level 1 says: `addr` and `keydata` required,
/// `prefer-encrypt` known, attributes starting with `_` ignored, and the
/// whole header ignored (`None`) for any other attribute, a missing or
/// repeated one, or keydata that is not base64.
pub fn parse(value: &str, gossip: bool) -> Option<Header> {
    let (mut addr, mut mutual, mut keydata) = (None, false, None);
    let mut prefer_seen = false;
    for attr in value.split(';') {
        let attr = attr.trim();
        if attr.is_empty() {
            continue;
        }
        let (name, val) = attr.split_once('=')?;
        let name = name.trim().to_ascii_lowercase();
        let val = val.trim();
        match name.as_str() {
            "addr" if addr.is_none() => addr = Some(val.to_ascii_lowercase()),
            "prefer-encrypt" if !gossip && !prefer_seen => {
                prefer_seen = true;
                mutual = val.eq_ignore_ascii_case("mutual");
            }
            "keydata" if keydata.is_none() => {
                let compact: String = val.chars().filter(|c| !c.is_whitespace()).collect();
                keydata = Some(
                    base64::engine::general_purpose::STANDARD
                        .decode(compact)
                        .ok()?,
                );
            }
            n if n.starts_with('_') => {}
            _ => return None,
        }
    }
    let addr = addr.filter(|a| a.contains('@'))?;
    Some(Header {
        addr,
        mutual,
        keydata: keydata.filter(|k| !k.is_empty())?,
    })
}

#[cfg(test)]
mod tests {
    use sequoia_openpgp::cert::CertBuilder;
    use sequoia_openpgp::policy::StandardPolicy;

    use super::*;

    const P: &StandardPolicy<'static> = &StandardPolicy::new();

    #[test]
    fn written_and_read_back() {
        let (cert, _) = CertBuilder::general_purpose(Some("<Ann@Example.org>"))
            .add_userid("xmpp:ann@example.org")
            .generate()
            .unwrap();
        let value = header_value("ann@example.org", &cert, PreferEncrypt::Mutual, P);
        assert!(value.starts_with("addr=ann@example.org; prefer-encrypt=mutual; keydata=\r\n "));
        assert!(value.split("\r\n").all(|l| l.len() <= 78), "{value}");
        let h = parse(&value, false).unwrap();
        assert_eq!(h.addr, "ann@example.org");
        assert!(h.mutual);
        let got = h.cert().unwrap();
        assert_eq!(got.fingerprint(), cert.fingerprint());
        assert!(!got.is_tsk());
        // Minimal: one user ID (the address), one encryption subkey.
        assert_eq!(got.userids().count(), 1);
        assert_eq!(got.keys().subkeys().count(), 1);
        let vc = got.with_policy(P, None).unwrap();
        assert_eq!(vc.keys().subkeys().for_transport_encryption().count(), 1);

        let plain = header_value("ann@example.org", &cert, PreferEncrypt::NoPreference, P);
        assert!(!parse(&plain, false).unwrap().mutual);
        let gossip = gossip_value("ann@example.org", &cert, P);
        assert_eq!(parse(&gossip, true).unwrap().addr, "ann@example.org");
    }

    #[test]
    fn level_1_recommendations() {
        use Recommendation::*;
        let day = 24 * 3600;
        assert_eq!(
            recommend(100 * day, Some(100 * day), true, true, false),
            Encrypt
        );
        assert_eq!(
            recommend(100 * day, Some(100 * day), true, false, false),
            Available
        );
        assert_eq!(
            recommend(100 * day, Some(64 * day), true, true, false),
            Discourage
        );
        assert_eq!(
            recommend(100 * day, Some(65 * day), true, true, false),
            Encrypt
        );
        assert_eq!(recommend(0, None, false, false, true), Discourage);
        assert_eq!(recommend(0, None, false, false, false), Disable);
    }

    #[test]
    fn level_1_reading_rules() {
        let k = "keydata=AAAA";
        assert!(parse(&format!("addr=a@b; {k}"), false).is_some());
        assert!(parse(&format!("addr=a@b; _extra=1; {k}"), false).is_some());
        assert!(parse(&format!("addr=a@b; unknown=1; {k}"), false).is_none());
        assert!(parse(&format!("addr=a@b; addr=c@d; {k}"), false).is_none());
        assert!(parse("addr=a@b", false).is_none());
        assert!(parse(k, false).is_none());
        assert!(parse("addr=a@b; keydata=!!!", false).is_none());
        assert!(parse(&format!("addr=a@b; prefer-encrypt=mutual; {k}"), true).is_none());
        assert!(
            !parse(
                &format!("addr=a@b; prefer-encrypt=nopreference; {k}"),
                false
            )
            .unwrap()
            .mutual
        );
    }
}
