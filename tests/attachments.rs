//! Calendars, vCards and tables that sotto rewrote still import: readers
//! independent of sotto — icalendar and vobject from PyPI, Python's csv
//! module (`tests/peers/readers.py`) — read the attachments of the link
//! corpus (`tests/data/links/`) before and after each link mode, find the
//! same components, properties, rows and columns, and every value (and
//! parameter) is what the mode makes of the original value as that reader
//! reads it. Redirect links are compared by where their tokens lead.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use mail_parser::{MessageParser, MimeHeaders, PartType};
use serde_json::Value;
use sotto::config::LinksConfig;
use sotto::links::token::TokenKeys;
use sotto::links::{LinkRewriter, Redirect, html};
use sotto::mail::rewrite::rewrite_links;
use sotto::policy::LinkMode;

const PUBLIC: &str = "https://links.example.org/l/";

fn keys() -> Arc<TokenKeys> {
    Arc::new(TokenKeys::from_secrets(vec![(1, [42u8; 32])]))
}

fn rewriter(mode: LinkMode) -> LinkRewriter {
    let redirect = Redirect {
        public_url: PUBLIC.trim_end_matches("/l/").into(),
        ttl: Duration::from_secs(3600),
        keys: keys(),
    };
    LinkRewriter::new(mode, &LinksConfig::default(), Some(redirect))
}

fn corpus(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/links")
            .join(name),
    )
    .unwrap()
}

/// What `tests/peers/readers.py` reads in each of `files` as `format`;
/// panics (a file does not import) when the reader fails.
fn read(format: &str, files: &[Vec<u8>]) -> Vec<Value> {
    let dir = tempfile::tempdir().unwrap();
    let paths: Vec<_> = files
        .iter()
        .enumerate()
        .map(|(i, bytes)| {
            let path = dir.path().join(format!("part{i}"));
            std::fs::write(&path, bytes).unwrap();
            path
        })
        .collect();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/readers.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(format)
        .args(&paths)
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read: Vec<Value> = serde_json::from_slice(&out.stdout).expect("readers.py prints JSON");
    assert_eq!(read.len(), files.len());
    read
}

/// The decoded content of each part of `message` whose type or file name
/// `pick` accepts, in order.
fn parts(message: &[u8], pick: &dyn Fn(&str, &str) -> bool) -> Vec<Vec<u8>> {
    let msg = MessageParser::default().parse(message).expect("parses");
    msg.parts
        .iter()
        .filter(|p| {
            let ct = p
                .content_type()
                .map(|c| format!("{}/{}", c.ctype(), c.subtype().unwrap_or("")).to_lowercase())
                .unwrap_or_default();
            pick(&ct, &p.attachment_name().unwrap_or_default().to_lowercase())
        })
        .filter_map(|p| match &p.body {
            PartType::Text(t) => Some(t.as_bytes().to_vec()),
            PartType::Binary(b) | PartType::InlineBinary(b) => Some(b.to_vec()),
            _ => None,
        })
        .collect()
}

/// `s` with each redirect link replaced by `<where it leads>`.
fn opened(s: &str) -> String {
    let keys = keys();
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find(PUBLIC) {
        out.push_str(&rest[..i]);
        let after = &rest[i + PUBLIC.len()..];
        let len = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
            .unwrap_or(after.len());
        let dest = keys.open(&after[..len]).expect("token opens");
        out.push_str(&format!("<{dest}>"));
        rest = &after[len..];
    }
    out.push_str(rest);
    out
}

fn opened_json(v: &Value) -> Value {
    match v {
        Value::String(s) => Value::String(opened(s)),
        Value::Array(a) => Value::Array(a.iter().map(opened_json).collect()),
        Value::Object(o) => {
            Value::Object(o.iter().map(|(k, v)| (k.clone(), opened_json(v))).collect())
        }
        other => other.clone(),
    }
}

/// Text with its URLs as `rw` makes them.
fn text(rw: &LinkRewriter, s: &str) -> String {
    rw.rewrite_text(s).unwrap_or_else(|| s.to_string())
}

/// What a value read as `kind` becomes under `rw`.
fn expected_value(rw: &LinkRewriter, kind: &str, value: &Value) -> Value {
    match (kind, value) {
        ("text" | "uri", Value::String(s)) => Value::String(text(rw, s)),
        ("html", Value::String(s)) => Value::String(
            html::rewrite(s, rw)
                .map(|(h, _)| h)
                .unwrap_or_else(|| s.clone()),
        ),
        ("list", Value::Array(items)) => Value::Array(
            items
                .iter()
                .map(|i| Value::String(text(rw, i.as_str().unwrap())))
                .collect(),
        ),
        _ => value.clone(),
    }
}

