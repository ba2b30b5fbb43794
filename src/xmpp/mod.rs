//! The XMPP side: a client-to-server proxy in front of the organisation's
//! XMPP server (see DESIGN.md, "XMPP side").
//!
//! Built bottom-up; what exists so far:
//!
//! - [`framer`]: the sans-IO stanza framer. Bytes of one direction of a
//!   stream go in; the stream header, whole top-level stanzas (with their
//!   exact raw bytes, so they can be forwarded one out for one in),
//!   whitespace keepalives and the stream end come out. It refuses DTDs,
//!   entities, comments and processing instructions, bounds stanza size,
//!   nesting depth and attribute count, and maps every refusal to the RFC 6120
//!   stream error the proxy sends. It also parses a stanza into a small owned
//!   tree and serializes one back, for the stanzas the proxy must change.
//!
//! This module must not do I/O, TLS or policy decisions: the listener and the
//! upstream connection (async edges) and the phases of a stream (TLS,
//! features, SASL, stanzas) will live in their own files beside it.

mod element;
mod error;
pub mod features;
pub mod framer;
pub mod listener;
pub mod session;
