//! Who logs in: the user a SASL exchange names (LOGIN's user name is read
//! by the codec). PLAIN (RFC 4616), XOAUTH2 (Google's and Microsoft's
//! OAuth 2.0 mechanism) and OAUTHBEARER (RFC 7628); the credentials pass
//! to the server untouched, sotto only reads the name.

use base64::Engine as _;

/// The user `mechanism`'s initial client message names, if sotto knows
/// the mechanism.
pub fn sasl_user(mechanism: &str, message: &[u8]) -> Option<String> {
    let user = if mechanism.eq_ignore_ascii_case("PLAIN") {
        plain_user(message)
    } else if mechanism.eq_ignore_ascii_case("XOAUTH2") {
        // user=<name> ^A auth=Bearer <token> ^A ^A
        let text = std::str::from_utf8(message).ok()?;
        text.split('\x01')
            .find_map(|kv| kv.strip_prefix("user="))?
            .to_string()
    } else if mechanism.eq_ignore_ascii_case("OAUTHBEARER") {
        // GS2 header "n,a=<authzid>," then ^A key=value pairs.
        let text = std::str::from_utf8(message).ok()?;
        let gs2 = text.split('\x01').next()?;
        let authzid = gs2.split(',').find_map(|p| p.strip_prefix("a="))?;
        // RFC 5801: "=2C" is a comma, "=3D" an equals sign.
        authzid.replace("=2C", ",").replace("=3D", "=")
    } else {
        return None;
    };
    (!user.is_empty()).then_some(user)
}

/// The user of a base64 SASL data line of `mechanism`, if it names one.
pub fn sasl_line_user(mechanism: &str, line: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(line);
    let message = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .ok()?;
    sasl_user(mechanism, &message)
}

/// The user of a SASL PLAIN message (authzid NUL authcid NUL password):
/// the authorization identity if given, else the authentication identity.
fn plain_user(plain: &[u8]) -> String {
    let mut parts = plain.split(|b| *b == 0);
    let authz = parts.next().unwrap_or_default();
    let authc = parts.next().unwrap_or_default();
    let user = if authz.is_empty() { authc } else { authz };
    String::from_utf8_lossy(user).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_of_each_mechanism() {
        assert_eq!(
            sasl_user("PLAIN", b"\0alice@example.org\0pw").as_deref(),
            Some("alice@example.org")
        );
        assert_eq!(
            sasl_user("plain", b"bob@example.org\0alice@example.org\0pw").as_deref(),
            Some("bob@example.org")
        );
        assert_eq!(
            sasl_user(
                "XOAUTH2",
                b"user=alice@example.org\x01auth=Bearer t0k\x01\x01"
            )
            .as_deref(),
            Some("alice@example.org")
        );
        assert_eq!(
            sasl_user(
                "OAUTHBEARER",
                b"n,a=alice@example.org,\x01host=h\x01port=143\x01auth=Bearer t\x01\x01"
            )
            .as_deref(),
            Some("alice@example.org")
        );
        assert_eq!(
            sasl_user("OAUTHBEARER", b"n,,\x01auth=Bearer t\x01\x01"),
            None
        );
        assert_eq!(sasl_user("SCRAM-SHA-256", b"n,,n=alice,r=abc"), None);
        // "\0alice\0pw" in base64.
        assert_eq!(
            sasl_line_user("PLAIN", b"AGFsaWNlAHB3\r\n").as_deref(),
            Some("alice")
        );
        assert_eq!(sasl_line_user("PLAIN", b"*\r\n"), None);
    }
}
