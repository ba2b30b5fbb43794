//! Semantic validation of a deserialized [`Config`]: addresses that parse,
//! TLS and key material that exists, limits and timeouts in range, and the
//! settings that only make sense together. Every problem is returned as
//! (dotted key, message); [`Config::load`] puts them in place.

use std::collections::HashSet;
use std::net::SocketAddr;

use super::{Config, split_host_port};

impl Config {
    /// Every semantic problem, as (dotted key, message).
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut addr = |key: &str, value: &str, may_be_empty: bool| {
            if value.is_empty() {
                if !may_be_empty {
                    out.push((key.to_string(), "must not be empty".to_string()));
                }
            } else if value.parse::<SocketAddr>().is_err() {
                out.push((
                    key.to_string(),
                    format!("`{value}` is not an IP:port address (e.g. 127.0.0.1:10025)"),
                ));
            }
        };
        addr("smtp.listen", &self.smtp.listen, true);
        addr("lmtp.listen", &self.lmtp.listen, true);
        addr("admin.listen", &self.admin.listen, true);
        addr("redirect.listen", &self.redirect.listen, true);
        addr("imap.listen", &self.imap.listen, true);
        addr("imap.listen_tls", &self.imap.listen_tls, true);
        addr("xmpp.listen", &self.xmpp.listen, true);
        addr("xmpp.listen_tls", &self.xmpp.listen_tls, true);
        let xmpp_on = !self.xmpp.listen.is_empty() || !self.xmpp.listen_tls.is_empty();
        if xmpp_on {
            if split_host_port(&self.xmpp.upstream).is_none() {
                out.push((
                    "xmpp.upstream".into(),
                    format!("`{}` is not host:port", self.xmpp.upstream),
                ));
            }
            for (key, p) in [
                ("xmpp.tls_cert", &self.xmpp.tls_cert),
                ("xmpp.tls_key", &self.xmpp.tls_key),
            ] {
                match p {
                    None => out.push((
                        key.into(),
                        "is needed when an XMPP listener is on (TLS ends at sotto)".into(),
                    )),
                    Some(p) if !p.is_file() => {
                        out.push((key.into(), format!("cannot read `{}`", p.display())))
                    }
                    Some(_) => {}
                }
            }
        }
        if self.smtp.listen.is_empty() && self.lmtp.listen.is_empty() {
            out.push((
                "smtp.listen".into(),
                "SMTP and LMTP listeners are both disabled".into(),
            ));
        }
        if split_host_port(&self.upstream.address).is_none() {
            out.push((
                "upstream.address".into(),
                format!(
                    "`{}` is not host:port (e.g. 127.0.0.1:10026)",
                    self.upstream.address
                ),
            ));
        }
        if no_tls_files(&mut out, "smtp", &self.smtp.tls_cert, &self.smtp.tls_key)
            && self.smtp.require_tls
        {
            out.push((
                "smtp.require_tls".into(),
                "needs tls_cert and tls_key".into(),
            ));
        }
        if let Some(ca) = &self.upstream.tls_ca
            && !ca.is_file()
        {
            out.push((
                "upstream.tls_ca".into(),
                format!("cannot read `{}`", ca.display()),
            ));
        }
        if self.smtp.auth.required && self.smtp.auth.users.is_empty() {
            out.push((
                "smtp.auth.required".into(),
                "no [[smtp.auth.users]] are defined".into(),
            ));
        }
        for (key, v, min) in [
            (
                "limits.max_message_size",
                self.limits.max_message_size,
                1024,
            ),
            ("limits.max_recipients", self.limits.max_recipients, 1),
            ("limits.max_connections", self.limits.max_connections, 1),
            ("limits.max_commands", self.limits.max_commands, 10),
            ("limits.max_errors", self.limits.max_errors, 1),
            ("limits.max_line_length", self.limits.max_line_length, 512),
        ] {
            if v < min {
                out.push((key.into(), format!("must be at least {min}")));
            }
        }
        for (key, d) in [
            ("timeouts.command", self.timeouts.command),
            ("timeouts.data", self.timeouts.data),
            ("timeouts.upstream", self.timeouts.upstream),
            ("timeouts.upstream_data", self.timeouts.upstream_data),
        ] {
            if d.is_zero() {
                out.push((key.into(), "must be longer than zero".into()));
            }
        }
        if let Some(d) = &self.keys.dir
            && !d.is_dir()
        {
            out.push((
                "keys.dir".into(),
                format!("`{}` is not a directory", d.display()),
            ));
        }
        if let Some(p) = &self.crypt.signing_key
            && !p.is_file()
        {
            out.push((
                "crypt.signing_key".into(),
                format!("cannot read `{}`", p.display()),
            ));
        }
        if let Some(d) = &self.policy.dir
            && !d.is_dir()
        {
            out.push((
                "policy.dir".into(),
                format!("`{}` is not a directory", d.display()),
            ));
        }
        let url = &self.redirect.public_url;
        if !(url.is_empty() || url.starts_with("https://") || url.starts_with("http://")) {
            out.push((
                "redirect.public_url".into(),
                "must start with https:// (or http:// for tests)".into(),
            ));
        }
        let mut ids = HashSet::new();
        for k in &self.redirect.keys {
            if !ids.insert(k.id) {
                out.push((
                    "redirect.keys".into(),
                    format!("key id {} is used twice", k.id),
                ));
            }
            match (&k.secret, &k.secret_file) {
                (Some(_), Some(_)) | (None, None) => out.push((
                    "redirect.keys".into(),
                    format!("key {}: give exactly one of secret, secret_file", k.id),
                )),
                (None, Some(p)) if !p.is_file() => out.push((
                    "redirect.keys".into(),
                    format!("key {}: cannot read `{}`", k.id, p.display()),
                )),
                _ => {}
            }
        }
        if let Some(a) = &self.upstream.auth {
            for (key, v) in [
                ("upstream.auth.username", &a.username),
                ("upstream.auth.password", &a.password),
            ] {
                if v.is_empty() {
                    out.push((
                        key.into(),
                        format!(
                            "is missing (set it in the file or as SOTTO_{})",
                            key.replace('.', "__").to_uppercase()
                        ),
                    ));
                }
            }
        }
        if self.keys.cache_size == 0 {
            out.push(("keys.cache_size".into(), "must be at least 1".into()));
        }
        out.extend(self.store.validate(&self.xmpp));
        out.extend(self.identities.validate(&self.store, &self.xmpp));
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            out.push((
                "log.level".into(),
                format!("not a log level or filter: {e}"),
            ));
        }
        self.validate_imap(&mut out);
        out
    }
}

