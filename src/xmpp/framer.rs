//! The stanza framer: bytes of one direction of an XMPP stream in, frames out.
//!
//! Sans-IO. The caller [`Framer::feed`]s bytes as they arrive, in chunks of
//! any size, and pulls [`Frame`]s with [`Framer::next_frame`] until it returns
//! `Ok(None)` (needs more bytes). A frame is the stream header, one whole
//! top-level stanza, a run of whitespace between stanzas (keepalives), or the
//! stream end; each carries its exact raw bytes, so the proxy forwards what
//! came in byte for byte, one stanza out for one stanza in, and the raw bytes
//! of all frames concatenated are the input.
//!
//! Parsing is done by [`rxml`], a restricted XML 1.0 parser made for XMPP:
//! it has no DTD support at all, expands only the five predefined entities and
//! character references, and rejects comments and processing instructions.
//! The framer adds the limits ([`Limits`]) and maps every refusal to the
//! stream error condition of RFC 6120 section 4.9.3
//! ([`FrameError::stream_error_condition`], [`stream_error`]).
//!
//! For the stanzas the proxy must look into or change, [`parse_stanza`] builds
//! a small owned tree ([`Element`]) and [`serialize`] writes one back.
//!
//! This module must not do I/O, keep per-user state or decide policy.
//!
//! # Security
//!
//! - Memory per framer is bounded: the bytes of the item being framed never
//!   exceed `max_stanza_bytes + 1` (the parser is never handed more than
//!   that), rxml's token buffer is a fixed 8 KiB, and the element stack is
//!   bounded by `max_depth`. Bytes the caller feeds and has not had framed yet
//!   are the caller's to bound (feed what one read returned, then pull frames).
//! - Nothing here recurses over input except the [`Element`] tree, whose depth
//!   [`parse_stanza_in`] caps at `max_depth` (and never above 1024).
//! - No panics on input: every malformed input is a [`FrameError`], and an
//!   error is final: the framer returns it again on every later call.

use rxml::error::EndOrError;
use rxml::{Event, Options, Parse, Parser, WithOptions};

/// Namespace of the stream element (`<stream:stream>`, `<stream:features>`,
/// `<stream:error>`).
pub const STREAM_NS: &str = "http://etherx.jabber.org/streams";
/// Namespace of stream error conditions.
pub const STREAM_ERROR_NS: &str = "urn:ietf:params:xml:ns:xmpp-streams";
/// Default content namespace of client-to-server streams.
pub const CLIENT_NS: &str = "jabber:client";
/// Namespace bound to the `xml:` prefix (`xml:lang`).
pub const XML_NS: &str = "http://www.w3.org/XML/1998/namespace";

/// Longest name, attribute value or reference rxml accepts. rxml allocates a
/// buffer of this size per parser, so it stays small; longer text is split by
/// rxml and is fine.
const TOKEN_LIMIT: usize = 8192;
/// Hard ceiling on the depth of an [`Element`] tree, whatever
/// [`Limits::max_depth`] says: the tree is dropped and serialized recursively.
pub(super) const MAX_TREE_DEPTH: usize = 1024;
/// Unconsumed input beyond this capacity is released once it is empty.
const INPUT_KEEP: usize = 64 * 1024;

/// Limits on what one stanza may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest stanza (or stream header), in bytes of its raw form. Default
    /// 262144 (256 KiB), the usual server limit.
    pub max_stanza_bytes: usize,
    /// Deepest element nesting inside a stanza, the stanza element being 1.
    /// Default 64.
    pub max_depth: usize,
    /// Most attributes on one element, namespace declarations included.
    /// Default 64.
    pub max_attributes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_stanza_bytes: 256 * 1024,
            max_depth: 64,
            max_attributes: 64,
        }
    }
}

pub use super::element::{Element, Node, parse_stanza, parse_stanza_in, serialize};
pub use super::error::{FrameError, stream_error};

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
    /// The stream header; after a [`Framer::reset`], the new one.
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    BeforeHeader,
    InStream,
    Ended,
}

