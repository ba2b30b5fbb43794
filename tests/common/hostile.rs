//! Helpers shared by the hostile-input tests (`tests/hostile_mime.rs`,
//! `tests/hostile_smtp.rs`, `tests/hostile_links.rs`): the corpus manifest
//! `tests/data/hostile/MANIFEST.toml`, what a reader can see of a message,
//! strip-mode checks, and a gateway driven over SMTP.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use base64::Engine;
use mail_parser::{Message, MessageParser, MimeHeaders, PartType};
use sotto::config::{Config, LinksConfig};
use sotto::links::html::decode_entities;
use sotto::links::token::TokenKeys;
use sotto::links::{LinkRewriter, Redirect};
use sotto::mail::rewrite::rewrite_links;
use sotto::policy::LinkMode;

use super::{Client, Sink, config};

// ---------------------------------------------------------------------------
// The manifest

pub fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/hostile")
}

fn manifest() -> &'static toml::Table {
    static M: OnceLock<toml::Table> = OnceLock::new();
    M.get_or_init(|| {
        std::fs::read_to_string(data().join("MANIFEST.toml"))
            .expect("read MANIFEST.toml")
            .parse()
            .expect("MANIFEST.toml parses")
    })
}

pub fn string(t: &toml::Value, key: &str) -> Option<String> {
    t.get(key).map(|v| {
        v.as_str()
            .unwrap_or_else(|| panic!("`{key}` must be a string"))
            .to_string()
    })
}

