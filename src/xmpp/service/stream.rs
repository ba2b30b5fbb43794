//! The connection task of the service connection: connect, XEP-0114
//! handshake, then one loop that writes requests, routes iq answers to
//! them by id, answers the server's own iqs, and ends on a lost connection,
//! shutdown, or when every [`Service`](super::Service) handle is gone.
//! Between connections it backs off, failing requests that still arrive.
//!
//! With several component names (one per replica), a name another
//! connection holds is answered with a `conflict` stream error (Prosody's
//! default `component_conflict_resolve = "kick_new"`): the task tries the
//! next name at once, and backs off only when every name is taken or the
//! attempt failed otherwise.

use std::collections::HashMap;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::pep::{self, COMPONENT_NS, PUBSUB_NS};
use super::{ConnectError, Grants, Reports, Request, ServiceSettings, Status};
use crate::xmpp::framer::{
    Element, Frame, Framer, Node, STREAM_ERROR_NS, STREAM_NS, parse_stanza_in, serialize,
    stream_error,
};

/// A connection that lasted this long resets the backoff.
const STABLE: Duration = Duration::from_secs(30);
/// Whitespace keepalive interval, so a dead peer is noticed on write.
const KEEPALIVE: Duration = Duration::from_secs(60);

/// Runs until shutdown or until every handle is dropped.
pub(super) async fn run(
    settings: ServiceSettings,
    mut requests: mpsc::Receiver<Request>,
    reports: Reports,
    shutdown: CancellationToken,
) {
    let Reports {
        status,
        grants,
        name: current,
    } = &reports;
    let mut backoff = settings.backoff_min;
    loop {
        let attempt = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = connect_any(&settings) => r,
        };
        match attempt {
            Ok((mut conn, name)) => {
                current.send_replace(name.clone());
                grants.send_replace(Grants {
                    since: Some(Instant::now()),
                    ..Grants::default()
                });
                let _ = status.send(Status::Connected);
                tracing::info!(
                    event = "xmpp_service_connected",
                    component = %name,
                    upstream = %settings.upstream
                );
                let since = Instant::now();
                let end = conn
                    .serve(&settings, &name, &mut requests, grants, &shutdown)
                    .await;
                grants.send_replace(Grants::default());
                match end {
                    End::Shutdown | End::HandlesGone => {
                        let _ = status.send(Status::Down(ConnectError::Closed));
                        return;
                    }
                    End::Lost(e) => {
                        tracing::warn!(
                            event = "xmpp_service_lost",
                            component = %name,
                            error = %e
                        );
                        let _ = status.send(Status::Down(e));
                        if since.elapsed() >= STABLE {
                            backoff = settings.backoff_min;
                        }
                    }
                }
            }
            Err(e) => {
                tracing::warn!(
                    event = "xmpp_service_connect_failed",
                    components = %settings.names.join(","),
                    upstream = %settings.upstream,
                    error = %e,
                    retry_in_ms = backoff.as_millis() as u64
                );
                let _ = status.send(Status::Down(e));
            }
        }
        // Back off; a request that slipped in as the connection went down
        // is failed (its reply dropped) rather than held.
        let until = Instant::now() + backoff;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep_until(until) => break,
                r = requests.recv() => if r.is_none() { return },
            }
        }
        backoff = (backoff * 2).min(settings.backoff_max);
    }
}