/// Frames one direction of an XMPP stream. See the [module docs](self).
#[derive(Debug)]
pub struct Framer {
    limits: Limits,
    parser: Parser,
    /// Bytes fed and not yet handed to the parser, from `pos`.
    input: Vec<u8>,
    pos: usize,
    /// Bytes the parser consumed that are not yet part of an emitted frame.
    /// The first `cur` of them belong to the item being framed; the rest is
    /// the parser's look-ahead.
    buf: Vec<u8>,
    cur: usize,
    /// Open elements, the stream element included.
    depth: usize,
    phase: Phase,
    /// Name and namespace of the stanza being framed.
    stanza: Option<(String, String)>,
    ns_ctx: NsContext,
    eof: bool,
    error: Option<FrameError>,
}

impl Default for Framer {
    fn default() -> Self {
        Self::new(Limits::default())
    }
}

pub(super) fn parser_options() -> Options {
    Options {
        max_token_length: TOKEN_LIMIT,
        ..Options::default()
    }
}

fn new_parser() -> Parser {
    let mut parser = Parser::with_options(parser_options());
    // Without buffering, text (and so a keepalive) comes out as soon as it
    // arrives instead of when the next `<` does.
    parser.set_text_buffering(false);
    parser
}

impl Framer {
    /// A framer for a new stream.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            parser: new_parser(),
            input: Vec::new(),
            pos: 0,
            buf: Vec::new(),
            cur: 0,
            depth: 0,
            phase: Phase::BeforeHeader,
            stanza: None,
            ns_ctx: NsContext::c2s(),
            eof: false,
            error: None,
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The namespace bindings of the last stream header (those of a c2s
    /// stream until one is seen); pass it to [`parse_stanza_in`].
    pub fn ns_context(&self) -> &NsContext {
        &self.ns_ctx
    }

    /// Whether the stream end has been framed.
    pub fn is_ended(&self) -> bool {
        self.phase == Phase::Ended
    }

    /// Bytes held: fed but not yet framed, look-ahead and partial item
    /// included.
    pub fn buffered_len(&self) -> usize {
        self.input.len() - self.pos + self.buf.len()
    }

    /// Adds bytes received from the peer. Pull frames with
    /// [`Framer::next_frame`] after each call, so that held input stays
    /// bounded by what one read returns.
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.pos == self.input.len() {
            self.input.clear();
            self.pos = 0;
        }
        self.input.extend_from_slice(bytes);
    }

    /// Marks the end of input (the peer closed the connection): from now on
    /// an unfinished stream is [`FrameError::UnexpectedEof`].
    pub fn finish(&mut self) {
        self.eof = true;
    }

    /// Starts over for a stream restart (after SASL success or STARTTLS's
    /// `<proceed/>`), keeping input not yet framed: the next frame must be a
    /// new [`Frame::StreamHeader`]. Call it right after the frame that ends
    /// the old stream's use. An error stays final.
    pub fn reset(&mut self) {
        // Whatever the parser read ahead belongs to the new stream; a partial
        // item (there is none between frames) is dropped.
        let mut input = self.buf.split_off(self.cur.min(self.buf.len()));
        input.extend_from_slice(&self.input[self.pos..]);
        self.input = input;
        self.pos = 0;
        self.buf = Vec::new();
        self.cur = 0;
        self.parser = new_parser();
        self.depth = 0;
        self.phase = Phase::BeforeHeader;
        self.stanza = None;
    }