pub fn strings(t: &toml::Value, key: &str) -> Vec<String> {
    t.get(key)
        .map(|v| {
            v.as_array()
                .unwrap_or_else(|| panic!("`{key}` must be a list"))
                .iter()
                .map(|s| s.as_str().expect("a string").to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Every entry of `[section."file"]` tables, sorted by file name; each file
/// must exist and every file in the directory must be listed.
pub fn files(section: &str, dir: &str) -> Vec<(String, &'static toml::Value)> {
    let table = manifest()
        .get(section)
        .and_then(|v| v.as_table())
        .unwrap_or_else(|| panic!("no [{section}] in the manifest"));
    let listed: BTreeSet<&String> = table.keys().collect();
    let on_disk: BTreeSet<String> = std::fs::read_dir(data().join(dir))
        .expect("read data dir")
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        listed,
        on_disk.iter().collect(),
        "tests/data/hostile/{dir}/ and [{section}] in MANIFEST.toml list different files"
    );
    table.iter().map(|(k, v)| (k.clone(), v)).collect()
}

pub fn entries(key: &str) -> Vec<&'static toml::Value> {
    manifest()
        .get(key)
        .and_then(|v| v.as_array())
        .unwrap_or_else(|| panic!("no [[{key}]] in the manifest"))
        .iter()
        .collect()
}

// ---------------------------------------------------------------------------
// Helpers

pub fn rewriter(mode: LinkMode) -> LinkRewriter {
    let redirect = Redirect {
        public_url: "https://links.example.org".into(),
        ttl: Duration::from_secs(3600),
        keys: token_keys(),
    };
    LinkRewriter::new(mode, &LinksConfig::default(), Some(redirect))
}

pub fn token_keys() -> Arc<TokenKeys> {
    Arc::new(TokenKeys::from_secrets(vec![(1, [7u8; 32])]))
}

pub fn strip() -> LinkRewriter {
    rewriter(LinkMode::Strip)
}

/// Base64 decoded as readers do it: characters outside the alphabet are
/// skipped, padding is optional.
fn lenient_base64(raw: &[u8]) -> Vec<u8> {
    let mut clean: Vec<u8> = raw
        .iter()
        .copied()
        .filter(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/')
        .collect();
    if clean.len() % 4 == 1 {
        clean.pop();
    }
    base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(&clean)
        .unwrap_or_default()
}

/// Everything a reader (or a provider's scanner) can see in `message`: the
/// raw bytes, and every decoded Subject and text/HTML part, nested messages
/// included, HTML character references resolved, base64 parts decoded
/// leniently.
pub fn reader_view(message: &[u8]) -> String {
    let mut out = String::from_utf8_lossy(message).into_owned();
    if let Some(msg) = MessageParser::default().parse(message) {
        collect_view(&msg, &mut out, 0);
    }
    out
}

fn collect_view(msg: &Message<'_>, out: &mut String, depth: usize) {
    if depth > 2_000 {
        return;
    }
    if let Some(s) = msg.subject() {
        out.push('\n');
        out.push_str(s);
    }
    let raw = msg.raw_message();
    for part in &msg.parts {
        match &part.body {
            PartType::Text(t) | PartType::Html(t) => {
                out.push('\n');
                out.push_str(t);
                out.push('\n');
                out.push_str(&decode_entities(t));
            }
            PartType::Message(m) => collect_view(m, out, depth + 1),
            _ => {}
        }
        let base64 = part
            .content_transfer_encoding()
            .is_some_and(|e| e.trim().eq_ignore_ascii_case("base64"));
        if base64 && let Some(body) = raw.get(part.offset_body as usize..part.offset_end as usize) {
            out.push('\n');
            out.push_str(&String::from_utf8_lossy(&lenient_base64(body)));
        }
    }
}

/// Panics naming the first URL of `urls` a reader can still see in `out`.
pub fn assert_no_urls(case: &str, out: &[u8], urls: &[String]) {
    let view = reader_view(out);
    for u in urls {
        if let Some(at) = view.find(u.as_str()) {
            let from = view.floor_char_boundary(at.saturating_sub(60));
            let to = view.ceil_char_boundary((at + u.len() + 20).min(view.len()));
            panic!("{case}: {u} survived strip: …{:?}…", &view[from..to]);
        }
    }
}

/// Runs rewrite_links in strip mode and checks the expected outcome.
pub fn check_links(case: &str, message: &[u8], urls: &[String], stripped: bool) {
    let result = rewrite_links(message, &strip());
    if stripped {
        let (out, report) = result.unwrap_or_else(|| {
            panic!("{case}: rewrite_links left the message unchanged; a reader sees {urls:?}")
        });
        assert!(report.urls > 0, "{case}: {report:?}");
        assert_no_urls(case, &out, urls);
    } else {
        assert!(
            result.is_none(),
            "{case}: rewrite_links changed a message with nothing readable to rewrite"
        );
    }
}

/// The message in DATA: dot-stuffed, ending in CRLF.CRLF.
pub fn wire(message: &[u8]) -> Vec<u8> {
    let mut out = super::dot_stuff(message);
    if !message.is_empty() && !message.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// A gateway config for `sink` with a policy file `[defaults]` of `defaults`.
pub fn gw_config(sink: &Sink, defaults: &str, max_size: usize) -> (Config, tempfile::TempDir) {
    let mut cfg = config(&sink.addr);
    cfg.limits.max_message_size = max_size;
    cfg.timeouts.data = Duration::from_secs(60);
    cfg.timeouts.upstream_data = Duration::from_secs(60);
    let dir = super::policy(&mut cfg, &format!("[defaults]\n{defaults}\n"));
    (cfg, dir)
}

pub const PLAIN: &str = "encrypt = \"never\"\nlinks = \"keep\"";
pub const STRIP: &str = "encrypt = \"never\"\nlinks = \"strip\"";

/// Sends `message` in one transaction; returns the reply to the data.
pub async fn send(addr: std::net::SocketAddr, message: &[u8]) -> String {
    let mut c = Client::connect(addr).await;
    c.cmd("EHLO client.example", "250").await;
    let r = c
        .send_mail("alice@example.com", &["bob@example.org"], &wire(message))
        .await;
    c.cmd("QUIT", "221").await;
    r
}

/// Sends through a strip gateway: 250, and no URL reaches the upstream.
pub async fn check_strip_gateway(
    case: &str,
    sink: &Sink,
    addr: std::net::SocketAddr,
    message: &[u8],
    urls: &[String],
) {
    let before = sink.messages().len();
    let r = send(addr, message).await;
    assert!(r.starts_with("250"), "{case} (strip): {r}");
    let stored = sink.messages();
    assert_eq!(stored.len(), before + 1, "{case} (strip): not stored");
    assert_no_urls(case, &stored.last().unwrap().data, urls);
}

// ---------------------------------------------------------------------------
// Generated inputs

/// The URL list of a case, owned.
pub fn urls(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// The header fields every generated message starts with.
pub const HEAD: &str = "From: Alice <alice@example.com>\r\nTo: Bob <bob@example.org>\r\nMessage-ID: <generated@example.com>\r\nMIME-Version: 1.0\r\n";
