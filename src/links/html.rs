//! URLs in HTML, rewritten as the document streams through lol_html: the
//! attributes that load or link (`href`, `src`, `srcset`, `action`,
//! `background`, `poster`, …), `<meta http-equiv=refresh>`, `<base>`, CSS
//! `url()` in `style` attributes and `<style>` elements, URLs in text, and
//! in comments (Outlook's conditional comments carry VML links).
//! Character references are decoded before URLs are looked for.

use std::cell::{Cell, RefCell};

use lol_html::html_content::ContentType;
use lol_html::html_content::TextType;
use lol_html::{RewriteStrSettings, doc_comments, doc_text, element, rewrite_str};

use super::{LinkRewriter, Rewritten, css, find};

/// More attributes than any real element has: such an element is dropped
/// (keeping its content) rather than rewritten attribute by attribute.
const MAX_ATTRIBUTES: usize = 256;

/// Decodes HTML character references (the common named ones and numeric).
pub fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let end = rest[1..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '#'))
            .map(|e| e + 1);
        let (name, used) = match end {
            Some(e) if rest[e..].starts_with(';') => (&rest[1..e], e + 1),
            Some(e) => (&rest[1..e], e),
            None => (&rest[1..], rest.len()),
        };
        let decoded = match name {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            "nbsp" => Some('\u{a0}'),
            "sol" => Some('/'),
            "colon" => Some(':'),
            "period" => Some('.'),
            "quest" => Some('?'),
            "equals" => Some('='),
            n if n.starts_with("#x") || n.starts_with("#X") => u32::from_str_radix(&n[2..], 16)
                .ok()
                .and_then(char::from_u32),
            n if n.starts_with('#') => n[1..].parse().ok().and_then(char::from_u32),
            _ => None,
        };
        match decoded {
            Some(c) if used > 1 => {
                out.push(c);
                rest = &rest[used..];
            }
            _ => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn escape_attr(s: &str) -> String {
    s.replace('&', "&amp;")
}

/// Rewrites one attribute's URL; `Some(None)` means remove the attribute.
/// Any form a browser opens counts ([`find::browser_url`]: tabs or newlines
/// inside, `https:host`, `//host`), and is rewritten as the URL it opens.
fn rewrite_attr_url(value: &str, rw: &LinkRewriter) -> Option<Option<String>> {
    let url = find::browser_url(&decode_entities(value))?;
    match rw.rewrite_url(&url) {
        Rewritten::Kept => None,
        Rewritten::Url(u) => Some(Some(u)),
        Rewritten::Removed => Some(None),
    }
}

/// `ping="url url"`: each URL of a space-separated list; all removed → `None` value.
fn rewrite_url_list(value: &str, rw: &LinkRewriter) -> Option<Option<String>> {
    let mut kept = Vec::new();
    let mut changed = false;
    for url in value.split_whitespace() {
        match rewrite_attr_url(url, rw) {
            None => kept.push(decode_entities(url)),
            Some(Some(u)) => {
                changed = true;
                kept.push(u);
            }
            Some(None) => changed = true,
        }
    }
    if !changed {
        return None;
    }
    Some((!kept.is_empty()).then(|| kept.join(" ")))
}

/// The candidates of a `srcset` (HTML's parsing rules: a URL runs to
/// whitespace and may itself contain commas; a descriptor runs to a comma).
fn srcset_candidates(value: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = value;
    loop {
        rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == ',');
        if rest.is_empty() {
            return out;
        }
        let url_end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let url = &rest[..url_end];
        if url.ends_with(',') {
            out.push((url.trim_end_matches(',').to_string(), String::new()));
            rest = &rest[url_end..];
            continue;
        }
        rest = &rest[url_end..];
        let desc_end = rest.find(',').unwrap_or(rest.len());
        out.push((url.to_string(), rest[..desc_end].trim().to_string()));
        rest = &rest[desc_end..];
    }
}

/// `srcset="a.png 1x, b.png 2x"`: each candidate's URL; all removed → `None` value.
fn rewrite_srcset(value: &str, rw: &LinkRewriter) -> Option<Option<String>> {
    let decoded = decode_entities(value);
    let mut parts = Vec::new();
    let mut changed = false;
    for (url, desc) in srcset_candidates(&decoded) {
        match rewrite_attr_url(&url, rw) {
            None => parts.push(format!("{url} {desc}").trim().to_string()),
            Some(Some(u)) => {
                changed = true;
                parts.push(format!("{u} {desc}").trim().to_string());
            }
            Some(None) => changed = true,
        }
    }
    if !changed {
        return None;
    }
    Some((!parts.is_empty()).then(|| parts.join(", ")))
}

