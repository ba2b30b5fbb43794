//! What the proxy does to the stanzas of one stream, both ways, without
//! I/O: it learns who the user is (SASL `<auth>`, `<success>`, the bind
//! result), hands outgoing messages to the chat pipeline and incoming
//! encrypted ones to [`super::inbound`], and keeps the stream one stanza
//! out for each stanza in.
//!
//! A refused message is the one case where the server must not see what
//! the client sent. So that stream management (XEP-0198) counters on both
//! sides stay right, it is not dropped: it becomes a ping to the server
//! (XEP-0199), and the server's answer to that ping becomes the stanza
//! error for the client.

use std::collections::HashMap;
use std::sync::Arc;

use super::chat::{Chat, Refusal, Verdict};
use super::element::{Element, Node, serialize};
use super::features::SASL_NS;
use super::framer::{CLIENT_NS, Framer, Stanza, parse_stanza_in};
use super::identity::Identity;
use super::inbound;

const STANZAS_NS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";
const PING_NS: &str = "urn:xmpp:ping";

/// Per-stream state.
pub struct Stanzas {
    chat: Option<Arc<Chat>>,
    identity: Identity,
    /// The domain the client's stream is for (its header's `to`).
    domain: String,
    /// Pings standing in for refused messages: id → the error for the client.
    /// Process-wide, so an answer redelivered to a resumed stream (on
    /// another connection) still becomes the error.
    refused: Arc<StandIns>,
}

impl Stanzas {
    pub fn new(chat: Option<Arc<Chat>>, domain: &str) -> Self {
        Stanzas {
            chat,
            identity: Identity::default(),
            domain: domain.to_string(),
            refused: STAND_INS.clone(),
        }
    }

    /// The client's stream header named this domain.
    pub fn set_domain(&mut self, domain: &str) {
        if !domain.is_empty() {
            self.domain = domain.to_lowercase();
        }
    }

    /// What goes to the server for a stanza from the client.
    pub async fn from_client(&mut self, s: Stanza, framer: &Framer) -> Vec<u8> {
        if s.is("auth", SASL_NS) {
            if let Ok(el) = parse_stanza_in(&s.raw, framer.ns_context(), framer.limits()) {
                self.identity.on_auth(&el);
            }
            return s.raw;
        }
        let (Some(chat), Some(me)) = (&self.chat, self.identity.bare()) else {
            return s.raw;
        };
        if !s.is("message", CLIENT_NS) {
            return s.raw;
        }
        let Ok(el) = parse_stanza_in(&s.raw, framer.ns_context(), framer.limits()) else {
            return s.raw;
        };
        let original = (
            el.attr("id").map(str::to_string),
            el.attr("to").map(str::to_string),
        );
        match chat.outgoing(el, &me).await {
            Verdict::Pass => s.raw,
            Verdict::Replace(el) => serialize(&el),
            Verdict::Refuse(r) => self.stand_in(r, original.0, original.1),
        }
    }

    /// What goes to the client for a stanza from the server.
    pub async fn from_server(&mut self, s: Stanza, framer: &Framer) -> Vec<u8> {
        if s.is("success", SASL_NS) {
            self.identity.on_success(&self.domain);
            self.logged_in();
            return s.raw;
        }
        if s.is("iq", CLIENT_NS) {
            if !contains(&s.raw, self.refused.tag.as_bytes()) && !contains(&s.raw, b"xmpp-bind") {
                return s.raw;
            }
            let Ok(el) = parse_stanza_in(&s.raw, framer.ns_context(), framer.limits()) else {
                return s.raw;
            };
            if let Some(error) = el.attr("id").and_then(|id| self.refused.take(id)) {
                return error;
            }
            if el.attr("type") == Some("result") {
                self.identity.on_iq_result(&el);
                self.logged_in();
            }
            return s.raw;
        }
        if s.is("message", CLIENT_NS)
            && inbound::may_hold_ciphertext(&s.raw)
            && let (Some(chat), Some(me)) = (&self.chat, self.identity.bare())
            && let Ok(el) = parse_stanza_in(&s.raw, framer.ns_context(), framer.limits())
            && let Some(opened) = inbound::open(chat, el, &me).await
        {
            return serialize(&opened);
        }
        s.raw
    }

    fn logged_in(&self) {
        if let (Some(chat), Some(me)) = (&self.chat, self.identity.bare()) {
            chat.on_login(&me);
        }
    }

    /// The ping that stands in for a refused message; remembers the error
    /// its answer turns into.
    fn stand_in(&mut self, r: Refusal, id: Option<String>, to: Option<String>) -> Vec<u8> {
        let ping_id = self.refused.next_id();
        let mut error = Element::new("message", CLIENT_NS);
        error.set_attr("type", "error");
        if let Some(id) = id {
            error.set_attr("id", id);
        }
        if let Some(to) = to {
            error.set_attr("from", to);
        }
        if let Some(me) = self.identity.full() {
            error.set_attr("to", me);
        }
        let mut e = Element::new("error", CLIENT_NS);
        e.set_attr("type", r.kind);
        e.children
            .push(Node::Element(Element::new(r.condition, STANZAS_NS)));
        let mut text = Element::new("text", STANZAS_NS);
        text.set_attr("xml:lang", "en");
        text.children.push(Node::Text(r.text));
        e.children.push(Node::Element(text));
        error.children.push(Node::Element(e));
        self.refused.put(ping_id.clone(), serialize(&error));

        let mut ping = Element::new("iq", CLIENT_NS);
        ping.set_attr("type", "get");
        ping.set_attr("id", ping_id);
        ping.set_attr("to", self.domain.clone());
        ping.children
            .push(Node::Element(Element::new("ping", PING_NS)));
        serialize(&ping)
    }
}

fn contains(raw: &[u8], needle: &[u8]) -> bool {
    raw.windows(needle.len()).any(|w| w == needle)
}

/// The stand-in pings of this process: their ids share a random tag (cheap
/// to spot in a server's iq), and the errors wait here for the answers, at
/// most `StandIns::MAX` of them (the oldest go first).
pub struct StandIns {
    tag: String,
    count: std::sync::atomic::AtomicU64,
    pending: std::sync::Mutex<Pending>,
}

/// Errors waiting for their pings' answers, and the ids oldest first.
#[derive(Default)]
struct Pending {
    errors: HashMap<String, Vec<u8>>,
    order: std::collections::VecDeque<String>,
}

impl StandIns {
    const MAX: usize = 10_000;

    fn put(&self, id: String, error: Vec<u8>) {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if p.errors.len() >= Self::MAX
            && let Some(old) = p.order.pop_front()
        {
            p.errors.remove(&old);
        }
        p.order.push_back(id.clone());
        p.errors.insert(id, error);
    }

    fn next_id(&self) -> String {
        let n = self
            .count
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        format!("{}-{n}", self.tag)
    }

    fn take(&self, id: &str) -> Option<Vec<u8>> {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let error = p.errors.remove(id)?;
        p.order.retain(|i| i != id);
        Some(error)
    }
}

static STAND_INS: std::sync::LazyLock<Arc<StandIns>> = std::sync::LazyLock::new(|| {
    let mut tag = [0u8; 6];
    let _ = sequoia_openpgp::crypto::random(&mut tag);
    Arc::new(StandIns {
        tag: format!(
            "sotto-{}",
            tag.iter().map(|b| format!("{b:02x}")).collect::<String>()
        ),
        count: std::sync::atomic::AtomicU64::new(1),
        pending: std::sync::Mutex::new(Default::default()),
    })
});
