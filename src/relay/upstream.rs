//! The upstream SMTP server, reached with lettre's async SMTP connection:
//! TLS modes none / STARTTLS / implicit TLS, AUTH, and a pool of idle
//! connections reused between transactions.
//!
//! Every failure maps here, and only here, to the reply the client sees:
//! the upstream's own code and enhanced status when it answered, `451 4.4.x`
//! when it could not be reached or went away.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, Certificate, TlsParameters};
use lettre::transport::smtp::extension::{ClientId, Extension};
use lettre::transport::smtp::response::Response;
use tokio::time::timeout;

use super::{Target, Transaction};
use crate::config::{Config, UpstreamTls, split_host_port};
use crate::envelope::MailFrom;
use crate::reply::Reply;

/// Why the upstream could not be used at all (bad TLS material in config).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UpstreamError {
    #[error("upstream.address `{0}` is not host:port")]
    Address(String),
    #[error("cannot read upstream.tls_ca `{path}`: {source}")]
    Ca {
        path: String,
        source: std::io::Error,
    },
    #[error("upstream TLS settings: {0}")]
    Tls(String),
}

struct Settings {
    host: String,
    port: u16,
    tls_mode: UpstreamTls,
    /// For STARTTLS (lettre's TLS).
    tls: Option<TlsParameters>,
    /// For implicit TLS (sotto's own, so the socket has TCP_NODELAY).
    implicit: Option<super::stream::Implicit>,
    hello: ClientId,
    credentials: Option<Credentials>,
    pool_size: usize,
    idle_timeout: Duration,
    command_timeout: Duration,
    data_timeout: Duration,
}

struct Idle {
    conn: AsyncSmtpConnection,
    since: Instant,
}

/// The upstream relay: cheap to clone, shared by all sessions.
#[derive(Clone)]
pub struct Upstream {
    settings: Arc<Settings>,
    pool: Arc<Mutex<Vec<Idle>>>,
}

impl Upstream {
    pub fn from_config(cfg: &Config) -> Result<Self, UpstreamError> {
        let up = &cfg.upstream;
        let (host, port) = split_host_port(&up.address)
            .ok_or_else(|| UpstreamError::Address(up.address.clone()))?;
        let name = up.tls_name.clone().unwrap_or_else(|| host.clone());
        let ca_pem = match &up.tls_ca {
            Some(ca) => Some(std::fs::read(ca).map_err(|source| UpstreamError::Ca {
                path: ca.display().to_string(),
                source,
            })?),
            None => None,
        };
        let (tls, implicit) = match up.tls {
            UpstreamTls::None => (None, None),
            UpstreamTls::Starttls => {
                let mut b = TlsParameters::builder(name);
                if let Some(pem) = &ca_pem {
                    let cert = Certificate::from_pem(pem)
                        .map_err(|e| UpstreamError::Tls(e.to_string()))?;
                    b = b.add_root_certificate(cert);
                }
                (
                    Some(
                        b.build_rustls()
                            .map_err(|e| UpstreamError::Tls(e.to_string()))?,
                    ),
                    None,
                )
            }
            UpstreamTls::Tls => {
                let i = super::stream::Implicit::new(&name, ca_pem.as_deref())
                    .map_err(UpstreamError::Tls)?;
                (None, Some(i))
            }
        };
        let settings = Settings {
            host,
            port,
            tls_mode: up.tls,
            tls,
            implicit,
            hello: ClientId::Domain(up.helo_name.clone()),
            credentials: up
                .auth
                .as_ref()
                .map(|a| Credentials::new(a.username.clone(), a.password.clone())),
            pool_size: up.pool_size,
            idle_timeout: up.idle_timeout,
            command_timeout: cfg.timeouts.upstream,
            data_timeout: cfg.timeouts.upstream_data,
        };
        Ok(Upstream {
            settings: Arc::new(settings),
            pool: Arc::new(Mutex::new(Vec::new())),
        })
    }

    /// Whether the upstream accepts a TCP connection now (for `/readyz`).
    pub async fn reachable(&self) -> bool {
        let s = &self.settings;
        matches!(
            timeout(
                s.command_timeout,
                tokio::net::TcpStream::connect((s.host.as_str(), s.port))
            )
            .await,
            Ok(Ok(_))
        )
    }

    fn take_idle(&self) -> Option<AsyncSmtpConnection> {
        let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(idle) = pool.pop() {
            if idle.since.elapsed() < self.settings.idle_timeout && !idle.conn.has_broken() {
                return Some(idle.conn);
            }
        }
        None
    }

    fn put_idle(&self, conn: AsyncSmtpConnection) {
        if conn.has_broken() {
            return;
        }
        let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        if pool.len() < self.settings.pool_size {
            pool.push(Idle {
                conn,
                since: Instant::now(),
            });
        }
    }

