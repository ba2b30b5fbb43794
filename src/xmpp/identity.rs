//! Who is on a client's stream: the user name the client authenticated
//! with (the authentication identity of its SASL `<auth>`, nothing else of
//! it kept), and the full JID the server bound in answer to the client's
//! own bind request. The bound JID wins; the SASL name covers a resumed
//! stream (XEP-0198), which has no bind. An authorization identity other
//! than the user's own, or a mechanism sotto cannot read, leaves the
//! identity unknown — and the chat pipeline then refuses messages rather
//! than guess.

use base64::Engine;

use super::element::Element;

pub const BIND_NS: &str = "urn:ietf:params:xml:ns:xmpp-bind";

/// The stream's user, as far as sotto has seen it.
#[derive(Debug, Clone, Default)]
pub struct Identity {
    /// The user name from `<auth>`, until the server says `<success>`.
    pending: Option<String>,
    /// `user@domain` once SASL succeeded.
    authenticated: Option<String>,
    /// The bound full JID.
    full: Option<String>,
    /// The id of the client's bind request, until it is answered.
    bind_id: Option<String>,
}

impl Identity {
    /// A client's `<auth mechanism='…'>` (SASL namespace).
    pub fn on_auth(&mut self, auth: &Element) {
        self.pending = sasl_user(auth);
    }

    /// The server's `<success>`: the user of the last `<auth>`, at `domain`.
    pub fn on_success(&mut self, domain: &str) {
        if let Some(user) = self.pending.take() {
            self.authenticated = Some(format!("{}@{}", user.to_lowercase(), domain));
        }
    }

    /// A client's `<iq type='set'>`: remembers its id if it is a bind
    /// request (the first one only: a stream binds once).
    pub fn on_client_iq(&mut self, iq: &Element) {
        if self.full.is_none()
            && self.bind_id.is_none()
            && iq.attr("type") == Some("set")
            && iq.child("bind", BIND_NS).is_some()
        {
            self.bind_id = iq.attr("id").map(str::to_string);
        }
    }

    /// A server `<iq type='result'>`: the bound JID, if it answers the
    /// client's own bind request (same id, from the server, not from
    /// another entity routing a lookalike to this resource).
    pub fn on_iq_result(&mut self, iq: &Element) {
        let answers_bind = self.bind_id.is_some()
            && iq.attr("id") == self.bind_id.as_deref()
            && iq.attr("from").is_none_or(|f| {
                !f.contains('@') || self.authenticated.as_deref() == Some(bare_jid(f).as_str())
            });
        if !answers_bind {
            return;
        }
        self.bind_id = None;
        if let Some(jid) = iq
            .child("bind", BIND_NS)
            .and_then(|b| b.child("jid", BIND_NS))
        {
            let jid = jid.text().trim().to_string();
            if jid.contains('@') {
                self.full = Some(jid);
            }
        }
    }

    /// The user's bare JID, once known.
    pub fn bare(&self) -> Option<String> {
        match &self.full {
            Some(full) => Some(bare_jid(full)),
            None => self.authenticated.clone(),
        }
    }

    /// The full JID when bound, else the bare one.
    pub fn full(&self) -> Option<String> {
        self.full.clone().or_else(|| self.authenticated.clone())
    }
}

/// `user@domain/resource` → `user@domain`, lowercased (local part and
/// domain compare case-insensitively for the ASCII JIDs policy matches).
pub fn bare_jid(jid: &str) -> String {
    jid.split('/').next().unwrap_or(jid).trim().to_lowercase()
}

/// The domain of a JID (`user@domain` → `domain`), for logs that name no
/// user.
pub fn domain(jid: &str) -> &str {
    jid.rsplit_once('@').map_or(jid, |(_, d)| d)
}

