//! The stanzas of sotto's service connection, sans-IO: XEP-0373 public-key
//! nodes (publish and fetch), the XEP-0356 `<privileged_iq>` wrapper, stanza
//! errors, and the answers a component owes the server (disco#info, ping,
//! `service-unavailable`).
//!
//! Builders return [`Element`] trees in the component stream's namespace
//! (`jabber:component:accept`); parsers read the trees the framer hands the
//! connection. Nothing here does I/O or keeps state.

use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use sequoia_openpgp::Cert;
use sequoia_openpgp::types::HashAlgorithm;

use crate::xmpp::framer::{Element, Node};

/// Default namespace of a component stream (XEP-0114).
pub const COMPONENT_NS: &str = "jabber:component:accept";
/// Namespace of stanzas wrapped in `<privileged_iq>` (XEP-0356).
pub const CLIENT_NS: &str = "jabber:client";
pub const PUBSUB_NS: &str = "http://jabber.org/protocol/pubsub";
pub const OPENPGP_NS: &str = "urn:xmpp:openpgp:0";
pub const PRIVILEGE_NS: &str = "urn:xmpp:privilege:2";
pub const FORWARD_NS: &str = "urn:xmpp:forward:0";
pub const DATA_NS: &str = "jabber:x:data";
pub const STANZAS_NS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";
pub const DISCO_INFO_NS: &str = "http://jabber.org/protocol/disco#info";
pub const PING_NS: &str = "urn:xmpp:ping";
/// The node listing a user's OpenPGP keys (XEP-0373 §4.2).
pub const METADATA_NODE: &str = "urn:xmpp:openpgp:0:public-keys";
/// Item id of sotto's metadata item: each publication replaces it.
pub const METADATA_ITEM: &str = "current";
/// Most keys read from one user's list; more are ignored.
pub const MAX_LISTED_KEYS: usize = 16;

/// The node holding the key with fingerprint `fpr` (upper-case hex).
pub fn key_node(fpr: &str) -> String {
    format!("{METADATA_NODE}:{fpr}")
}

/// One `<pubkey-metadata/>` of a `<public-keys-list/>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyMetadata {
    /// V4 fingerprint, upper-case hex, as listed.
    pub fingerprint: String,
    /// XEP-0082 date-time as listed (when the key was last changed).
    pub date: String,
}

/// Why a PEP answer could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    #[error("no <pubsub><items> in the answer")]
    NoItems,
    #[error("no <{0}/> payload in the item")]
    NoPayload(&'static str),
    #[error("a listed fingerprint is not 40 hex digits")]
    BadFingerprint,
    #[error("key data is not base64")]
    Base64,
    #[error("key data is not an OpenPGP certificate")]
    NotACert,
    #[error("the key's fingerprint is not the one listed")]
    FingerprintMismatch,
    #[error("no <privilege><forwarded><iq> in the privileged answer")]
    NotForwarded,
}

// ---- building --------------------------------------------------------------

fn el(name: &str, ns: &str) -> Element {
    Element::new(name, ns)
}

fn with_attr(mut e: Element, name: &str, value: &str) -> Element {
    e.set_attr(name, value);
    e
}

fn with_child(mut e: Element, child: Element) -> Element {
    e.children.push(Node::Element(child));
    e
}

fn with_text(mut e: Element, text: &str) -> Element {
    e.children.push(Node::Text(text.to_owned()));
    e
}

/// An `<iq/>` of the component stream with `payload` as its only child.
pub fn iq(kind: &str, from: &str, to: &str, id: &str, payload: Element) -> Element {
    let iq = el("iq", COMPONENT_NS);
    let iq = with_attr(iq, "type", kind);
    let iq = with_attr(iq, "id", id);
    let iq = with_attr(iq, "from", from);
    let iq = with_attr(iq, "to", to);
    with_child(iq, payload)
}

/// XEP-0356 §6: `user_bare` sends `inner` (a `<pubsub/>` of type `set`) to
/// its own account, through the component's privilege. The outer iq goes to
/// the user's bare JID; mod_privilege requires the wrapped iq in
/// `jabber:client`, of the same type, with an id, and sets its `from`.
pub fn privileged_set(
    component: &str,
    user_bare: &str,
    id: &str,
    inner_id: &str,
    inner: Element,
) -> Element {
    let wrapped = el("iq", CLIENT_NS);
    let wrapped = with_attr(wrapped, "type", "set");
    let wrapped = with_attr(wrapped, "id", inner_id);
    let wrapped = with_attr(wrapped, "to", user_bare);
    let wrapped = with_child(wrapped, inner);
    let privileged = with_child(el("privileged_iq", PRIVILEGE_NS), wrapped);
    iq("set", component, user_bare, id, privileged)
}

/// The iq forwarded back in the answer to a [`privileged_set`]:
/// `<privilege><forwarded><iq/></forwarded></privilege>`.
pub fn unwrap_privileged(answer: &Element) -> Result<&Element, Malformed> {
    answer
        .child("privilege", PRIVILEGE_NS)
        .and_then(|p| p.child("forwarded", FORWARD_NS))
        .and_then(|f| f.elements().find(|e| e.name == "iq"))
        .ok_or(Malformed::NotForwarded)
}

