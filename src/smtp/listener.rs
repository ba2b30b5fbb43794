//! Accepting connections: a tower concurrency limit shared by all listeners
//! bounds the sessions; a client over the limit gets `421` at once instead of
//! waiting in the backlog. Sessions are tracked so shutdown can wait for them.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use futures_util::FutureExt;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::{Layer, Service, ServiceExt};

use super::{Protocol, Session, Shared};
use crate::relay::Target;

/// A client stream: TCP, TLS over TCP, or an in-memory pipe in tests.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for T {}

/// One bound SMTP or LMTP listener.
pub struct Listener<T: Target> {
    pub socket: TcpListener,
    pub protocol: Protocol,
    pub shared: Arc<Shared<T>>,
}

impl<T: Target> Listener<T> {
    /// Accepts until shutdown; each session runs on `tracker`. `limit` is
    /// shared with the other listeners.
    pub async fn run(self, limit: Arc<Semaphore>, tracker: TaskTracker) {
        let shared = self.shared.clone();
        let protocol = self.protocol;
        let session = tower::service_fn(move |(io, peer): (Box<dyn Io>, SocketAddr)| {
            let shared = shared.clone();
            async move {
                Session::new(io, peer, protocol, shared).run().await;
                Ok::<(), Infallible>(())
            }
        });
        let mut svc = GlobalConcurrencyLimitLayer::with_semaphore(limit).layer(session);
        loop {
            let accepted = tokio::select! {
                _ = self.shared.shutdown.cancelled() => break,
                a = self.socket.accept() => a,
            };
            let (stream, peer) = match accepted {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(event = "accept_failed", error = %e);
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            match svc.ready().now_or_never() {
                Some(Ok(ready)) => {
                    metrics::counter!("sotto_connections_total", "protocol" => protocol.name())
                        .increment(1);
                    let fut = ready.call((Box::new(stream) as Box<dyn Io>, peer));
                    tracker.spawn(fut);
                }
                _ => {
                    tracing::warn!(event = "connection_refused", peer = %peer, reason = "max_connections");
                    metrics::counter!("sotto_connections_refused_total").increment(1);
                    tracker.spawn(async move {
                        let mut stream = stream;
                        let _ = stream
                            .write_all(b"421 4.3.2 Too many connections; try again later\r\n")
                            .await;
                        let _ = stream.shutdown().await;
                    });
                }
            }
        }
        tracing::info!(event = "listener_stopped", protocol = protocol.name());
    }
}
