//! The admin HTTP endpoint: `/healthz` (the process answers) and `/readyz`
//! (the upstream accepts connections and sotto is not shutting down).

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::relay::Upstream;

#[derive(Clone)]
struct AdminState {
    upstream: Upstream,
    shutdown: CancellationToken,
}

/// Serves the admin endpoint until shutdown.
pub async fn run(listener: TcpListener, upstream: Upstream, shutdown: CancellationToken) {
    let state = AdminState {
        upstream,
        shutdown: shutdown.clone(),
    };
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .with_state(state);
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await;
    if let Err(e) = result {
        tracing::warn!(event = "admin_failed", error = %e);
    }
}

async fn ready(State(s): State<AdminState>) -> (StatusCode, &'static str) {
    if s.shutdown.is_cancelled() {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n")
    } else if s.upstream.reachable().await {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "upstream unreachable\n")
    }
}