    /// The next complete frame, `Ok(None)` if more bytes are needed (or the
    /// input ended cleanly after [`Framer::finish`]), or the error that ends
    /// the stream. After an error every call returns it again.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        let r = self.step();
        if let Err(e) = &r {
            self.error = Some(e.clone());
            self.input = Vec::new();
            self.pos = 0;
            self.buf = Vec::new();
            self.cur = 0;
        }
        r
    }

    fn step(&mut self) -> Result<Option<Frame>, FrameError> {
        let max = self.limits.max_stanza_bytes;
        loop {
            if self.phase == Phase::Ended {
                // Only whitespace can follow the end; nothing to forward.
                self.buf.clear();
                self.cur = 0;
            }
            if self.buf.len() > max {
                return Err(FrameError::TooLarge { limit: max });
            }
            let avail = self.input.len() - self.pos;
            if self.eof && avail == 0 && self.buf.is_empty() && self.phase == Phase::BeforeHeader {
                // Closed before (re)starting a stream: nothing to frame.
                return Ok(None);
            }
            // Never hand the parser more than one stanza's worth.
            let take = avail.min(max.saturating_add(1) - self.buf.len());
            let at_eof = self.eof && take == avail;
            let mut slice = &self.input[self.pos..self.pos + take];
            let result = self.parser.parse(&mut slice, at_eof);
            let used = take - slice.len();
            self.buf
                .extend_from_slice(&self.input[self.pos..self.pos + used]);
            self.pos += used;
            self.compact_input();
            match result {
                Ok(Some(event)) => {
                    if let Some(frame) = self.on_event(event)? {
                        return Ok(Some(frame));
                    }
                }
                Ok(None) => return Ok(None),
                Err(EndOrError::NeedMoreData) => {
                    if self.buf.len() > max {
                        return Err(FrameError::TooLarge { limit: max });
                    }
                    return Ok(None);
                }
                Err(EndOrError::Error(e)) => return Err(map_rxml_error(e, &self.buf)),
            }
        }
    }

    fn compact_input(&mut self) {
        if self.pos == self.input.len() {
            self.input.clear();
            self.pos = 0;
            if self.input.capacity() > INPUT_KEEP {
                self.input = Vec::new();
            }
        } else if self.pos > INPUT_KEEP && self.pos * 2 > self.input.len() {
            self.input.drain(..self.pos);
            self.pos = 0;
        }
    }

    /// Takes the bytes of the finished item out of `buf`.
    fn take_item(&mut self) -> Vec<u8> {
        let cur = self.cur.min(self.buf.len());
        let rest = self.buf.split_off(cur);
        self.cur = 0;
        std::mem::replace(&mut self.buf, rest)
    }

    fn on_event(&mut self, event: Event) -> Result<Option<Frame>, FrameError> {
        let start = self.cur;
        self.cur = (self.cur + event.metrics().len()).min(self.buf.len());
        let max = self.limits.max_stanza_bytes;
        match event {
            Event::XmlDeclaration(..) => Ok(None),
            Event::StartElement(_, (ns, local), _) => {
                let tag = &self.buf[start..self.cur];
                let mut count = 0usize;
                let mut attrs = Vec::new();
                let header = self.depth == 0;
                let name = scan_start_tag(tag, |name, value| {
                    count += 1;
                    if header {
                        attrs.push((lossy(name), unescape_attr(value)));
                    }
                });
                let name = lossy(name);
                if count > self.limits.max_attributes {
                    return Err(FrameError::TooManyAttributes {
                        limit: self.limits.max_attributes,
                    });
                }
                self.depth += 1;
                match self.depth {
                    1 => {
                        if ns.as_str() != STREAM_NS {
                            return Err(FrameError::InvalidNamespace);
                        }
                        if local.as_str() != "stream" {
                            return Err(FrameError::BadFormat("root element is not <stream>"));
                        }
                        let raw = self.take_item();
                        if raw.len() > max {
                            return Err(FrameError::TooLarge { limit: max });
                        }
                        let header = StreamHeader { raw, name, attrs };
                        self.ns_ctx = header.ns_context();
                        self.phase = Phase::InStream;
                        Ok(Some(Frame::StreamHeader(header)))
                    }
                    2 => {
                        self.stanza = Some((name, ns.as_str().to_owned()));
                        Ok(None)
                    }
                    depth => {
                        if depth - 1 > self.limits.max_depth {
                            return Err(FrameError::TooDeep {
                                limit: self.limits.max_depth,
                            });
                        }
                        Ok(None)
                    }
                }
            }
            Event::EndElement(_) => {
                self.depth = self.depth.saturating_sub(1);
                match self.depth {
                    0 => {
                        self.phase = Phase::Ended;
                        Ok(Some(Frame::StreamEnd(self.take_item())))
                    }
                    1 => {
                        let raw = self.take_item();
                        if raw.len() > max {
                            return Err(FrameError::TooLarge { limit: max });
                        }
                        let (name, ns) = self.stanza.take().unwrap_or_default();
                        Ok(Some(Frame::Stanza(Stanza { raw, name, ns })))
                    }
                    _ => Ok(None),
                }
            }
            Event::Text(_, text) => {
                if self.depth != 1 {
                    return Ok(None);
                }
                if !text.bytes().all(is_xml_space) {
                    return Err(FrameError::BadFormat("text between stanzas"));
                }
                Ok(Some(Frame::Whitespace(self.take_item())))
            }
        }
    }
}