/// `<pubsub><publish node=…><item id=…>payload</item></publish>` with
/// publish-options `pubsub#access_model = open` (XEP-0373 §4.1).
pub fn publish_open(node: &str, item_id: &str, payload: Element) -> Element {
    let item = with_child(with_attr(el("item", PUBSUB_NS), "id", item_id), payload);
    let publish = with_child(with_attr(el("publish", PUBSUB_NS), "node", node), item);
    let field = |var: &str, value: &str| {
        with_child(
            with_attr(el("field", DATA_NS), "var", var),
            with_text(el("value", DATA_NS), value),
        )
    };
    let form_type = with_attr(
        field(
            "FORM_TYPE",
            "http://jabber.org/protocol/pubsub#publish-options",
        ),
        "type",
        "hidden",
    );
    let form = with_attr(el("x", DATA_NS), "type", "submit");
    let form = with_child(form, form_type);
    let form = with_child(form, field("pubsub#access_model", "open"));
    let options = with_child(el("publish-options", PUBSUB_NS), form);
    with_child(with_child(el("pubsub", PUBSUB_NS), publish), options)
}

/// `<pubsub><items node=… max_items='1'/></pubsub>`: the latest item.
pub fn items_query(node: &str) -> Element {
    let items = with_attr(el("items", PUBSUB_NS), "node", node);
    with_child(el("pubsub", PUBSUB_NS), with_attr(items, "max_items", "1"))
}

/// `<pubkey xmlns='urn:xmpp:openpgp:0' date=…><data>BASE64</data></pubkey>`
/// of the binary, public-only form of `cert`.
pub fn pubkey(cert_bytes: &[u8], date: &str) -> Element {
    let data = with_text(el("data", OPENPGP_NS), &BASE64.encode(cert_bytes));
    with_child(with_attr(el("pubkey", OPENPGP_NS), "date", date), data)
}

/// `<public-keys-list xmlns='urn:xmpp:openpgp:0'>` of `keys`.
pub fn public_keys_list(keys: &[KeyMetadata]) -> Element {
    keys.iter()
        .fold(el("public-keys-list", OPENPGP_NS), |list, k| {
            let meta = with_attr(
                el("pubkey-metadata", OPENPGP_NS),
                "v4-fingerprint",
                &k.fingerprint,
            );
            with_child(list, with_attr(meta, "date", &k.date))
        })
}

/// `listed` with `key` in it: an entry for the same fingerprint is replaced
/// (its date updated), every other entry is kept, in order.
pub fn merge(listed: Vec<KeyMetadata>, key: KeyMetadata) -> Vec<KeyMetadata> {
    let mut out: Vec<KeyMetadata> = listed
        .into_iter()
        .filter(|k| !k.fingerprint.eq_ignore_ascii_case(&key.fingerprint))
        .collect();
    out.push(key);
    out
}

/// The date to publish for `cert`: its newest self-signature (so a changed
/// certificate gets a newer date), or the primary key's creation time.
pub fn cert_date(cert: &Cert) -> String {
    let primary = cert.primary_key();
    let sigs = primary
        .self_signatures()
        .chain(cert.userids().flat_map(|u| u.self_signatures()))
        .chain(cert.keys().subkeys().flat_map(|k| k.self_signatures()));
    let newest = sigs
        .filter_map(|s| s.signature_creation_time())
        .max()
        .unwrap_or_else(|| primary.key().creation_time());
    xep0082(newest)
}

/// A XEP-0082 date-time in UTC with seconds: `2018-03-01T15:26:12Z`.
pub fn xep0082(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

// ---- reading ---------------------------------------------------------------

/// The payload elements of the latest item of an items answer (the last
/// `<item>`: Prosody lists them oldest first; with `max_items='1'` there is
/// one).
pub fn latest_item(answer: &Element) -> Result<Option<&Element>, Malformed> {
    let items = answer
        .child("pubsub", PUBSUB_NS)
        .and_then(|p| p.child("items", PUBSUB_NS))
        .ok_or(Malformed::NoItems)?;
    Ok(items
        .elements()
        .filter(|e| e.name == "item" && e.ns == PUBSUB_NS)
        .last())
}

/// The entries of a `<public-keys-list/>` item (at most
/// [`MAX_LISTED_KEYS`]); fingerprints are upper-cased.
pub fn parse_public_keys_list(item: &Element) -> Result<Vec<KeyMetadata>, Malformed> {
    let list = item
        .child("public-keys-list", OPENPGP_NS)
        .ok_or(Malformed::NoPayload("public-keys-list"))?;
    let mut out = Vec::new();
    for meta in list
        .elements()
        .filter(|e| e.name == "pubkey-metadata" && e.ns == OPENPGP_NS)
        .take(MAX_LISTED_KEYS)
    {
        let fpr = meta.attr("v4-fingerprint").unwrap_or_default();
        if fpr.len() != 40 || !fpr.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Malformed::BadFingerprint);
        }
        out.push(KeyMetadata {
            fingerprint: fpr.to_ascii_uppercase(),
            date: meta.attr("date").unwrap_or_default().to_owned(),
        });
    }
    Ok(out)
}

