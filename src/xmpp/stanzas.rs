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

use super::chat::{self, Chat, Refusal, Verdict};
use super::element::{Element, Node, serialize};
use super::features::SASL_NS;
use super::framer::{CLIENT_NS, Framer, Stanza, parse_stanza_in};
use super::identity::{Identity, bare_jid};
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
        if s.is("iq", CLIENT_NS) && contains(&s.raw, b"xmpp-bind") {
            if let Ok(el) = parse_stanza_in(&s.raw, framer.ns_context(), framer.limits()) {
                self.identity.on_client_iq(&el);
            }
            return s.raw;
        }
        let Some(chat) = &self.chat else {
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
        let Some(me) = self.identity.bare() else {
            // Who is writing decides the treatment: not knowing, refuse
            // rather than let content out untreated.
            if !chat::wants(&el) {
                return s.raw;
            }
            let r = Refusal {
                kind: "auth",
                condition: "not-authorized",
                text: "The message was not sent: sotto could not tell which user is logged in \
                       (log in with SASL PLAIN or SCRAM, without another authorization identity)."
                    .into(),
            };
            return self.stand_in(r, original.0, original.1);
        };
        match chat.outgoing(el, &me, s.raw.len()).await {
            Verdict::Pass => s.raw,
            Verdict::Replace(bytes) => bytes,
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
            if let Some(error) = el
                .attr("id")
                .and_then(|id| self.refused.take(id, el.attr("to"), el.attr("from")))
            {
                return error;
            }
            if el.attr("type") == Some("result") {
                self.identity.on_iq_result(&el);
                self.logged_in();
            }
            return s.raw;
        }
        if !s.is("message", CLIENT_NS) {
            return s.raw;
        }
        let forged_marker = contains(&s.raw, inbound::TRANSIT_NS.as_bytes());
        let ciphertext = inbound::may_hold_ciphertext(&s.raw);
        if !forged_marker && !ciphertext {
            return s.raw;
        }
        let Ok(mut el) = parse_stanza_in(&s.raw, framer.ns_context(), framer.limits()) else {
            return s.raw;
        };
        // Only sotto may say a message was encrypted in transit.
        let stripped = forged_marker && inbound::strip_marker(&mut el);
        if ciphertext && let (Some(chat), Some(me)) = (&self.chat, self.identity.bare()) {
            // `open` takes the tree; a stripped one is kept to fall back on.
            let kept = stripped.then(|| el.clone());
            return match (inbound::open(chat, el, &me).await, kept) {
                (Some(opened), _) => serialize(&opened),
                (None, Some(kept)) => serialize(&kept),
                (None, None) => s.raw,
            };
        }
        if stripped { serialize(&el) } else { s.raw }
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
        let owner = self.identity.bare().unwrap_or_default();
        self.refused.put(ping_id.clone(), owner, serialize(&error));

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
    pending: std::sync::Mutex<Pending>,
}

/// Errors waiting for their pings' answers, and the ids oldest first.
#[derive(Default)]
struct Pending {
    /// id → (the user whose message it stands for, the error).
    errors: HashMap<String, (String, Vec<u8>)>,
    order: std::collections::VecDeque<String>,
}

impl StandIns {
    const MAX: usize = 10_000;

    fn put(&self, id: String, owner: String, error: Vec<u8>) {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if p.errors.len() >= Self::MAX
            && let Some(old) = p.order.pop_front()
        {
            p.errors.remove(&old);
        }
        p.order.push_back(id.clone());
        p.errors.insert(id, (owner, error));
    }

    /// A fresh id: the process's tag and 96 random bits, so ids cannot be
    /// guessed from one another.
    fn next_id(&self) -> String {
        let mut r = [0u8; 12];
        let _ = sequoia_openpgp::crypto::random(&mut r);
        let r: String = r.iter().map(|b| format!("{b:02x}")).collect();
        format!("{}-{r}", self.tag)
    }

    /// The error for the answer `id`, if it is the answer to a stand-in of
    /// the user it is addressed to (`to`), coming from the server (`from`
    /// no user JID) — not a lookalike anyone could send to a full JID.
    fn take(&self, id: &str, to: Option<&str>, from: Option<&str>) -> Option<Vec<u8>> {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let (owner, _) = p.errors.get(id)?;
        // (An owner sotto could not name — identity unknown — matches any.)
        let to_owner = owner.is_empty() || to.is_none_or(|t| bare_jid(t) == *owner);
        if !to_owner || from.is_some_and(|f| f.contains('@')) {
            return None;
        }
        let (_, error) = p.errors.remove(id)?;
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
        pending: std::sync::Mutex::new(Default::default()),
    })
});
