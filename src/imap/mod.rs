//! The IMAP proxy: sotto between mail clients and the provider's IMAP
//! server, so that the mailbox holds ciphertext while clients read plain.
//! Framing and parsing with imap-codec; messages pass through as the peer
//! sent them unless sotto must change them.
//!
//! - [`proxy`]: one session, both directions, and what it changes on the
//!   client's side; `responses`, on the server's;
//! - [`upstream`]: the connection to the server (plain on loopback,
//!   implicit TLS, STARTTLS);
//! - [`login`]: the user a LOGIN or SASL exchange names;
//! - [`capabilities`]: what of the server's capabilities passes;
//! - [`framing`]: client literals sotto took, sent on as LITERAL+;
//! - [`stored`]: APPEND sealed to the user's identity, stored messages
//!   opened (with a bounded cache);
//! - [`fetch`] and [`view`]: FETCH items computed from the opened message
//!   (sections, BODYSTRUCTURE, ENVELOPE).
//!
//! - [`search`]: SEARCH on the text of encrypted mail (sotto finds the
//!   UIDs, the server does the rest).

pub mod capabilities;
pub mod fetch;
pub mod framing;
pub mod login;
pub mod proxy;
mod responses;
pub mod search;
pub mod stored;
pub mod upstream;
pub mod view;

/// A client command line, parsed (for the unit tests).
#[cfg(test)]
pub(crate) fn test_command(line: &[u8]) -> imap_codec::imap_types::command::Command<'static> {
    use imap_codec::decode::Decoder as _;
    use imap_codec::imap_types::IntoStatic as _;
    imap_codec::CommandCodec::default()
        .decode(line)
        .unwrap()
        .1
        .into_static()
}