/// The certificate in a `<pubkey/>` item, checked to have fingerprint
/// `fpr` (hex, any case).
pub fn parse_pubkey(item: &Element, fpr: &str) -> Result<Cert, Malformed> {
    use sequoia_openpgp::parse::Parse as _;
    let data = item
        .child("pubkey", OPENPGP_NS)
        .and_then(|p| p.child("data", OPENPGP_NS))
        .ok_or(Malformed::NoPayload("pubkey"))?
        .text();
    let compact: String = data.split_ascii_whitespace().collect();
    let bytes = BASE64.decode(compact).map_err(|_| Malformed::Base64)?;
    let cert = Cert::from_bytes(&bytes).map_err(|_| Malformed::NotACert)?;
    if !cert.fingerprint().to_hex().eq_ignore_ascii_case(fpr) {
        return Err(Malformed::FingerprintMismatch);
    }
    Ok(cert)
}

/// The defined condition of an `<iq type='error'>` (`item-not-found`,
/// `forbidden`, …); `undefined-condition` when there is none.
pub fn error_condition(iq: &Element) -> Option<String> {
    if iq.attr("type") != Some("error") {
        return None;
    }
    let condition = iq
        .elements()
        .find(|e| e.name == "error")
        .and_then(|e| {
            e.elements()
                .find(|c| c.ns == STANZAS_NS && c.name != "text")
        })
        .map_or("undefined-condition", |c| c.name.as_str());
    Some(condition.to_owned())
}

// ---- what a component answers ----------------------------------------------

/// The answer to an iq `get`/`set` the server routes to the component:
/// disco#info (identity `component/generic`, features disco#info and ping),
/// ping, and `service-unavailable` for anything else. `None` for results
/// and errors, which are never answered.
pub fn answer(request: &Element, own_jid: &str) -> Option<Element> {
    let kind = request.attr("type")?;
    if kind != "get" && kind != "set" {
        return None;
    }
    let mut reply = el("iq", COMPONENT_NS);
    reply.set_attr("id", request.attr("id").unwrap_or_default());
    reply.set_attr("from", request.attr("to").unwrap_or(own_jid));
    if let Some(from) = request.attr("from") {
        reply.set_attr("to", from);
    }
    let payload = request.elements().next();
    let is = |name: &str, ns: &str| payload.is_some_and(|p| p.name == name && p.ns == ns);
    if kind == "get" && is("query", DISCO_INFO_NS) && payload.and_then(|p| p.attr("node")).is_none()
    {
        let identity = el("identity", DISCO_INFO_NS);
        let identity = with_attr(identity, "category", "component");
        let identity = with_attr(identity, "type", "generic");
        let identity = with_attr(identity, "name", "sotto");
        let feature = |var: &str| with_attr(el("feature", DISCO_INFO_NS), "var", var);
        let query = with_child(el("query", DISCO_INFO_NS), identity);
        let query = with_child(query, feature(DISCO_INFO_NS));
        let query = with_child(query, feature(PING_NS));
        reply.set_attr("type", "result");
        return Some(with_child(reply, query));
    }
    if kind == "get" && is("ping", PING_NS) {
        reply.set_attr("type", "result");
        return Some(reply);
    }
    reply.set_attr("type", "error");
    let error = with_attr(el("error", COMPONENT_NS), "type", "cancel");
    let error = with_child(error, el("service-unavailable", STANZAS_NS));
    Some(with_child(reply, error))
}

/// Whether the namespace `ns` may be used with iq type `kind`, according to
/// a XEP-0356 `<privilege/>` message from the server.
pub fn grants_iq(message: &Element, ns: &str, kind: &str) -> bool {
    let Some(privilege) = message.child("privilege", PRIVILEGE_NS) else {
        return false;
    };
    // mod_privilege (2023-02) nests each further <namespace/> in the one
    // before it, so look at every descendant of the iq <perm/>.
    fn any_namespace(e: &Element, ns: &str, kind: &str) -> bool {
        e.elements().any(|n| {
            (n.name == "namespace"
                && n.attr("ns") == Some(ns)
                && matches!(n.attr("type"), Some(t) if t == kind || t == "both"))
                || any_namespace(n, ns, kind)
        })
    }
    privilege
        .elements()
        .filter(|p| p.name == "perm" && p.attr("access") == Some("iq"))
        .any(|p| any_namespace(p, ns, kind))
}

/// The XEP-0114 handshake: lower-case hex of SHA-1(stream id ‖ secret).
pub fn handshake_digest(stream_id: &str, secret: &str) -> String {
    // SHA-1 is what XEP-0114 specifies; it only proves knowledge of the
    // secret on a loopback connection. Sequoia's SHA-1 (with collision
    // detection) is always available.
    let mut ctx = match HashAlgorithm::SHA1.context() {
        Ok(b) => b.for_digest(),
        Err(_) => return String::new(),
    };
    ctx.update(stream_id.as_bytes());
    ctx.update(secret.as_bytes());
    let digest = ctx.into_digest().unwrap_or_default();
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests;
