//! `sotto serve`: binds the listeners, runs them, and shuts down in order —
//! stop accepting, let open transactions finish (bounded by
//! `timeouts.shutdown`), then return.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::policy::Policies;
use crate::relay::Upstream;
use crate::smtp::{Listener, Protocol, Shared};
use crate::transform::{Crypt, Gateway};

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    #[error("cannot listen on {addr} ({what}): {source}")]
    Bind {
        what: &'static str,
        addr: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Upstream(#[from] crate::relay::upstream::UpstreamError),
    #[error("STARTTLS certificate: {0}")]
    Tls(#[from] crate::smtp::TlsError),
    #[error(transparent)]
    Crypt(#[from] crate::transform::SetupError),
    #[error("policy files are invalid:\n{0}")]
    Policy(String),
    #[error("XMPP: {0}")]
    Xmpp(String),
    #[error("state store: {0}")]
    Store(String),
    #[error("IMAP proxy: {0}")]
    Imap(String),
}

/// A running gateway: where it listens, and how to stop it.
pub struct Running {
    pub smtp: Option<SocketAddr>,
    pub lmtp: Option<SocketAddr>,
    pub admin: Option<SocketAddr>,
    pub redirect: Option<SocketAddr>,
    /// WKD over HTTP, with `identities.domains`.
    pub wkd: Option<SocketAddr>,
    /// The inbound LMTP listener (`inbound.listen`).
    pub inbound: Option<SocketAddr>,
    /// The IMAP proxy (`imap.listen`, STARTTLS; `imap.listen_tls`).
    pub imap: Option<SocketAddr>,
    pub imap_tls: Option<SocketAddr>,
    /// The XMPP listeners (STARTTLS, then direct TLS), when enabled.
    pub xmpp: Option<SocketAddr>,
    pub xmpp_tls: Option<SocketAddr>,
    shutdown: CancellationToken,
    done: JoinHandle<()>,
}

impl Running {
    /// Stops accepting; open transactions finish.
    pub fn shutdown(&self) {
        self.shutdown.cancel();
    }

    /// Waits until every listener and session has ended.
    pub async fn wait(self) {
        let _ = self.done.await;
    }
}

async fn bind(what: &'static str, addr: &str) -> Result<Option<TcpListener>, ServeError> {
    if addr.is_empty() {
        return Ok(None);
    }
    TcpListener::bind(addr)
        .await
        .map(Some)
        .map_err(|source| ServeError::Bind {
            what,
            addr: addr.to_string(),
            source,
        })
}

/// Binds every configured listener and starts serving.
pub async fn start(cfg: &Config) -> Result<Running, ServeError> {
    let shutdown = CancellationToken::new();
    // Count from the start, whether or not the admin port is enabled.
    crate::telemetry::install();
    let upstream = Upstream::from_config(cfg)?;
    let tls = match (&cfg.smtp.tls_cert, &cfg.smtp.tls_key) {
        (Some(c), Some(k)) => Some(crate::smtp::server_tls(c, k)?),
        _ => None,
    };
    let smtp = bind("smtp.listen", &cfg.smtp.listen).await?;
    let lmtp = bind("lmtp.listen", &cfg.lmtp.listen).await?;
    let admin = bind("admin.listen", &cfg.admin.listen).await?;
    let redirect = bind("redirect.listen", &cfg.redirect.listen).await?;
    let addr = |l: &Option<TcpListener>| l.as_ref().and_then(|l| l.local_addr().ok());
    let (smtp_addr, lmtp_addr, admin_addr) = (addr(&smtp), addr(&lmtp), addr(&admin));
    let redirect_addr = addr(&redirect);

    let store = match crate::store::cli::wanted(cfg) {
        true => Some(
            crate::store::cli::open(cfg)
                .await
                .map_err(|e| ServeError::Store(e.to_string()))?,
        ),
        false => None,
    };
    crate::store::describe_metrics();
    if let Some(store) = &store {
        tracing::info!(event = "store_open", backend = store.backend());
        prune_replay(store.clone(), cfg.store.replay_max, shutdown.clone());
    }
    let keys = crate::keys::KeyStore::from_config(cfg);
    if let Some(store) = &store {
        keys.set_store(store.clone());
    }
    // The organisation's identities (chat users' keys, local mail
    // addresses'), when the store has a passphrase for secret keys.
    let identities = match &store {
        Some(store) => crate::store::cli::user_keys(cfg, store)
            .await
            .map_err(ServeError::Store)?,
        None => None,
    };
    if let Some(ids) = &identities {
        ids.watch(shutdown.clone());
    }
    if !cfg.identities.domains.is_empty() && identities.is_some() {
        tracing::info!(
            event = "identities",
            domains = %cfg.identities.domains.join(","),
            "local senders get an identity with their first message and an Autocrypt header on every one"
        );
    }
    if !cfg.identities.domains.is_empty() && identities.is_none() {
        return Err(ServeError::Store(
            "identities.domains needs store.secret_file (a file whose first line is the passphrase for the identities' secret keys)".into(),
        ));
    }
    let policies = Policies::load(cfg.policy.dir.clone()).map_err(|ps| {
        ServeError::Policy(
            ps.iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join("\n"),
        )
    })?;
    let set = policies.current();
    let unmet = set.unmet_needs(cfg);
    if !unmet.is_empty() {
        return Err(ServeError::Policy(unmet.join("\n")));
    }
    tracing::info!(event = "links", "{}", set.links_summary());
    tracing::info!(
        event = "key_sources",
        sources = %cfg.keys.sources.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(","),
        "recipients' keys are looked up in this order"
    );
    let public = &cfg.redirect.public_url;
    if (public.contains("://127.")
        || public.contains("://localhost")
        || public.contains("://[::1]"))
        && let Some((_, origin)) = set.redirect_origins().into_iter().next()
    {
        tracing::warn!(
            event = "redirect_public_url_local",
            policy = %origin,
            "links are rewritten to {public}, which only this machine can reach; set redirect.public_url"
        );
    }
    policies.watch(shutdown.clone());
    let inbound_keys = keys.clone();
    let crypt = Crypt::from_config(cfg, keys)?
        .with_identities(identities.clone(), cfg.identities.domains.clone());
    // The redirector opens the tokens this process seals (same keys).
    let redirector = crate::redirect::Redirector::new(crypt.redirect.keys.clone(), &cfg.redirect);
    let pipeline = Gateway::new(upstream.clone(), crypt, policies);
    let chat_crypt = pipeline.crypt();
    let chat_policies = pipeline.policies();
    let inbound_policies = pipeline.policies();
    let shared = Shared::new(cfg, pipeline, tls, shutdown.clone());
    let limit = Arc::new(Semaphore::new(cfg.limits.max_connections));
    let sessions = TaskTracker::new();
    let mut listeners = Vec::new();
    let mut xmpp_addrs: Vec<Option<SocketAddr>> = Vec::new();
    for (socket, protocol) in [(smtp, Protocol::Smtp), (lmtp, Protocol::Lmtp)] {
        if let Some(socket) = socket {
            let l = Listener {
                socket,
                protocol,
                shared: shared.clone(),
            };
            tracing::info!(event = "listening", protocol = protocol.name(), addr = %l.socket.local_addr().map(|a| a.to_string()).unwrap_or_default());
            listeners.push(tokio::spawn(l.run(limit.clone(), sessions.clone())));
        }
    }
    if !cfg.xmpp.listen.is_empty() || !cfg.xmpp.listen_tls.is_empty() {
        let (cert, key) = match (&cfg.xmpp.tls_cert, &cfg.xmpp.tls_key) {
            (Some(c), Some(k)) => (c, k),
            _ => {
                return Err(ServeError::Xmpp(
                    "xmpp.tls_cert and xmpp.tls_key are needed".into(),
                ));
            }
        };
        let chat = Arc::new(
            crate::xmpp::chat::Chat::new(
                cfg.xmpp.domain.clone(),
                chat_policies,
                chat_crypt,
                identities.clone(),
                service(cfg, &shutdown)?,
                cfg.xmpp.max_stanza_bytes,
            )
            .with_replay_ttl(cfg.store.replay_ttl),
        );
        chat.publish_revocations(shutdown.clone());
        let shared = Arc::new(crate::xmpp::session::XmppShared {
            domain: cfg.xmpp.domain.clone(),
            upstream: cfg.xmpp.upstream.clone(),
            limits: crate::xmpp::framer::Limits {
                max_stanza_bytes: cfg.xmpp.max_stanza_bytes,
                ..Default::default()
            },
            tls: crate::smtp::server_tls(cert, key)?,
            shutdown: shutdown.clone(),
            handshake_timeout: cfg.timeouts.command,
            upstream_tls: xmpp_upstream_tls(cfg)?,
            chat: Some(chat),
        });
        for (addr, direct) in [(&cfg.xmpp.listen, false), (&cfg.xmpp.listen_tls, true)] {
            if let Some(socket) = bind(
                if direct {
                    "xmpp.listen_tls"
                } else {
                    "xmpp.listen"
                },
                addr,
            )
            .await?
            {
                tracing::info!(event = "listening", protocol = if direct { "xmpps" } else { "xmpp" }, addr = %addr);
                xmpp_addrs.push(socket.local_addr().ok());
                listeners.push(tokio::spawn(crate::xmpp::listener::run(
                    socket,
                    direct,
                    shared.clone(),
                    limit.clone(),
                    sessions.clone(),
                )));
            }
        }
    }
    let mut inbound_addr = None;
    if let Some(socket) = bind("inbound.listen", &cfg.inbound.listen).await? {
        let Some(ids) = identities
            .clone()
            .filter(|_| !cfg.identities.domains.is_empty())
        else {
            return Err(ServeError::Store(
                "inbound.listen needs identities.domains and store.secret_file: the inbound path decrypts for the local users' identities".into(),
            ));
        };
        let lmtp = crate::relay::Lmtp {
            address: cfg.inbound.upstream.clone(),
            hostname: cfg.smtp.hostname.clone(),
            command_timeout: cfg.timeouts.upstream,
            data_timeout: cfg.timeouts.upstream_data,
        };
        let target = crate::inbound::InboundTarget(crate::inbound::Inbound::new(
            lmtp,
            ids,
            inbound_keys,
            &cfg.identities.domains,
            cfg.limits.max_message_size,
            inbound_policies,
        ));
        inbound_addr = socket.local_addr().ok();
        let l = Listener {
            socket,
            protocol: Protocol::Lmtp,
            shared: crate::smtp::Shared::inbound(cfg, target, shutdown.clone()),
        };
        tracing::info!(event = "listening", protocol = "inbound-lmtp", addr = ?inbound_addr, upstream = %cfg.inbound.upstream);
        listeners.push(tokio::spawn(l.run(limit.clone(), sessions.clone())));
    }
    let (imap_addr, imap_tls_addr) = imap(cfg, &identities, &shutdown, &mut listeners).await?;
    let mut wkd_addr = None;
    if let (Some(ids), false) = (&identities, cfg.identities.domains.is_empty())
        && let Some(socket) = bind("identities.wkd_listen", &cfg.identities.wkd_listen).await?
    {
        wkd_addr = socket.local_addr().ok();
        tracing::info!(event = "listening", protocol = "wkd", addr = ?wkd_addr);
        let wkd = crate::wkd::Wkd::new(ids.clone(), &cfg.identities.domains);
        listeners.push(tokio::spawn(crate::wkd::run(socket, wkd, shutdown.clone())));
    }
    if let Some(redirect) = redirect {
        tracing::info!(event = "listening", protocol = "redirect", addr = ?redirect_addr);
        listeners.push(tokio::spawn(crate::redirect::run(
            redirect,
            redirector,
            shutdown.clone(),
        )));
    }
    if let Some(admin) = admin {
        tracing::info!(event = "listening", protocol = "admin", addr = ?admin_addr);
        listeners.push(tokio::spawn(crate::admin::run(
            admin,
            upstream,
            store.clone(),
            shutdown.clone(),
        )));
    }
    let grace: Duration = cfg.timeouts.shutdown;
    let token = shutdown.clone();
    let done = tokio::spawn(async move {
        token.cancelled().await;
        tracing::info!(event = "shutdown", phase = "stop_accepting");
        for l in listeners {
            let _ = l.await;
        }
        sessions.close();
        if tokio::time::timeout(grace, sessions.wait()).await.is_err() {
            tracing::warn!(
                event = "shutdown",
                phase = "grace_expired",
                open = sessions.len()
            );
        }
        tracing::info!(event = "shutdown", phase = "done");
    });
    Ok(Running {
        smtp: smtp_addr,
        lmtp: lmtp_addr,
        admin: admin_addr,
        redirect: redirect_addr,
        wkd: wkd_addr,
        imap: imap_addr,
        imap_tls: imap_tls_addr,
        inbound: inbound_addr,
        xmpp: if cfg.xmpp.listen.is_empty() {
            None
        } else {
            xmpp_addrs.first().copied().flatten()
        },
        xmpp_tls: if cfg.xmpp.listen_tls.is_empty() {
            None
        } else {
            xmpp_addrs.last().copied().flatten()
        },
        shutdown,
        done,
    })
}

/// The IMAP proxy's listeners (`imap.listen`, `imap.listen_tls`), when
/// configured: their addresses.
async fn imap(
    cfg: &Config,
    identities: &Option<Arc<crate::openpgp::identities::Identities>>,
    shutdown: &CancellationToken,
    listeners: &mut Vec<JoinHandle<()>>,
) -> Result<(Option<SocketAddr>, Option<SocketAddr>), ServeError> {
    let plain = bind("imap.listen", &cfg.imap.listen).await?;
    let tls_socket = bind("imap.listen_tls", &cfg.imap.listen_tls).await?;
    if plain.is_none() && tls_socket.is_none() {
        return Ok((None, None));
    }
    let Some(ids) = identities
        .clone()
        .filter(|_| !cfg.identities.domains.is_empty())
    else {
        return Err(ServeError::Imap(
            "imap.listen needs identities.domains and store.secret_file: the proxy encrypts to the users' identities".into(),
        ));
    };
    let tls = match (&cfg.imap.tls_cert, &cfg.imap.tls_key) {
        (Some(c), Some(k)) => Some(crate::smtp::server_tls(c, k)?),
        _ if tls_socket.is_some() => {
            return Err(ServeError::Imap(
                "imap.listen_tls needs imap.tls_cert and imap.tls_key".into(),
            ));
        }
        _ => None,
    };
    if let Some((key, why)) = cfg.imap.upstream_problem() {
        return Err(ServeError::Imap(format!("{key} {why}")));
    }
    let upstream_tls = if cfg.imap.upstream_tls || cfg.imap.upstream_starttls {
        let ca = match &cfg.imap.upstream_tls_ca {
            Some(p) => Some(std::fs::read(p).map_err(|e| {
                ServeError::Imap(format!("imap.upstream_tls_ca `{}`: {e}", p.display()))
            })?),
            None => None,
        };
        let host = crate::config::split_host_port(&cfg.imap.upstream)
            .map(|(h, _)| h)
            .unwrap_or_default();
        Some(
            crate::relay::stream::Implicit::new(&host, ca.as_deref())
                .map_err(|e| ServeError::Imap(format!("imap.upstream_tls: {e}")))?,
        )
    } else {
        None
    };
    let shared = Arc::new(crate::imap::proxy::ImapShared {
        upstream: cfg.imap.upstream.clone(),
        upstream_tls,
        upstream_starttls: cfg.imap.upstream_starttls,
        identities: ids,
        domains: cfg
            .identities
            .domains
            .iter()
            .map(|d| d.to_ascii_lowercase())
            .collect(),
        login_domain: cfg.imap.login_domain.trim().to_ascii_lowercase(),
        max_message: u32::try_from(cfg.limits.max_message_size.saturating_mul(2))
            .unwrap_or(u32::MAX),
        idle_timeout: Duration::from_secs(30 * 60),
        tls,
        opened: crate::imap::stored::OpenedCache::new(64 << 20),
    });
    let mut addrs = (None, None);
    for (socket, implicit) in [(plain, false), (tls_socket, true)] {
        let Some(socket) = socket else { continue };
        let addr = socket.local_addr().ok();
        tracing::info!(event = "listening", protocol = if implicit { "imaps" } else { "imap" }, addr = ?addr, upstream = %cfg.imap.upstream);
        if implicit {
            addrs.1 = addr;
        } else {
            addrs.0 = addr;
        }
        listeners.push(tokio::spawn(crate::imap::proxy::run(
            socket,
            shared.clone(),
            shutdown.clone(),
            implicit,
        )));
    }
    Ok(addrs)
}

/// Every ten minutes until shutdown, drops expired OX replay records and
/// the oldest beyond `max`.
fn prune_replay(store: crate::store::Store, max: u64, shutdown: CancellationToken) {
    tokio::spawn(async move {
        loop {
            if let Err(e) = store.prune_replay(max).await {
                tracing::warn!(event = "store_prune_failed", error = %e);
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(Duration::from_secs(600)) => {}
            }
        }
    });
}

/// sotto's service connection to the XMPP server (PEP), when configured.
fn service(
    cfg: &Config,
    shutdown: &CancellationToken,
) -> Result<Option<crate::xmpp::service::Service>, ServeError> {
    use crate::xmpp::service::{Service, ServiceSettings};
    let settings =
        ServiceSettings::from_config(&cfg.xmpp).map_err(|e| ServeError::Xmpp(e.to_string()))?;
    Ok(settings.map(|s| Service::start(s, shutdown.clone())))
}

/// The TLS settings for the XMPP upstream, when `xmpp.upstream_tls` is on.
fn xmpp_upstream_tls(cfg: &Config) -> Result<Option<crate::relay::stream::Implicit>, ServeError> {
    let x = &cfg.xmpp;
    if !x.upstream_tls {
        return Ok(None);
    }
    let ca = match &x.upstream_tls_ca {
        Some(p) => Some(std::fs::read(p).map_err(|e| {
            ServeError::Xmpp(format!("xmpp.upstream_tls_ca `{}`: {e}", p.display()))
        })?),
        None => None,
    };
    let name = if x.upstream_tls_name.is_empty() {
        &x.domain
    } else {
        &x.upstream_tls_name
    };
    crate::relay::stream::Implicit::new(name, ca.as_deref())
        .map(Some)
        .map_err(|e| ServeError::Xmpp(format!("xmpp.upstream_tls: {e}")))
}
