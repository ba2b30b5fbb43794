//! Sealing and opening tokens: round trips, tampering, expiry, keys, hosts.

use super::*;

const URL: &str = "https://example.org/reset?token=s3cr3t&x=1#frag";

fn keys() -> TokenKeys {
    TokenKeys::from_secrets(vec![(7, [1; 32])])
}

fn day() -> Duration {
    Duration::from_secs(86_400)
}

#[test]
fn round_trip() {
    let k = keys();
    let t = k.seal(URL, day()).unwrap();
    assert_eq!(k.open(&t).unwrap(), URL);
    assert!(
        t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    );
    // Short: header, nonce, expiry, tag and the URL, in base64.
    assert_eq!(t.len(), ((MIN_LEN + URL.len()) * 4).div_ceil(3));
    assert!(!t.contains("example"));
    // A fresh nonce each time.
    assert_ne!(k.seal(URL, day()).unwrap(), t);
    let plain = "http://[2001:db8::1]:8080/p";
    assert_eq!(k.open(&k.seal(plain, day()).unwrap()).unwrap(), plain);
}

#[test]
fn every_token_made_opens() {
    let k = keys();
    let base = "https://example.org/";
    let longest = format!("{base}{}", "a".repeat(MAX_URL_LEN - base.len()));
    let t = k.seal(&longest, day()).unwrap();
    assert!(t.len() <= MAX_TOKEN_CHARS);
    assert_eq!(k.open(&t).unwrap(), longest);
    let over = format!("{longest}a");
    assert_eq!(k.seal(&over, day()).unwrap_err(), TokenError::TooLong);
}

#[test]
fn altered_bytes_are_refused() {
    let k = TokenKeys::from_secrets(vec![(7, [1; 32]), (8, [2; 32])]);
    let t = k.seal(URL, day()).unwrap();
    let raw = URL_SAFE_NO_PAD.decode(&t).unwrap();
    for i in 0..raw.len() {
        for flip in [0x01u8, 0x80, 0xff] {
            let mut bad = raw.clone();
            bad[i] ^= flip;
            let err = k.open(&URL_SAFE_NO_PAD.encode(&bad)).unwrap_err();
            match i {
                0 => assert_eq!(err, TokenError::Malformed, "byte {i}"),
                // 7 flipped is no configured id.
                1 => assert_eq!(err, TokenError::UnknownKey, "byte {i}"),
                _ => assert_eq!(err, TokenError::Forged, "byte {i}"),
            }
        }
    }
    // Key id 7 → 8 (both configured): the AAD binds the id.
    let mut swapped = raw.clone();
    swapped[1] = 8;
    assert_eq!(
        k.open(&URL_SAFE_NO_PAD.encode(&swapped)).unwrap_err(),
        TokenError::Forged
    );
    // Truncated, extended, not base64, empty.
    assert!(matches!(
        k.open(&URL_SAFE_NO_PAD.encode(&raw[..raw.len() - 1]))
            .unwrap_err(),
        TokenError::Forged | TokenError::Malformed
    ));
    let mut longer = raw.clone();
    longer.push(0);
    assert_eq!(
        k.open(&URL_SAFE_NO_PAD.encode(&longer)).unwrap_err(),
        TokenError::Forged
    );
    assert_eq!(
        k.open(&URL_SAFE_NO_PAD.encode(&raw[..MIN_LEN - 1]))
            .unwrap_err(),
        TokenError::Malformed
    );
    assert_eq!(k.open("").unwrap_err(), TokenError::Malformed);
    assert_eq!(k.open("not a token!").unwrap_err(), TokenError::Malformed);
    assert_eq!(k.open(&format!("{t}=")).unwrap_err(), TokenError::Malformed);
    assert_eq!(
        k.open(&"A".repeat(MAX_TOKEN_CHARS + 4)).unwrap_err(),
        TokenError::Malformed
    );
    // Altered characters of the text form.
    for i in 0..t.len() {
        let mut chars: Vec<char> = t.chars().collect();
        chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
        let bad: String = chars.into_iter().collect();
        let err = k.open(&bad).unwrap_err();
        assert!(
            matches!(
                err,
                TokenError::Forged | TokenError::Malformed | TokenError::UnknownKey
            ),
            "char {i}: {err:?}"
        );
    }
}

