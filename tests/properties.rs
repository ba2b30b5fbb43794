//! Properties, checked with proptest on generated inputs (case counts kept
//! low so CI stays fast):
//! 1. DATA framing: dot-stuffing, any chunking and `DataReader` give back
//!    the message; a bare CR or LF anywhere gets it refused, never ended
//!    early; `command_line` keeps its contract on any bytes.
//! 2. Link rewriting in strip mode: no generated URL (or its host) is left;
//!    text without URLs comes back unchanged (`None`).
//! 3. Policy: the decision's rule is the first rule in file order whose
//!    matchers match, as a naive reference matcher finds it.
//! 4. PGP/MIME: decrypting what `encrypt_mail` made gives the content entity
//!    with the original body, byte for byte, and the header fields inside.

mod common;

use std::path::PathBuf;

use common::sequoia::{bob, decrypt};
use proptest::prelude::*;
use sequoia_openpgp::policy::StandardPolicy;
use sotto::config::LinksConfig;
use sotto::crypt::{Options, encrypt_mail};
use sotto::links::LinkRewriter;
use sotto::mail::split;
use sotto::policy::{Channel, LinkMode, PolicySet};
use sotto::smtp::wire::{DataError, DataReader, LineError, command_line};

/// `cases` cases (`PROPTEST_CASES` overrides), and no regression file: a
/// failure prints its minimal input.
fn config(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(cases);
    ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::with_cases(cases)
    }
}

// ---------------------------------------------------------------------------
// 1. SMTP DATA framing

/// A line's bytes: anything but CR and LF, with dots and NULs likely.
fn line() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            3 => Just(b'.'),
            1 => Just(0u8),
            8 => any::<u8>().prop_filter("no CR or LF", |b| *b != b'\r' && *b != b'\n'),
        ],
        0..40,
    )
}

/// A message with CRLF line endings only (empty, or ending in CRLF).
fn crlf_message() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(line(), 0..12).prop_map(|lines| {
        let mut m = Vec::new();
        for l in lines {
            m.extend_from_slice(&l);
            m.extend_from_slice(b"\r\n");
        }
        m
    })
}

/// Dot-stuffs a CRLF message: a dot at the start of a line gets another.
fn stuff(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 16);
    let mut line_start = true;
    for (i, &b) in message.iter().enumerate() {
        if line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        line_start = b == b'\n' && i > 0 && message[i - 1] == b'\r';
    }
    out
}

/// Whether `bytes` hold a CR not followed by LF or an LF not preceded by CR.
fn has_bare_newline(bytes: &[u8]) -> bool {
    bytes.iter().enumerate().any(|(i, &b)| {
        (b == b'\r' && bytes.get(i + 1) != Some(&b'\n'))
            || (b == b'\n' && (i == 0 || bytes[i - 1] != b'\r'))
    })
}

/// Feeds `wire` to a reader in pieces cut at `cuts` (positions taken modulo
/// the length); returns the bytes consumed, whether the end was seen, and
/// the reader.
fn feed_in_pieces(max: usize, wire: &[u8], cuts: &[usize]) -> (usize, bool, DataReader) {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (wire.len() + 1)).collect();
    points.push(wire.len());
    points.sort_unstable();
    points.dedup();
    let mut r = DataReader::new(max);
    let mut at = 0;
    let mut done = false;
    for p in points {
        if done || p < at {
            continue;
        }
        // Pieces start where the reader stopped: what it did not use is
        // offered again, as the session does.
        let (used, end) = r.feed(&wire[at..p]);
        assert!(used <= p - at);
        if !end {
            assert_eq!(used, p - at, "the reader must use all input before the end");
        }
        at += used;
        done = end;
    }
    (at, done, r)
}

