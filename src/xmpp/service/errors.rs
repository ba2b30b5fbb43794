//! The service connection's errors: why the connection is down
//! ([`ConnectError`]) and why a request failed ([`ServiceError`]), with the
//! mapping of a stanza error condition to its kind and which failures are
//! worth retrying.

use super::pep::Malformed;
use crate::xmpp::framer::FrameError;

/// Why the connection is down (or could not be made).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// TCP connect, read or write failed.
    #[error("i/o: {0}")]
    Io(String),
    /// The server refused the handshake: wrong secret, or a component name
    /// the server does not know with that secret.
    #[error("the server refused the component handshake (not-authorized{})", text_suffix(.text))]
    NotAuthorized { text: String },
    /// The server ended the stream with this error (e.g. `host-unknown`
    /// for a component name it does not serve, `conflict` when another
    /// connection holds the name).
    #[error("stream error {condition}{}", text_suffix(.text))]
    StreamError { condition: String, text: String },
    /// The server closed the stream.
    #[error("the server closed the stream")]
    Closed,
    /// The server's stream could not be framed or parsed.
    #[error("bad stream from the server: {0}")]
    Frame(FrameError),
    /// No stream header or handshake answer in time.
    #[error("no handshake answer in time")]
    Timeout,
}

fn text_suffix(text: &str) -> String {
    if text.is_empty() {
        String::new()
    } else {
        format!(": {text}")
    }
}

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// The connection is down (or went down before the answer came);
    /// `last` says why, if known.
    #[error("the service connection is down{}", .last.as_ref().map(|e| format!(": {e}")).unwrap_or_default())]
    NotConnected { last: Option<ConnectError> },
    /// No answer within the request timeout.
    #[error("no answer in time")]
    Timeout,
    /// From [`Service::fetch_keys`](super::Service::fetch_keys): the user
    /// publishes no OpenPGP key sotto may read — no metadata node, no item,
    /// an empty list, or a node that is not open. (Prosody answers anyone but the owner `forbidden`
    /// for a PEP node that does not exist, so a user who never published and
    /// one whose list is not open look the same from outside.)
    #[error("no published OpenPGP key")]
    NoKeys,
    /// The node or item does not exist.
    #[error("item-not-found")]
    ItemNotFound,
    /// The server refused: `forbidden`, `not-authorized`, `not-allowed`
    /// (e.g. no privilege for the component, or a node that is not open).
    #[error("refused ({condition})")]
    Forbidden { condition: String },
    /// Another stanza error, e.g. `internal-server-error` (what
    /// mod_privilege answers whenever the wrapped request failed).
    #[error("stanza error {condition}")]
    Stanza { condition: String },
    /// The server granted the component no XEP-0356 privilege to publish
    /// for users of that domain (`privileged_entities` with
    /// `iq = { ["http://jabber.org/protocol/pubsub"] = "set" }` on the
    /// VirtualHost, mod_privilege on the host and the component). Nothing
    /// was sent.
    #[error("no pubsub privilege for that domain")]
    NotPrivileged,
    /// The answer could not be used.
    #[error("malformed answer: {0}")]
    Malformed(#[from] Malformed),
    /// A JID or certificate the caller gave cannot be used.
    #[error("invalid request: {0}")]
    Invalid(&'static str),
}

impl ConnectError {
    /// The server refused the name because another connection holds it.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::StreamError { condition, .. } if condition == "conflict")
    }
}

impl ServiceError {
    /// Whether trying again later may succeed (connection, timeout, server
    /// trouble), as opposed to an answer that will not change by itself.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::NotConnected { .. } | Self::Timeout | Self::Stanza { .. }
        )
    }

    pub(super) fn from_condition(condition: String) -> ServiceError {
        match condition.as_str() {
            "item-not-found" => Self::ItemNotFound,
            "forbidden" | "not-authorized" | "not-allowed" | "registration-required" => {
                Self::Forbidden { condition }
            }
            _ => Self::Stanza { condition },
        }
    }
}
