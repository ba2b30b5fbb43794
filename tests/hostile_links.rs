//! Hostile URLs in text and HTML: the `[[url]]` and `[[html]]` cases of
//! `tests/data/hostile/MANIFEST.toml` (the exact result of each mode), 64 KB
//! URLs (in text, HTML, quoted-printable and format=flowed parts, redirect
//! tokens), work that must stay linear, panics on message text, and
//! hostile calendars, vCards, tables and attached messages.
//!
//! A case marked `bug` in the manifest is checked by the `bug_*` test named
//! for it below and skipped by `url_cases` and `html_cases`.

mod common;

use std::time::Duration;

use sotto::links::html::decode_entities;
use sotto::mail::rewrite::rewrite_links;
use sotto::policy::LinkMode;

use common::hostile::{
    HEAD, STRIP, check_links, check_strip_gateway, entries, gw_config, reader_view, rewriter,
    string, strip, token_keys, urls,
};
use common::{Sink, gateway};

fn rewrite(mode: LinkMode, text: &str) -> String {
    rewriter(mode)
        .rewrite_text(text)
        .unwrap_or_else(|| text.to_string())
}

fn check_url_case(t: &toml::Value) {
    let what = string(t, "what").expect("what");
    let text = string(t, "text").expect("text");
    for (key, mode) in [
        ("strip", LinkMode::Strip),
        ("defang", LinkMode::Defang),
        ("redact", LinkMode::Redact),
    ] {
        if let Some(want) = string(t, key) {
            assert_eq!(rewrite(mode, &text), want, "{what} ({key})");
        }
    }
    if let Some(never) = string(t, "never") {
        let mut modes = vec![("strip", LinkMode::Strip)];
        if t.get("redact").is_some() {
            modes.push(("redact", LinkMode::Redact));
        }
        for (key, mode) in modes {
            let out = rewrite(mode, &text);
            assert!(!out.contains(&never), "{what} ({key}): {never} in {out:?}");
        }
    }
}

fn check_html_case(t: &toml::Value) {
    let what = string(t, "what").expect("what");
    let html = string(t, "html").expect("html");
    let out = sotto::links::html::rewrite(&html, &strip())
        .map(|(o, _)| o)
        .unwrap_or_else(|| html.clone());
    if let Some(never) = string(t, "never") {
        assert!(
            !out.contains(&never) && !decode_entities(&out).contains(&never),
            "{what}: {never} survived strip: {out:?}"
        );
    }
    if let Some(want) = string(t, "strip") {
        assert_eq!(out, want, "{what}");
    }
}

#[test]
fn url_cases() {
    let all = entries("url");
    assert!(all.len() >= 15);
    for t in all.into_iter().filter(|t| t.get("bug").is_none()) {
        check_url_case(t);
    }
}

#[test]
fn html_cases() {
    for t in entries("html")
        .into_iter()
        .filter(|t| t.get("bug").is_none())
    {
        check_html_case(t);
    }
}

fn bug_entries(key: &str, id: &str) -> Vec<&'static toml::Value> {
    let list: Vec<_> = entries(key)
        .into_iter()
        .filter(|t| t.get("bug").and_then(|b| b.as_str()) == Some(id))
        .collect();
    assert!(!list.is_empty(), "no [[{key}]] marked {id}");
    list
}

#[test]
fn bug_idna_separators() {
    for t in bug_entries("url", "idna-separators") {
        check_url_case(t);
    }
}

#[test]
fn bug_html_url_syntax() {
    for t in bug_entries("html", "html-url-syntax") {
        check_html_case(t);
    }
}

#[test]
fn bug_css_import_string() {
    for t in bug_entries("html", "css-import-string") {
        check_html_case(t);
    }
}

#[test]
fn bug_html_raw_text() {
    for t in bug_entries("html", "html-raw-text") {
        check_html_case(t);
    }
}

/// `https://leak.example/` and a path that makes the URL `len` bytes long.
fn long_url(len: usize) -> String {
    let mut u = String::from("https://leak.example/");
    let mut i = 0usize;
    while u.len() < len {
        u.push_str(&format!("seg{i}/%41%2F~-._"));
        i += 1;
    }
    u.truncate(len);
    u
}

