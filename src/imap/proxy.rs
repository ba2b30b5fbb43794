//! One IMAP session through sotto: client ↔ sotto ↔ server, each direction
//! framed by imap-codec's fragmentizer. Client literals are taken by sotto
//! (it answers the continuation itself) and sent on as LITERAL+ literals,
//! so a message can be replaced before the server sees it; a command sotto
//! cannot parse is answered BAD and never forwarded (nothing unread reaches
//! the mailbox). Server responses are forwarded as they came, unless they
//! carry capabilities or a message body sotto opens.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use imap_codec::CommandCodec;
use imap_codec::fragmentizer::{FragmentInfo, Fragmentizer, LiteralAnnouncement};
use imap_codec::imap_types::IntoStatic as _;
use imap_codec::imap_types::command::{Command, CommandBody};
use imap_codec::imap_types::core::{Literal, LiteralMode};
use imap_codec::imap_types::extensions::binary::LiteralOrLiteral8;
use sequoia_openpgp::policy::StandardPolicy;
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::fetch::{self, Plan, Rewrite};
use super::framing::non_sync;
use super::login;
use super::search::{self, SearchJob};
use super::stored::{self, OpenedCache};
use super::upstream::connect_upstream;
use crate::openpgp::identities::{Identities, IdentityKey, Uses};

/// What every session shares.
pub struct ImapShared {
    /// The provider's IMAP server, `host:port` (plain; loopback).
    pub upstream: String,
    pub identities: Arc<Identities>,
    /// The local mail domains: a login at one of them is a local user.
    pub domains: Vec<String>,
    /// Completes a login without `@` (`imap.login_domain`; empty: none).
    pub login_domain: String,
    /// Largest IMAP message (a command or response with its literals).
    pub max_message: u32,
    /// Idle time after which a session is closed.
    pub idle_timeout: Duration,
    /// TLS towards clients (STARTTLS on the plain listener, and the
    /// implicit-TLS listener).
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    /// TLS towards the server, verified (`None`: plain, loopback).
    pub upstream_tls: Option<crate::relay::stream::Implicit>,
    /// With `upstream_tls`: STARTTLS on the plain port rather than
    /// implicit TLS.
    pub upstream_starttls: bool,
    /// Messages opened for FETCH, shared by every session (bounded).
    pub opened: OpenedCache,
}

pub type Io = Box<dyn crate::smtp::Io>;

/// Accepts clients until `shutdown`; with `implicit_tls`, each starts with
/// a TLS handshake (IMAPS).
pub async fn run(
    listener: TcpListener,
    shared: Arc<ImapShared>,
    shutdown: CancellationToken,
    implicit_tls: bool,
) {
    loop {
        let (client, _) = tokio::select! {
            () = shutdown.cancelled() => return,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(_) => continue,
            },
        };
        let shared = shared.clone();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            let _ = client.set_nodelay(true);
            // The same socket, to re-arm quick ACKs after each read (below).
            let ack = std::os::fd::AsFd::as_fd(&client).try_clone_to_owned().ok();
            let client: Io = match (implicit_tls, &shared.tls) {
                (true, Some(tls)) => {
                    match tokio::time::timeout(Duration::from_secs(30), tls.accept(client)).await {
                        Ok(Ok(s)) => Box::new(s),
                        _ => return,
                    }
                }
                (true, None) => return,
                (false, _) => Box::new(client),
            };
            if let Err(why) = Session::run(client, ack, implicit_tls, shared, stop).await {
                tracing::info!(event = "imap_session_ended", reason = %why);
            }
        });
    }
}

/// A client command sotto is answering, during which later client commands
/// wait (so that every FETCH response belongs to it).
pub(super) enum InFlight {
    /// A FETCH of content items.
    Fetch(Plan),
    /// A SEARCH on content: sotto's own FETCH of the mailbox first.
    Search(SearchJob),
    /// A LOGIN or AUTHENTICATE: nothing else goes until the server
    /// answered it, so the user is known before the next command is read.
    Login(String),
}