/// Maps an rxml error to ours; `consumed` is what the parser read since the
/// last frame, up to and including the offending byte.
pub(super) fn map_rxml_error(e: rxml::Error, consumed: &[u8]) -> FrameError {
    use rxml::Error as E;
    match e {
        E::RestrictedXml("comments") => FrameError::Comment,
        E::RestrictedXml("processing instructions") => FrameError::ProcessingInstruction,
        E::RestrictedXml("only utf-8 encoding is allowed") => FrameError::UnsupportedEncoding,
        E::RestrictedXml("long name or reference") => {
            FrameError::TokenTooLong { limit: TOKEN_LIMIT }
        }
        E::RestrictedXml(what) => FrameError::RestrictedXml(what),
        E::UndeclaredEntity => FrameError::EntityReference,
        E::InvalidUtf8Byte(_) => FrameError::InvalidUtf8,
        E::InvalidEof(_) => FrameError::UnexpectedEof,
        // rxml stops right at the byte after `<!` that is neither `-` nor
        // `[`: `<!DOCTYPE`, `<!ENTITY` and the like.
        E::InvalidSyntax(_) => match consumed {
            [.., b'<', b'!', b'D'] => FrameError::Doctype,
            [.., b'<', b'!', b] if b.is_ascii_uppercase() => FrameError::MarkupDeclaration,
            _ => FrameError::NotWellFormed(e.to_string()),
        },
        other => FrameError::NotWellFormed(other.to_string()),
    }
}

pub(super) fn is_xml_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

pub(super) fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Splits a start tag that rxml has accepted into its qualified name and its
/// attributes (name, value as written between the quotes), calling
/// `on_attr` for each. Bytes before the first `<` (whitespace rxml counts
/// into a root element) are skipped. Never panics, whatever the bytes.
pub(super) fn scan_start_tag<'a>(
    tag: &'a [u8],
    mut on_attr: impl FnMut(&'a [u8], &'a [u8]),
) -> &'a [u8] {
    let Some(lt) = tag.iter().position(|&b| b == b'<') else {
        return &[];
    };
    let at = |i: usize| tag.get(i).copied();
    let mut i = lt + 1;
    let name_start = i;
    while at(i).is_some_and(|b| !is_xml_space(b) && b != b'/' && b != b'>') {
        i += 1;
    }
    let name = &tag[name_start..i];
    loop {
        while at(i).is_some_and(is_xml_space) {
            i += 1;
        }
        if matches!(at(i), None | Some(b'/') | Some(b'>')) {
            break;
        }
        let attr_start = i;
        while at(i).is_some_and(|b| b != b'=' && !is_xml_space(b)) {
            i += 1;
        }
        let attr = &tag[attr_start..i];
        while at(i).is_some_and(|b| b == b'=' || is_xml_space(b)) {
            i += 1;
        }
        let Some(quote @ (b'\'' | b'"')) = at(i) else {
            break;
        };
        i += 1;
        let value_start = i;
        while at(i).is_some_and(|b| b != quote) {
            i += 1;
        }
        let value = &tag[value_start..i];
        i += 1;
        on_attr(attr, value);
    }
    name
}

/// Unescapes an attribute value that rxml has accepted: the five predefined
/// entities, character references, and attribute-value normalization of
/// literal tabs and line ends.
fn unescape_attr(value: &[u8]) -> String {
    let value = String::from_utf8_lossy(value);
    let mut out = String::with_capacity(value.len());
    let mut rest: &str = &value;
    while let Some(i) = rest.find(['&', '\t', '\n', '\r']) {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        match rest.as_bytes()[i] {
            b'&' => {
                let decoded = after.split_once(';').and_then(|(reference, tail)| {
                    let c = match reference {
                        "lt" => Some('<'),
                        "gt" => Some('>'),
                        "amp" => Some('&'),
                        "apos" => Some('\''),
                        "quot" => Some('"'),
                        _ => {
                            if let Some(hex) = reference.strip_prefix("#x") {
                                u32::from_str_radix(hex, 16).ok().and_then(char::from_u32)
                            } else if let Some(dec) = reference.strip_prefix('#') {
                                dec.parse().ok().and_then(char::from_u32)
                            } else {
                                None
                            }
                        }
                    };
                    c.map(|c| (c, tail))
                });
                match decoded {
                    Some((c, tail)) => {
                        out.push(c);
                        rest = tail;
                    }
                    None => {
                        out.push('&');
                        rest = after;
                    }
                }
            }
            b'\r' => {
                out.push(' ');
                rest = after.strip_prefix('\n').unwrap_or(after);
            }
            _ => {
                out.push(' ');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests;
