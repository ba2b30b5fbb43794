//! A small raw XMPP client for the tests and benchmarks: it writes the
//! stanzas it is given byte for byte and reads whole top-level elements with
//! sotto's own framer, so a test sees exactly what went over the wire.
//!
//! Plain TCP (Prosody's own port), STARTTLS or direct TLS (XEP-0368) trusting
//! one CA; SASL PLAIN, resource binding, and stream management (XEP-0198):
//! [`Session::sent`] and [`Session::received`] are the client's counts of
//! stanzas sent and handled since `<enable/>`; a server's `<r/>` is answered
//! with `<a h='received'/>` as it arrives. [`Session::resume`] takes a
//! stream up again on a new connection after [`Session::drop_connection`].
#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use sotto::xmpp::framer::{Element, Frame, Framer, Limits, parse_stanza_in};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

pub const CLIENT_NS: &str = "jabber:client";
pub const STREAM_NS: &str = "http://etherx.jabber.org/streams";
pub const SM_NS: &str = "urn:xmpp:sm:3";
const TLS_NS: &str = "urn:ietf:params:xml:ns:xmpp-tls";
const SASL_NS: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
const BIND_NS: &str = "urn:ietf:params:xml:ns:xmpp-bind";

/// How long any one wait may take before the client gives up.
pub const WAIT: Duration = Duration::from_secs(20);

/// How to reach the server.
#[derive(Clone)]
pub enum Transport {
    /// Plain TCP, as to Prosody's own loopback port.
    Plain,
    /// STARTTLS (sotto's `xmpp.listen`).
    StartTls(Arc<rustls::ClientConfig>),
    /// TLS from the first byte, XEP-0368 (sotto's `xmpp.listen_tls`).
    DirectTls(Arc<rustls::ClientConfig>),
}