/// Connects as the first of `settings.names` the server lets this process
/// have: a name held by another connection (`conflict`) moves on to the
/// next; any other failure ends the round.
async fn connect_any(settings: &ServiceSettings) -> Result<(Conn, String), ConnectError> {
    let mut last = ConnectError::Closed;
    for name in &settings.names {
        let attempt = tokio::time::timeout(settings.connect_timeout, Conn::open(settings, name))
            .await
            .unwrap_or(Err(ConnectError::Timeout));
        match attempt {
            Ok(conn) => return Ok((conn, name.clone())),
            Err(e) if e.is_conflict() => {
                tracing::info!(event = "xmpp_service_name_taken", component = %name);
                last = e;
            }
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

/// How an established connection ended.
enum End {
    Shutdown,
    HandlesGone,
    Lost(ConnectError),
}

struct Conn {
    reader: OwnedReadHalf,
    writer: OwnedWriteHalf,
    framer: Framer,
    buf: Vec<u8>,
}

fn io_error(e: std::io::Error) -> ConnectError {
    ConnectError::Io(e.to_string())
}

impl Conn {
    /// Connects and authenticates (XEP-0114).
    async fn open(settings: &ServiceSettings, name: &str) -> Result<Conn, ConnectError> {
        let tcp = TcpStream::connect(&settings.upstream)
            .await
            .map_err(io_error)?;
        let _ = tcp.set_nodelay(true);
        let (reader, writer) = tcp.into_split();
        let mut conn = Conn {
            reader,
            writer,
            framer: Framer::new(settings.limits),
            buf: vec![0; 16 * 1024],
        };
        let header = format!(
            "<?xml version='1.0'?><stream:stream xmlns='{COMPONENT_NS}' xmlns:stream='{STREAM_NS}' to='{}'>",
            attr_escape(name)
        );
        conn.write(header.as_bytes()).await?;
        let id = loop {
            match conn.next_frame().await? {
                Frame::StreamHeader(h) => break h.id().unwrap_or_default().to_owned(),
                Frame::Whitespace(_) => {}
                Frame::Stanza(s) => return Err(conn.stream_error_of(&s.raw)),
                Frame::StreamEnd(_) => return Err(ConnectError::Closed),
            }
        };
        let mut handshake = Element::new("handshake", COMPONENT_NS);
        let digest = pep::handshake_digest(&id, &settings.secret);
        handshake.children.push(Node::Text(digest));
        conn.write(&serialize(&handshake)).await?;
        loop {
            match conn.next_frame().await? {
                Frame::Stanza(s) if s.is("handshake", COMPONENT_NS) => return Ok(conn),
                Frame::Stanza(s) if s.is("error", STREAM_NS) => {
                    return Err(conn.stream_error_of(&s.raw));
                }
                Frame::StreamEnd(_) => return Err(ConnectError::Closed),
                // Nothing else is expected before the handshake answer.
                _ => {}
            }
        }
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), ConnectError> {
        self.writer.write_all(bytes).await.map_err(io_error)
    }

    /// The next frame, reading as needed.
    async fn next_frame(&mut self) -> Result<Frame, ConnectError> {
        loop {
            if let Some(frame) = self.framer.next_frame().map_err(ConnectError::Frame)? {
                return Ok(frame);
            }
            let n = self.reader.read(&mut self.buf).await.map_err(io_error)?;
            if n == 0 {
                self.framer.finish();
                return match self.framer.next_frame().map_err(ConnectError::Frame)? {
                    Some(frame) => Ok(frame),
                    None => Err(ConnectError::Closed),
                };
            }
            self.framer.feed(&self.buf[..n]);
        }
    }

    /// The [`ConnectError`] for a `<stream:error>` (or anything else ending
    /// the handshake).
    fn stream_error_of(&self, raw: &[u8]) -> ConnectError {
        let Ok(e) = parse_stanza_in(raw, self.framer.ns_context(), self.framer.limits()) else {
            return ConnectError::Closed;
        };
        if !(e.name == "error" && e.ns == STREAM_NS) {
            return ConnectError::StreamError {
                condition: "unexpected-stanza".into(),
                text: String::new(),
            };
        }
        let text = e
            .child("text", STREAM_ERROR_NS)
            .map(|t| t.text())
            .unwrap_or_default();
        let condition = e
            .elements()
            .find(|c| c.ns == STREAM_ERROR_NS && c.name != "text")
            .map_or("undefined-condition", |c| c.name.as_str())
            .to_owned();
        if condition == "not-authorized" {
            ConnectError::NotAuthorized { text }
        } else {
            ConnectError::StreamError { condition, text }
        }
    }

    /// The authenticated stream: requests out, answers in.
    async fn serve(
        &mut self,
        settings: &ServiceSettings,
        name: &str,
        requests: &mut mpsc::Receiver<Request>,
        grants: &watch::Sender<Grants>,
        shutdown: &CancellationToken,
    ) -> End {
        let mut pending: HashMap<String, oneshot::Sender<Element>> = HashMap::new();
        let mut keepalive = tokio::time::interval_at(Instant::now() + KEEPALIVE, KEEPALIVE);
        let write_bound = settings.request_timeout;
        let mut out: Vec<u8> = Vec::new();
        loop {
            // Frames already read: after the handshake the same read may
            // have brought the server's <privilege/> message.
            loop {
                match self.framer.next_frame() {
                    Ok(Some(frame)) => {
                        let to = Outputs {
                            pending: &mut pending,
                            grants,
                            out: &mut out,
                        };
                        if let Err(e) = self.on_frame(frame, name, to) {
                            return End::Lost(e);
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        let cond = e.stream_error_condition();
                        let _ = tokio::time::timeout(write_bound, self.write(&stream_error(cond)))
                            .await;
                        return End::Lost(ConnectError::Frame(e));
                    }
                }
            }
            if !out.is_empty() {
                match tokio::time::timeout(write_bound, self.write(&out)).await {
                    Ok(Ok(())) => out.clear(),
                    Ok(Err(e)) => return End::Lost(e),
                    Err(_) => return End::Lost(ConnectError::Io("write timed out".into())),
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => {
                    let _ = tokio::time::timeout(write_bound, self.write(b"</stream:stream>")).await;
                    return End::Shutdown;
                }
                r = requests.recv() => {
                    let Some(r) = r else {
                        let _ = tokio::time::timeout(write_bound, self.write(b"</stream:stream>")).await;
                        return End::HandlesGone;
                    };
                    // Forget requests whose caller gave up (timed out).
                    pending.retain(|_, reply| !reply.is_closed());
                    pending.insert(r.id, r.reply);
                    let mut iq = r.iq;
                    iq.set_attr("from", name);
                    out = serialize(&iq);
                }
                _ = keepalive.tick() => out.push(b' '),
                n = self.reader.read(&mut self.buf) => match n {
                    Ok(0) => return End::Lost(ConnectError::Closed),
                    Ok(n) => self.framer.feed(&self.buf[..n]),
                    Err(e) => return End::Lost(io_error(e)),
                },
            }
        }
    }

    /// Handles one frame from the server; what to send back goes to `out`.
    fn on_frame(&self, frame: Frame, name: &str, to: Outputs<'_>) -> Result<(), ConnectError> {
        let Outputs {
            pending,
            grants,
            out,
        } = to;
        let stanza = match frame {
            Frame::Stanza(s) => s,
            Frame::Whitespace(_) => return Ok(()),
            Frame::StreamEnd(_) => return Err(ConnectError::Closed),
            Frame::StreamHeader(_) => {
                return Err(ConnectError::StreamError {
                    condition: "unexpected-header".into(),
                    text: String::new(),
                });
            }
        };
        if stanza.is("error", STREAM_NS) {
            return Err(self.stream_error_of(&stanza.raw));
        }
        let element = parse_stanza_in(&stanza.raw, self.framer.ns_context(), self.framer.limits())
            .map_err(ConnectError::Frame)?;
        match element.name.as_str() {
            "iq" => match element.attr("type") {
                Some("result" | "error") => {
                    let id = element.attr("id").unwrap_or_default();
                    match pending.remove(id) {
                        Some(reply) => {
                            let _ = reply.send(element);
                        }
                        None => tracing::debug!(event = "xmpp_service_stray_answer"),
                    }
                }
                _ => {
                    if let Some(answer) = pep::answer(&element, name) {
                        out.extend_from_slice(&serialize(&answer));
                    }
                }
            },
            "message" if element.child("privilege", pep::PRIVILEGE_NS).is_some() => {
                // From the host itself (a domain, no user part).
                let host = element.attr("from").unwrap_or_default();
                if host.is_empty() || host.contains(['@', '/']) {
                    return Ok(());
                }
                let host = host.to_ascii_lowercase();
                let granted = pep::grants_iq(&element, PUBSUB_NS, "set");
                tracing::info!(
                    event = "xmpp_service_privileges",
                    component = %name,
                    host = %host,
                    pubsub_set = granted
                );
                grants.send_modify(|g| {
                    if granted {
                        g.pubsub_set.insert(host);
                    } else {
                        g.pubsub_set.remove(&host);
                    }
                });
            }
            // Presence and other messages are not sotto's business; a
            // message is never answered (no error loops).
            _ => {}
        }
        Ok(())
    }
}

/// Where [`Conn::on_frame`] puts what it produces.
struct Outputs<'a> {
    pending: &'a mut HashMap<String, oneshot::Sender<Element>>,
    grants: &'a watch::Sender<Grants>,
    out: &'a mut Vec<u8>,
}

fn attr_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('\'', "&apos;")
        .replace('"', "&quot;")
}
