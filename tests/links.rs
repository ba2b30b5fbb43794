//! Link rewriting over the corpus in `tests/data/links/` (real-shaped
//! messages, listed with their URLs in MANIFEST.toml):
//! - each mode's output equals `expected/NAME.MODE.eml` (a mismatch writes
//!   `NAME.MODE.failed` beside it; `SOTTO_BLESS=1` rewrites the expected files);
//! - in strip mode no listed URL's host+path survives anywhere a reader looks;
//! - not-links and the parts listed as untouched (attachments no reader
//!   shows as text) come out unchanged; the result is valid MIME;
//! - redirect links open, on sotto's redirector, to the original URL;
//!   ftp URLs, which have no redirect, are removed;
//! - end to end: a policy with `links = "strip"` strips what the sink gets.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use mail_parser::{MessageParser, MimeHeaders, PartType};
use sotto::config::LinksConfig;
use sotto::links::html::decode_entities;
use sotto::links::token::TokenKeys;
use sotto::links::{LinkRewriter, Redirect};
use sotto::mail::rewrite::rewrite_links;
use sotto::policy::LinkMode;

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/links")
}

struct Case {
    name: String,
    message: Vec<u8>,
    urls: Vec<String>,
    not_links: Vec<String>,
    untouched: Vec<String>,
}

fn cases() -> Vec<Case> {
    let manifest: toml::Table = std::fs::read_to_string(corpus().join("MANIFEST.toml"))
        .unwrap()
        .parse()
        .unwrap();
    let list = |t: &toml::Value, k: &str| -> Vec<String> {
        t.get(k)
            .and_then(|v| v.as_array())
            .map(|a| a.iter().map(|s| s.as_str().unwrap().to_string()).collect())
            .unwrap_or_default()
    };
    let mut out: Vec<Case> = manifest
        .iter()
        .map(|(name, t)| Case {
            name: name.clone(),
            message: std::fs::read(corpus().join(name)).unwrap(),
            urls: list(t, "urls"),
            not_links: list(t, "not_links"),
            untouched: list(t, "untouched_parts"),
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    assert!(out.len() >= 18, "corpus too small");
    out
}

fn keys() -> Arc<TokenKeys> {
    Arc::new(TokenKeys::from_secrets(vec![(1, [42u8; 32])]))
}

fn rewriter(mode: LinkMode) -> LinkRewriter {
    let redirect = Redirect {
        public_url: "https://links.example.org".into(),
        ttl: Duration::from_secs(3600),
        keys: keys(),
    };
    LinkRewriter::new(mode, &LinksConfig::default(), Some(redirect))
}

/// Everything a reader (or a scanner) sees: the decoded Subject and every
/// part read as text — attachments, calendars and vCards (lines unfolded)
/// included, attached messages (`.eml`) in turn —, decoded (HTML
/// character references too).
fn readable(message: &[u8]) -> String {
    let msg = MessageParser::default()
        .parse(message)
        .expect("output parses as MIME");
    let mut out = String::new();
    collect_readable(&msg, &mut out);
    out
}

fn collect_readable(msg: &mail_parser::Message<'_>, out: &mut String) {
    out.push_str(msg.subject().unwrap_or_default());
    for p in &msg.parts {
        let ct = p
            .content_type()
            .map(|c| format!("{}/{}", c.ctype(), c.subtype().unwrap_or("")).to_lowercase())
            .unwrap_or_default();
        let name = p.attachment_name().unwrap_or_default().to_lowercase();
        let lines = [
            "text/calendar",
            "application/ics",
            "text/vcard",
            "text/x-vcard",
        ]
        .contains(&ct.as_str())
            || name.ends_with(".ics")
            || name.ends_with(".vcf");
        let flowed = p
            .content_type()
            .and_then(|c| c.attribute("format"))
            .is_some_and(|f| f.eq_ignore_ascii_case("flowed"));
        let delsp = p
            .content_type()
            .and_then(|c| c.attribute("delsp"))
            .is_some_and(|d| d.eq_ignore_ascii_case("yes"));
        let named_text = [".txt", ".htm", ".html", ".md", ".csv"]
            .iter()
            .any(|e| name.ends_with(e));
        match &p.body {
            PartType::Text(t) if flowed => {
                out.push_str(&format!("\n{}", sotto::mail::codec::unflow(t, delsp)))
            }
            PartType::Text(t) if lines => out.push_str(&format!("\n{}", unfold(t))),
            PartType::Text(t) => out.push_str(&format!("\n{t}")),
            PartType::Html(h) => out.push_str(&format!("\n{}", decode_entities(h))),
            PartType::Message(m) => collect_readable(m, out),
            PartType::Binary(b) | PartType::InlineBinary(b) if name.ends_with(".eml") => {
                let m = MessageParser::default()
                    .parse(b)
                    .expect("attached message parses");
                collect_readable(&m, out);
            }
            PartType::Binary(b) | PartType::InlineBinary(b) if lines => {
                out.push_str(&format!("\n{}", unfold(&String::from_utf8_lossy(b))))
            }
            PartType::Binary(b) | PartType::InlineBinary(b) if named_text => out.push_str(
                &format!("\n{}", decode_entities(&String::from_utf8_lossy(b))),
            ),
            _ => {}
        }
    }
}

/// Calendar and vCard lines unfolded (RFC 5545 3.1, RFC 6350 3.2).
fn unfold(text: &str) -> String {
    text.replace("\r\n ", "")
        .replace("\r\n\t", "")
        .replace("\n ", "")
}

/// `host/path` of a URL (no scheme, userinfo, query), lower-cased.
fn host_path(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let end = rest.find(['?', '#']).unwrap_or(rest.len());
    let hp = &rest[..end];
    let hp = match hp.find('/') {
        Some(slash) => {
            let (auth, path) = hp.split_at(slash);
            format!("{}{path}", auth.rsplit_once('@').map_or(auth, |(_, h)| h))
        }
        None => hp.rsplit_once('@').map_or(hp, |(_, h)| h).to_string(),
    };
    hp.to_lowercase()
}

/// The raw body of the part named `disp` (`attachment data.pdf`).
fn part_bytes<'a>(message: &'a [u8], disp: &str) -> Option<&'a [u8]> {
    let (kind, file) = disp.split_once(' ')?;
    let msg = MessageParser::default().parse(message)?;
    let p = msg.parts.iter().find(|p| {
        p.content_disposition().is_some_and(|d| {
            d.ctype().eq_ignore_ascii_case(kind) && d.attribute("filename") == Some(file)
        })
    })?;
    message.get(p.offset_body as usize..p.offset_end as usize)
}