/// A TLS client configuration trusting only the CA (or self-signed
/// certificate) in the PEM file `ca`.
pub fn trust(ca: &Path) -> Arc<rustls::ClientConfig> {
    let pem = std::fs::read(ca).unwrap_or_else(|e| panic!("read {}: {e}", ca.display()));
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots.add(cert.expect("PEM certificate")).expect("CA");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(cfg)
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// One top-level element received: its exact bytes and its tree.
#[derive(Debug, Clone)]
pub struct Got {
    pub xml: String,
    pub el: Element,
}

impl Got {
    pub fn is(&self, name: &str, ns: &str) -> bool {
        self.el.name == name && self.el.ns == ns
    }

    pub fn attr(&self, name: &str) -> Option<&str> {
        self.el.attr(name)
    }

    /// A message, presence or iq (what XEP-0198 counts).
    pub fn is_stanza(&self) -> bool {
        self.el.ns == CLIENT_NS && ["message", "presence", "iq"].contains(&self.el.name.as_str())
    }
}

/// One client stream.
pub struct Session {
    io: Box<dyn Io>,
    framer: Framer,
    domain: String,
    /// Elements read while waiting for another one, in order.
    queue: VecDeque<Got>,
    /// Whether the connection has ended (stream end or TCP close).
    pub closed: bool,
    /// Stream management is on: `sent` and `received` count.
    pub sm: bool,
    /// Stanzas sent since `<enable/>` (XEP-0198's outbound count).
    pub sent: u32,
    /// Stanzas received since `<enable/>` (the `h` this client reports).
    pub received: u32,
    /// The bound full JID.
    pub jid: String,
    /// The last `<stream:features/>`.
    pub features: Option<Got>,
}

impl Session {
    /// Connects and opens a stream for `domain` (through STARTTLS if asked),
    /// up to the stream features.
    pub async fn open(addr: SocketAddr, domain: &str, how: &Transport) -> Session {
        let tcp = TcpStream::connect(addr)
            .await
            .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
        let _ = tcp.set_nodelay(true);
        let io: Box<dyn Io> = match how {
            Transport::DirectTls(cfg) => Box::new(tls(cfg, domain, tcp).await),
            _ => Box::new(tcp),
        };
        let mut s = Session {
            io,
            framer: Framer::new(Limits::default()),
            domain: domain.to_string(),
            queue: VecDeque::new(),
            closed: false,
            sm: false,
            sent: 0,
            received: 0,
            jid: String::new(),
            features: None,
        };
        s.restart().await;
        if let Transport::StartTls(cfg) = how {
            s.write(&format!("<starttls xmlns='{TLS_NS}'/>")).await;
            s.expect("proceed", TLS_NS).await;
            assert!(s.queue.is_empty(), "stanzas after <proceed/>");
            let tcp = std::mem::replace(&mut s.io, Box::new(tokio::io::empty()));
            s.io = Box::new(tls(cfg, domain, tcp).await);
            s.framer = Framer::new(Limits::default());
            s.restart().await;
        }
        s
    }

    /// [`open`](Self::open), SASL PLAIN as `user` (a local part) and the
    /// stream restart; no resource bound yet (as before a resume).
    pub async fn login(
        addr: SocketAddr,
        domain: &str,
        how: &Transport,
        user: &str,
        password: &str,
    ) -> Session {
        Session::login_as(addr, domain, how, "", user, password).await
    }

    /// [`login`](Self::login) asking for the authorization identity
    /// `authzid` (empty: none).
    pub async fn login_as(
        addr: SocketAddr,
        domain: &str,
        how: &Transport,
        authzid: &str,
        user: &str,
        password: &str,
    ) -> Session {
        let mut s = Session::open(addr, domain, how).await;
        let creds = base64::engine::general_purpose::STANDARD
            .encode(format!("{authzid}\0{user}\0{password}"));
        s.write(&format!(
            "<auth xmlns='{SASL_NS}' mechanism='PLAIN'>{creds}</auth>"
        ))
        .await;
        let got = s.next_element().await.expect("SASL answer");
        assert!(
            got.is("success", SASL_NS),
            "SASL PLAIN as {user}: {}",
            got.xml
        );
        s.framer.reset();
        s.restart().await;
        s
    }

    /// [`login`](Self::login) and bind `resource`.
    pub async fn connect(
        addr: SocketAddr,
        domain: &str,
        how: &Transport,
        user: &str,
        password: &str,
        resource: &str,
    ) -> Session {
        let s = Session::login(addr, domain, how, user, password).await;
        s.bind(resource).await
    }

    /// Binds `resource` on a logged-in stream.
    pub async fn bind(self, resource: &str) -> Session {
        let mut s = self;
        s.write(&format!(
            "<iq type='set' id='bind-1'><bind xmlns='{BIND_NS}'><resource>{resource}</resource></bind></iq>"
        ))
        .await;
        let got = s.expect_id("bind-1").await;
        let jid = got
            .el
            .child("bind", BIND_NS)
            .and_then(|b| b.child("jid", BIND_NS));
        s.jid = jid
            .map(|j| j.text())
            .unwrap_or_else(|| panic!("bind: {}", got.xml));
        s
    }

    /// Sends the stream header and reads the server's header and features.
    async fn restart(&mut self) {
        self.write(&format!(
            "<?xml version='1.0'?><stream:stream to='{}' version='1.0' xml:lang='en' \
             xmlns='{CLIENT_NS}' xmlns:stream='{STREAM_NS}'>",
            self.domain
        ))
        .await;
        let features = self.expect("features", STREAM_NS).await;
        self.features = Some(features);
    }

    /// `<enable/>` (with `resume='true'` if asked): the `<enabled/>` or
    /// `<failed/>` answer. Counting starts here.
    pub async fn enable(&mut self, resume: bool) -> Got {
        let resume = if resume { " resume='true'" } else { "" };
        self.write(&format!("<enable xmlns='{SM_NS}'{resume}/>"))
            .await;
        let got = self
            .expect_any(|g| g.is("enabled", SM_NS) || g.is("failed", SM_NS))
            .await;
        self.sm = got.is("enabled", SM_NS);
        (self.sent, self.received) = (0, 0);
        got
    }

    /// `<resume previd h/>` on this logged-in (not bound) stream, the client
    /// having handled `received` and sent `sent` stanzas on the old one:
    /// the `<resumed/>` or `<failed/>` answer. The counts go on from there.
    pub async fn resume(&mut self, previd: &str, received: u32, sent: u32) -> Got {
        (self.sent, self.received) = (sent, received);
        self.write(&format!(
            "<resume xmlns='{SM_NS}' previd='{previd}' h='{received}'/>"
        ))
        .await;
        let got = self
            .expect_any(|g| g.is("resumed", SM_NS) || g.is("failed", SM_NS))
            .await;
        self.sm = got.is("resumed", SM_NS);
        got
    }

    /// Sends raw XML; a message, presence or iq counts as sent.
    pub async fn send(&mut self, xml: &str) {
        if self.sm
            && ["<message", "<presence", "<iq"]
                .iter()
                .any(|p| xml.starts_with(p))
        {
            self.sent += 1;
        }
        self.write(xml).await;
    }

    /// Writes raw bytes (hostile input): the peer may close the
    /// connection on them, so a failed write is returned, not a panic.
    pub async fn send_bytes(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.io.write_all(bytes).await?;
        self.io.flush().await
    }

    async fn write(&mut self, xml: &str) {
        self.io
            .write_all(xml.as_bytes())
            .await
            .unwrap_or_else(|e| panic!("write {xml:?}: {e}"));
    }

    /// `<r/>`; the `h` of the server's `<a/>` (stanzas arriving meanwhile
    /// are kept for [`next`](Self::next)).
    pub async fn ack(&mut self) -> u32 {
        self.write(&format!("<r xmlns='{SM_NS}'/>")).await;
        let a = self.expect("a", SM_NS).await;
        a.attr("h")
            .and_then(|h| h.parse().ok())
            .unwrap_or_else(|| panic!("{}", a.xml))
    }

    /// The next element within [`WAIT`]; panics without one.
    pub async fn next(&mut self) -> Got {
        match self.next_within(WAIT).await {
            Some(g) => g,
            None => panic!(
                "{}: nothing within {WAIT:?} (closed: {})",
                self.jid, self.closed
            ),
        }
    }

    /// The next element, or `None` after `wait` or at the end of the stream.
    pub async fn next_within(&mut self, wait: Duration) -> Option<Got> {
        if let Some(g) = self.queue.pop_front() {
            return Some(g);
        }
        tokio::time::timeout(wait, self.next_element())
            .await
            .ok()
            .flatten()
    }

    /// The first element named `name` in `ns`; the others are kept.
    pub async fn expect(&mut self, name: &str, ns: &str) -> Got {
        self.expect_any(|g| g.is(name, ns)).await
    }

    /// The first stanza with this `id`; the others are kept.
    pub async fn expect_id(&mut self, id: &str) -> Got {
        self.expect_any(|g| g.is_stanza() && g.attr("id") == Some(id))
            .await
    }

    /// The first element `want` accepts, within [`WAIT`]; the others are
    /// kept, in order, for [`next`](Self::next).
    pub async fn expect_any(&mut self, want: impl Fn(&Got) -> bool) -> Got {
        if let Some(at) = self.queue.iter().position(&want) {
            return self.queue.remove(at).expect("queued");
        }
        let end = Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(end, self.next_element()).await {
                Ok(Some(g)) if want(&g) => return g,
                Ok(Some(g)) => self.queue.push_back(g),
                _ => panic!(
                    "{}: not the element awaited within {WAIT:?} (closed: {}); got meanwhile:\n{}",
                    self.jid,
                    self.closed,
                    self.queue
                        .iter()
                        .map(|g| format!("{}\n", g.xml))
                        .collect::<String>()
                ),
            }
        }
    }

    /// Reads the next element off the wire, answering `<r/>` and counting
    /// stanzas; `None` at the end of the stream.
    async fn next_element(&mut self) -> Option<Got> {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match self.framer.next_frame() {
                Ok(Some(Frame::Stanza(s))) => {
                    let el =
                        parse_stanza_in(&s.raw, self.framer.ns_context(), self.framer.limits())
                            .expect("a well-formed element");
                    let got = Got {
                        xml: String::from_utf8_lossy(&s.raw).into_owned(),
                        el,
                    };
                    if got.is("r", SM_NS) {
                        let a = format!("<a xmlns='{SM_NS}' h='{}'/>", self.received);
                        self.write(&a).await;
                        continue;
                    }
                    if self.sm && got.is_stanza() {
                        self.received += 1;
                    }
                    return Some(got);
                }
                Ok(Some(Frame::StreamEnd(_))) => {
                    self.closed = true;
                    return None;
                }
                Ok(Some(_)) => continue,
                Ok(None) if self.closed => return None,
                Ok(None) => {}
                Err(e) => panic!("{}: bad XML from the server: {e:?}", self.jid),
            }
            match self.io.read(&mut buf).await {
                Ok(n) if n > 0 => self.framer.feed(&buf[..n]),
                _ => {
                    self.closed = true;
                    self.framer.finish();
                }
            }
        }
    }

    /// Ends the TCP connection without closing the stream, as a client
    /// losing its network does: the server keeps a resumable session.
    pub fn drop_connection(self) {
        drop(self.io);
    }

    /// Closes the stream (`</stream:stream>`) and waits for the server's end.
    pub async fn close(mut self) {
        self.write("</stream:stream>").await;
        let _ = tokio::time::timeout(WAIT, async { while self.next_element().await.is_some() {} })
            .await;
    }
}

async fn tls<S: AsyncRead + AsyncWrite + Unpin>(
    cfg: &Arc<rustls::ClientConfig>,
    domain: &str,
    io: S,
) -> tokio_rustls::client::TlsStream<S> {
    let name = rustls::pki_types::ServerName::try_from(domain.to_string()).expect("server name");
    tokio_rustls::TlsConnector::from(cfg.clone())
        .connect(name, io)
        .await
        .unwrap_or_else(|e| panic!("TLS handshake with {domain}: {e}"))
}
