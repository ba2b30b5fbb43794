//! The Web Key Directory's names (draft-koch-openpgp-webkey-service): the
//! z-base-32 encoded SHA-1 of a lower-cased local part, and the paths a
//! client asks for, by the advanced method (`openpgpkey.<domain>`) and the
//! direct method (`<domain>` itself). No I/O.

use sequoia_openpgp::types::HashAlgorithm;

/// z-base-32's alphabet (RFC 6189 section 5.1.6).
const ZBASE32: &[u8; 32] = b"ybndrfg8ejkmcpqxot1uwisza345h769";

/// z-base-32 of `data`, 5 bits a character, most significant first.
pub fn zbase32(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len() * 8 / 5 + 1);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &b in data {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ZBASE32[((acc >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ZBASE32[((acc << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// The WKD hash of `local_part`: z-base-32 of the SHA-1 of its ASCII
/// lower-case form (the draft lower-cases only A–Z), 32 characters.
pub fn hash(local_part: &str) -> String {
    let lower = local_part.to_ascii_lowercase();
    let digest = HashAlgorithm::SHA1
        .context()
        .map(|c| {
            let mut c = c.for_digest();
            c.update(lower.as_bytes());
            c.into_digest().unwrap_or_default()
        })
        .unwrap_or_default();
    zbase32(&digest)
}

/// What a WKD request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// The key(s) of the local part hashing to `hash` at `domain`; `local`
    /// is the `l=` parameter clients add (unchecked).
    Key {
        domain: String,
        hash: String,
        local: Option<String>,
    },
    /// The policy file of `domain`.
    Policy { domain: String },
}

/// The request for `host` (the `Host` header, port removed, lower-case)
/// and `path`/`query`; `None` if it is not a WKD URL. Advanced method:
/// host `openpgpkey.<domain>`, path `/.well-known/openpgpkey/<domain>/…`;
/// direct method: host `<domain>`, path `/.well-known/openpgpkey/…`.
pub fn parse(host: &str, path: &str, query: Option<&str>) -> Option<Request> {
    let rest = path.strip_prefix("/.well-known/openpgpkey/")?;
    let host = host.to_ascii_lowercase();
    let (domain, rest) = match host.strip_prefix("openpgpkey.") {
        Some(domain) => {
            let (d, rest) = rest.split_once('/')?;
            if !d.eq_ignore_ascii_case(domain) {
                return None;
            }
            (domain.to_owned(), rest)
        }
        None => (host.clone(), rest),
    };
    if rest == "policy" {
        return Some(Request::Policy { domain });
    }
    let hash = rest.strip_prefix("hu/")?;
    let valid = hash.len() == 32 && hash.bytes().all(|b| ZBASE32.contains(&b));
    if !valid {
        return None;
    }
    let local = query.and_then(|q| {
        q.split('&')
            .find_map(|kv| kv.strip_prefix("l="))
            .map(percent_decode)
    });
    Some(Request::Key {
        domain,
        hash: hash.to_owned(),
        local,
    })
}

/// `%XX` escapes undone (as UTF-8, lossy); `+` kept as is.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b[i],
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_drafts_example_hash() {
        // draft-koch-openpgp-webkey-service, section 3.1: "Joe.Doe".
        assert_eq!(hash("Joe.Doe"), "iy9q119eutrkn8s1mk4r39qejnbu3n5q");
        assert_eq!(zbase32(&[0xF0, 0xBF, 0xC7]), "6n9hq");
    }

    #[test]
    fn advanced_and_direct_requests() {
        let h = "iy9q119eutrkn8s1mk4r39qejnbu3n5q";
        assert_eq!(
            parse(
                "openpgpkey.example.org",
                &format!("/.well-known/openpgpkey/example.org/hu/{h}"),
                Some("l=Joe.Doe")
            ),
            Some(Request::Key {
                domain: "example.org".into(),
                hash: h.into(),
                local: Some("Joe.Doe".into())
            })
        );
        assert_eq!(
            parse(
                "Example.ORG",
                &format!("/.well-known/openpgpkey/hu/{h}"),
                None
            ),
            Some(Request::Key {
                domain: "example.org".into(),
                hash: h.into(),
                local: None
            })
        );
        assert_eq!(
            parse(
                "openpgpkey.example.org",
                "/.well-known/openpgpkey/example.org/policy",
                None
            ),
            Some(Request::Policy {
                domain: "example.org".into()
            })
        );
        assert_eq!(
            parse("example.org", "/.well-known/openpgpkey/policy", None),
            Some(Request::Policy {
                domain: "example.org".into()
            })
        );
        // Another domain's path under the advanced host, bad hashes.
        assert_eq!(
            parse(
                "openpgpkey.example.org",
                &format!("/.well-known/openpgpkey/other.org/hu/{h}"),
                None
            ),
            None
        );
        assert_eq!(
            parse("example.org", "/.well-known/openpgpkey/hu/short", None),
            None
        );
        assert_eq!(
            parse("example.org", "/.well-known/openpgpkey/hu/../../etc", None),
            None
        );
        assert_eq!(parse("example.org", "/other", None), None);
        assert_eq!(
            parse(
                "example.org",
                &format!("/.well-known/openpgpkey/hu/{h}"),
                Some("x=1&l=a%2Eb")
            ),
            Some(Request::Key {
                domain: "example.org".into(),
                hash: h.into(),
                local: Some("a.b".into())
            })
        );
    }
}
