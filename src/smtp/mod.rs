//! The SMTP and LMTP listeners: one [`session::Session`] per client
//! connection, parsing commands with smtp-proto and driving a transaction at
//! a [`Target`].
//!
//! Owns the client side of the SMTP dialogue (framing, limits, timeouts,
//! STARTTLS, AUTH). It knows nothing of OpenPGP or of how the target
//! delivers; it never writes a message to disk.

mod auth;
mod data;
mod hello;
mod listener;
mod mail;
mod session;
mod tls;
pub mod wire;

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

pub use listener::{Io, Listener};
pub use session::Session;
pub use tls::{TlsError, server_tls};

use crate::config::{Config, User};
use crate::relay::Target;

/// Which dialect a listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Smtp,
    /// RFC 2033: LHLO, and one reply per recipient after DATA.
    Lmtp,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Smtp => "smtp",
            Protocol::Lmtp => "lmtp",
        }
    }
}

/// What every session of a listener shares: resolved limits, the target,
/// TLS, and the shutdown signal.
pub struct Shared<T: Target> {
    pub hostname: String,
    pub max_message_size: usize,
    pub max_recipients: usize,
    pub max_commands: usize,
    pub max_errors: usize,
    pub max_line_length: usize,
    pub command_timeout: Duration,
    pub data_timeout: Duration,
    pub require_tls: bool,
    pub auth_required: bool,
    pub auth_plaintext: bool,
    pub users: Vec<User>,
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    pub target: T,
    pub shutdown: CancellationToken,
}

impl<T: Target> Shared<T> {
    /// Session parameters for the inbound listener: the SMTP listener's
    /// limits and timeouts, without TLS or AUTH (the MTA in front delivers
    /// over loopback or a private network).
    pub fn inbound(cfg: &Config, target: T, shutdown: CancellationToken) -> Arc<Self> {
        let mut cfg = cfg.clone();
        cfg.smtp.auth.required = false;
        cfg.smtp.auth.users.clear();
        cfg.smtp.require_tls = false;
        Shared::new(&cfg, target, None, shutdown)
    }

    /// Session parameters from the configuration.
    pub fn new(
        cfg: &Config,
        target: T,
        tls: Option<tokio_rustls::TlsAcceptor>,
        shutdown: CancellationToken,
    ) -> Arc<Self> {
        Arc::new(Shared {
            hostname: cfg.smtp.hostname.clone(),
            max_message_size: cfg.limits.max_message_size,
            max_recipients: cfg.limits.max_recipients,
            max_commands: cfg.limits.max_commands,
            max_errors: cfg.limits.max_errors,
            max_line_length: cfg.limits.max_line_length,
            command_timeout: cfg.timeouts.command,
            data_timeout: cfg.timeouts.data,
            require_tls: cfg.smtp.require_tls,
            auth_required: cfg.smtp.auth.required,
            auth_plaintext: cfg.smtp.auth.allow_plaintext,
            users: cfg.smtp.auth.users.clone(),
            tls,
            target,
            shutdown,
        })
    }
}
