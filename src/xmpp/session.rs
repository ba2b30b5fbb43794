//! One client's stream through sotto: sotto's own stream until TLS (it
//! offers STARTTLS, required), then the client's stream relayed to the
//! server over loopback, frame by frame — one stanza out for each stanza in,
//! in order, both ways — with the server's features filtered (no STARTTLS,
//! no channel binding) and both framers restarted after SASL success.
//! What happens to the stanzas themselves is [`super::stanzas`]'s.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use super::chat::Chat;
use super::element::serialize;
use super::features::{self, SASL_NS, TLS_NS};
use super::framer::{
    Frame, FrameError, Framer, Limits, STREAM_NS, Stanza, parse_stanza_in, stream_error,
};
use super::stanzas::Stanzas;
use crate::smtp::Io;

/// What every XMPP session shares.
pub struct XmppShared {
    pub domain: String,
    pub upstream: String,
    pub limits: Limits,
    pub tls: tokio_rustls::TlsAcceptor,
    pub shutdown: CancellationToken,
    /// Time a client has for each step before TLS.
    pub handshake_timeout: Duration,
    /// The chat pipeline (policy, encryption, links); `None` relays as is.
    pub chat: Option<Arc<Chat>>,
    /// TLS to the upstream (`xmpp.upstream_tls`); `None` for plain TCP.
    pub upstream_tls: Option<crate::relay::stream::Implicit>,
}

/// How a session ended, for the log.
#[derive(Debug)]
enum End {
    Closed,
    Client(FrameError),
    Upstream(String),
    Shutdown,
}

/// Serves one client connection; `tls` tells whether TLS is already on
/// (direct TLS, XEP-0368).
pub async fn serve(io: Box<dyn Io>, tls: bool, shared: Arc<XmppShared>) {
    let io = if tls {
        io
    } else {
        match starttls(io, &shared).await {
            Some(io) => io,
            None => return,
        }
    };
    let upstream = match tokio::time::timeout(
        shared.handshake_timeout,
        TcpStream::connect(&shared.upstream),
    )
    .await
    {
        Ok(Ok(s)) => s,
        _ => {
            tracing::warn!(event = "xmpp_upstream_unreachable");
            refuse(io, "remote-connection-failed", &shared).await;
            return;
        }
    };
    let _ = upstream.set_nodelay(true);
    let end = match &shared.upstream_tls {
        None => relay(io, upstream, &shared).await,
        Some(tls) => {
            match tokio::time::timeout(shared.handshake_timeout, tls.handshake(upstream)).await {
                Ok(Ok(upstream)) => relay(io, upstream, &shared).await,
                failed => {
                    let why = match failed {
                        Ok(Err(e)) => e.to_string(),
                        _ => "timeout".to_string(),
                    };
                    tracing::warn!(event = "xmpp_upstream_tls_failed", error = %why);
                    refuse(io, "remote-connection-failed", &shared).await;
                    return;
                }
            }
        }
    };
    match end {
        End::Client(e) => tracing::info!(
            event = "xmpp_stream_error",
            side = "client",
            error = e.kind()
        ),
        End::Upstream(why) => {
            tracing::warn!(event = "xmpp_stream_error", side = "server", error = %why)
        }
        End::Closed | End::Shutdown => tracing::debug!(event = "xmpp_session_end"),
    }
}

/// Ends a client's stream with a stream error: after its stream header
/// (an error belongs inside a stream), with sotto's own header, flushed and
/// closed (TLS included) so the client reads it rather than a reset.
async fn refuse(mut io: Box<dyn Io>, condition: &str, shared: &XmppShared) {
    let mut framer = Framer::new(shared.limits);
    let mut buf = vec![0u8; 4096];
    let header = async {
        loop {
            match framer.next_frame() {
                Ok(Some(Frame::StreamHeader(_))) => return true,
                Ok(Some(_)) | Err(_) => return false,
                Ok(None) => match io.read(&mut buf).await {
                    Ok(n) if n > 0 => framer.feed(&buf[..n]),
                    _ => return false,
                },
            }
        }
    };
    let got_header = tokio::time::timeout(shared.handshake_timeout, header)
        .await
        .unwrap_or(false);
    let mut out = own_header_if(got_header, &shared.domain);
    out.extend_from_slice(&stream_error(condition));
    let _ = io.write_all(&out).await;
    let _ = io.flush().await;
    let _ = io.shutdown().await;
}