fn check_valid_mime(name: &str, out: &[u8], original: &[u8]) {
    assert!(
        out.split(|&b| b == b'\n').all(|l| l.len() <= 1000),
        "{name}: a line over 998 octets"
    );
    assert!(
        !out.windows(2).any(|w| w[1] == b'\n' && w[0] != b'\r'),
        "{name}: bare LF"
    );
    let a = MessageParser::default().parse(original).unwrap();
    let b = MessageParser::default().parse(out).expect("parses");
    assert_eq!(
        a.parts.len(),
        b.parts.len(),
        "{name}: MIME structure changed"
    );
}

#[test]
fn each_mode_matches_its_expected_output() {
    let bless = std::env::var_os("SOTTO_BLESS").is_some();
    let dir = corpus().join("expected");
    std::fs::create_dir_all(&dir).unwrap();
    let mut failed = Vec::new();
    for case in cases() {
        for mode in [
            LinkMode::Keep,
            LinkMode::Strip,
            LinkMode::Defang,
            LinkMode::Redact,
        ] {
            let out = rewrite_links(&case.message, &rewriter(mode))
                .map(|(m, _)| m)
                .unwrap_or_else(|| case.message.clone());
            if mode == LinkMode::Keep {
                assert_eq!(
                    out, case.message,
                    "{}: keep must not change a byte",
                    case.name
                );
                continue;
            }
            check_valid_mime(&case.name, &out, &case.message);
            let stem = case.name.trim_end_matches(".eml");
            let path = dir.join(format!("{stem}.{}.eml", mode.name()));
            if bless {
                std::fs::write(&path, &out).unwrap();
                continue;
            }
            let want = std::fs::read(&path).unwrap_or_default();
            if out != want {
                std::fs::write(path.with_extension("failed"), &out).unwrap();
                failed.push(path.display().to_string());
            }
        }
    }
    assert!(
        failed.is_empty(),
        "outputs differ (see .failed files): {failed:#?}"
    );
}

#[test]
fn strip_leaves_no_url_anywhere_a_reader_looks() {
    for case in cases() {
        let (out, report) =
            rewrite_links(&case.message, &rewriter(LinkMode::Strip)).expect("something to strip");
        assert!(report.urls > 0);
        let seen = readable(&out).to_lowercase();
        // The raw bytes too, but for the parts that stay as they are.
        let mut raw = String::from_utf8_lossy(&out).to_lowercase();
        for d in case.untouched.iter().filter_map(|d| part_bytes(&out, d)) {
            raw = raw.replace(&String::from_utf8_lossy(d).to_lowercase(), "");
        }
        for url in &case.urls {
            let hp = host_path(url);
            assert!(
                !seen.contains(&hp),
                "{}: `{hp}` survived (decoded)",
                case.name
            );
            assert!(!raw.contains(&hp), "{}: `{hp}` survived (raw)", case.name);
        }
        let seen_cased = readable(&out);
        for n in &case.not_links {
            assert!(
                seen_cased.contains(n.as_str()),
                "{}: not-a-link `{n}` was changed",
                case.name
            );
        }
        for d in &case.untouched {
            let before = part_bytes(&case.message, d)
                .unwrap_or_else(|| panic!("{}: no part {d}", case.name));
            let after =
                part_bytes(&out, d).unwrap_or_else(|| panic!("{}: part {d} lost", case.name));
            assert_eq!(before, after, "{}: {d} changed", case.name);
        }
    }
}