proptest! {
    #![proptest_config(config(64))]

    /// Stuffed, fed in any pieces, with commands after the end: the reader
    /// stops exactly at the end and gives back the message.
    #[test]
    fn data_round_trip(
        message in crlf_message(),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
    ) {
        let mut wire = stuff(&message);
        wire.extend_from_slice(b".\r\n");
        let end = wire.len();
        wire.extend_from_slice(b"MAIL FROM:<next@example.com>\r\n");
        let (used, done, r) = feed_in_pieces(1 << 20, &wire, &cuts);
        prop_assert!(done, "no end found");
        prop_assert_eq!(used, end);
        prop_assert_eq!(r.finish(), Ok(message));
    }

    /// One bare CR or LF anywhere: the message is refused, and read to its
    /// real end (no smuggled end, no early stop).
    #[test]
    fn bare_newline_is_refused(
        message in crlf_message(),
        at in any::<usize>(),
        cr in any::<bool>(),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
    ) {
        let mut body = stuff(&message);
        let at = at % (body.len() + 1);
        body.insert(at, if cr { b'\r' } else { b'\n' });
        prop_assume!(has_bare_newline(&body));
        let mut wire = body;
        wire.extend_from_slice(b"\r\n.\r\n");
        let end = wire.len();
        wire.extend_from_slice(b"RSET\r\n");
        let (used, done, r) = feed_in_pieces(1 << 20, &wire, &cuts);
        prop_assert!(done, "no end found");
        prop_assert_eq!(used, end, "the message ended early");
        prop_assert_eq!(r.finish(), Err(DataError::BareNewline));
    }

    /// Over the size limit: refused, and still read to the real end.
    #[test]
    fn too_big_is_refused_after_the_end(
        message in crlf_message(),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
    ) {
        prop_assume!(!message.is_empty());
        let mut wire = stuff(&message);
        wire.extend_from_slice(b".\r\n");
        let (used, done, r) = feed_in_pieces(message.len() - 1, &wire, &cuts);
        prop_assert!(done);
        prop_assert_eq!(used, wire.len());
        prop_assert_eq!(r.finish(), Err(DataError::TooBig));
    }

    /// command_line never panics and keeps its contract on any bytes.
    #[test]
    fn command_line_contract(
        buf in prop::collection::vec(
            prop_oneof![2 => Just(b'\r'), 2 => Just(b'\n'), 8 => any::<u8>()],
            0..300,
        ),
        max in 1usize..320,
    ) {
        match command_line(&buf, max) {
            Ok(Some(n)) => {
                prop_assert!(n >= 2 && n <= buf.len() && n <= max);
                prop_assert!(buf[..n].ends_with(b"\r\n"));
                prop_assert!(!buf[..n - 2].contains(&b'\r') && !buf[..n - 2].contains(&b'\n'));
            }
            Ok(None) => {
                prop_assert!(buf.len() < max);
                prop_assert!(!buf.contains(&b'\n'));
            }
            Err((LineError::BareNewline, n)) => {
                prop_assert!(n >= 1 && n <= buf.len());
                prop_assert_eq!(buf[n - 1], b'\n');
                prop_assert!(has_bare_newline(&buf[..n]));
            }
            Err((LineError::TooLong, n)) => {
                prop_assert_eq!(n, buf.len());
                prop_assert!(buf.len() >= max);
                prop_assert!(!buf[..max].contains(&b'\n'));
            }
        }
    }
}

// ---------------------------------------------------------------------------
// 2. Link rewriting, strip mode

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
    #![proptest_config(config(64))]

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

// ---------------------------------------------------------------------------
// 3. Policy: first match in file order

#[derive(Debug, Clone)]
struct GenRule {
    from: Option<Vec<String>>,
    to: Option<Vec<String>>,
    channel: Option<Vec<&'static str>>,
    to_has_key: Option<bool>,
    links: &'static str,
}

const DOMAINS: [&str; 6] = [
    "x.example",
    "y.example",
    "sub.x.example",
    "deep.sub.x.example",
    "xx.example",
    "other.test",
];

fn pattern() -> impl Strategy<Value = String> {
    let domain = prop::sample::select(&DOMAINS[..]);
    let local = prop::sample::select(vec!["a", "b", "ab", "A"]);
    prop_oneof![
        1 => Just("*".to_string()),
        3 => domain.clone().prop_map(|d| d.to_string()),
        3 => domain.clone().prop_map(|d| format!("*@{d}")),
        3 => (local.clone(), domain.clone()).prop_map(|(l, d)| format!("{l}@{d}")),
        2 => domain.clone().prop_map(|d| format!("*@*.{d}")),
        1 => Just("*.example".to_string()),
        1 => domain.clone().prop_map(|d| format!("a*@{d}")),
        1 => domain.clone().prop_map(|d| format!("?@{d}")),
        1 => (local, domain).prop_map(|(l, d)| format!("{}@{}", l.to_uppercase(), d.to_uppercase())),
        1 => Just("*@*".to_string()),
    ]
}

fn gen_rule() -> impl Strategy<Value = GenRule> {
    let list = || prop::option::weighted(0.6, prop::collection::vec(pattern(), 1..3));
    let channel =
        prop::option::weighted(0.3, prop::sample::subsequence(vec!["smtp", "xmpp"], 1..=2));
    let key = prop::option::weighted(0.25, any::<bool>());
    let links = prop::sample::select(vec!["keep", "strip", "defang", "redact"]);
    (list(), list(), channel, key, links).prop_map(|(from, to, channel, to_has_key, links)| {
        GenRule {
            from,
            to,
            channel,
            to_has_key,
            links,
        }
    })
}