#[test]
fn sixty_four_kilobyte_urls() {
    let url = long_url(64 << 10);
    assert_eq!(url.len(), 65_536);
    let text = format!("see {url} and www.leak.example/{} end", &url[21..]);
    assert_eq!(
        rewrite(LinkMode::Strip, &text),
        "see [link removed] and [link removed] end"
    );
    let defanged = rewrite(LinkMode::Defang, &text);
    assert!(defanged.starts_with("see hxxps://leak[.]example/seg0/"));
    assert!(!defanged.contains("leak.example"));
    // In HTML attributes and text.
    let html = format!("<a href=\"{url}\" title=\"{url}\">{url}</a><img srcset=\"{url} 2x\">");
    let (out, _) = sotto::links::html::rewrite(&html, &strip()).unwrap();
    // Any attribute whose whole value is a URL goes, the title too.
    assert_eq!(out, "<a>[link removed]</a><img>");

    // In a quoted-printable part (soft breaks every 76 columns) and in a
    // format=flowed part.
    let qp = String::from_utf8(sotto::mail::codec::qp_encode(url.as_bytes())).unwrap();
    let mut m = format!(
        "{HEAD}Subject: long url\r\nContent-Type: multipart/mixed; boundary=\"q\"\r\n\r\n--q\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n{qp}\r\n--q\r\nContent-Type: text/plain; format=flowed; delsp=yes\r\n\r\n"
    )
    .into_bytes();
    for chunk in url.as_bytes().chunks(70) {
        m.extend_from_slice(chunk);
        m.extend_from_slice(b" \r\n");
    }
    m.extend_from_slice(b"end\r\n--q--\r\n");
    check_links(
        "64 KB URL in QP and flowed parts",
        &m,
        &urls(&["leak.example"]),
        true,
    );
    let (out, _) = rewrite_links(&m, &strip()).unwrap();
    assert!(
        !reader_view(&out).contains("seg100/"),
        "part of the path survived"
    );
}

#[test]
fn bug_wrapped_long_url() {
    let url = long_url(64 << 10);
    let mut text = String::from("Download <");
    for (i, chunk) in url.as_bytes().chunks(70).enumerate() {
        if i > 0 {
            text.push_str("\r\n   ");
        }
        text.push_str(std::str::from_utf8(chunk).unwrap());
    }
    text.push_str("> now");
    assert_eq!(
        rewrite(LinkMode::Strip, &text),
        "Download <[link removed]> now"
    );
}

/// A redirect link always opens: a URL up to MAX_URL_LEN is sealed and its
/// token opens; a longer one (its token would be refused) is removed.
#[test]
fn bug_redirect_long_url() {
    use sotto::links::token::MAX_URL_LEN;
    for len in [MAX_URL_LEN - 1, MAX_URL_LEN] {
        let url = long_url(len);
        let redirected = rewrite(LinkMode::Redirect, &format!("see {url} end"));
        let token = redirected
            .strip_prefix("see https://links.example.org/l/")
            .and_then(|r| r.strip_suffix(" end"))
            .unwrap_or_else(|| panic!("{len} bytes: not a redirect link"));
        assert_eq!(token_keys().open(token).as_deref(), Ok(url.as_str()));
    }
    for len in [MAX_URL_LEN + 1, 64 << 10] {
        let url = long_url(len);
        let redirected = rewrite(LinkMode::Redirect, &format!("see {url} end"));
        assert_eq!(redirected, "see [link removed] end", "{len} bytes");
        let html = format!("<a href=\"{url}\">x</a>");
        let (out, _) = sotto::links::html::rewrite(&html, &rewriter(LinkMode::Redirect)).unwrap();
        assert_eq!(out, "<a>x</a>", "{len} bytes in HTML");
    }
}

/// The longest token also opens over HTTP (no URI limit in the way).
#[tokio::test(flavor = "multi_thread")]
async fn redirect_longest_token_over_http() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let cfg = sotto::config::RedirectConfig::default();
    let server = tokio::spawn(sotto::redirect::run(
        listener,
        sotto::redirect::Redirector::new(token_keys(), &cfg),
        shutdown.clone(),
    ));
    let url = long_url(sotto::links::token::MAX_URL_LEN);
    let token = token_keys().seal(&url, Duration::from_secs(60)).unwrap();
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let resp = client
        .get(format!("http://{addr}/l/{token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), reqwest::StatusCode::OK);
    assert!(resp.text().await.unwrap().contains("leak.example"));
    shutdown.cancel();
    let _ = server.await;
}

// ---------------------------------------------------------------------------
// Work that must stay linear. These inputs take many minutes where the work
// is quadratic and seconds where it is not; the 300 s guard only stops a
// test that would otherwise hang, it does not measure anything.

fn finishes<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(300))
        .unwrap_or_else(|_| panic!("{what}: still running after 300 s (quadratic?)"))
}

#[test]
fn bug_many_urls_quadratic() {
    let text: String = (0..400_000)
        .map(|i| format!("https://leak.example/{i} "))
        .collect();
    let out = finishes("400,000 URLs", move || strip().rewrite_text(&text)).unwrap();
    assert!(!out.contains("leak.example"));
}

#[test]
fn bug_unclosed_brackets_quadratic() {
    let text = format!("{}>", "<https://leak.example/ ".repeat(200_000));
    let out = finishes("200,000 unclosed brackets", move || {
        strip().rewrite_text(&text)
    })
    .unwrap();
    assert!(!out.contains("leak.example"));
}

#[test]
fn bug_trailing_brackets_quadratic() {
    let text = format!("https://leak.example/{}", ")".repeat(1_000_000));
    let out = finishes("1,000,000 trailing brackets", move || {
        strip().rewrite_text(&text)
    })
    .unwrap();
    assert!(!out.contains("leak.example"));
}

