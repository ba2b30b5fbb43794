//! What the framer emits: [`Frame`]s, with the stream header
//! ([`StreamHeader`]) and whole top-level elements ([`Stanza`]) they carry,
//! each with its exact raw bytes, and the namespace bindings a stream header
//! puts in scope for its stanzas ([`NsContext`]). Plain data, no parsing.

use super::{CLIENT_NS, STREAM_NS};

/// Namespace bindings in scope at stanza level: the default namespace and the
/// prefixes declared on the stream header. Needed to parse a stanza on its
/// own, since `<message>` takes its namespace from the header.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NsContext {
    /// The default namespace (`xmlns='...'`); empty for none.
    pub default_ns: String,
    /// Prefix bindings (`xmlns:stream='...'`), as (prefix, namespace).
    pub prefixes: Vec<(String, String)>,
}

impl NsContext {
    /// The context of a client-to-server stream: default namespace
    /// `jabber:client`, `stream:` bound to the stream namespace.
    pub fn c2s() -> Self {
        Self {
            default_ns: CLIENT_NS.to_owned(),
            prefixes: vec![("stream".to_owned(), STREAM_NS.to_owned())],
        }
    }
}

/// The opening `<stream:stream ...>` of a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamHeader {
    /// The exact bytes: the XML declaration if there was one, the whitespace
    /// after it, and the start tag.
    pub raw: Vec<u8>,
    /// The qualified name as written, normally `stream:stream`.
    pub name: String,
    /// The attributes as written, namespace declarations (`xmlns`,
    /// `xmlns:stream`) included, values unescaped, in document order.
    pub attrs: Vec<(String, String)>,
}

impl StreamHeader {
    /// The value of the attribute written as `name` (e.g. `to`, `xml:lang`,
    /// `xmlns`).
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The `to` attribute.
    pub fn to(&self) -> Option<&str> {
        self.attr("to")
    }

    /// The `from` attribute.
    pub fn from(&self) -> Option<&str> {
        self.attr("from")
    }

    /// The `id` attribute.
    pub fn id(&self) -> Option<&str> {
        self.attr("id")
    }

    /// The `version` attribute.
    pub fn version(&self) -> Option<&str> {
        self.attr("version")
    }

    /// The `xml:lang` attribute.
    pub fn lang(&self) -> Option<&str> {
        self.attr("xml:lang")
    }

    /// The namespace bindings this header puts in scope for stanzas.
    pub fn ns_context(&self) -> NsContext {
        let mut ctx = NsContext::default();
        for (k, v) in &self.attrs {
            if k == "xmlns" {
                ctx.default_ns = v.clone();
            } else if let Some(prefix) = k.strip_prefix("xmlns:") {
                ctx.prefixes.push((prefix.to_owned(), v.clone()));
            }
        }
        ctx
    }
}

/// One complete top-level element of a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stanza {
    /// The exact bytes, from `<` to the end of its end tag.
    pub raw: Vec<u8>,
    /// The qualified name as written: `message`, `iq`, `presence`,
    /// `stream:features`, `auth`, `success`, `starttls`, `proceed`, ...
    /// Match on [`Stanza::local_name`] and [`Stanza::ns`], not on the prefix.
    pub name: String,
    /// The namespace of the element (e.g. `jabber:client`,
    /// `urn:ietf:params:xml:ns:xmpp-sasl`).
    pub ns: String,
}

impl Stanza {
    /// The name without its prefix (`features` for `stream:features`).
    pub fn local_name(&self) -> &str {
        self.name
            .split_once(':')
            .map_or(self.name.as_str(), |(_, local)| local)
    }

    /// Whether this is the element `local` in namespace `ns`.
    pub fn is(&self, local: &str, ns: &str) -> bool {
        self.local_name() == local && self.ns == ns
    }
}

/// What the framer emits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// The stream header; after a [`Framer::reset`](super::Framer::reset), the new one.
    StreamHeader(StreamHeader),
    /// A complete top-level element.
    Stanza(Stanza),
    /// Whitespace between stanzas (keepalives), as it came. A run of
    /// whitespace may come as several frames, depending on how it arrived.
    Whitespace(Vec<u8>),
    /// `</stream:stream>`, as it came (empty if the header was self-closing).
    /// Nothing but whitespace may follow; it is discarded.
    StreamEnd(Vec<u8>),
}

impl Frame {
    /// The exact bytes of this frame.
    pub fn raw(&self) -> &[u8] {
        match self {
            Self::StreamHeader(h) => &h.raw,
            Self::Stanza(s) => &s.raw,
            Self::Whitespace(raw) | Self::StreamEnd(raw) => raw,
        }
    }

    /// The exact bytes of this frame, by value.
    pub fn into_raw(self) -> Vec<u8> {
        match self {
            Self::StreamHeader(h) => h.raw,
            Self::Stanza(s) => s.raw,
            Self::Whitespace(raw) | Self::StreamEnd(raw) => raw,
        }
    }
}