fn toml_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("\"{s}\"")).collect();
    format!("[{}]", quoted.join(", "))
}

/// The rules as policy files: rule i is named "r{i}", the rules split over
/// files at `cuts`, in order.
fn policy_files(rules: &[(usize, GenRule)], cuts: &[usize]) -> Vec<(PathBuf, String)> {
    let mut files: Vec<(PathBuf, String)> = vec![(
        PathBuf::from("/policy/00.toml"),
        "[defaults]\nlinks = \"keep\"\n".to_string(),
    )];
    for (n, (i, r)) in rules.iter().enumerate() {
        if cuts.contains(&n) {
            files.push((
                PathBuf::from(format!("/policy/{:02}.toml", files.len() * 10)),
                String::new(),
            ));
        }
        let text = &mut files.last_mut().unwrap().1;
        text.push_str(&format!("\n[[rule]]\nname = \"r{i}\"\n"));
        if let Some(f) = &r.from {
            text.push_str(&format!("from = {}\n", toml_list(f)));
        }
        if let Some(t) = &r.to {
            text.push_str(&format!("to = {}\n", toml_list(t)));
        }
        if let Some(c) = &r.channel {
            let c: Vec<String> = c.iter().map(|s| s.to_string()).collect();
            text.push_str(&format!("channel = {}\n", toml_list(&c)));
        }
        if let Some(k) = r.to_has_key {
            text.push_str(&format!("to_has_key = {k}\n"));
        }
        text.push_str(&format!("links = \"{}\"\n", r.links));
    }
    files
}

/// Loads the rules; rules sotto refuses as never matching (an earlier rule
/// covers them) are dropped, as an administrator would, until the set loads.
fn load(mut rules: Vec<(usize, GenRule)>, cuts: &[usize]) -> (PolicySet, Vec<(usize, GenRule)>) {
    for _ in 0..=rules.len() {
        match PolicySet::from_texts(&policy_files(&rules, cuts), "generated".into()) {
            Ok(set) => return (set, rules),
            Err(problems) => {
                let mut dead = Vec::new();
                for p in &problems {
                    let name = p
                        .message
                        .strip_prefix("rule \"")
                        .and_then(|r| r.split_once("\" can never match"))
                        .map(|(n, _)| n.to_string());
                    match name {
                        Some(n) => dead.push(n),
                        None => panic!("unexpected policy problem: {p:?}"),
                    }
                }
                rules.retain(|(i, _)| !dead.contains(&format!("r{i}")));
            }
        }
    }
    panic!("the rules never loaded");
}

/// `*` any run of characters, `?` any one; case-insensitive.
fn glob(pattern: &[char], text: &[char]) -> bool {
    // The classic dynamic program: m[j] = pattern[..i] matches text[..j].
    let mut m = vec![false; text.len() + 1];
    m[0] = true;
    for &p in pattern {
        let mut next = vec![false; text.len() + 1];
        if p == '*' {
            let mut any = false;
            for j in 0..=text.len() {
                any |= m[j];
                next[j] = any;
            }
        } else {
            for j in 1..=text.len() {
                next[j] = m[j - 1] && (p == '?' || p == text[j - 1]);
            }
        }
        m = next;
    }
    m[text.len()]
}

/// The reference: a pattern list matches an address.
fn ref_matches(list: &Option<Vec<String>>, address: &str) -> bool {
    let Some(list) = list else { return true };
    let address: Vec<char> = address.to_lowercase().chars().collect();
    list.iter().any(|p| {
        let p = p.trim().to_lowercase();
        let p = if p == "*" || p.contains('@') {
            p
        } else {
            format!("*@{p}")
        };
        glob(&p.chars().collect::<Vec<_>>(), &address)
    })
}

/// The reference decision: the first rule, in order, whose matchers all
/// match; `Err(())` when a rule with `to_has_key` is reached and the key
/// status is unknown.
fn reference(
    rules: &[(usize, GenRule)],
    channel: Channel,
    from: &str,
    to: &str,
    has_key: Option<bool>,
) -> Result<Option<String>, ()> {
    for (i, r) in rules {
        let ch = r
            .channel
            .as_ref()
            .is_none_or(|c| c.contains(&channel.to_string().as_str()));
        if !ch || !ref_matches(&r.from, from) || !ref_matches(&r.to, to) {
            continue;
        }
        match (r.to_has_key, has_key) {
            (Some(_), None) => return Err(()),
            (Some(want), Some(h)) if want != h => continue,
            _ => return Ok(Some(format!("r{i}"))),
        }
    }
    Ok(None)
}

