//! One client connection: the read loop, which owns the buffers, the
//! per-phase deadlines, the command and error budgets, and the `421` on
//! timeout or shutdown. The verbs live in their own files and work on this
//! [`Session`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use smtp_proto::Request;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout_at;

use super::wire::{self, LineError};
use super::{Io, Protocol, Shared};
use crate::envelope::Envelope;
use crate::relay::{Target, Transaction};
use crate::reply::Reply;

static NEXT_SESSION: AtomicU64 = AtomicU64::new(1);

/// How reading the next input ended other than with input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stop {
    /// The client closed the connection or the socket failed.
    Closed,
    /// The client took longer than the phase allows.
    Timeout,
    /// sotto is shutting down and no transaction is open.
    Shutdown,
    /// The client made more errors than `limits.max_errors`.
    Errors,
}

/// The open transaction: the envelope so far and the target's side of it.
pub(super) struct Tx<X> {
    pub started: Instant,
    pub envelope: Envelope,
    pub target: X,
}

/// The state of one client connection.
pub struct Session<T: Target> {
    pub(super) io: Box<dyn Io>,
    pub(super) rbuf: Vec<u8>,
    pub(super) wbuf: Vec<u8>,
    pub(super) shared: Arc<Shared<T>>,
    pub(super) peer: SocketAddr,
    pub(super) protocol: Protocol,
    pub(super) id: u64,
    /// Transactions ended so far (for log ids).
    pub(super) tx_count: u64,
    /// EHLO/HELO/LHLO name once greeted.
    pub(super) helo: Option<String>,
    pub(super) tls: bool,
    pub(super) user: Option<String>,
    pub(super) tx: Option<Tx<T::Tx>>,
    commands: usize,
    errors: usize,
    quit: bool,
}

impl<T: Target> Session<T> {
    pub fn new(
        io: Box<dyn Io>,
        peer: SocketAddr,
        protocol: Protocol,
        shared: Arc<Shared<T>>,
    ) -> Self {
        Session {
            io,
            rbuf: Vec::with_capacity(4096),
            wbuf: Vec::with_capacity(1024),
            shared,
            peer,
            protocol,
            id: NEXT_SESSION.fetch_add(1, Ordering::Relaxed),
            tx_count: 0,
            helo: None,
            tls: false,
            user: None,
            tx: None,
            commands: 0,
            errors: 0,
            quit: false,
        }
    }

    /// Runs the dialogue to its end. Never panics on client input.
    pub async fn run(mut self) {
        use tracing::Instrument;
        let span = tracing::info_span!("session", id = self.id, proto = self.protocol.name(), peer = %self.peer);
        async move {
            tracing::debug!(event = "connect");
            let kind = match self.protocol {
                Protocol::Smtp => "ESMTP",
                Protocol::Lmtp => "LMTP",
            };
            let greeting = format!("{} {kind} sotto ready", self.shared.hostname);
            self.reply(Reply::new(220, "", greeting));
            let end = self.dialogue().await;
            if let Some(tx) = self.tx.take() {
                tx.target.abort().await;
            }
            match end {
                Stop::Timeout => {
                    self.reply(Reply::new(421, "4.4.2", "Timeout; closing connection"))
                }
                Stop::Shutdown => {
                    self.reply(Reply::new(421, "4.3.2", "Shutting down; try again later"))
                }
                Stop::Errors => self.reply(Reply::new(
                    421,
                    "4.7.0",
                    "Too many errors; closing connection",
                )),
                Stop::Closed => {}
            }
            let _ = self.flush().await;
            let _ = self.io.shutdown().await;
            tracing::debug!(event = "disconnect", ?end);
        }
        .instrument(span)
        .await
    }

    async fn dialogue(&mut self) -> Stop {
        loop {
            let line = match self.next_line().await {
                Ok(line) => line,
                Err(stop) => return stop,
            };
            self.commands += 1;
            if self.commands > self.shared.max_commands {
                self.reply(Reply::new(
                    421,
                    "4.7.0",
                    "Too many commands; closing connection",
                ));
                return Stop::Closed;
            }
            if let Err(stop) = self.command(&line).await {
                return stop;
            }
            if self.quit {
                return Stop::Closed;
            }
            if self.errors >= self.shared.max_errors {
                return Stop::Errors;
            }
        }
    }

    async fn command(&mut self, line: &[u8]) -> Result<(), Stop> {
        let parsed = Request::parse(&mut line.iter());
        match parsed {
            Ok(Request::Ehlo { host }) => self.ehlo(host.into_owned(), true),
            Ok(Request::Helo { host }) => self.ehlo(host.into_owned(), false),
            Ok(Request::Lhlo { host }) => self.lhlo(host.into_owned()),
            Ok(Request::Mail { from }) => self.mail(from.into_owned()).await,
            Ok(Request::Rcpt { to }) => self.rcpt(to.into_owned()).await,
            Ok(Request::Data) => return self.data().await,
            Ok(Request::Rset) => {
                self.end_tx().await;
                self.reply(Reply::new(250, "2.0.0", "Ok"));
            }
            Ok(Request::Noop { .. }) => self.reply(Reply::new(250, "2.0.0", "Ok")),
            Ok(Request::Quit) => {
                self.reply(Reply::new(221, "2.0.0", "Bye"));
                self.quit = true;
            }
            Ok(Request::Vrfy { .. }) => self.reply(Reply::new(
                252,
                "2.5.0",
                "Cannot VRFY user, but will relay the message",
            )),
            Ok(Request::Help { .. }) => self.reply(Reply::new(214, "2.0.0", "See RFC 5321")),
            Ok(Request::StartTls) => return self.starttls().await,
            Ok(Request::Auth {
                mechanism,
                initial_response,
            }) => {
                return self.auth(mechanism, initial_response.into_owned()).await;
            }
            Ok(Request::Bdat { .. }) => {
                // The chunk's bytes follow on the wire; reading them as
                // commands would be wrong, so the connection ends here.
                self.error(Reply::new(
                    500,
                    "5.5.1",
                    "BDAT is not offered (no CHUNKING); use DATA. Closing",
                ));
                self.quit = true;
            }
            Ok(other) => self.error(Reply::new(
                502,
                "5.5.1",
                format!("{} is not implemented", other.name()),
            )),
            Err(e) => self.error(syntax_reply(e)),
        }
        Ok(())
    }