/// The authentication identity of a PLAIN or SCRAM `<auth>`; `None` for
/// other mechanisms (EXTERNAL, ANONYMOUS…). The password is never kept.
fn sasl_user(auth: &Element) -> Option<String> {
    let mechanism = auth.attr("mechanism")?;
    let data = base64::engine::general_purpose::STANDARD
        .decode(auth.text().trim())
        .ok()?;
    let user = if mechanism.eq_ignore_ascii_case("PLAIN") {
        // authzid NUL authcid NUL password
        let mut parts = data.split(|b| *b == 0);
        let authzid = parts.next()?;
        let authcid = String::from_utf8(parts.next()?.to_vec()).ok()?;
        if !authz_is_self(&String::from_utf8_lossy(authzid), &authcid) {
            return None;
        }
        authcid
    } else if mechanism.to_ascii_uppercase().starts_with("SCRAM-") {
        // gs2-header "n,[a=authzid]," then "n=user,r=nonce"
        let text = std::str::from_utf8(&data).ok()?;
        let mut fields = text.splitn(3, ',');
        let _cb = fields.next()?;
        let authzid = fields.next()?.strip_prefix("a=").unwrap_or_default();
        let rest = fields.next()?;
        let user = rest.split(',').find_map(|f| f.strip_prefix("n="))?;
        let user = user.replace("=2C", ",").replace("=3D", "=");
        let authzid = authzid.replace("=2C", ",").replace("=3D", "=");
        if !authz_is_self(&authzid, &user) {
            return None;
        }
        user
    } else {
        return None;
    };
    // An authzid may be a whole JID; keep its local part.
    let local = user.split('@').next().unwrap_or(&user).to_string();
    (!local.is_empty() && !local.contains(['/', '<', '>', '\'', '"', '&'])).then_some(local)
}

/// Whether an authorization identity asks for nothing but the user's own
/// account (empty, the same name, or `name@…`). Servers differ in honouring
/// others (Prosody ignores them, ejabberd lets admins act as users), so a
/// different one leaves the identity unknown.
fn authz_is_self(authzid: &str, authcid: &str) -> bool {
    let local = authzid.split('@').next().unwrap_or_default();
    authzid.is_empty() || local.eq_ignore_ascii_case(authcid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(mech: &str, data: &[u8]) -> Element {
        let mut el = Element::new("auth", "urn:ietf:params:xml:ns:xmpp-sasl");
        el.set_attr("mechanism", mech);
        el.children.push(super::super::element::Node::Text(
            base64::engine::general_purpose::STANDARD.encode(data),
        ));
        el
    }

    #[test]
    fn users_from_plain_and_scram() {
        assert_eq!(
            sasl_user(&auth("PLAIN", b"\0Alice\0secret")).as_deref(),
            Some("Alice")
        );
        assert_eq!(
            sasl_user(&auth("SCRAM-SHA-1", b"n,,n=bob,r=abc")).as_deref(),
            Some("bob")
        );
        assert_eq!(
            sasl_user(&auth("SCRAM-SHA-256", b"n,a=carol@example.org,n=carol,r=x")).as_deref(),
            Some("carol")
        );
        // Asking to act as someone else: unknown, not that someone.
        assert_eq!(sasl_user(&auth("PLAIN", b"bob\0alice\0pw")), None);
        assert_eq!(
            sasl_user(&auth("SCRAM-SHA-1", b"n,a=bob,n=alice,r=x")),
            None
        );
        assert_eq!(sasl_user(&auth("EXTERNAL", b"")), None);
        assert_eq!(sasl_user(&auth("PLAIN", b"garbage")), None);
    }

    #[test]
    fn bound_jid_wins_over_sasl_name() {
        let mut id = Identity::default();
        id.on_auth(&auth("PLAIN", b"\0alice\0pw"));
        assert_eq!(id.bare(), None, "not before success");
        id.on_success("example.org");
        assert_eq!(id.bare().as_deref(), Some("alice@example.org"));
        let parse = |x: &[u8]| super::super::element::parse_stanza(x).unwrap();
        let result = |id: &str, from: &str, jid: &str| {
            parse(format!(
                "<iq type='result' id='{id}' {from}><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
                 <jid>{jid}</jid></bind></iq>"
            ).as_bytes())
        };
        // Not an answer to a bind request of this client: ignored.
        id.on_iq_result(&result("b", "", "bob@example.org/x"));
        assert_eq!(id.bare().as_deref(), Some("alice@example.org"));
        id.on_client_iq(&parse(
            b"<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>",
        ));
        // A lookalike from another entity, with the same id: ignored.
        id.on_iq_result(&result(
            "b",
            "from='bob@example.org/x'",
            "bob@example.org/x",
        ));
        assert_eq!(id.bare().as_deref(), Some("alice@example.org"));
        id.on_iq_result(&result("b", "", "alice@example.org/phone"));
        assert_eq!(id.full().as_deref(), Some("alice@example.org/phone"));
        assert_eq!(id.bare().as_deref(), Some("alice@example.org"));
        // Bound once: a later result cannot change it.
        id.on_iq_result(&result("b", "", "bob@example.org/x"));
        assert_eq!(id.bare().as_deref(), Some("alice@example.org"));
    }
}
