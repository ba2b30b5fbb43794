//! Who logs in: the user named by SASL PLAIN, as an initial response or as
//! a data line (LOGIN's user name is read by the codec).

use base64::Engine as _;

/// The user of a SASL PLAIN message (authzid NUL authcid NUL password):
/// the authorization identity if given, else the authentication identity.
pub fn plain_user(plain: &[u8]) -> String {
    let mut parts = plain.split(|b| *b == 0);
    let authz = parts.next().unwrap_or_default();
    let authc = parts.next().unwrap_or_default();
    let user = if authz.is_empty() { authc } else { authz };
    String::from_utf8_lossy(user).into_owned()
}

/// The user of a base64 SASL PLAIN data line, if it is one.
pub fn plain_line_user(line: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(line);
    let plain = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .ok()?;
    Some(plain_user(&plain))
}

#[cfg(test)]
mod tests {
    #[test]
    fn authorization_identity_wins() {
        assert_eq!(
            super::plain_user(b"\0alice@example.org\0pw"),
            "alice@example.org"
        );
        assert_eq!(
            super::plain_user(b"bob@example.org\0alice@example.org\0pw"),
            "bob@example.org"
        );
        // "\0alice\0pw" in base64.
        assert_eq!(
            super::plain_line_user(b"AGFsaWNlAHB3\r\n").as_deref(),
            Some("alice")
        );
        assert_eq!(super::plain_line_user(b"*\r\n"), None);
    }
}