/// What the raw text of an element (lol_html's `RawText`) is to a mail
/// reader, which runs no scripts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Raw {
    /// `<style>`: CSS.
    Css,
    /// `<xmp>`: text shown as it is (character references too).
    Text,
    /// `<noscript>`, `<noembed>`, `<noframes>`, `<iframe>`: HTML, parsed
    /// and shown by a reader without scripts, frames or plugins.
    Html,
}

impl Raw {
    fn of(tag: &str) -> Option<Raw> {
        match tag {
            "style" => Some(Raw::Css),
            "xmp" => Some(Raw::Text),
            "noscript" | "noembed" | "noframes" | "iframe" => Some(Raw::Html),
            _ => None,
        }
    }
}

/// How deep HTML inside raw-text elements is rewritten as HTML; deeper,
/// its URLs are rewritten as text.
const MAX_RAW_DEPTH: usize = 4;

/// Rewrites the URLs of an HTML document; `None` when nothing changed.
/// Also returns how many URLs were rewritten.
pub fn rewrite(html: &str, rw: &LinkRewriter) -> Option<(String, usize)> {
    rewrite_at(html, rw, 0)
}

/// The raw text of an element, rewritten as a reader sees it: CSS, text
/// (`<xmp>`, `<plaintext>`) or HTML; with how many URLs changed.
fn rewrite_raw(raw: &str, kind: Raw, rw: &LinkRewriter, depth: usize) -> Option<(String, usize)> {
    match kind {
        Raw::Css => css::rewrite(raw, rw).map(|c| (c, 1)),
        Raw::Html if depth < MAX_RAW_DEPTH => rewrite_at(raw, rw, depth + 1),
        Raw::Html | Raw::Text => rw.rewrite_text(raw).map(|t| (t, 1)),
    }
}