#[test]
fn expired() {
    let k = keys();
    assert_eq!(
        k.open(&k.seal_until(URL, 1).unwrap()).unwrap_err(),
        TokenError::Expired
    );
    let past = u32::try_from(now_unix() - 10).unwrap();
    assert_eq!(
        k.open(&k.seal_until(URL, past).unwrap()).unwrap_err(),
        TokenError::Expired
    );
    assert_eq!(
        k.open(&k.seal(URL, Duration::ZERO).unwrap()).unwrap_err(),
        TokenError::Expired
    );
    let future = u32::try_from(now_unix() + 3600).unwrap();
    assert_eq!(k.open(&k.seal_until(URL, future).unwrap()).unwrap(), URL);
    // A TTL beyond 2106 saturates instead of wrapping into the past.
    assert_eq!(
        k.open(&k.seal(URL, Duration::from_secs(u64::MAX)).unwrap())
            .unwrap(),
        URL
    );
}

#[test]
fn unknown_key_id() {
    let t = keys().seal(URL, day()).unwrap();
    let other = TokenKeys::from_secrets(vec![(9, [1; 32])]);
    assert_eq!(other.open(&t).unwrap_err(), TokenError::UnknownKey);
    // Same id, different secret: forged.
    let other = TokenKeys::from_secrets(vec![(7, [3; 32])]);
    assert_eq!(other.open(&t).unwrap_err(), TokenError::Forged);
    // No keys at all.
    let none = TokenKeys::from_secrets(vec![]);
    assert_eq!(none.open(&t).unwrap_err(), TokenError::UnknownKey);
    assert!(matches!(
        none.seal(URL, day()).unwrap_err(),
        TokenError::BadKey(_)
    ));
}

#[test]
fn key_rotation() {
    let old = TokenKeys::from_secrets(vec![(1, [1; 32])]);
    let old_token = old.seal(URL, day()).unwrap();
    let both = TokenKeys::from_secrets(vec![(2, [2; 32]), (1, [1; 32])]);
    assert_eq!(both.open(&old_token).unwrap(), URL);
    let new_token = both.seal(URL, day()).unwrap();
    assert_eq!(URL_SAFE_NO_PAD.decode(&new_token).unwrap()[1], 2);
    assert_eq!(old.open(&new_token).unwrap_err(), TokenError::UnknownKey);
    let new_only = TokenKeys::from_secrets(vec![(2, [2; 32])]);
    assert_eq!(new_only.open(&new_token).unwrap(), URL);
    assert_eq!(
        new_only.open(&old_token).unwrap_err(),
        TokenError::UnknownKey
    );
}

#[test]
fn only_http() {
    let k = keys();
    for url in [
        "javascript:alert(1)",
        "JavaScript://%0aalert(1)",
        "data:text/html,<script>alert(1)</script>",
        "ftp://example.org/file",
        "file:///etc/passwd",
        "mailto:a@example.org",
        "//example.org/path",
        "/relative",
        "https://",
        "https:///path",
        "http://user@/x",
        "https://example.org/\r\nSet-Cookie: a=b",
        " https://example.org/",
        "https://exa mple.org/",
        "",
    ] {
        assert_eq!(
            k.seal(url, day()).unwrap_err(),
            TokenError::NotHttp,
            "{url:?}"
        );
    }
    assert!(k.seal("HTTPS://Example.org", day()).is_ok());
    // A token holding a non-http URL (sealed by hand) does not open either.
    let (id, cipher) = &k.keys[0];
    let header = [VERSION, *id];
    let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
    let mut plain = u32::MAX.to_be_bytes().to_vec();
    plain.extend_from_slice(b"javascript:alert(1)");
    let sealed = cipher
        .encrypt(
            &nonce,
            Payload {
                msg: &plain,
                aad: &header,
            },
        )
        .unwrap();
    let raw = [&header[..], &nonce[..], &sealed[..]].concat();
    assert_eq!(
        k.open(&URL_SAFE_NO_PAD.encode(raw)).unwrap_err(),
        TokenError::NotHttp
    );
}