pub(super) struct Session {
    pub(super) shared: Arc<ImapShared>,
    /// The authenticated user's identity, once known (a local login).
    pub(super) key: Option<Arc<IdentityKey>>,
    pub(super) user: Option<String>,
    pub(super) greeted: bool,
    /// Tag and mechanism of an AUTHENTICATE in progress: client lines are
    /// SASL data.
    pub(super) authenticating: Option<(String, String)>,
    /// Tag of a LOGIN or AUTHENTICATE and the user it names: the user
    /// becomes the session's only once the server says OK (no identity is
    /// made for a login the server refused).
    pub(super) login: Option<(String, String)>,
    /// Tag of an IDLE in progress: the next client line is DONE.
    pub(super) idling: Option<String>,
    pub(super) policy: StandardPolicy<'static>,
    /// The client is on TLS.
    pub(super) secure: bool,
    /// STARTTLS was accepted: upgrade before reading on.
    pub(super) upgrade: bool,
    /// The FETCH whose content items sotto is answering; while it runs,
    /// later client commands wait in `held`, so that every untagged FETCH
    /// response belongs to it.
    pub(super) in_flight: Option<InFlight>,
    pub(super) held: VecDeque<(Vec<u8>, Option<InFlight>)>,
    /// SEARCHes prepared so far (numbers sotto's own tags).
    pub(super) searches: u64,
    /// The server asked for the next SASL response: the next client line
    /// is that, and only that one.
    pub(super) sasl_expected: bool,
    /// SASL responses sent in this AUTHENTICATE (the first names the user).
    pub(super) sasl_responses: u32,
    /// Client bytes that go to the server ahead of the queue (SASL
    /// responses: part of the command in flight).
    pub(super) urgent: Vec<u8>,
    /// Why the session must end (after what is queued for the client).
    pub(super) fatal: Option<String>,
}

