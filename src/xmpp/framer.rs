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
//! This file holds the [`Framer`] itself (its state machine over rxml's
//! events) and its [`Limits`]; the frame types are in `frame`, the rxml glue
//! shared with the element parser (parser options, error mapping, start-tag
//! scanning) in `scan`.
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

mod frame;
mod scan;

use rxml::error::EndOrError;
use rxml::{Event, Parse, Parser, WithOptions};

pub use frame::{Frame, NsContext, Stanza, StreamHeader};
use scan::unescape_attr;
pub(super) use scan::{is_xml_space, lossy, map_rxml_error, parser_options, scan_start_tag};

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

#[cfg(test)]
mod tests;
