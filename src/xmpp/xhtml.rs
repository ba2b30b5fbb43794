//! Links in a chat message's readable content — `<body>`, `<subject>`,
//! XHTML-IM (XEP-0071) and out-of-band data (XEP-0066) — rewritten with
//! mail's link code. The content is an element tree here, not HTML text,
//! so the walk is over elements: text with [`LinkRewriter::rewrite_text`],
//! link attributes with [`LinkRewriter::rewrite_url`].

use super::element::{Element, Node};
use crate::links::{LinkRewriter, Rewritten};

/// Attributes whose whole value is a URL (XHTML-IM allows `href` and `src`;
/// the others are harmless to cover).
const URL_ATTRS: [&str; 6] = ["href", "src", "cite", "action", "background", "poster"];

/// Rewrites every URL in `el` and below; whether anything changed. An OOB
/// `<url>` (or a link attribute) whose URL is removed is dropped whole.
pub fn rewrite_element(el: &mut Element, rw: &LinkRewriter) -> bool {
    let mut changed = false;
    let oob = el.name == "x" && el.ns == super::chat::OOB_NS;
    for (name, value) in &mut el.attrs {
        let is_url = URL_ATTRS.contains(&name.as_str());
        if is_url {
            match rw.rewrite_url(value.trim()) {
                Rewritten::Kept => {}
                Rewritten::Url(u) => {
                    *value = u;
                    changed = true;
                }
                Rewritten::Removed => {
                    *value = String::new();
                    changed = true;
                }
            }
        } else if let Some(new) = rw.rewrite_text(value) {
            *value = new;
            changed = true;
        }
    }
    let before = el.attrs.len();
    el.attrs
        .retain(|(k, v)| !(URL_ATTRS.contains(&k.as_str()) && v.is_empty()));
    changed |= el.attrs.len() != before;

    let mut drop = Vec::new();
    for (i, node) in el.children.iter_mut().enumerate() {
        match node {
            Node::Text(t) => {
                if let Some(new) = rw.rewrite_text(t) {
                    *t = new;
                    changed = true;
                }
            }
            Node::Element(child) if oob && child.name == "url" => {
                let url = child.text();
                match rw.rewrite_url(url.trim()) {
                    Rewritten::Kept => {}
                    Rewritten::Url(u) => {
                        child.children = vec![Node::Text(u)];
                        changed = true;
                    }
                    Rewritten::Removed => {
                        drop.push(i);
                        changed = true;
                    }
                }
            }
            Node::Element(child) => changed |= rewrite_element(child, rw),
        }
    }
    for i in drop.into_iter().rev() {
        el.children.remove(i);
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LinksConfig;
    use crate::policy::LinkMode;
    use crate::xmpp::element::{parse_stanza, serialize};

    fn rewritten(xml: &str, mode: LinkMode) -> String {
        let mut el = parse_stanza(xml.as_bytes()).unwrap();
        let rw = LinkRewriter::new(mode, &LinksConfig::default(), None);
        rewrite_element(&mut el, &rw);
        String::from_utf8(serialize(&el)).unwrap()
    }

    #[test]
    fn strip_leaves_no_url_in_body_xhtml_or_oob() {
        let out = rewritten(
            "<message><body>see https://secret.example/a?token=SECRET ok</body>\
             <html xmlns='http://jabber.org/protocol/xhtml-im'><body xmlns='http://www.w3.org/1999/xhtml'>\
             <a href='https://secret.example/b?token=SECRET'>https://secret.example/c</a>\
             <img src='https://secret.example/i.png' alt='x'/></body></html>\
             <x xmlns='jabber:x:oob'><url>https://secret.example/file?token=SECRET</url><desc>f</desc></x>\
             </message>",
            LinkMode::Strip,
        );
        assert!(!out.contains("secret.example"), "{out}");
        assert!(!out.contains("SECRET"), "{out}");
        assert!(out.contains("see ") && out.contains(" ok"), "{out}");
        assert!(
            out.contains("alt='x'") || out.contains("alt=\"x\""),
            "{out}"
        );
        assert!(!out.contains("<url"), "{out}");
    }

    #[test]
    fn defang_rewrites_attributes_and_text() {
        let out = rewritten(
            "<message><body>https://a.example/x</body>\
             <x xmlns='jabber:x:oob'><url>https://b.example/y</url></x></message>",
            LinkMode::Defang,
        );
        assert!(out.contains("hxxps://a[.]example/x"), "{out}");
        assert!(out.contains("hxxps://b[.]example/y"), "{out}");
    }

    #[test]
    fn text_without_links_is_unchanged() {
        let xml = "<message><body>hello there, no links</body></message>";
        let mut el = parse_stanza(xml.as_bytes()).unwrap();
        let rw = LinkRewriter::new(LinkMode::Strip, &LinksConfig::default(), None);
        assert!(!rewrite_element(&mut el, &rw));
    }
}
