//! The TCP (and implicit-TLS) connection to the upstream, opened by sotto
//! rather than by lettre so that TCP_NODELAY is set: lettre writes the final
//! `CRLF.CRLF` on its own, and with Nagle's algorithm that small write waits
//! for the upstream's delayed ACK — about 40 ms per message.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use lettre::transport::smtp::client::AsyncTokioStream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore, pki_types::ServerName};

/// Implicit TLS over TCP, as lettre's transport wants it.
#[derive(Debug)]
pub struct TlsIo(tokio_rustls::client::TlsStream<TcpStream>);

impl AsyncRead for TlsIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl AsyncTokioStream for TlsIo {
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.0.get_ref().0.peer_addr()
    }
}

/// The client TLS settings for implicit TLS: the system's roots plus the
/// configured CA, verifying `name`.
pub struct Implicit {
    connector: TlsConnector,
    name: ServerName<'static>,
}

impl Implicit {
    pub fn new(name: &str, extra_ca_pem: Option<&[u8]>) -> Result<Self, String> {
        let mut roots = RootCertStore::empty();
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
        if let Some(pem) = extra_ca_pem {
            for cert in rustls_pemfile::certs(&mut &pem[..]) {
                roots
                    .add(cert.map_err(|e| e.to_string())?)
                    .map_err(|e| e.to_string())?;
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = ServerName::try_from(name.to_string()).map_err(|e| e.to_string())?;
        Ok(Implicit {
            connector: TlsConnector::from(Arc::new(config)),
            name,
        })
    }
}

impl Implicit {
    /// The TLS handshake over an open connection (the XMPP side's upstream).
    pub(crate) async fn handshake(
        &self,
        tcp: TcpStream,
    ) -> io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
        self.connector.connect(self.name.clone(), tcp).await
    }
}

/// Why connecting failed: the TCP connection, or the TLS handshake.
#[derive(Debug)]
pub enum ConnectError {
    Tcp(io::Error),
    Tls(io::Error),
}

/// Connects to `host:port` with TCP_NODELAY, wrapping it in TLS when `tls` is given.
pub async fn connect(
    host: &str,
    port: u16,
    tls: Option<&Implicit>,
) -> Result<Box<dyn AsyncTokioStream>, ConnectError> {
    let tcp = TcpStream::connect((host, port))
        .await
        .map_err(ConnectError::Tcp)?;
    tcp.set_nodelay(true).map_err(ConnectError::Tcp)?;
    match tls {
        None => Ok(Box::new(tcp)),
        Some(t) => Ok(Box::new(TlsIo(
            t.connector
                .connect(t.name.clone(), tcp)
                .await
                .map_err(ConnectError::Tls)?,
        ))),
    }
}