/// What a property read before (`old`) should read as after `rw`.
fn expected_property(rw: &LinkRewriter, old: &Value) -> Value {
    let mut want = old.clone();
    let kind = old["kind"].as_str().unwrap();
    want["value"] = expected_value(rw, kind, &old["value"]);
    if let Some(params) = old["params"].as_object() {
        for (k, v) in params {
            want["params"][k] = Value::String(text(rw, v.as_str().unwrap()));
        }
    }
    want
}

/// Lines sotto wrote (those not in `old`) are folded at 75 octets.
fn check_folding(name: &str, old: &[u8], new: &[u8]) {
    let old_lines: Vec<&[u8]> = old.split(|&b| b == b'\n').collect();
    let new_lines: Vec<&[u8]> = new.split(|&b| b == b'\n').collect();
    for line in &new_lines {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        assert!(
            line.len() <= 75
                || old_lines
                    .iter()
                    .any(|o| o.strip_suffix(b"\r").unwrap_or(o) == line),
            "{name}: a written line of {} octets",
            line.len()
        );
    }
}

/// Rewrites corpus message `name` in every mode and checks each part
/// `pick` chooses with the `format` reader; at least `min_changed` values
/// change in strip mode.
fn check(name: &str, format: &str, pick: &dyn Fn(&str, &str) -> bool, min_changed: usize) {
    let message = corpus(name);
    let originals = parts(&message, pick);
    assert!(!originals.is_empty(), "{name}: no {format} part");
    let modes = [
        LinkMode::Strip,
        LinkMode::Defang,
        LinkMode::Redact,
        LinkMode::Redirect,
    ];
    // Every file read by one run of the reader: the originals, then each
    // mode's.
    let mut files = originals.clone();
    for mode in modes {
        let out = rewrite_links(&message, &rewriter(mode))
            .map(|(m, _)| m)
            .unwrap_or_else(|| message.clone());
        let rewritten = parts(&out, pick);
        assert_eq!(rewritten.len(), originals.len(), "{name}: parts lost");
        if format != "csv" {
            for (old, new) in originals.iter().zip(&rewritten) {
                check_folding(name, old, new);
            }
        }
        files.extend(rewritten);
    }
    let read = read(format, &files);
    let (before, after) = read.split_at(originals.len());
    for (m, mode) in modes.into_iter().enumerate() {
        let rw = rewriter(mode);
        let now = &after[m * before.len()..(m + 1) * before.len()];
        for (old, new) in before.iter().zip(now) {
            let got = opened_json(new);
            let old = old.as_array().unwrap();
            let got = got.as_array().unwrap();
            assert_eq!(got.len(), old.len(), "{name} ({}): entries", mode.name());
            let mut changed = 0;
            for (o, g) in old.iter().zip(got) {
                let want = if format == "csv" {
                    let row = o.as_array().unwrap();
                    Value::Array(
                        row.iter()
                            .map(|c| Value::String(text(&rw, c.as_str().unwrap())))
                            .collect(),
                    )
                } else {
                    expected_property(&rw, o)
                };
                assert_eq!(g, &opened_json(&want), "{name} ({})", mode.name());
                changed += usize::from(g != o);
            }
            if mode == LinkMode::Strip {
                assert!(
                    changed >= min_changed,
                    "{name}: {changed} values changed, expected at least {min_changed}"
                );
            }
        }
    }
}

fn calendars(ct: &str, name: &str) -> bool {
    ct == "text/calendar" || ct == "application/ics" || name.ends_with(".ics")
}

fn vcards(ct: &str, name: &str) -> bool {
    ct == "text/vcard" || name.ends_with(".vcf")
}

#[test]
fn calendars_still_import_with_their_links_rewritten() {
    common::require_python_module("icalendar", "icalendar");
    // 13: TZURL, DESCRIPTION (+ ALTREP), LOCATION, URL, CONFERENCE,
    // ATTACH, X-GOOGLE-CONFERENCE, X-ALT-DESC.
    check("13-calendar-invite.eml", "ics", &calendars, 8);
    // 14: LOCATION's ALTREP, DESCRIPTION, ATTACH, X-ZOOM-URL.
    check("14-calendar-octet-stream.eml", "ics", &calendars, 4);
}

#[test]
fn vcards_still_import_with_their_links_rewritten() {
    common::require_python_module("vobject", "vobject");
    // 'Chinedu Okafor.vcf': two URLs, X-SOCIALPROFILE, NOTE; 'contacts.vcf':
    // PHOTO, SOUND, SOURCE, KEY, X-SOCIALPROFILE, NOTE.
    check("15-vcard.eml", "vcard", &vcards, 4);
}

#[test]
fn tables_keep_their_rows_and_columns() {
    check(
        "12-attachment.eml",
        "csv",
        &|ct, name| ct == "text/csv" || name.ends_with(".csv"),
        3,
    );
}