#[test]
fn hosts() {
    assert_eq!(
        http_host("https://Example.ORG/a?b#c").as_deref(),
        Some("example.org")
    );
    assert_eq!(
        http_host("http://user:pw@host.example:8080/x").as_deref(),
        Some("host.example")
    );
    assert_eq!(
        http_host("http://a@b@evil.example/").as_deref(),
        Some("evil.example")
    );
    assert_eq!(
        http_host("http://[2001:DB8::1]:80/").as_deref(),
        Some("[2001:db8::1]")
    );
    assert_eq!(
        http_host("https://host.example?q=1").as_deref(),
        Some("host.example")
    );
    assert_eq!(
        http_host("https://host.example\\@other/").as_deref(),
        Some("host.example")
    );
    assert_eq!(http_host("http://[::1/"), None);
    assert_eq!(http_host("ftp://host/"), None);
}

#[test]
fn from_config() {
    use crate::config::TokenKey;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("key");
    std::fs::write(&file, format!("  {}\n", STANDARD.encode([5u8; 32]))).unwrap();
    let cfg = RedirectConfig {
        keys: vec![
            TokenKey {
                id: 3,
                secret: Some(STANDARD.encode([4u8; 32])),
                secret_file: None,
            },
            TokenKey {
                id: 1,
                secret: None,
                secret_file: Some(file.clone()),
            },
        ],
        ..RedirectConfig::default()
    };
    let k = TokenKeys::from_config(&cfg).unwrap();
    assert_eq!(k.ids(), vec![3, 1]);
    let by_file = TokenKeys::from_secrets(vec![(1, [5; 32])]);
    assert_eq!(k.open(&by_file.seal(URL, day()).unwrap()).unwrap(), URL);
    assert!(!format!("{k:?}").contains(&STANDARD.encode([4u8; 32])));

    let bad = |keys: Vec<TokenKey>| {
        let cfg = RedirectConfig {
            keys,
            ..RedirectConfig::default()
        };
        match TokenKeys::from_config(&cfg) {
            Err(TokenError::BadKey(why)) => why,
            other => panic!("{other:?}"),
        }
    };
    let short = STANDARD.encode([4u8; 16]);
    assert!(
        !bad(vec![TokenKey {
            id: 2,
            secret: Some(short.clone()),
            secret_file: None
        }])
        .contains(&short)
    );
    bad(vec![TokenKey {
        id: 2,
        secret: Some("not base64!".into()),
        secret_file: None,
    }]);
    bad(vec![TokenKey {
        id: 2,
        secret: None,
        secret_file: None,
    }]);
    bad(vec![TokenKey {
        id: 2,
        secret: Some(STANDARD.encode([4u8; 32])),
        secret_file: Some(file.clone()),
    }]);
    bad(vec![TokenKey {
        id: 2,
        secret: None,
        secret_file: Some(dir.path().join("missing")),
    }]);
    bad(vec![
        TokenKey {
            id: 2,
            secret: Some(STANDARD.encode([4u8; 32])),
            secret_file: None,
        },
        TokenKey {
            id: 2,
            secret: Some(STANDARD.encode([5u8; 32])),
            secret_file: None,
        },
    ]);

    // None configured: a random key for the process, the same on each call.
    let a = TokenKeys::from_config(&RedirectConfig::default()).unwrap();
    let b = TokenKeys::from_config(&RedirectConfig::default()).unwrap();
    assert_eq!(b.open(&a.seal(URL, day()).unwrap()).unwrap(), URL);
    assert_eq!(
        keys().open(&a.seal(URL, day()).unwrap()).unwrap_err(),
        TokenError::UnknownKey
    );
}
