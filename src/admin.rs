//! The admin HTTP endpoint: `/metrics` (Prometheus), `/healthz` (the process
//! answers) and `/readyz` (policies loaded, the upstream accepts
//! connections, the state store answers when sotto uses one, and sotto is
//! not shutting down).

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
    store: Option<crate::store::Store>,
    shutdown: CancellationToken,
    metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
}

/// Serves the admin endpoint until shutdown.
pub async fn run(
    listener: TcpListener,
    upstream: Upstream,
    store: Option<crate::store::Store>,
    shutdown: CancellationToken,
) {
    let state = AdminState {
        upstream,
        store,
        shutdown: shutdown.clone(),
        metrics: crate::telemetry::install(),
    };
    let app = Router::new()
        .route("/metrics", get(render))
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

async fn render(
    State(s): State<AdminState>,
) -> (StatusCode, [(&'static str, &'static str); 1], String) {
    let ct = [("content-type", "text/plain; version=0.0.4")];
    match &s.metrics {
        Some(h) => (StatusCode::OK, ct, h.render()),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            ct,
            "metrics recorder unavailable\n".into(),
        ),
    }
}

async fn ready(State(s): State<AdminState>) -> (StatusCode, &'static str) {
    if s.shutdown.is_cancelled() {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n")
    } else if let Some(store) = &s.store
        && store.ping().await.is_err()
    {
        (StatusCode::SERVICE_UNAVAILABLE, "state store unavailable\n")
    } else if s.upstream.reachable().await {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "upstream unreachable\n")
    }
}
