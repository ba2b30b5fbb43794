//! The `[identities]` section (the organisation's own keys for mail: which
//! domains are local, where WKD is served) and the `[inbound]` section (the
//! listener for mail arriving for local users, in front of the mailbox
//! server's LMTP).

use serde::Deserialize;

/// The organisation's identities for mail.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdentitiesConfig {
    /// The organisation's mail domains (lower-case). A sender or recipient
    /// at one of them is a local user: sotto makes their identity on first
    /// need, publishes it (WKD, Autocrypt) and decrypts mail sent to it.
    /// Empty: identities for mail are off.
    pub domains: Vec<String>,
    /// Where WKD is served over HTTP (the advanced and direct methods, for
    /// every local domain); put a TLS reverse proxy in front. Empty string:
    /// not served. Only with `domains` set.
    pub wkd_listen: String,
}

impl Default for IdentitiesConfig {
    fn default() -> Self {
        IdentitiesConfig {
            domains: Vec::new(),
            wkd_listen: "127.0.0.1:8026".into(),
        }
    }
}

impl IdentitiesConfig {
    /// Whether `address` is at one of the local domains.
    pub fn is_local(&self, address: &str) -> bool {
        let domain = crate::envelope::domain_of(address);
        self.domains.iter().any(|d| d.eq_ignore_ascii_case(&domain))
    }

    /// Every problem with this section, as (dotted key, message).
    pub fn validate(
        &self,
        store: &super::StoreConfig,
        xmpp: &super::XmppConfig,
    ) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for d in &self.domains {
            let ok = !d.is_empty()
                && d.contains('.')
                && d.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
            if !ok {
                out.push((
                    "identities.domains".into(),
                    format!("`{d}` is not a domain name (e.g. \"example.org\")"),
                ));
            }
        }
        if !self.domains.is_empty() && store.secret_file(xmpp).is_none() {
            out.push((
                "identities.domains".into(),
                "identities need store.secret_file: a file whose first line is the passphrase that encrypts their secret keys at rest".into(),
            ));
        }
        out
    }
}

/// The inbound path: mail for local users from the MTA (Postfix, as LMTP or
/// SMTP), decrypted for them and handed to the mailbox server's LMTP.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InboundConfig {
    /// Address of the inbound LMTP listener; empty string disables it.
    pub listen: String,
    /// The mailbox server's LMTP (Dovecot's `lmtp` service), `host:port`.
    pub upstream: String,
}

impl Default for InboundConfig {
    fn default() -> Self {
        InboundConfig {
            listen: String::new(),
            upstream: "127.0.0.1:24".into(),
        }
    }
}

/// The IMAP proxy: mail clients connect here instead of to the provider's
/// IMAP server; the mailbox holds ciphertext, clients read plain.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImapConfig {
    /// Address for IMAP clients, offering STARTTLS when `tls_cert` is
    /// set; empty string disables it. Needs `identities.domains`.
    pub listen: String,
    /// Address for IMAP clients over implicit TLS (IMAPS); empty string
    /// disables it. Needs `tls_cert` and `tls_key`.
    pub listen_tls: String,
    /// The certificate chain and key sotto presents to IMAP clients.
    pub tls_cert: Option<std::path::PathBuf>,
    pub tls_key: Option<std::path::PathBuf>,
    /// The provider's IMAP server, `host:port`: plain only on loopback,
    /// else with `upstream_tls`.
    pub upstream: String,
    /// Implicit TLS (IMAPS) to the server, its certificate verified
    /// against the system's roots and `upstream_tls_ca`, for the host
    /// name in `upstream`.
    pub upstream_tls: bool,
    /// STARTTLS to the server instead (port 143), verified the same way;
    /// a server that does not accept it is not used.
    pub upstream_starttls: bool,
    pub upstream_tls_ca: Option<std::path::PathBuf>,
    /// A login without `@` is this user's address at this domain (for
    /// servers whose logins are bare user names); empty: logins are
    /// addresses.
    pub login_domain: String,
}

impl ImapConfig {
    /// What is wrong with how sotto reaches the server, as (key, message):
    /// both TLS modes at once, or plain IMAP to a host that is not this
    /// machine. Checked by `sotto check` and again by `serve`.
    pub fn upstream_problem(&self) -> Option<(&'static str, String)> {
        if self.upstream_tls && self.upstream_starttls {
            return Some((
                "imap.upstream_starttls",
                "and imap.upstream_tls are both set: choose implicit TLS (port 993) or STARTTLS (port 143)".into(),
            ));
        }
        let loopback = super::split_host_port(&self.upstream).is_some_and(|(host, _)| {
            host == "localhost"
                || host
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        });
        if !self.upstream_tls && !self.upstream_starttls && !loopback {
            return Some((
                "imap.upstream",
                format!(
                    "`{}` is not on this machine: set imap.upstream_tls = true (IMAPS) or imap.upstream_starttls = true (plain IMAP only on loopback)",
                    self.upstream
                ),
            ));
        }
        None
    }
}

impl Default for ImapConfig {
    fn default() -> Self {
        ImapConfig {
            listen: String::new(),
            listen_tls: String::new(),
            tls_cert: None,
            tls_key: None,
            upstream: "127.0.0.1:143".into(),
            upstream_tls: false,
            upstream_starttls: false,
            upstream_tls_ca: None,
            login_domain: String::new(),
        }
    }
}