/// Before TLS sotto speaks for the server: its header, STARTTLS required.
async fn starttls(mut io: Box<dyn Io>, shared: &XmppShared) -> Option<Box<dyn Io>> {
    let mut framer = Framer::new(shared.limits);
    let mut buf = vec![0u8; 4096];
    let mut header_sent = false;
    loop {
        let frame = match framer.next_frame() {
            Ok(Some(f)) => f,
            Ok(None) => {
                let n =
                    match tokio::time::timeout(shared.handshake_timeout, io.read(&mut buf)).await {
                        Ok(Ok(n)) if n > 0 => n,
                        _ => return None,
                    };
                framer.feed(&buf[..n]);
                continue;
            }
            Err(e) => {
                let _ = io
                    .write_all(&own_header_if(!header_sent, &shared.domain))
                    .await;
                let _ = io
                    .write_all(&stream_error(e.stream_error_condition()))
                    .await;
                return None;
            }
        };
        match frame {
            Frame::StreamHeader(_) => {
                let mut out = own_header_if(true, &shared.domain);
                out.extend_from_slice(features::before_tls());
                io.write_all(&out).await.ok()?;
                header_sent = true;
            }
            Frame::Stanza(s) if s.is("starttls", TLS_NS) => {
                // Bytes sent after <starttls/> in clear must not count as sent over TLS.
                io.write_all(b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
                    .await
                    .ok()?;
                io.flush().await.ok()?;
                let tls =
                    tokio::time::timeout(shared.handshake_timeout, shared.tls.accept(io)).await;
                return match tls {
                    Ok(Ok(stream)) => Some(Box::new(stream)),
                    _ => None,
                };
            }
            Frame::Whitespace(_) => {}
            Frame::Stanza(_) | Frame::StreamEnd(_) => {
                let _ = io.write_all(&stream_error("policy-violation")).await;
                return None;
            }
        }
    }
}

fn own_header_if(send: bool, domain: &str) -> Vec<u8> {
    if !send {
        return Vec::new();
    }
    let mut id = [0u8; 12];
    let _ = sequoia_openpgp::crypto::random(&mut id);
    let id: String = id.iter().map(|b| format!("{b:02x}")).collect();
    let domain = domain.replace(['\'', '<', '&', '"'], "");
    format!(
        "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='{STREAM_NS}' \
         from='{domain}' id='{id}' version='1.0' xml:lang='en'>"
    )
    .into_bytes()
}

/// Relays both directions until either side ends the stream.
async fn relay<C, U>(client: C, upstream: U, shared: &XmppShared) -> End
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    let (mut cr, mut cw) = tokio::io::split(client);
    let (mut ur, mut uw) = tokio::io::split(upstream);
    let mut from_client = Framer::new(shared.limits);
    let mut from_server = Framer::new(shared.limits);
    let mut stanzas = Stanzas::new(shared.chat.clone(), &shared.domain);
    let mut cbuf = vec![0u8; 16 * 1024];
    let mut ubuf = vec![0u8; 16 * 1024];
    loop {
        tokio::select! {
            _ = shared.shutdown.cancelled() => {
                let _ = cw.write_all(&stream_error("system-shutdown")).await;
                let _ = uw.write_all(b"</stream:stream>").await;
                return End::Shutdown;
            }
            r = cr.read(&mut cbuf) => {
                // A connection that ends without </stream:stream> is a lost
                // one, not a close: the server must see it so (no stream end
                // written for the client), or it ends a session the client
                // may resume (XEP-0198).
                let n = match r { Ok(n) if n > 0 => n, _ => return End::Closed };
                from_client.feed(&cbuf[..n]);
                loop {
                    match from_client.next_frame() {
                        Ok(Some(frame)) => {
                            if let Frame::Stanza(s) = &frame
                                && s.is("starttls", TLS_NS)
                            {
                                // TLS is sotto's; a second one is not offered.
                                let _ = cw.write_all(b"<failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></stream:stream>").await;
                                return End::Closed;
                            }
                            let out = match frame {
                                Frame::Stanza(s) => stanzas.from_client(s, &from_client).await,
                                Frame::StreamHeader(h) => {
                                    stanzas.set_domain(h.to().unwrap_or_default());
                                    h.raw
                                }
                                other => other.into_raw(),
                            };
                            if uw.write_all(&out).await.is_err() {
                                let _ = cw.write_all(&stream_error("internal-server-error")).await;
                                return End::Upstream("write failed".into());
                            }
                        }
                        Ok(None) => break,
                        Err(e) => {
                            let _ = cw.write_all(&stream_error(e.stream_error_condition())).await;
                            let _ = uw.write_all(b"</stream:stream>").await;
                            return End::Client(e);
                        }
                    }
                }
            }
            r = ur.read(&mut ubuf) => {
                // Likewise the other way: a lost server connection is not
                // passed on as a clean close, so the client may resume.
                let n = match r { Ok(n) if n > 0 => n, _ => return End::Closed };
                from_server.feed(&ubuf[..n]);
                loop {
                    match from_server.next_frame() {
                        Ok(Some(frame)) => {
                            let restart = matches!(&frame, Frame::Stanza(s) if s.is("success", SASL_NS));
                            let out = match frame {
                                Frame::Stanza(s) if !s.is("features", STREAM_NS) => {
                                    stanzas.from_server(s, &from_server).await
                                }
                                other => server_frame(other, &from_server, shared),
                            };
                            if cw.write_all(&out).await.is_err() {
                                return End::Closed;
                            }
                            if restart {
                                // Both streams restart after SASL success.
                                from_client.reset();
                                from_server.reset();
                            }
                        }
                        Ok(None) => break,
                        Err(e) => {
                            let _ = cw.write_all(&stream_error("internal-server-error")).await;
                            return End::Upstream(e.kind().to_string());
                        }
                    }
                }
            }
        }
    }
}

