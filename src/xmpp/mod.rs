//! The XMPP side: a client-to-server proxy in front of the organisation's
//! XMPP server (see DESIGN.md, "XMPP side"). The flow, file by file:
//!
//! - [`listener`] accepts clients (STARTTLS, direct TLS per XEP-0368);
//!   [`session`] runs one stream: sotto's own until TLS, then the client's
//!   relayed to the server frame by frame, features filtered ([`features`]);
//! - [`framer`] (with `element`, `error`) is the sans-IO stanza framer and
//!   tree: exact raw bytes per stanza, DTDs/entities/comments/PIs refused,
//!   size, depth and attribute bounds, stream errors;
//! - [`stanzas`] is what happens to stanzas (no I/O): the user's identity
//!   ([`identity`]), outgoing messages through [`chat`] (policy channel
//!   `xmpp`: OpenPGP for XMPP via [`ox`], or links rewritten via [`xhtml`],
//!   XEP-0334 hints), incoming ciphertext opened by [`inbound`], and refused
//!   messages kept one-for-one for stream management;
//! - [`service`] is sotto's own component connection, for PEP. Users'
//!   keys are the organisation's identities in [`crate::openpgp`], which
//!   also seals and opens the OpenPGP under XMPP's formats.

pub mod chat;
mod element;
mod error;
pub mod features;
pub mod framer;
pub mod identity;
pub mod inbound;
pub mod listener;
pub mod ox;
pub mod service;
pub mod session;
pub mod stanzas;
pub mod xhtml;
