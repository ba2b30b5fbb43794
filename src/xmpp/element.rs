//! A parsed stanza as a small owned tree, and its serialization: for the
//! stanzas the proxy must read or change.

use std::fmt::Write as _;

use rxml::error::EndOrError;
use rxml::{Event, Parse, Parser, WithOptions};

use super::error::FrameError;
use super::framer::{
    Limits, MAX_TREE_DEPTH, NsContext, XML_NS, is_xml_space, map_rxml_error, parser_options,
    scan_start_tag,
};

/// An element of a parsed stanza.
///
/// Names are local names; namespaces are resolved URIs (prefixes are not
/// kept: [`serialize`] writes a namespace-equivalent form). Attribute names
/// are the local name for attributes without a namespace (`to`, `type`),
/// `xml:NAME` for the XML namespace (`xml:lang`), and `{URI}NAME` for any
/// other namespace. Names must be valid XML names (always true for trees from
/// [`parse_stanza`]); namespace declarations are not attributes here.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Element {
    /// Local name (`message`, `body`).
    pub name: String,
    /// Namespace URI; empty for none.
    pub ns: String,
    /// Attributes in a stable order (see the type's docs for names).
    pub attrs: Vec<(String, String)>,
    /// Child elements and text, in document order.
    pub children: Vec<Node>,
}

/// A child of an [`Element`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// A child element.
    Element(Element),
    /// Character data, unescaped (CDATA sections included).
    Text(String),
}

impl Element {
    /// An element with no attributes and no children.
    pub fn new(name: impl Into<String>, ns: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ns: ns.into(),
            attrs: Vec::new(),
            children: Vec::new(),
        }
    }

    /// The value of attribute `name`.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Sets attribute `name`, replacing its value if it is there.
    pub fn set_attr(&mut self, name: impl Into<String>, value: impl Into<String>) {
        let name = name.into();
        let value = value.into();
        match self.attrs.iter_mut().find(|(k, _)| *k == name) {
            Some((_, v)) => *v = value,
            None => self.attrs.push((name, value)),
        }
    }

    /// Removes attribute `name`, returning its value.
    pub fn remove_attr(&mut self, name: &str) -> Option<String> {
        let i = self.attrs.iter().position(|(k, _)| k == name)?;
        Some(self.attrs.remove(i).1)
    }

    /// The child elements.
    pub fn elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|n| match n {
            Node::Element(e) => Some(e),
            Node::Text(_) => None,
        })
    }

    /// The first child element `name` in namespace `ns`.
    pub fn child(&self, name: &str, ns: &str) -> Option<&Element> {
        self.elements().find(|e| e.name == name && e.ns == ns)
    }

    /// The first child element `name` in namespace `ns`, mutably.
    pub fn child_mut(&mut self, name: &str, ns: &str) -> Option<&mut Element> {
        self.children.iter_mut().find_map(|n| match n {
            Node::Element(e) if e.name == name && e.ns == ns => Some(e),
            _ => None,
        })
    }

    /// The text directly inside this element, concatenated.
    pub fn text(&self) -> String {
        self.children
            .iter()
            .filter_map(|n| match n {
                Node::Text(t) => Some(t.as_str()),
                Node::Element(_) => None,
            })
            .collect()
    }
}

/// Parses the raw bytes of a stanza of a client-to-server stream (default
/// namespace `jabber:client`, `stream:` bound) under the default [`Limits`].
pub fn parse_stanza(raw: &[u8]) -> Result<Element, FrameError> {
    parse_stanza_in(raw, &NsContext::c2s(), &Limits::default())
}

/// Parses the raw bytes of one stanza, with the namespace bindings of its
/// stream header ([`Framer::ns_context`](super::framer::Framer::ns_context)) in scope, under `limits` (depth
/// never above 1024: the tree is recursive). The same restrictions as the
/// framer apply; `raw` must be exactly one element, whitespace around it
/// allowed.
pub fn parse_stanza_in(
    raw: &[u8],
    ctx: &NsContext,
    limits: &Limits,
) -> Result<Element, FrameError> {
    if raw.len() > limits.max_stanza_bytes {
        return Err(FrameError::TooLarge {
            limit: limits.max_stanza_bytes,
        });
    }
    let max_depth = limits.max_depth.min(MAX_TREE_DEPTH);
    // A wrapper element stands in for the stream header, so that prefixes
    // and the default namespace declared there resolve.
    let mut doc = Vec::with_capacity(raw.len() + 128);
    doc.extend_from_slice(b"<w");
    if !ctx.default_ns.is_empty() {
        doc.extend_from_slice(b" xmlns='");
        escape_into(&mut doc, &ctx.default_ns, true);
        doc.push(b'\'');
    }
    for (prefix, uri) in &ctx.prefixes {
        if prefix == "xml" || prefix == "xmlns" || uri.is_empty() {
            continue;
        }
        doc.extend_from_slice(b" xmlns:");
        doc.extend_from_slice(prefix.as_bytes());
        doc.extend_from_slice(b"='");
        escape_into(&mut doc, uri, true);
        doc.push(b'\'');
    }
    doc.push(b'>');
    doc.extend_from_slice(raw);
    doc.extend_from_slice(b"</w>");

    let mut parser = Parser::with_options(parser_options());
    let mut input: &[u8] = &doc;
    let mut offset = 0usize;
    let mut depth = 0usize;
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        let event = match parser.parse(&mut input, true) {
            Ok(Some(event)) => event,
            Ok(None) => break,
            Err(EndOrError::NeedMoreData) => return Err(FrameError::UnexpectedEof),
            Err(EndOrError::Error(e)) => {
                return Err(map_rxml_error(e, &doc[..doc.len() - input.len()]));
            }
        };
        let start = offset;
        offset += event.metrics().len();
        match event {
            Event::XmlDeclaration(..) => {}
            Event::StartElement(_, (ns, local), attrs) => {
                depth += 1;
                if depth == 1 {
                    continue;
                }
                if depth == 2 && root.is_some() {
                    return Err(FrameError::BadFormat("more than one element"));
                }
                if depth - 1 > max_depth {
                    return Err(FrameError::TooDeep { limit: max_depth });
                }
                let mut count = 0usize;
                scan_start_tag(doc.get(start..offset).unwrap_or_default(), |_, _| {
                    count += 1
                });
                if count > limits.max_attributes {
                    return Err(FrameError::TooManyAttributes {
                        limit: limits.max_attributes,
                    });
                }
                let attrs = attrs
                    .into_iter()
                    .map(|((ans, alocal), value)| {
                        let name = if ans.is_empty() {
                            alocal.as_str().to_owned()
                        } else if ans.as_str() == XML_NS {
                            format!("xml:{}", alocal.as_str())
                        } else {
                            format!("{{{}}}{}", ans.as_str(), alocal.as_str())
                        };
                        (name, value)
                    })
                    .collect();
                stack.push(Element {
                    name: local.as_str().to_owned(),
                    ns: ns.as_str().to_owned(),
                    attrs,
                    children: Vec::new(),
                });
            }
            Event::EndElement(_) => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    continue;
                }
                let Some(element) = stack.pop() else {
                    continue;
                };
                match stack.last_mut() {
                    Some(parent) => parent.children.push(Node::Element(element)),
                    None => root = Some(element),
                }
            }
            Event::Text(_, text) => match stack.last_mut() {
                None => {
                    if !text.bytes().all(is_xml_space) {
                        return Err(FrameError::BadFormat("text outside the stanza"));
                    }
                }
                Some(parent) => match parent.children.last_mut() {
                    Some(Node::Text(t)) => t.push_str(&text),
                    _ => parent.children.push(Node::Text(text)),
                },
            },
        }
    }
    root.ok_or(FrameError::BadFormat("no element"))
}