/// What the client gets for a frame from the server.
fn server_frame(frame: Frame, framer: &Framer, shared: &XmppShared) -> Vec<u8> {
    match frame {
        Frame::Stanza(s) if s.is("features", STREAM_NS) => filtered_features(s, framer, shared),
        other => other.into_raw(),
    }
}

fn filtered_features(s: Stanza, framer: &Framer, shared: &XmppShared) -> Vec<u8> {
    match parse_stanza_in(&s.raw, framer.ns_context(), &shared.limits) {
        Ok(mut el) => {
            if features::filter(&mut el) {
                with_stream_prefix(serialize(&el))
            } else {
                s.raw
            }
        }
        Err(_) => s.raw,
    }
}

/// `<features xmlns='…streams'>…</features>` as `<stream:features>…`, the
/// way the stream header declared the prefix (some clients match the name).
fn with_stream_prefix(xml: Vec<u8>) -> Vec<u8> {
    let text = String::from_utf8_lossy(&xml).into_owned();
    let open = format!("<features xmlns='{STREAM_NS}'");
    let open2 = format!("<features xmlns=\"{STREAM_NS}\"");
    let Some(rest) = text
        .strip_prefix(open.as_str())
        .or_else(|| text.strip_prefix(open2.as_str()))
    else {
        return xml;
    };
    let mut out = format!("<stream:features{rest}");
    if out.ends_with("</features>") {
        out.truncate(out.len() - "</features>".len());
        out.push_str("</stream:features>");
    }
    out.into_bytes()
}
