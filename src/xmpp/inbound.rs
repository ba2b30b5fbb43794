//! Incoming encrypted chat, opened for the user behind sotto: an
//! `<openpgp/>` (XEP-0373) or `jabber:x:encrypted` (XEP-0027) message to a
//! local user — on its own, inside a carbon (XEP-0280) or a MAM result
//! (XEP-0313) — is decrypted with the user's sotto-held key, its signature
//! checked against the sender's key (user ID `xmpp:sender`) and its `<to/>`
//! against the addressee, and handed to the client as an ordinary message
//! with the payload, marked with [`TRANSIT_NS`]. Anything that does not
//! open and verify is delivered exactly as it came.

use sequoia_openpgp::Cert;
use sequoia_openpgp::policy::StandardPolicy;

use super::chat::Chat;
use super::element::{Element, Node};
use super::identity::{bare_jid, domain};
use super::ox::{self, CLIENT_NS, EME_NS, Incoming, LEGACY_NS, OX_NS};
use crate::keys::XMPP_SCHEME;

/// The hint on a message sotto decrypted: `<encrypted-in-transit
/// xmlns='urn:x-sotto:transit:0' format='ox|legacy'/>`.
pub const TRANSIT_NS: &str = "urn:x-sotto:transit:0";
const CARBONS_NS: &str = "urn:xmpp:carbons:2";
const FORWARD_NS: &str = "urn:xmpp:forward:0";
const MAM_NS: &str = "urn:xmpp:mam:2";
const DELAY_NS: &str = "urn:xmpp:delay";
/// Not accepted from inside a payload: wrappers that would make it look
/// forwarded or archived, delays, and the transit marker.
const UNTRUSTED_NS: [&str; 5] = [TRANSIT_NS, CARBONS_NS, FORWARD_NS, MAM_NS, DELAY_NS];

/// Removes sotto's transit marker wherever it is in a message from the
/// server: only sotto may say a message was encrypted in transit.
pub fn strip_marker(el: &mut Element) -> bool {
    let before = el.children.len();
    el.children
        .retain(|n| !matches!(n, Node::Element(e) if e.ns == TRANSIT_NS));
    let mut changed = el.children.len() != before;
    for n in &mut el.children {
        if let Node::Element(e) = n {
            changed |= strip_marker(e);
        }
    }
    changed
}

/// Whether the raw bytes of a stanza may hold something to open (a cheap
/// test before parsing).
pub fn may_hold_ciphertext(raw: &[u8]) -> bool {
    let has = |needle: &[u8]| raw.windows(needle.len()).any(|w| w == needle);
    has(OX_NS.as_bytes()) || has(LEGACY_NS.as_bytes())
}

/// Opens what `msg` (a server-to-client `<message>` for the local user
/// `me`) holds; `None` when nothing was opened (deliver it as it came).
pub async fn open(chat: &Chat, mut msg: Element, me: &str) -> Option<Element> {
    let users = chat.users()?;
    let mine = users.get_or_create(me).await.ok()?;
    let mut opened = false;
    for path in candidates(&msg, me) {
        let Some(inner) = at_path(&mut msg, &path) else {
            continue;
        };
        let from = inner.attr("from").map(bare_jid).unwrap_or_default();
        // A live message (not a carbon or archive result) is recorded
        // against its replay, per receiving resource. One the server says
        // it held (`<delay/>`: offline storage, redelivery after a stream
        // resumption) is recorded but shown as the old message it says it is.
        let live = path.is_empty().then(|| Live {
            to: inner.attr("to").unwrap_or(me).to_string(),
            delayed: inner.child("delay", DELAY_NS).is_some(),
        });
        // The addressee the <to/> must name: the message's own addressee.
        let to = inner
            .attr("to")
            .map(bare_jid)
            .unwrap_or_else(|| me.to_string());
        let Some(sealed) = Sealed::of(inner) else {
            continue;
        };
        if from.is_empty() {
            continue;
        }
        // Before asking anyone for the sender's key (the network, maybe a
        // slow server), check the message is encrypted to this user at all.
        let for_me = ox::addressed_to(
            &sealed.text,
            sealed.legacy,
            mine.secret(),
            chat.max_stanza(),
        );
        if !for_me {
            count("undecryptable");
            tracing::info!(event = "xmpp_decrypt_failed", reason = "not_for_us", from_domain = %domain(&from));
            continue;
        }
        let certs = sender_certs(chat, &from).await;
        match open_one(
            chat,
            inner.clone(),
            sealed,
            &from,
            &to,
            mine.secret().clone(),
            certs,
        )
        .await
        {
            Ok((new, digest)) => {
                if let (Some(live), Some(digest)) = (&live, digest)
                    && let Err(why) = first_sighting(chat, users, &live.to, &digest).await
                    && !live.delayed
                {
                    count("undecryptable");
                    tracing::info!(event = "xmpp_decrypt_failed", reason = why, from_domain = %domain(&from));
                    continue;
                }
                *inner = new;
                opened = true;
            }
            Err(why) => {
                count("undecryptable");
                tracing::info!(event = "xmpp_decrypt_failed", reason = why, from_domain = %domain(&from));
            }
        }
    }
    opened.then_some(msg)
}