    async fn connect(&self) -> Result<AsyncSmtpConnection, Reply> {
        let s = &self.settings;
        let connect = async {
            use super::stream::ConnectError;
            let stream = super::stream::connect(&s.host, s.port, s.implicit.as_ref())
                .await
                .map_err(|e| match e {
                    ConnectError::Tcp(e) => (e.to_string(), "4.4.1"),
                    ConnectError::Tls(e) => (format!("TLS: {e}"), "4.7.5"),
                })?;
            AsyncSmtpConnection::connect_with_transport(stream, &s.hello)
                .await
                .map_err(|e| (e.to_string(), "4.4.1"))
        };
        let mut conn = match timeout(s.command_timeout, connect).await {
            Ok(Ok(c)) => c,
            Ok(Err((error, status))) => {
                tracing::warn!(event = "upstream_setup_failed", error = %error, "cannot connect to the upstream");
                return Err(Reply::new(
                    451,
                    status,
                    "cannot connect to the upstream; message not accepted, try again later",
                ));
            }
            Err(_) => {
                return Err(Reply::new(
                    451,
                    "4.4.1",
                    "upstream did not answer in time; try again later",
                ));
            }
        };
        if s.tls_mode == UpstreamTls::Starttls {
            if !conn.can_starttls() {
                return Err(Reply::new(
                    451,
                    "4.7.5",
                    "upstream does not offer STARTTLS; not relaying in clear",
                ));
            }
            let params = s
                .tls
                .clone()
                .expect("STARTTLS mode always has TLS parameters");
            match timeout(s.command_timeout, conn.starttls(params, &s.hello)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    return Err(setup_failure(&e, "4.7.5", "TLS with the upstream failed"));
                }
                Err(_) => return Err(Reply::new(451, "4.4.2", "upstream TLS handshake timed out")),
            }
        }
        if let Some(creds) = &s.credentials {
            let mechs = [Mechanism::Plain, Mechanism::Login];
            match timeout(s.command_timeout, conn.auth(&mechs, creds)).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    return Err(setup_failure(
                        &e,
                        "4.7.0",
                        "upstream refused sotto's credentials",
                    ));
                }
                Err(_) => return Err(Reply::new(451, "4.4.2", "upstream AUTH timed out")),
            }
        }
        Ok(conn)
    }
}

/// A failure to set up the upstream connection (greeting, TLS, AUTH): the
/// gateway's problem, never the sender's, so always temporary; the
/// upstream's own words go to the log.
fn setup_failure(e: &lettre::transport::smtp::Error, status: &str, what: &str) -> Reply {
    tracing::warn!(event = "upstream_setup_failed", error = %e, "{what}");
    Reply::new(
        451,
        status,
        format!("{what}; message not accepted, try again later"),
    )
}

/// The reply for a lettre error: the upstream's own words when it answered,
/// else a temporary failure with `status` and `what`.
fn failure(e: &lettre::transport::smtp::Error, status: &str, what: &str) -> Reply {
    if let Some(code) = e.status() {
        let code: u16 = code.to_string().parse().unwrap_or(451);
        let text = std::error::Error::source(e)
            .map(|s| s.to_string())
            .unwrap_or_default();
        return Reply::from_peer(code, &[text.as_str()], "upstream: ");
    }
    tracing::warn!(event = "upstream_error", error = %e, "{what}");
    Reply::new(
        451,
        status,
        format!("{what}; message not accepted, try again later"),
    )
}

fn positive(resp: &Response, prefix: &str) -> Reply {
    let code: u16 = resp.code().to_string().parse().unwrap_or(250);
    let lines: Vec<&str> = resp.message().collect();
    Reply::from_peer(code, &lines, prefix)
}

/// Builds the MAIL command with the parameters the upstream supports.
fn mail_command(from: &MailFrom, conn: &AsyncSmtpConnection) -> Result<String, Reply> {
    let info = conn.server_info();
    let mut cmd = format!("MAIL FROM:<{}>", from.address);
    if from.body_8bit && info.supports_feature(Extension::EightBitMime) {
        cmd.push_str(" BODY=8BITMIME");
    }
    if from.smtputf8 {
        if !info.supports_feature(Extension::SmtpUtfEight) {
            return Err(Reply::new(
                553,
                "5.6.7",
                "SMTPUTF8 is required, but the upstream does not offer it",
            ));
        }
        cmd.push_str(" SMTPUTF8");
    }
    cmd.push_str("\r\n");
    Ok(cmd)
}

impl Target for Upstream {
    type Tx = UpstreamTx;

