//! Accepting XMPP clients: STARTTLS on `xmpp.listen`, direct TLS
//! (XEP-0368) on `xmpp.listen_tls`. Sessions count against the same
//! connection limit as mail.

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;

use super::framer::stream_error;
use super::session::{self, XmppShared};
use crate::smtp::Io;

/// Accepts until shutdown; `direct_tls` for the XEP-0368 port.
pub async fn run(
    socket: TcpListener,
    direct_tls: bool,
    shared: Arc<XmppShared>,
    limit: Arc<Semaphore>,
    tracker: TaskTracker,
) {
    loop {
        let accepted = tokio::select! {
            _ = shared.shutdown.cancelled() => break,
            a = socket.accept() => a,
        };
        let Ok((stream, peer)) = accepted else {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            tracing::warn!(event = "connection_refused", peer = %peer, reason = "max_connections");
            metrics::counter!("sotto_connections_refused_total").increment(1);
            tracker.spawn(async move {
                use tokio::io::AsyncWriteExt;
                let mut stream = stream;
                if !direct_tls {
                    let _ = stream.write_all(&stream_error("resource-constraint")).await;
                }
                let _ = stream.shutdown().await;
            });
            continue;
        };
        metrics::counter!("sotto_connections_total", "protocol" => "xmpp").increment(1);
        let shared = shared.clone();
        tracker.spawn(async move {
            let _permit = permit;
            let io: Box<dyn Io> = if direct_tls {
                match tokio::time::timeout(shared.handshake_timeout, shared.tls.accept(stream))
                    .await
                {
                    Ok(Ok(tls)) => Box::new(tls),
                    _ => return,
                }
            } else {
                Box::new(stream)
            };
            session::serve(io, direct_tls, shared).await;
        });
    }
    tracing::info!(
        event = "listener_stopped",
        protocol = if direct_tls { "xmpps" } else { "xmpp" }
    );
}