    /// Queues a reply; replies go out when the client's pipelined input is used up.
    pub(super) fn reply(&mut self, reply: Reply) {
        reply.write_to(&mut self.wbuf);
    }

    /// Queues an error reply and counts it against the error budget.
    pub(super) fn error(&mut self, reply: Reply) {
        self.errors += 1;
        self.reply(reply);
    }

    pub(super) async fn flush(&mut self) -> std::io::Result<()> {
        if !self.wbuf.is_empty() {
            self.io.write_all(&self.wbuf).await?;
            self.io.flush().await?;
            self.wbuf.clear();
        }
        Ok(())
    }

    /// Reads more input before `deadline`; when `interruptible`, shutdown
    /// ends the wait. Pending replies are sent first.
    pub(super) async fn fill(
        &mut self,
        deadline: tokio::time::Instant,
        interruptible: bool,
    ) -> Result<(), Stop> {
        self.flush().await.map_err(|_| Stop::Closed)?;
        let shutdown = self.shared.shutdown.clone();
        let read = timeout_at(deadline, self.io.read_buf(&mut self.rbuf));
        let result = tokio::select! {
            r = read => r,
            _ = shutdown.cancelled(), if interruptible => return Err(Stop::Shutdown),
        };
        match result {
            Ok(Ok(0)) | Ok(Err(_)) => Err(Stop::Closed),
            Ok(Ok(_)) => Ok(()),
            Err(_) => Err(Stop::Timeout),
        }
    }

    /// The next command line (CRLF included). Bad lines are answered here
    /// and skipped; the wait is bounded by the command timeout.
    pub(super) async fn next_line(&mut self) -> Result<Vec<u8>, Stop> {
        let deadline = tokio::time::Instant::now() + self.shared.command_timeout;
        let mut skipping = false;
        loop {
            // Bad lines count against the error budget as bad commands do.
            if self.errors >= self.shared.max_errors {
                return Err(Stop::Errors);
            }
            if skipping {
                match self.rbuf.iter().position(|&b| b == b'\n') {
                    Some(i) => {
                        self.rbuf.drain(..=i);
                        skipping = false;
                    }
                    None => self.rbuf.clear(),
                }
            }
            if !skipping {
                match wire::command_line(&self.rbuf, self.shared.max_line_length) {
                    Ok(Some(n)) => return Ok(self.rbuf.drain(..n).collect()),
                    Ok(None) => {}
                    Err((LineError::BareNewline, n)) => {
                        self.rbuf.drain(..n);
                        self.error(Reply::new(
                            500,
                            "5.5.2",
                            "Bare CR or LF received; lines must end with CRLF",
                        ));
                        continue;
                    }
                    Err((LineError::TooLong, _)) => {
                        self.rbuf.clear();
                        self.error(Reply::new(500, "5.5.2", "Line too long"));
                        skipping = true;
                    }
                }
            }
            if self.shared.shutdown.is_cancelled() && self.tx.is_none() && self.rbuf.is_empty() {
                return Err(Stop::Shutdown);
            }
            self.fill(deadline, self.tx.is_none()).await?;
        }
    }

    /// Aborts the open transaction, if any.
    pub(super) async fn end_tx(&mut self) {
        if let Some(tx) = self.tx.take() {
            tx.target.abort().await;
        }
    }
}

/// The reply for a command smtp-proto could not parse.
fn syntax_reply(e: smtp_proto::Error) -> Reply {
    use smtp_proto::Error as E;
    match e {
        E::UnknownCommand => Reply::new(500, "5.5.2", "Syntax error, command unrecognized"),
        E::InvalidSenderAddress => Reply::new(501, "5.1.7", "Bad sender address syntax"),
        E::InvalidRecipientAddress => Reply::new(501, "5.1.3", "Bad recipient address syntax"),
        E::SyntaxError { syntax } => Reply::new(501, "5.5.4", format!("Syntax: {syntax}")),
        E::InvalidParameter { param } => {
            Reply::new(501, "5.5.4", format!("Invalid parameter {param}"))
        }
        E::UnsupportedParameter { param } => {
            let param: String = param
                .chars()
                .filter(|c| c.is_ascii_graphic())
                .take(64)
                .collect();
            Reply::new(555, "5.5.4", format!("Unsupported parameter {param}"))
        }
        E::NeedsMoreData { .. } | E::ResponseTooLong | E::InvalidResponse { .. } => {
            Reply::new(500, "5.5.2", "Syntax error")
        }
    }
}