impl Session {
    /// `ack`: the client's socket, on which quick ACKs are re-armed after
    /// each read. sotto answers a client's literal continuation itself and
    /// then waits for the whole command; a client that writes the literal
    /// and its final CRLF separately (Nagle on, as Python's imaplib) would
    /// otherwise wait for the delayed ACK of the literal, 40 ms per APPEND.
    async fn run(
        client: Io,
        ack: Option<std::os::fd::OwnedFd>,
        secure: bool,
        shared: Arc<ImapShared>,
        shutdown: CancellationToken,
    ) -> Result<(), String> {
        let mut client = client;
        let server = match connect_upstream(&shared).await {
            Ok(s) => s,
            Err(why) => {
                let _ = client
                    .write_all(b"* BYE [UNAVAILABLE] sotto cannot reach the mail server\r\n")
                    .await;
                return Err(why);
            }
        };
        // After STARTTLS the server greets no more: sotto greets the client
        // (without capabilities: those from before TLS are stale).
        let greeted = shared.upstream_tls.is_some() && shared.upstream_starttls;
        if greeted {
            client
                .write_all(b"* OK sotto IMAP proxy ready\r\n")
                .await
                .map_err(|e| e.to_string())?;
        }
        let (mut cr, mut cw): (ReadHalf<Io>, WriteHalf<Io>) = tokio::io::split(client);
        let (mut sr, mut sw) = tokio::io::split(server);
        let mut cf = Fragmentizer::new(shared.max_message);
        let mut sf = Fragmentizer::new(shared.max_message);
        let idle = shared.idle_timeout;
        let mut s = Session {
            shared,
            key: None,
            user: None,
            greeted,
            authenticating: None,
            login: None,
            idling: None,
            policy: StandardPolicy::new(),
            secure,
            upgrade: false,
            in_flight: None,
            searches: 0,
            held: VecDeque::new(),
            fatal: None,
            sasl_expected: false,
            sasl_responses: 0,
            urgent: Vec::new(),
        };
        let (mut cbuf, mut sbuf) = (vec![0u8; 16 * 1024], vec![0u8; 16 * 1024]);
        let mut lines: Vec<FragmentInfo> = Vec::new();
        loop {
            let (to_client, to_server) = tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                () = tokio::time::sleep(idle) => return Err("idle".into()),
                // Commands waiting behind a FETCH are bounded: past the
                // limit, the client is not read until they went on.
                n = cr.read(&mut cbuf), if s.held_bytes() < s.shared.max_message as usize => {
                    let n = n.map_err(|e| e.to_string())?;
                    if n == 0 {
                        return Ok(());
                    }
                    if let Some(fd) = &ack {
                        let _ = socket2::SockRef::from(fd).set_tcp_quickack(true);
                    }
                    cf.enqueue_bytes(&cbuf[..n]);
                    let to_client = s.client_messages(&mut cf, &mut lines).await;
                    (to_client, s.release())
                }
                n = sr.read(&mut sbuf) => {
                    let n = n.map_err(|e| e.to_string())?;
                    if n == 0 {
                        return Ok(());
                    }
                    sf.enqueue_bytes(&sbuf[..n]);
                    let to_client = s.server_messages(&mut sf).await;
                    (to_client, s.release())
                }
            };
            if !to_server.is_empty() {
                sw.write_all(&to_server).await.map_err(|e| e.to_string())?;
            }
            if !to_client.is_empty() {
                cw.write_all(&to_client).await.map_err(|e| e.to_string())?;
            }
            if let Some(why) = s.fatal.take() {
                let _ = cw.shutdown().await;
                return Err(why);
            }
            if std::mem::take(&mut s.upgrade) {
                let Some(tls) = s.shared.tls.clone() else {
                    return Err("STARTTLS without TLS".into());
                };
                // Anything the client sent after STARTTLS, before the
                // handshake, is dropped (RFC 9051 section 6.2.1).
                cf = Fragmentizer::new(s.shared.max_message);
                lines.clear();
                let plain = cr.unsplit(cw);
                let secured = tokio::time::timeout(Duration::from_secs(30), tls.accept(plain))
                    .await
                    .map_err(|_| "TLS handshake timed out".to_string())?
                    .map_err(|e| format!("TLS: {e}"))?;
                let boxed: Io = Box::new(secured);
                (cr, cw) = tokio::io::split(boxed);
                s.secure = true;
            }
        }
    }

    /// Whether sotto offers STARTTLS to this client now.
    pub(super) fn offer_starttls(&self) -> bool {
        self.shared.tls.is_some() && !self.secure
    }

    /// Handles every complete client message: bytes for the client now;
    /// what goes to the server is queued in `held` (see [`Session::release`]).
    async fn client_messages(
        &mut self,
        f: &mut Fragmentizer,
        lines: &mut Vec<FragmentInfo>,
    ) -> Vec<u8> {
        let mut to_client = Vec::new();
        while let Some(info) = f.progress() {
            lines.push(info);
            if let FragmentInfo::Line {
                announcement:
                    Some(LiteralAnnouncement {
                        mode: LiteralMode::Sync,
                        length,
                    }),
                ..
            } = info
                && !f.is_message_complete()
            {
                let max = self.shared.max_message as usize;
                if f.message_bytes().len() + length as usize > max
                    || f.is_max_message_size_exceeded()
                {
                    // Refused before the client sends it (RFC 7888: a
                    // server may reject a synchronizing literal).
                    let tag = f.decode_tag().map(|t| t.as_ref().to_owned());
                    to_client.extend_from_slice(
                        format!(
                            "{} NO [TOOBIG] sotto takes commands up to {max} bytes\r\n",
                            tag.as_deref().unwrap_or("*")
                        )
                        .as_bytes(),
                    );
                    metrics::counter!("sotto_imap_refused_total", "reason" => "too_big")
                        .increment(1);
                    f.skip_message();
                    lines.clear();
                    continue;
                }
                // sotto takes the literal; the server gets it as LITERAL+.
                to_client.extend_from_slice(b"+ go ahead\r\n");
            }
            if !f.is_message_complete() {
                continue;
            }
            let infos = std::mem::take(lines);
            if f.is_max_message_size_exceeded() {
                let tag = f.decode_tag().map(|t| t.as_ref().to_owned());
                to_client.extend_from_slice(
                    format!(
                        "{} BAD [TOOBIG] sotto takes commands up to {} bytes; this one was dropped\r\n",
                        tag.as_deref().unwrap_or("*"),
                        self.shared.max_message
                    )
                    .as_bytes(),
                );
                metrics::counter!("sotto_imap_refused_total", "reason" => "too_big").increment(1);
                continue;
            }
            let raw = f.message_bytes().to_vec();
            // A SASL response, only when the server asked for one.
            if self.authenticating.is_some() && std::mem::take(&mut self.sasl_expected) {
                if let Some((tag, mechanism)) = &self.authenticating
                    && self.sasl_responses == 0
                    && let Some(user) = login::sasl_line_user(mechanism, &raw)
                {
                    self.login = Some((tag.clone(), user));
                }
                self.sasl_responses += 1;
                self.urgent.extend_from_slice(&raw);
                continue;
            }
            // IDLE's end: exactly DONE; anything else is a command.
            if self.idling.is_some() && raw.trim_ascii().eq_ignore_ascii_case(b"DONE") {
                self.idling = None;
                self.held.push_back((raw, None));
                continue;
            }
            let decoded = f
                .decode_message(&CommandCodec::default())
                .map(|c| c.into_static());
            match decoded {
                Ok(cmd) => match self.command(cmd, &raw, &infos).await {
                    Ok(out) => self.held.push_back(out),
                    Err(bad) => {
                        to_client.extend_from_slice(&bad);
                        if self.upgrade {
                            // Nothing the client sent after STARTTLS, in
                            // the clear, is read (RFC 9051 6.2.1).
                            break;
                        }
                    }
                },
                Err(_) => {
                    metrics::counter!("sotto_imap_refused_total", "reason" => "unreadable")
                        .increment(1);
                    let tag = f.decode_tag().map(|t| t.as_ref().to_owned());
                    to_client.extend_from_slice(
                        format!(
                            "{} BAD sotto cannot read this command, so it was not passed on\r\n",
                            tag.as_deref().unwrap_or("*")
                        )
                        .as_bytes(),
                    );
                }
            }
        }
        to_client
    }

    fn held_bytes(&self) -> usize {
        self.held.iter().map(|(b, _)| b.len()).sum()
    }

    /// The queued client commands that may go to the server now: all of
    /// them, up to and including the next FETCH that sotto answers (the
    /// rest wait until its tagged response).
    fn release(&mut self) -> Vec<u8> {
        let mut out = std::mem::take(&mut self.urgent);
        while self.in_flight.is_none() {
            let Some((bytes, plan)) = self.held.pop_front() else {
                break;
            };
            out.extend_from_slice(&bytes);
            self.in_flight = plan;
        }
        out
    }

    /// What goes to the server for `cmd` (raw as the client sent it, sync
    /// literals made LITERAL+, or rewritten with the FETCH plan sotto
    /// answers by), or the client's answer when nothing goes.
    async fn command(
        &mut self,
        cmd: Command<'static>,
        raw: &[u8],
        infos: &[FragmentInfo],
    ) -> Result<(Vec<u8>, Option<InFlight>), Vec<u8>> {
        let tag = cmd.tag.as_ref().to_owned();
        if tag.to_ascii_lowercase().starts_with("sotto-") {
            return Err(format!("{tag} BAD tags starting sotto- are sotto's own\r\n").into_bytes());
        }
        if matches!(
            cmd.body,
            CommandBody::Login { .. } | CommandBody::Authenticate { .. }
        ) {
            if self.user.is_some() || self.login.is_some() || self.authenticating.is_some() {
                return Err(
                    format!("{tag} BAD already logged in, or a login is under way\r\n")
                        .into_bytes(),
                );
            }
            if self.offer_starttls() {
                return Err(format!(
                    "{tag} NO [PRIVACYREQUIRED] use STARTTLS first: sotto does not pass passwords in the clear\r\n"
                )
                .into_bytes());
            }
        }
        match &cmd.body {
            CommandBody::Login { username, .. } => {
                let user = String::from_utf8_lossy(username.as_ref()).into_owned();
                self.login = Some((tag.clone(), user));
                return Ok((non_sync(raw, infos), Some(InFlight::Login(tag))));
            }
            CommandBody::Authenticate {
                mechanism,
                initial_response,
            } => {
                let mechanism = mechanism.to_string();
                self.sasl_expected = false;
                self.sasl_responses = 0;
                if let Some(ir) = initial_response {
                    self.sasl_responses = 1;
                    if let Some(user) = login::sasl_user(&mechanism, ir.declassify()) {
                        self.login = Some((tag.clone(), user));
                    }
                }
                self.authenticating = Some((tag.clone(), mechanism));
                return Ok((non_sync(raw, infos), Some(InFlight::Login(tag))));
            }
            CommandBody::Compress { .. } => {
                return Err(
                    format!("{tag} BAD COMPRESS is not offered through sotto\r\n").into_bytes(),
                );
            }
            CommandBody::Idle => self.idling = Some(tag.clone()),
            CommandBody::StartTLS if self.offer_starttls() => {
                self.upgrade = true;
                return Err(format!("{tag} OK Begin TLS negotiation now\r\n").into_bytes());
            }
            CommandBody::StartTLS => {
                return Err(format!("{tag} BAD STARTTLS is not available here\r\n").into_bytes());
            }
            CommandBody::Append { .. } => return self.append(cmd).await.map(|b| (b, None)),
            // Only a local user's mail can be encrypted to them.
            CommandBody::Fetch { .. } if self.key.is_some() => match fetch::rewrite(&cmd) {
                Rewrite::Pass => {}
                Rewrite::Plan(plan, bytes) => return Ok((bytes, Some(InFlight::Fetch(plan)))),
                Rewrite::Refuse(bad) => return Err(bad),
            },
            CommandBody::Search { .. } if self.key.is_some() => {
                self.searches += 1;
                if let Some((job, fetch)) = search::plan(&cmd, self.searches) {
                    return Ok((fetch, Some(InFlight::Search(job))));
                }
            }
            _ => {}
        }
        Ok((non_sync(raw, infos), None))
    }

    /// APPEND: the message stored encrypted to the user's identity, unless
    /// it already is encrypted or the user is not local.
    async fn append(&mut self, cmd: Command<'static>) -> Result<Vec<u8>, Vec<u8>> {
        let tag = cmd.tag.as_ref().to_owned();
        let CommandBody::Append {
            mailbox,
            flags,
            date,
            message,
        } = cmd.body
        else {
            unreachable!("called for APPEND only");
        };
        let bytes = match &message {
            LiteralOrLiteral8::Literal(l) => l.data().to_vec(),
            LiteralOrLiteral8::Literal8(l) => l.data.to_vec(),
        };
        let Some(key) = self.key.clone() else {
            return Err(format!(
                "{tag} NO [CANNOT] sotto stores mail only for a local user it knows\r\n"
            )
            .into_bytes());
        };
        let stored = match stored::seal(bytes, &key, &self.policy) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(event = "imap_append", result = "failed", error = %e);
                return Err(format!("{tag} NO [SERVERBUG] sotto could not encrypt the message; nothing was stored\r\n").into_bytes());
            }
        };
        metrics::counter!("sotto_imap_appends_total").increment(1);
        let literal = Literal::try_from(stored)
            .map_err(|_| format!("{tag} NO the message holds NUL bytes\r\n").into_bytes())?
            .into_non_sync();
        let out = Command {
            tag: cmd.tag,
            body: CommandBody::Append {
                mailbox,
                flags,
                date,
                message: LiteralOrLiteral8::Literal(literal),
            },
        };
        Ok(super::framing::encode_non_sync(&out))
    }

    /// The session's user, once the server accepted the login: a local
    /// address (`imap.login_domain` completes a login without one) gets
    /// its identity.
    pub(super) async fn set_user(&mut self, login: &str) {
        let mut login = login.trim().to_ascii_lowercase();
        if !login.contains('@') && !self.shared.login_domain.is_empty() {
            login = format!("{login}@{}", self.shared.login_domain);
        }
        let domain = crate::envelope::domain_of(&login);
        if self.shared.domains.contains(&domain) {
            match self
                .shared
                .identities
                .get_or_create_for(&login, Uses::Mail)
                .await
            {
                Ok(key) => self.key = Some(key),
                Err(e) => {
                    tracing::warn!(event = "imap_identity", result = "failed", error = e.kind())
                }
            }
        }
        tracing::info!(event = "imap_login", domain = %domain, local = self.key.is_some());
        self.user = Some(login);
    }
}
