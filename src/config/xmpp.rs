//! The XMPP side of the configuration: the client-to-server proxy.

use std::path::PathBuf;

use serde::Deserialize;

/// The XMPP c2s proxy in front of the organisation's XMPP server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct XmppConfig {
    /// Address for clients with STARTTLS (port 5222); empty disables it.
    pub listen: String,
    /// Address for clients with direct TLS (XEP-0368, port 5223); empty disables it.
    pub listen_tls: String,
    /// The XMPP server's plain c2s port, on loopback.
    pub upstream: String,
    /// How sotto connects to `upstream`: `false`, plain TCP on loopback
    /// (recommended, as TLS-terminating proxies do); `true`, TLS from the
    /// first byte (the server's direct-TLS port, XEP-0368), verified.
    pub upstream_tls: bool,
    /// Extra CA certificates (PEM) trusted for the upstream, beside the
    /// system's.
    pub upstream_tls_ca: Option<PathBuf>,
    /// Name verified in the upstream's certificate (default: `domain`).
    pub upstream_tls_name: String,
    /// The domain served (the `from` of sotto's own stream header before TLS).
    pub domain: String,
    /// The domain's certificate chain and key (PEM), presented to clients.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Largest stanza accepted from either side, in bytes.
    pub max_stanza_bytes: usize,
    /// Directory of the local users' sotto-held chat keys (one file per
    /// user, user ID `xmpp:user@domain`, secret parts encrypted at rest).
    pub user_keys: Option<PathBuf>,
    /// File whose content (first line) is the passphrase the users' secret
    /// keys are encrypted with on disk.
    pub user_keys_secret: Option<PathBuf>,
    /// sotto's own service connection to the server: an XEP-0114 component
    /// with XEP-0356 privileges, used to publish users' keys to their PEP
    /// nodes and to fetch recipients' keys. Empty disables PEP. Several
    /// names (separated by commas or spaces), each declared on the server
    /// with the same secret and privileges, let replicas share the work:
    /// each connects as the first name no other connection holds.
    pub component: String,
    /// The server's component port, on loopback.
    pub component_upstream: String,
    /// File holding the component's shared secret (first line).
    pub component_secret: Option<PathBuf>,
}

impl Default for XmppConfig {
    fn default() -> Self {
        XmppConfig {
            listen: String::new(),
            listen_tls: String::new(),
            upstream: "127.0.0.1:5322".into(),
            upstream_tls: false,
            upstream_tls_ca: None,
            upstream_tls_name: String::new(),
            domain: "localhost".into(),
            tls_cert: None,
            tls_key: None,
            max_stanza_bytes: 256 * 1024,
            user_keys: None,
            user_keys_secret: None,
            component: String::new(),
            component_upstream: "127.0.0.1:5347".into(),
            component_secret: None,
        }
    }
}