/// The child paths (indexes) of messages in `msg` that carry ciphertext:
/// the message itself, a carbon's or MAM result's forwarded message. A
/// carbon or MAM result counts only from the user's own account (no `from`,
/// or `me`): anyone can wrap a message in `<received/>`, and opening a
/// replayed one under a forged wrapper would lend it sotto's marker.
fn candidates(msg: &Element, me: &str) -> Vec<Vec<usize>> {
    let mut out = Vec::new();
    if carries(msg) {
        out.push(Vec::new());
    }
    if msg.attr("from").is_some_and(|f| bare_jid(f) != me) {
        return out;
    }
    for (i, child) in msg.children.iter().enumerate() {
        let Node::Element(wrapper) = child else {
            continue;
        };
        let wraps = (wrapper.ns == CARBONS_NS
            && (wrapper.name == "received" || wrapper.name == "sent"))
            || (wrapper.ns == MAM_NS && wrapper.name == "result");
        if !wraps {
            continue;
        }
        for (j, f) in wrapper.children.iter().enumerate() {
            let Node::Element(fwd) = f else { continue };
            if fwd.name != "forwarded" || fwd.ns != FORWARD_NS {
                continue;
            }
            for (k, m) in fwd.children.iter().enumerate() {
                if let Node::Element(m) = m
                    && m.name == "message"
                    && carries(m)
                {
                    out.push(vec![i, j, k]);
                }
            }
        }
    }
    out
}

fn carries(m: &Element) -> bool {
    m.child("openpgp", OX_NS).is_some() || m.child("x", LEGACY_NS).is_some()
}

/// The ciphertext of a message, read once: OX's `<openpgp/>`, else
/// XEP-0027's `<x/>`.
struct Sealed {
    legacy: bool,
    text: String,
}

impl Sealed {
    fn of(m: &Element) -> Option<Sealed> {
        if let Some(e) = m.child("openpgp", OX_NS) {
            return Some(Sealed {
                legacy: false,
                text: e.text(),
            });
        }
        m.child("x", LEGACY_NS).map(|e| Sealed {
            legacy: true,
            text: e.text(),
        })
    }
}

fn at_path<'a>(mut el: &'a mut Element, path: &[usize]) -> Option<&'a mut Element> {
    for i in path {
        el = match el.children.get_mut(*i)? {
            Node::Element(e) => e,
            Node::Text(_) => return None,
        };
    }
    Some(el)
}

/// The sender's certificates: a local user's sotto-held key, else what the
/// key store finds for `xmpp:sender`.
async fn sender_certs(chat: &Chat, from: &str) -> Vec<Cert> {
    if chat.is_local(from)
        && let Some(users) = chat.users()
    {
        return users
            .get_or_create(from)
            .await
            .map(|k| vec![(**k.cert()).clone()])
            .unwrap_or_default();
    }
    chat.keys()
        .lookup(&format!("{XMPP_SCHEME}{from}"))
        .await
        .found
        .map(|f| vec![(*f.cert).clone()])
        .unwrap_or_default()
}

/// A live message's receiving resource, and whether the server says it
/// held it.
struct Live {
    to: String,
    delayed: bool,
}

/// Whether a live message with signed content `digest`, for the resource
/// `to`, is new: a replay, or a store that cannot say, is not opened.
async fn first_sighting(
    chat: &Chat,
    users: &crate::openpgp::identities::Identities,
    to: &str,
    digest: &[u8],
) -> Result<(), &'static str> {
    let mut key = digest.to_vec();
    key.extend_from_slice(to.as_bytes());
    let key = sha256(&[&key]);
    match users.store().first_sighting(&key, chat.replay_ttl()).await {
        Ok(true) => Ok(()),
        Ok(false) => Err("replay"),
        Err(_) => Err("store_unavailable"),
    }
}

/// SHA-256 over `parts`, each prefixed with its length.
fn sha256(parts: &[&[u8]]) -> Vec<u8> {
    use sequoia_openpgp::types::HashAlgorithm;
    let Ok(ctx) = HashAlgorithm::SHA256.context() else {
        return Vec::new();
    };
    let mut ctx = ctx.for_digest();
    for p in parts {
        ctx.update(&(p.len() as u64).to_be_bytes());
        ctx.update(p);
    }
    ctx.into_digest().unwrap_or_default()
}