#[test]
fn redirect_links_open_to_the_original_urls() {
    let keys = keys();
    for case in cases() {
        let (out, _) =
            rewrite_links(&case.message, &rewriter(LinkMode::Redirect)).expect("rewritten");
        check_valid_mime(&case.name, &out, &case.message);
        let seen = readable(&out);
        let opened = open_all(&case.name, &seen, &keys);
        assert!(!opened.is_empty(), "{}: no redirect links", case.name);
        let lower = seen.to_lowercase();
        for url in case
            .urls
            .iter()
            .filter(|u| !u.to_lowercase().starts_with("ftp://"))
        {
            let hp = host_path(url);
            assert!(!lower.contains(&hp), "{}: `{hp}` still readable", case.name);
            assert!(
                opened
                    .iter()
                    .any(|o| host_path(o) == hp || host_path(&o.replace("http://", "")) == hp),
                "{}: no token leads to `{url}`",
                case.name
            );
        }
    }
}

/// Where each redirect link in `seen` leads.
fn open_all(name: &str, seen: &str, keys: &TokenKeys) -> Vec<String> {
    seen.match_indices("https://links.example.org/l/")
        .map(|(i, _)| {
            let token: String = seen[i + 28..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                .collect();
            keys.open(&token)
                .unwrap_or_else(|e| panic!("{name}: token does not open: {e:?}"))
        })
        .collect()
}

/// ftp:// URLs have no redirect link (browsers no longer open ftp:, and
/// the redirector leads to http and https only): in redirect mode they are
/// removed, in the body as in a calendar.
#[test]
fn ftp_links_are_stripped_in_redirect_mode() {
    let keys = keys();
    let mut checked = 0;
    for case in cases() {
        let ftp: Vec<&String> = case
            .urls
            .iter()
            .filter(|u| u.to_lowercase().starts_with("ftp://"))
            .collect();
        if ftp.is_empty() {
            continue;
        }
        let (out, _) =
            rewrite_links(&case.message, &rewriter(LinkMode::Redirect)).expect("rewritten");
        let seen = readable(&out);
        let raw = String::from_utf8_lossy(&out).to_lowercase();
        for url in ftp {
            let hp = host_path(url);
            assert!(
                !seen.to_lowercase().contains(&hp),
                "{}: `{hp}` kept",
                case.name
            );
            assert!(!raw.contains(&hp), "{}: `{hp}` kept (raw)", case.name);
            checked += 1;
        }
        assert!(
            seen.contains("[link removed]"),
            "{}: no marker where the ftp URL was",
            case.name
        );
        for dest in open_all(&case.name, &seen, &keys) {
            let scheme = dest.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
            assert!(
                matches!(scheme.as_deref(), Some("http" | "https")),
                "{}: a redirect to {dest}",
                case.name
            );
        }
    }
    assert!(checked >= 2, "the corpus has ftp URLs in 10 and 13");
}

#[tokio::test(flavor = "multi_thread")]
async fn policy_strip_applies_end_to_end() {
    let sink = common::Sink::start(&[]);
    let mut cfg = common::config(&sink.addr);
    let _policy = common::policy(
        &mut cfg,
        "[defaults]\nencrypt = \"never\"\nlinks = \"defang\"\n\n[[rule]]\nname = \"strip for press\"\nto = \"press.example\"\nlinks = \"strip\"\n",
    );
    let gw = common::gateway(&cfg).await;
    let mut c = common::Client::connect(gw.smtp.unwrap()).await;
    c.cmd("EHLO client", "250").await;
    let body = b"To: a@press.example\r\nSubject: reset\r\n\r\nReset: https://acct.example.com/reset?token=s3cr3t\r\n.\r\n";
    assert!(
        c.send_mail("me@corp.example", &["a@press.example"], body)
            .await
            .starts_with("250")
    );
    assert!(
        c.send_mail("me@corp.example", &["b@other.example"], body)
            .await
            .starts_with("250")
    );
    let stored = sink.messages();
    let stripped = String::from_utf8_lossy(&stored[0].data);
    assert!(
        stripped.contains("Reset: [link removed]") && !stripped.contains("s3cr3t"),
        "{stripped}"
    );
    let defanged = String::from_utf8_lossy(&stored[1].data);
    assert!(
        defanged.contains("hxxps://acct[.]example[.]com/reset"),
        "{defanged}"
    );
}