#[test]
fn bug_many_attributes_quadratic() {
    let html: String = std::iter::once("<a ".to_string())
        .chain((0..200_000).map(|i| format!("data-{i}=\"https://leak.example/\" ")))
        .chain(std::iter::once(">x</a>".to_string()))
        .collect();
    let out = finishes("200,000 attributes", move || {
        sotto::links::html::rewrite(&html, &strip()).map(|(o, _)| o)
    })
    .unwrap();
    assert!(!out.contains("leak.example"));
}

// ---------------------------------------------------------------------------
// Panics on message text

#[test]
fn bug_char_boundary_panic() {
    for t in bug_entries("url", "char-boundary-panic") {
        check_url_case(t);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bug_char_boundary_panic_through_the_gateway() {
    let sink = Sink::start(&[]);
    let (cfg, _p) = gw_config(&sink, STRIP, 1 << 20);
    let addr = gateway(&cfg).await.smtp.unwrap();
    let message = format!(
        "{HEAD}Subject: verify\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nvisit www.\u{440}\u{430}ypal.example/verify now\r\n"
    );
    check_strip_gateway(
        "www.раypal.example",
        &sink,
        addr,
        message.as_bytes(),
        &urls(&["ypal.example"]),
    )
    .await;
}

// ---------------------------------------------------------------------------
// Attachments read in their own syntax: broken, deep or huge ones are
// still rewritten (read as text where their syntax fails), never a panic.

/// A message with one attached part: its header fields and body.
fn attached(headers: &str, body: &[u8]) -> Vec<u8> {
    let mut m = format!(
        "{HEAD}Subject: attached\r\nContent-Type: multipart/mixed; boundary=\"att\"\r\n\r\n--att\r\n{headers}\r\n\r\n"
    )
    .into_bytes();
    m.extend_from_slice(body);
    m.extend_from_slice(b"\r\n--att--\r\n");
    m
}

#[test]
fn hostile_calendars_vcards_tables_and_messages() {
    let cal = "Content-Type: text/calendar; charset=utf-8";
    let long = format!("DESCRIPTION:https://leak.example/{}", "a".repeat(1 << 20));
    let folded = long
        .as_bytes()
        .chunks(74)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join("\r\n ");
    let nested = format!(
        "BEGIN:VCALENDAR\r\n{}DESCRIPTION:https://leak.example/deep\r\n{}END:VCALENDAR",
        "BEGIN:X\r\n".repeat(100_000),
        "END:X\r\n".repeat(100_000)
    );
    let mut bad_utf8 =
        b"BEGIN:VCALENDAR\r\nDESCRIPTION:\xff\xfe https://leak.example/u \xc3\r\nEND:VCALENDAR"
            .to_vec();
    bad_utf8.extend_from_slice(b"\r\n");
    let mut eml = b"Subject: s\r\n\r\nsee https://leak.example/eml-deep\r\n".to_vec();
    for i in 0..6 {
        let mut wrap = format!(
            "Subject: level {i}\r\nContent-Type: multipart/mixed; boundary=\"e{i}\"\r\n\r\n--e{i}\r\nContent-Type: application/octet-stream; name=\"f{i}.eml\"\r\n\r\n"
        )
        .into_bytes();
        wrap.extend_from_slice(&eml);
        wrap.extend_from_slice(format!("\r\n--e{i}--\r\n").as_bytes());
        eml = wrap;
    }
    let cases: Vec<(&str, &str, Vec<u8>)> = vec![
        (
            "an unclosed quote in a parameter",
            cal,
            b"BEGIN:VCALENDAR\r\nDESCRIPTION;ALTREP=\"https://leak.example/q:see https://leak.example/d\r\nEND:VCALENDAR".to_vec(),
        ),
        (
            "a continuation before any line",
            cal,
            b" https://leak.example/first\r\nBEGIN:VCALENDAR\r\nEND:VCALENDAR".to_vec(),
        ),
        (
            "END without BEGIN",
            cal,
            b"END:VCALENDAR\r\nURL:https://leak.example/end\r\n".to_vec(),
        ),
        ("a 1 MB URL folded 14,000 times", cal, format!("BEGIN:VCALENDAR\r\n{folded}\r\nEND:VCALENDAR").into_bytes()),
        ("100,000 nested components", cal, nested.into_bytes()),
        ("invalid UTF-8 in a calendar", cal, bad_utf8),
        (
            "a vCard group without a name",
            "Content-Type: text/vcard",
            b"BEGIN:VCARD\r\nitem1.:https://leak.example/g\r\nEND:VCARD".to_vec(),
        ),
        (
            "a table with an unclosed quote",
            "Content-Type: text/csv",
            b"a,\"https://leak.example/csv\r\nb,c".to_vec(),
        ),
        (
            "attached messages six deep",
            "Content-Type: application/octet-stream; name=\"top.eml\"",
            eml,
        ),
    ];
    for (what, headers, body) in cases {
        let m = attached(headers, &body);
        finishes(what, move || {
            check_links(what, &m, &urls(&["leak.example"]), true);
        });
    }
}