/// Decrypts one message off the async threads; its replacement and, for
/// OX, a digest of what the sender signed (sender, signer, time, payload).
async fn open_one(
    chat: &Chat,
    msg: Element,
    sealed: Sealed,
    from: &str,
    to: &str,
    tsk: Cert,
    certs: Vec<Cert>,
) -> Result<(Element, Option<Vec<u8>>), &'static str> {
    let (from, to) = (from.to_string(), to.to_string());
    let max = chat.max_stanza();
    let done = crate::transform::cpu(sealed.text.len(), move || {
        let policy = StandardPolicy::new();
        let how = Incoming {
            tsk: &tsk,
            sender: &from,
            sender_certs: &certs,
            recipient: Some(&to),
            max_bytes: max,
            policy: &policy,
        };
        if !sealed.legacy {
            let v = ox::decrypt(&sealed.text, &how).map_err(|e| kind(&e))?;
            // The whole signed text (its random padding included) names
            // this one message: the same text again is a replay.
            let digest = sha256(&[from.as_bytes(), v.signer.as_bytes(), &v.signed]);
            Ok((plain(msg, v.signcrypt.payload, "ox"), Some(digest)))
        } else {
            let v = ox::legacy_decrypt(&sealed.text, &how).map_err(|e| kind(&e))?;
            // XEP-0027 names no recipient: only a message the sender signed
            // is theirs, and one that holds an OX signcrypt is a re-wrapped
            // message for someone else.
            if v.signer.is_none() {
                return Err("unsigned");
            }
            if v.body.trim_start().starts_with("<signcrypt") {
                return Err("rewrapped");
            }
            let mut body = Element::new("body", CLIENT_NS);
            body.children.push(Node::Text(v.body));
            // XEP-0027 signs no time: not recorded against replay.
            Ok((plain(msg, vec![body], "legacy"), None))
        }
    })
    .await
    .map_err(|_| "task failed")?;
    if done.is_ok() {
        count("decrypted");
    }
    done
}

/// An error's kind, for the log (its text may name users).
fn kind(e: &ox::OxError) -> &'static str {
    use ox::OxError::*;
    match e {
        NoRecipients => "no_recipients",
        Base64 => "base64",
        OpenPgp(_) => "openpgp",
        NotEncrypted => "not_encrypted",
        NotForUs => "not_for_us",
        TooLarge { .. } => "too_large",
        NoSignature => "unsigned",
        UnknownSigner => "unknown_signer",
        BadSignature => "bad_signature",
        SignerMismatch { .. } => "signer_mismatch",
        MalformedSigncrypt(_) => "malformed",
        RecipientMismatch { .. } => "not_addressed_to_user",
    }
}

/// `msg` with its readable content replaced by the verified payload and
/// the transit hint: the encryption elements, the fallback body and any
/// other content outside the ciphertext (which nobody vouched for) go.
fn plain(mut msg: Element, payload: Vec<Element>, format: &str) -> Element {
    msg.children.retain(|n| match n {
        Node::Element(e) => {
            !((e.name == "openpgp" && e.ns == OX_NS)
                || (e.name == "x" && e.ns == LEGACY_NS)
                || (e.name == "encryption" && e.ns == EME_NS)
                || super::chat::is_content(e))
        }
        Node::Text(_) => true,
    });
    // The payload may not smuggle wrappers or sotto's own marker.
    let payload = payload
        .into_iter()
        .filter(|e| !UNTRUSTED_NS.contains(&e.ns.as_str()));
    msg.children.extend(payload.map(Node::Element));
    let mut hint = Element::new("encrypted-in-transit", TRANSIT_NS);
    hint.set_attr("format", format);
    msg.children.push(Node::Element(hint));
    msg
}

fn count(action: &'static str) {
    metrics::counter!("sotto_xmpp_messages_total", "direction" => "in", "action" => action)
        .increment(1);
}

#[cfg(test)]
mod tests {
    use super::candidates;
    use crate::xmpp::element::parse_stanza;

    const CARBON: &str = "<received xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'>\
        <message from='bob@example.org/x' to='alice@example.org'>\
        <openpgp xmlns='urn:xmpp:openpgp:0'>AAAA</openpgp></message></forwarded></received>";

    #[test]
    fn carbons_count_only_from_the_own_account() {
        let own = format!(
            "<message from='alice@example.org' to='alice@example.org/phone'>{CARBON}</message>"
        );
        let own = parse_stanza(own.as_bytes()).unwrap();
        assert_eq!(candidates(&own, "alice@example.org"), vec![vec![0, 0, 0]]);
        let forged = format!(
            "<message from='eve@evil.example/x' to='alice@example.org/phone'>{CARBON}</message>"
        );
        let forged = parse_stanza(forged.as_bytes()).unwrap();
        assert!(candidates(&forged, "alice@example.org").is_empty());
        let direct = parse_stanza(
            b"<message from='bob@example.org/x'><openpgp xmlns='urn:xmpp:openpgp:0'>AAAA</openpgp></message>",
        )
        .unwrap();
        assert_eq!(
            candidates(&direct, "alice@example.org"),
            vec![Vec::<usize>::new()]
        );
    }
}
