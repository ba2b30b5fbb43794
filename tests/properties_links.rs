//! Property: link rewriting in strip mode, checked with proptest on
//! generated text. No generated URL (or its host) is left; text without URLs
//! comes back unchanged (`None`).
//!
//! Case counts are kept low so CI stays fast (`PROPTEST_CASES` overrides);
//! the other families are in the other `tests/properties_*.rs`.

mod common;

use common::proptest_config;
use proptest::prelude::*;
use sotto::config::LinksConfig;
use sotto::links::LinkRewriter;
use sotto::policy::LinkMode;

fn strip() -> LinkRewriter {
    LinkRewriter::new(LinkMode::Strip, &LinksConfig::default(), None)
}

/// A generated URL: the whole of it, and its host.
#[derive(Debug, Clone)]
struct GenUrl {
    url: String,
    host: String,
}

fn label() -> impl Strategy<Value = String> {
    "[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?"
}

fn gen_url() -> impl Strategy<Value = GenUrl> {
    let scheme = prop_oneof![
        Just("https://"),
        Just("http://"),
        Just("HTTPS://"),
        Just("ftp://"),
        Just(""),
    ];
    let host = (prop::collection::vec(label(), 1..3), "[a-z]{2,6}")
        .prop_map(|(labels, tld)| format!("{}.{tld}", labels.join(".")));
    let userinfo = prop::option::weighted(0.15, "[a-z]{1,6}(:[a-zA-Z0-9]{1,8})?@");
    let port = prop::option::weighted(0.15, 1u16..65535);
    let path = prop::collection::vec("[a-zA-Z0-9._~-]{1,10}", 0..4);
    let query = prop::option::weighted(
        0.4,
        prop::collection::vec("[a-z]{1,5}=[a-zA-Z0-9%._-]{0,8}", 1..4),
    );
    let fragment = prop::option::weighted(0.2, "[a-zA-Z0-9_-]{1,8}");
    (scheme, host, userinfo, port, path, query, fragment).prop_map(
        |(scheme, host, userinfo, port, path, query, fragment)| {
            // Without a scheme only `www.` hosts are links.
            let (scheme, userinfo, host) = if scheme.is_empty() {
                ("", None, format!("www.{host}"))
            } else {
                (scheme, userinfo, host)
            };
            let mut url = format!("{scheme}{}{host}", userinfo.unwrap_or_default());
            if let Some(p) = port {
                url.push_str(&format!(":{p}"));
            }
            if !path.is_empty() || query.is_some() || fragment.is_some() {
                url.push('/');
                url.push_str(&path.join("/"));
            }
            if let Some(q) = query {
                url.push('?');
                url.push_str(&q.join("&"));
            }
            if let Some(f) = fragment {
                url.push('#');
                url.push_str(&f);
            }
            GenUrl { url, host }
        },
    )
}

/// Words with no dots, colons or slashes: they can never form a URL or a
/// host. With `unicode`, some are not ASCII.
fn word(unicode: bool) -> BoxedStrategy<String> {
    let ascii = prop_oneof![4 => "[a-zA-Z]{1,10}", 1 => "[0-9]{1,4}"];
    if !unicode {
        return ascii.boxed();
    }
    prop_oneof![
        3 => ascii,
        1 => Just("caf\u{e9}".to_string()),
        1 => Just("\u{4e2d}\u{6587}".to_string()),
        1 => Just("na\u{ef}ve".to_string()),
        1 => Just("\u{2014}".to_string()),
    ]
    .boxed()
}

fn separator(unicode: bool) -> BoxedStrategy<&'static str> {
    let ascii = prop_oneof![
        Just(" "),
        Just(", "),
        Just("; "),
        Just("\r\n"),
        Just(" ("),
        Just(") "),
        Just(" <"),
        Just("> "),
        Just(" \""),
        Just("\" "),
        Just("! "),
    ];
    if !unicode {
        return ascii.boxed();
    }
    prop_oneof![3 => ascii, 1 => Just(" \u{ab}"), 1 => Just("\u{bb} ")].boxed()
}

/// A text piece: a word, or a URL (bare or in angle brackets).
#[derive(Debug, Clone)]
enum Piece {
    Word(String),
    Url(GenUrl, bool),
}

fn text_with_urls(unicode: bool) -> impl Strategy<Value = (String, Vec<GenUrl>)> {
    let piece = prop_oneof![
        3 => word(unicode).prop_map(Piece::Word),
        1 => (gen_url(), any::<bool>()).prop_map(|(u, b)| Piece::Url(u, b)),
    ];
    prop::collection::vec((piece, separator(unicode)), 1..16).prop_map(|pieces| {
        let mut text = String::new();
        let mut urls = Vec::new();
        for (piece, sep) in pieces {
            match piece {
                Piece::Word(w) => text.push_str(&w),
                Piece::Url(u, bracketed) => {
                    if bracketed {
                        text.push_str(&format!(" <{}> ", u.url));
                    } else {
                        text.push(' ');
                        text.push_str(&u.url);
                        text.push(' ');
                    }
                    urls.push(u);
                }
            }
            text.push_str(sep);
        }
        (text, urls)
    })
}

/// Text that holds no URL: no `://` and no `www.`, but dots, colons, at
/// signs, brackets, e-mail addresses and bare domains.
fn text_without_urls() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            4 => word(true),
            1 => Just("example.com".to_string()),
            1 => Just("bob@example.org".to_string()),
            1 => Just("mailto:bob@example.org".to_string()),
            1 => Just("javascript:alert(1)".to_string()),
            1 => Just("https:".to_string()),
            1 => Just("//".to_string()),
            1 => Just("ww.w".to_string()),
            1 => "[ .,:;/@()<>\\[\\]?=&%#!'\"-]{1,4}",
            1 => Just("\r\n".to_string()),
        ],
        0..30,
    )
    .prop_map(|parts| parts.concat())
    .prop_filter("no URL", |t| {
        !t.contains("://") && !t.to_ascii_lowercase().contains("www.")
    })
}

fn check_strip(text: &str, urls: &[GenUrl]) -> Result<(), TestCaseError> {
    let out = strip().rewrite_text(text);
    if urls.is_empty() {
        prop_assert!(out.is_none(), "changed text without URLs: {:?}", out);
    } else {
        let out = out.expect("text with URLs must change");
        for u in urls {
            prop_assert!(!out.contains(&u.url), "{} survived in {:?}", u.url, out);
            prop_assert!(
                !out.contains(&u.host),
                "host {} survived in {:?}",
                u.host,
                out
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(proptest_config(64))]

    #[test]
    fn strip_leaves_no_generated_url((text, urls) in text_with_urls(false)) {
        check_strip(&text, &urls)?;
    }

    /// The same with non-ASCII words and quotes around the URLs.
    #[test]
    fn strip_leaves_no_generated_url_among_unicode((text, urls) in text_with_urls(true)) {
        check_strip(&text, &urls)?;
    }

    #[test]
    fn strip_leaves_text_without_urls_alone(text in text_without_urls()) {
        prop_assert_eq!(strip().rewrite_text(&text), None);
    }
}