fn address() -> impl Strategy<Value = String> {
    prop_oneof![
        10 => (
            prop::sample::select(vec!["a", "b", "ab", "A", "c"]),
            prop::sample::select(&DOMAINS[..]),
        )
            .prop_map(|(l, d)| format!("{l}@{d}")),
        1 => Just(String::new()),
        1 => Just("B@SUB.X.EXAMPLE".to_string()),
    ]
}

fn query() -> impl Strategy<Value = (Channel, String, String, Option<bool>)> {
    (
        prop::sample::select(vec![Channel::Smtp, Channel::Xmpp]),
        address(),
        address(),
        prop::option::of(any::<bool>()),
    )
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn first_matching_rule_decides(
        rules in prop::collection::vec(gen_rule(), 0..12),
        cuts in prop::collection::vec(0usize..12, 0..3),
        queries in prop::collection::vec(query(), 1..24),
    ) {
        let numbered: Vec<(usize, GenRule)> = rules.into_iter().enumerate().collect();
        let (set, kept) = load(numbered, &cuts);
        for (channel, from, to, has_key) in queries {
            let got = set.decide(channel, &from, &to, has_key);
            let want = reference(&kept, channel, &from, &to, has_key);
            match (&got, &want) {
                (Err(_), Err(())) => {}
                (Ok(d), Ok(w)) => {
                    prop_assert_eq!(&d.rule, w, "{} {} -> {} (key {:?})", channel, from, to, has_key);
                    let links = kept
                        .iter()
                        .find(|(i, _)| Some(format!("r{i}")) == d.rule)
                        .map_or("keep", |(_, r)| r.links);
                    prop_assert_eq!(d.treatment.links.name(), links);
                }
                _ => prop_assert!(
                    false,
                    "{} {} -> {} (key {:?}): sotto {:?}, reference {:?}",
                    channel, from, to, has_key, got.map(|d| d.rule), want
                ),
            }
        }
    }
}

// ---------------------------------------------------------------------------
// 4. PGP/MIME round trip

/// A header: some fields (folded sometimes), each `Name: value\r\n`.
fn header() -> impl Strategy<Value = Vec<u8>> {
    let name = prop::sample::select(vec![
        "From",
        "To",
        "Cc",
        "Subject",
        "Date",
        "Message-ID",
        "Received",
        "X-Mailer",
        "Content-Type",
        "Content-Transfer-Encoding",
        "MIME-Version",
        "Keywords",
    ]);
    let value = "[ -~]{0,60}";
    let fold = prop::option::weighted(0.2, "[ \t][ -~]{1,30}");
    prop::collection::vec((name, value, fold), 0..8).prop_map(|fields| {
        let mut h = Vec::new();
        for (name, value, fold) in fields {
            h.extend_from_slice(format!("{name}: {value}").as_bytes());
            if let Some(f) = fold {
                h.extend_from_slice(b"\r\n");
                h.extend_from_slice(f.as_bytes());
            }
            h.extend_from_slice(b"\r\n");
        }
        h
    })
}

proptest! {
    #![proptest_config(config(16))]

    #[test]
    fn pgp_mime_round_trip(
        header in header(),
        body in prop::collection::vec(any::<u8>(), 0..3000),
        hide in any::<bool>(),
        protect in any::<bool>(),
    ) {
        let mut message = header.clone();
        message.extend_from_slice(b"\r\n");
        message.extend_from_slice(&body);
        let policy = StandardPolicy::new();
        let opts = Options {
            hide_recipients: hide,
            protect_subject: protect,
            signer: None,
            policy: &policy,
        };
        let out = encrypt_mail(&message, &[bob().clone()], opts).expect("encrypt_mail");
        let inner = decrypt(&out);
        let original = split(&message);
        let entity = split(&inner);
        prop_assert_eq!(entity.body, original.body);
        prop_assert_eq!(entity.body, &body[..]);
        // Every field is inside as it was (the Content-Type with the
        // protected-headers parameter added), except MIME-Version and the
        // transport's trace fields.
        for f in &original.fields {
            if f.is("mime-version") || f.is("received") || f.is("return-path") {
                continue;
            }
            let inside = entity.fields.iter().any(|g| {
                g.raw == f.raw
                    || (f.is("content-type")
                        && g.is("content-type")
                        && g.raw.starts_with(f.raw.strip_suffix(b"\r\n").unwrap_or(f.raw)))
            });
            prop_assert!(inside, "{:?} is not inside", String::from_utf8_lossy(f.raw));
        }
    }
}
