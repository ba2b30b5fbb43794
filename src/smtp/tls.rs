//! STARTTLS on the client side, with rustls and the certificate from config.

use std::path::Path;
use std::sync::Arc;

use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;

use super::Session;
use super::session::Stop;
use crate::relay::Target;
use crate::reply::Reply;

/// Why the TLS material could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    #[error("cannot read `{path}`: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("`{0}` holds no PEM certificate")]
    NoCert(String),
    #[error("`{0}` holds no PEM private key")]
    NoKey(String),
    #[error("TLS configuration refused: {0}")]
    Rustls(#[from] tokio_rustls::rustls::Error),
}

/// A TLS acceptor from PEM certificate chain and key files.
pub fn server_tls(cert: &Path, key: &Path) -> Result<TlsAcceptor, TlsError> {
    let read = |p: &Path| {
        std::fs::read(p).map_err(|source| TlsError::Read {
            path: p.display().to_string(),
            source,
        })
    };
    let cert_pem = read(cert)?;
    let key_pem = read(key)?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .filter_map(Result::ok)
        .collect();
    if certs.is_empty() {
        return Err(TlsError::NoCert(cert.display().to_string()));
    }
    let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .ok()
        .flatten()
        .ok_or_else(|| TlsError::NoKey(key.display().to_string()))?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

impl<T: Target> Session<T> {
    pub(super) async fn starttls(&mut self) -> Result<(), Stop> {
        let Some(acceptor) = self.shared.tls.clone() else {
            self.error(Reply::new(502, "5.5.1", "STARTTLS is not offered"));
            return Ok(());
        };
        if self.tls {
            self.error(Reply::new(503, "5.5.1", "TLS is already active"));
            return Ok(());
        }
        if self.tx.is_some() {
            self.error(Reply::new(
                503,
                "5.5.1",
                "STARTTLS not allowed during a transaction",
            ));
            return Ok(());
        }
        // Anything pipelined after STARTTLS was sent in clear and must not be
        // taken as if it came over TLS (CVE-2011-0411).
        self.rbuf.clear();
        self.reply(Reply::new(220, "2.0.0", "Ready to start TLS"));
        self.flush().await.map_err(|_| Stop::Closed)?;
        let io = std::mem::replace(&mut self.io, Box::new(tokio::io::duplex(1).0));
        let handshake =
            tokio::time::timeout(self.shared.command_timeout, acceptor.accept(io)).await;
        match handshake {
            Ok(Ok(stream)) => {
                self.io = Box::new(stream);
                self.tls = true;
                self.helo = None;
                self.user = None;
                tracing::debug!(event = "starttls");
                Ok(())
            }
            Ok(Err(e)) => {
                tracing::info!(event = "tls_failed", error = %e);
                Err(Stop::Closed)
            }
            Err(_) => Err(Stop::Closed),
        }
    }
}