fn rewrite_at(html: &str, rw: &LinkRewriter, depth: usize) -> Option<(String, usize)> {
    let count = Cell::new(0usize);
    let text_buf = RefCell::new(String::new());
    // The last raw-text element opened: raw text is inside it (it cannot
    // hold another element).
    let raw_parent = Cell::new(Raw::Css);
    let settings = RewriteStrSettings::new()
        .append_element_content_handler(element!("*", |el| {
            if let Some(kind) = Raw::of(&el.tag_name()) {
                raw_parent.set(kind);
            }
            // Names and values in one pass: looking each up again would be
            // quadratic in the number of attributes.
            let attrs: Vec<(String, String)> = el
                .attributes()
                .iter()
                .map(|a| (a.name(), a.value()))
                .collect();
            if attrs.len() > MAX_ATTRIBUTES {
                // Hostile: each change would be a linear search in lol_html.
                // The element goes, its content stays.
                if attrs.iter().any(|(_, v)| find::may_contain(v)) {
                    count.set(count.get() + 1);
                    el.remove_and_keep_content();
                }
                return Ok(());
            }
            for (name, value) in attrs {
                let result = if name == "ping" {
                    rewrite_url_list(&value, rw)
                } else if name == "srcset" {
                    rewrite_srcset(&value, rw)
                } else if name == "style" {
                    css::rewrite(&decode_entities(&value), rw).map(Some)
                } else if let Some(r) = rewrite_attr_url(&value, rw) {
                    // Any attribute that is a URL (href, src, and the
                    // likes of Outlook's originalsrc) is one to a scanner.
                    Some(r)
                } else if find::may_contain(&value) {
                    // URLs inside other values: refresh targets, titles, alt text.
                    rw.rewrite_text(&decode_entities(&value)).map(Some)
                } else {
                    None
                };
                match result {
                    None => {}
                    Some(Some(new)) => {
                        count.set(count.get() + 1);
                        el.set_attribute(&name, &escape_attr(&new))?;
                    }
                    Some(None) => {
                        count.set(count.get() + 1);
                        el.remove_attribute(&name);
                    }
                }
            }
            Ok(())
        }))
        .append_document_content_handler(doc_comments!(|c| {
            if let Some(new) = rw.rewrite_text(&c.text()) {
                count.set(count.get() + 1);
                // A rewritten URL never contains "-->".
                let _ = c.set_text(&new);
            }
            Ok(())
        }))
        // Every text node once, whatever its ancestors: the raw text of
        // <style>, <noscript>, <xmp> and the likes as what it is to a
        // reader, plain text elsewhere (scripts are left alone).
        .append_document_content_handler(doc_text!(|t| {
            let kind = t.text_type();
            if kind == TextType::ScriptData {
                return Ok(());
            }
            text_buf.borrow_mut().push_str(t.as_str());
            if !t.last_in_text_node() {
                t.remove();
                return Ok(());
            }
            let raw = std::mem::take(&mut *text_buf.borrow_mut());
            let new = match kind {
                TextType::RawText => rewrite_raw(&raw, raw_parent.get(), rw, depth)
                    .map(|(new, n)| (new, n, ContentType::Html)),
                TextType::PlainText => rewrite_raw(&raw, Raw::Text, rw, depth)
                    .map(|(new, n)| (new, n, ContentType::Html)),
                _ => rw
                    .rewrite_text(&decode_entities(&raw))
                    .map(|text| (text, 1, ContentType::Text)),
            };
            match new {
                Some((new, n, ct)) => {
                    count.set(count.get() + n);
                    t.replace(&new, ct);
                }
                None => t.replace(&raw, ContentType::Html),
            }
            Ok(())
        }));
    let out = rewrite_str(html, settings).ok()?;
    (count.get() > 0).then_some((out, count.get()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LinksConfig;
    use crate::policy::LinkMode;

    fn rw(mode: LinkMode) -> LinkRewriter {
        LinkRewriter::new(mode, &LinksConfig::default(), None)
    }

    #[test]
    fn srcset_urls_may_hold_commas() {
        let c = srcset_candidates(
            "https://c.example/w_480,c_fill/a.jpg 480w, https://c.example/b.jpg, c.jpg 2x",
        );
        assert_eq!(
            c[0],
            (
                "https://c.example/w_480,c_fill/a.jpg".to_string(),
                "480w".to_string()
            )
        );
        assert_eq!(c[1], ("https://c.example/b.jpg".to_string(), String::new()));
        assert_eq!(c[2], ("c.jpg".to_string(), "2x".to_string()));
    }

    #[test]
    fn entities_decode() {
        assert_eq!(decode_entities("a&amp;b&#x2F;c&#47;d&lt;"), "a&b/c/d<");
        assert_eq!(decode_entities("AT&T &unknown; &"), "AT&T &unknown; &");
    }

    #[test]
    fn strip_removes_attributes_and_keeps_text() {
        let html = r#"<p style="background:url('https://t.example/bg.png')">Hi <a href="https://a.example/x?a=1&amp;token=2">click</a> or https:&#x2F;&#x2F;b.example/y<img srcset="https://c.example/1.png 1x, https://c.example/2.png 2x"></p><style>.x{background:url(https://d.example/s.png)}</style><!--[if mso]><v:roundrect href="https://e.example/vml"><![endif]-->"#;
        let (out, n) = rewrite(html, &rw(LinkMode::Strip)).unwrap();
        for host in [
            "a.example",
            "b.example",
            "c.example",
            "d.example",
            "e.example",
            "t.example",
        ] {
            assert!(!out.contains(host), "{host} survived: {out}");
        }
        assert!(out.contains(">click</a>"), "{out}");
        assert!(out.contains("or [link removed]"), "{out}");
        assert_eq!(n, 6);
    }

    #[test]
    fn raw_text_as_readers_see_it() {
        let html = "<noscript><a href=\"https://n.example/\">x</a></noscript><xmp>https://x.example/ &amp;</xmp><plaintext>https://p.example/";
        let (out, n) = rewrite(html, &rw(LinkMode::Strip)).unwrap();
        assert_eq!(
            out,
            "<noscript><a>x</a></noscript><xmp>[link removed] &amp;</xmp><plaintext>[link removed]"
        );
        assert_eq!(n, 3);
        // Nested without end: bounded depth, then text; the URL goes.
        let deep = format!("{}https://d.example/", "<noscript>".repeat(10_000));
        let (out, _) = rewrite(&deep, &rw(LinkMode::Strip)).unwrap();
        assert!(
            out.ends_with("<noscript>[link removed]"),
            "{}",
            &out[out.len() - 40..]
        );
    }

    #[test]
    fn unchanged_html_is_none() {
        assert!(rewrite("<p>no links <b>at all</b></p>", &rw(LinkMode::Strip)).is_none());
        assert!(rewrite("<a href=\"mailto:x@y.example\">m</a>", &rw(LinkMode::Strip)).is_none());
    }

    #[test]
    fn defang_in_attributes_and_meta_refresh() {
        let html = r#"<meta http-equiv="refresh" content="0; url=https://r.example/go"><a href="https://a.example/p?x=1&amp;y=2">a</a>"#;
        let (out, _) = rewrite(html, &rw(LinkMode::Defang)).unwrap();
        assert!(
            out.contains(r#"content="0; url=hxxps://r[.]example/go""#),
            "{out}"
        );
        assert!(
            out.contains(r#"href="hxxps://a[.]example/p?x=1&amp;y=2""#),
            "{out}"
        );
    }
}