    async fn begin(&self, from: &MailFrom) -> Result<UpstreamTx, Reply> {
        // A pooled connection may have been closed by the upstream meanwhile;
        // MAIL commits nothing, so trying the next one (or a fresh one) is safe.
        loop {
            let (mut conn, reused) = match self.take_idle() {
                Some(c) => (c, true),
                None => (self.connect().await?, false),
            };
            let cmd = match mail_command(from, &conn) {
                Ok(c) => c,
                Err(r) => {
                    self.put_idle(conn);
                    return Err(r);
                }
            };
            match timeout(self.settings.command_timeout, conn.command(cmd)).await {
                Ok(Ok(_)) => {
                    return Ok(UpstreamTx {
                        upstream: self.clone(),
                        conn: Some(conn),
                    });
                }
                Ok(Err(e)) if e.status().is_some() => {
                    self.put_idle(conn);
                    return Err(failure(&e, "4.4.2", ""));
                }
                Ok(Err(e)) if reused => {
                    tracing::debug!(event = "upstream_stale", error = %e, "pooled connection gone; reconnecting");
                }
                Ok(Err(e)) => return Err(failure(&e, "4.4.2", "upstream connection failed")),
                Err(_) => {
                    return Err(Reply::new(
                        451,
                        "4.4.2",
                        "upstream did not answer MAIL in time; try again later",
                    ));
                }
            }
        }
    }
}

/// A transaction open on one upstream connection.
pub struct UpstreamTx {
    upstream: Upstream,
    conn: Option<AsyncSmtpConnection>,
}

impl UpstreamTx {
    /// DATA and the message: the reply for the client, and whether the
    /// upstream answered (`answered`) or went away (`error`).
    async fn send(mut self, message: Vec<u8>) -> (Reply, bool) {
        let Some(mut conn) = self.conn.take() else {
            return (
                Reply::new(451, "4.4.2", "upstream connection lost; try again later"),
                false,
            );
        };
        // lettre ends the data with CRLF.CRLF itself; the message's own last
        // CRLF is that first CRLF, so it is not sent twice.
        let body = message.strip_suffix(b"\r\n").unwrap_or(&message);
        let send = async {
            conn.command("DATA\r\n").await?;
            if message.is_empty() {
                // An empty message: lettre would send one empty line. The
                // DATA line's CRLF is the one that "<CRLF>.<CRLF>" starts
                // with (RFC 5321 4.1.1.4), so "." alone ends empty data.
                conn.command(".\r\n").await
            } else {
                conn.message(body).await
            }
        };
        match timeout(self.upstream.settings.data_timeout, send).await {
            Ok(Ok(resp)) => {
                self.upstream.put_idle(conn);
                let mut r = positive(&resp, "relayed; upstream said: ");
                r.status = "2.0.0".into();
                (r, true)
            }
            Ok(Err(e)) => {
                let answered = e.status().is_some();
                if answered {
                    self.upstream.put_idle(conn);
                }
                (
                    failure(&e, "4.4.2", "upstream connection lost during DATA"),
                    answered,
                )
            }
            Err(_) => (
                Reply::new(
                    451,
                    "4.4.2",
                    "upstream did not accept the message in time; try again later",
                ),
                false,
            ),
        }
    }
}

impl Transaction for UpstreamTx {
    async fn add_rcpt(&mut self, rcpt: &str) -> Reply {
        let Some(conn) = self.conn.as_mut() else {
            return Reply::new(451, "4.4.2", "upstream connection lost; try again later");
        };
        let cmd = format!("RCPT TO:<{rcpt}>\r\n");
        match timeout(self.upstream.settings.command_timeout, conn.command(cmd)).await {
            Ok(Ok(resp)) => positive(&resp, ""),
            Ok(Err(e)) => {
                if e.status().is_none() {
                    self.conn = None;
                }
                failure(&e, "4.4.2", "upstream connection lost")
            }
            Err(_) => {
                self.conn = None;
                Reply::new(
                    451,
                    "4.4.2",
                    "upstream did not answer RCPT in time; try again later",
                )
            }
        }
    }

    async fn commit(self, message: Vec<u8>) -> Reply {
        let (reply, answered) = self.send(message).await;
        let class = if answered {
            crate::telemetry::class(reply.code)
        } else {
            "error"
        };
        metrics::counter!("sotto_upstream_replies_total", "class" => class).increment(1);
        reply
    }
    async fn abort(mut self) {
        if let Some(mut conn) = self.conn.take()
            && let Ok(Ok(_)) = timeout(
                self.upstream.settings.command_timeout,
                conn.command("RSET\r\n"),
            )
            .await
        {
            self.upstream.put_idle(conn);
        }
    }
}
