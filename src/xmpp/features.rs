//! Stream features as the client sees them through sotto: TLS ends at
//! sotto, so the server's STARTTLS offer is not passed on, and SASL
//! mechanisms and features that bind to the TLS channel (`-PLUS`, XEP-0440)
//! are removed — the channel the client has is sotto's, not the server's.
//! SASL2 (XEP-0388) is removed too, so clients log in with SASL1, whose
//! `<auth>` and bind tell sotto who the user is.

use super::element::{Element, Node};

pub const TLS_NS: &str = "urn:ietf:params:xml:ns:xmpp-tls";
pub const SASL_NS: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
pub const SASL2_NS: &str = "urn:xmpp:sasl:2";
pub const CHANNEL_BINDING_NS: &str = "urn:xmpp:sasl-cb:0";
pub const BIND_NS: &str = "urn:ietf:params:xml:ns:xmpp-bind";

/// Rewrites a `<stream:features/>` element; returns whether it changed.
pub fn filter(features: &mut Element) -> bool {
    let before = features.children.len();
    features.children.retain(|n| match n {
        // SASL2 (and Bind2, FAST inside it) is not offered: sotto must see
        // who logs in, which it reads from SASL1's <auth> and bind.
        Node::Element(e) => {
            !(e.ns == TLS_NS && e.name == "starttls")
                && e.ns != CHANNEL_BINDING_NS
                && e.ns != SASL2_NS
        }
        Node::Text(_) => true,
    });
    let mut changed = features.children.len() != before;
    for n in features.children.iter_mut() {
        if let Node::Element(e) = n
            && (e.ns == SASL_NS && e.name == "mechanisms"
                || e.ns == SASL2_NS && e.name == "authentication")
        {
            let count = e.children.len();
            e.children.retain(|m| match m {
                Node::Element(m) if m.name == "mechanism" => !m.text().trim().ends_with("-PLUS"),
                Node::Element(m) => m.ns != CHANNEL_BINDING_NS,
                Node::Text(_) => true,
            });
            changed |= e.children.len() != count;
        }
    }
    changed
}

/// The `<stream:features/>` sotto offers before TLS: STARTTLS, required.
pub fn before_tls() -> &'static [u8] {
    b"<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls></stream:features>"
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xmpp::framer::{Limits, NsContext, parse_stanza_in, serialize};

    #[test]
    fn starttls_plus_and_channel_binding_are_removed() {
        let raw = br#"<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>SCRAM-SHA-1-PLUS</mechanism><mechanism>SCRAM-SHA-1</mechanism><mechanism>PLAIN</mechanism></mechanisms><sasl-channel-binding xmlns='urn:xmpp:sasl-cb:0'><channel-binding type='tls-exporter'/></sasl-channel-binding></stream:features>"#;
        let mut f = parse_stanza_in(raw, &NsContext::c2s(), &Limits::default()).unwrap();
        assert!(filter(&mut f));
        let out = String::from_utf8(serialize(&f)).unwrap();
        assert!(
            !out.contains("starttls") && !out.contains("PLUS") && !out.contains("sasl-cb"),
            "{out}"
        );
        assert!(
            out.contains("<mechanism>SCRAM-SHA-1</mechanism>")
                && out.contains("<mechanism>PLAIN</mechanism>"),
            "{out}"
        );
        assert!(!filter(&mut f), "a second pass changes nothing");
    }
}