/// Writes `element` as XML: text and attribute values escaped, namespaces
/// declared where they change (always on the root, `xmlns=''` included), so
/// the output means the same wherever it is placed in a stream. Characters
/// XML cannot carry (control characters, U+FFFE, U+FFFF) become U+FFFD.
/// Attributes named `xmlns` or `xmlns:*` are skipped: declarations follow
/// from the `ns` fields.
pub fn serialize(element: &Element) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    write_element(&mut out, element, None);
    out
}

fn write_element(out: &mut Vec<u8>, element: &Element, parent_ns: Option<&str>) {
    out.push(b'<');
    out.extend_from_slice(element.name.as_bytes());
    if parent_ns != Some(element.ns.as_str()) {
        out.extend_from_slice(b" xmlns='");
        escape_into(out, &element.ns, true);
        out.push(b'\'');
    }
    let mut prefixes = 0usize;
    let mut prefix = String::new();
    for (name, value) in &element.attrs {
        if name == "xmlns" || name.starts_with("xmlns:") {
            continue;
        }
        out.push(b' ');
        match name.strip_prefix('{').and_then(|rest| rest.split_once('}')) {
            Some((uri, local)) if uri == XML_NS => {
                out.extend_from_slice(b"xml:");
                out.extend_from_slice(local.as_bytes());
            }
            Some((uri, local)) => {
                prefix.clear();
                let _ = write!(prefix, "ns{prefixes}");
                prefixes += 1;
                out.extend_from_slice(b"xmlns:");
                out.extend_from_slice(prefix.as_bytes());
                out.extend_from_slice(b"='");
                escape_into(out, uri, true);
                out.extend_from_slice(b"' ");
                out.extend_from_slice(prefix.as_bytes());
                out.push(b':');
                out.extend_from_slice(local.as_bytes());
            }
            None => out.extend_from_slice(name.as_bytes()),
        }
        out.extend_from_slice(b"='");
        escape_into(out, value, true);
        out.push(b'\'');
    }
    if element.children.is_empty() {
        out.extend_from_slice(b"/>");
        return;
    }
    out.push(b'>');
    for child in &element.children {
        match child {
            Node::Element(e) => write_element(out, e, Some(&element.ns)),
            Node::Text(t) => escape_into(out, t, false),
        }
    }
    out.extend_from_slice(b"</");
    out.extend_from_slice(element.name.as_bytes());
    out.push(b'>');
}

pub(super) fn is_xml_char(c: char) -> bool {
    matches!(c,
        '\t' | '\n' | '\r'
        | '\u{20}'..='\u{D7FF}'
        | '\u{E000}'..='\u{FFFD}'
        | '\u{10000}'..='\u{10FFFF}')
}

/// Appends `s` escaped for text (`attr` false) or for an attribute value
/// between quotes of either kind (`attr` true).
fn escape_into(out: &mut Vec<u8>, s: &str, attr: bool) {
    let mut run = 0;
    for (i, c) in s.char_indices() {
        let replacement: &str = match c {
            '&' => "&amp;",
            '<' => "&lt;",
            '>' => "&gt;",
            '\r' => "&#13;",
            '\'' if attr => "&apos;",
            '"' if attr => "&quot;",
            '\t' if attr => "&#9;",
            '\n' if attr => "&#10;",
            c if !is_xml_char(c) => "\u{FFFD}",
            _ => continue,
        };
        out.extend_from_slice(&s.as_bytes()[run..i]);
        out.extend_from_slice(replacement.as_bytes());
        run = i + c.len_utf8();
    }
    out.extend_from_slice(&s.as_bytes()[run..]);
}