impl Config {
    /// The IMAP proxy's settings, when one of its listeners is on.
    fn validate_imap(&self, out: &mut Vec<(String, String)>) {
        let imap = &self.imap;
        if imap.listen.is_empty() && imap.listen_tls.is_empty() {
            return;
        }
        let mut problem = |key: &str, why: String| out.push((key.into(), why));
        if self.identities.domains.is_empty() {
            problem(
                "imap.listen",
                "needs identities.domains: the proxy stores mail encrypted to the local users' identities".into(),
            );
        }
        if split_host_port(&imap.upstream).is_none() {
            problem(
                "imap.upstream",
                format!(
                    "`{}` is not host:port (e.g. imap.example.net:993)",
                    imap.upstream
                ),
            );
        } else if let Some((key, why)) = imap.upstream_problem() {
            problem(key, why);
        }
        if let Some(p) = &imap.upstream_tls_ca
            && !p.is_file()
        {
            problem(
                "imap.upstream_tls_ca",
                format!("cannot read `{}`", p.display()),
            );
        }
        if no_tls_files(out, "imap", &imap.tls_cert, &imap.tls_key) && !imap.listen_tls.is_empty() {
            out.push((
                "imap.listen_tls".into(),
                "needs tls_cert and tls_key (TLS to the clients ends at sotto)".into(),
            ));
        }
    }
}

/// A listener's certificate and key (`<section>.tls_cert`, `.tls_key`),
/// which go together: one without the other is a problem, and once both
/// are given, a file that cannot be read. `true` when neither is given.
fn no_tls_files(
    out: &mut Vec<(String, String)>,
    section: &str,
    cert: &Option<std::path::PathBuf>,
    key: &Option<std::path::PathBuf>,
) -> bool {
    match (cert, key) {
        (Some(_), None) => out.push((format!("{section}.tls_cert"), "tls_key is missing".into())),
        (None, Some(_)) => out.push((format!("{section}.tls_key"), "tls_cert is missing".into())),
        (None, None) => return true,
        (Some(c), Some(k)) => {
            for (name, p) in [("tls_cert", c), ("tls_key", k)] {
                if !p.is_file() {
                    out.push((
                        format!("{section}.{name}"),
                        format!("cannot read `{}`", p.display()),
                    ));
                }
            }
        }
    }
    false
}
