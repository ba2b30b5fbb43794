//! The scanner-proof redirector: `redirect` links point here
//! (`<public_url>/l/<token>`), and only a person who clicks gets through.
//!
//! - `HEAD` → `200`, no `Location`, no body: what reputation scanners see.
//! - `GET` → a neutral page naming only the destination's host, with a
//!   "Continue" button that POSTs back (no JavaScript).
//! - `POST` → `303 See Other` to the destination.
//! - Prefetches (`Sec-Purpose`/`Purpose: prefetch`, `X-Purpose: preview`,
//!   `X-Moz: prefetch`) → `503` with nothing about the destination: browsers
//!   drop error responses from their prefetch cache, so the real click later
//!   fetches the page afresh (a `2xx` could be served to the click instead).
//! - A token that does not open → `404` (expired: `410`), a neutral page.
//! - More than `rate_limit` requests a minute from one client IP → `429`
//!   with `Retry-After`.
//!
//! Every response carries `Referrer-Policy: no-referrer`,
//! `Cache-Control: no-store`, `X-Robots-Tag: noindex, nofollow`,
//! `X-Content-Type-Options: nosniff` and a strict `Content-Security-Policy`.
//! Its `form-action` allows `http:`/`https:` as well as `'self'`, because
//! Chrome applies `form-action` to the redirect that follows the POST.
//!
//! Destinations are never logged: log lines carry the outcome, the method
//! and the token's length only. The per-IP limit counts the TCP peer; behind
//! a reverse proxy that is the proxy, so limit there instead.
//!
//! Scanners that click buttons get through like people do: only encryption
//! or `strip` beats those.

mod limit;
mod page;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::RedirectConfig;
use crate::links::token::{TokenError, TokenKeys, http_host};
use limit::RateLimiter;

/// The path prefix of redirect links.
pub const LINK_PREFIX: &str = "/l/";

/// The Content-Security-Policy of every response.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; \
     form-action 'self' http: https:; frame-ancestors 'none'; base-uri 'none'";

/// The redirector: token keys, the rate limiter and its settings.
pub struct Redirector {
    keys: Arc<TokenKeys>,
    limiter: RateLimiter,
}

impl std::fmt::Debug for Redirector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redirector")
            .field("keys", &self.keys)
            .field("limiter", &self.limiter)
            .finish()
    }
}

impl Redirector {
    /// A redirector opening tokens with `keys`, limiting each client IP to
    /// `cfg.rate_limit` requests a minute (0: no limit).
    pub fn new(keys: Arc<TokenKeys>, cfg: &RedirectConfig) -> Self {
        Redirector {
            keys,
            limiter: RateLimiter::new(cfg.rate_limit),
        }
    }

    /// The HTTP service. Serve it with
    /// `into_make_service_with_connect_info::<SocketAddr>()` so the rate
    /// limit sees each client's address (without it, all clients share one
    /// limit).
    pub fn router(self) -> Router {
        Router::new()
            .fallback(handle)
            .with_state(Arc::new(self))
            .layer(axum::middleware::map_response(security_headers))
    }
}

/// Serves the redirector on `listener` until `shutdown`.
pub async fn run(listener: TcpListener, redirector: Redirector, shutdown: CancellationToken) {
    let app = redirector
        .router()
        .into_make_service_with_connect_info::<SocketAddr>();
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await;
    if let Err(e) = result {
        tracing::warn!(event = "redirect_failed", error = %e);
    }
}

async fn handle(State(r): State<Arc<Redirector>>, req: Request) -> Response {
    let method = req.method().clone();
    let path = req.uri().path();
    if path == "/healthz" {
        return match method {
            Method::GET | Method::HEAD => text(StatusCode::OK, "ok\n"),
            _ => not_allowed("GET, HEAD"),
        };
    }

    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    if let Err(wait) = r.limiter.check(
        peer.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        Instant::now(),
    ) {
        tracing::debug!(event = "redirect", outcome = "rate_limited", method = %method);
        let mut resp = html(
            StatusCode::TOO_MANY_REQUESTS,
            page::neutral("Too many requests. Try again later."),
        );
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(wait));
        return resp;
    }

    let Some(token) = path.strip_prefix(LINK_PREFIX) else {
        return html(StatusCode::NOT_FOUND, page::neutral("Not found."));
    };
    let token_len = token.len();
    let url = match r.keys.open(token) {
        Ok(url) => url,
        Err(e) => {
            let (status, text, outcome) = match e {
                TokenError::Expired => (StatusCode::GONE, "This link has expired.", "expired"),
                TokenError::UnknownKey => (
                    StatusCode::NOT_FOUND,
                    "This link is not valid.",
                    "unknown_key",
                ),
                TokenError::Forged => (StatusCode::NOT_FOUND, "This link is not valid.", "forged"),
                _ => (
                    StatusCode::NOT_FOUND,
                    "This link is not valid.",
                    "malformed",
                ),
            };
            tracing::info!(event = "redirect", outcome, method = %method, token_len);
            return html(status, page::neutral(text));
        }
    };

    if is_prefetch(req.headers()) {
        tracing::info!(event = "redirect", outcome = "prefetch_refused", method = %method, token_len);
        let mut resp = html(
            StatusCode::SERVICE_UNAVAILABLE,
            page::neutral("Open this link to continue."),
        );
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("0"));
        return resp;
    }

    match method {
        Method::HEAD => {
            tracing::info!(event = "redirect", outcome = "head", method = %method, token_len);
            // No body, so not even its length hints at the destination.
            let mut resp = Response::new(Body::empty());
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            resp
        }
        Method::GET => {
            tracing::info!(event = "redirect", outcome = "page", method = %method, token_len);
            let host = http_host(&url).unwrap_or_default();
            html(StatusCode::OK, page::interstitial(&host))
        }
        Method::POST => match HeaderValue::try_from(location(&url)) {
            Ok(loc) => {
                tracing::info!(event = "redirect", outcome = "redirected", method = %method, token_len);
                let mut resp = Response::new(Body::empty());
                *resp.status_mut() = StatusCode::SEE_OTHER;
                resp.headers_mut().insert(header::LOCATION, loc);
                resp
            }
            Err(_) => {
                tracing::warn!(event = "redirect", outcome = "bad_location", method = %method, token_len);
                html(
                    StatusCode::NOT_FOUND,
                    page::neutral("This link is not valid."),
                )
            }
        },
        _ => not_allowed("GET, HEAD, POST"),
    }
}

/// Whether a request is a browser's prefetch or a preview, not a person.
fn is_prefetch(headers: &HeaderMap) -> bool {
    let has = |name: &str, word: &str| {
        headers.get_all(name).iter().any(|v| {
            v.to_str()
                .map(|v| v.to_ascii_lowercase().contains(word))
                .unwrap_or(true)
        })
    };
    has("sec-purpose", "prefetch")
        || has("purpose", "prefetch")
        || has("x-purpose", "prefetch")
        || has("x-purpose", "preview")
        || has("x-moz", "prefetch")
}

/// The URL as a `Location` value: bytes outside visible ASCII (spaces,
/// non-ASCII characters) percent-encoded, as browsers do when they parse it.
fn location(url: &str) -> String {
    let mut out = String::with_capacity(url.len());
    for b in url.bytes() {
        if b.is_ascii_graphic() {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn html(status: StatusCode, body: String) -> Response {
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    resp
}

fn text(status: StatusCode, body: &'static str) -> Response {
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

fn not_allowed(allow: &'static str) -> Response {
    let mut resp = html(
        StatusCode::METHOD_NOT_ALLOWED,
        page::neutral("Method not allowed."),
    );
    resp.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    resp
}

/// Adds the security headers to every response, errors included.
async fn security_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    let set = [
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-store"),
        (HeaderName::from_static("x-robots-tag"), "noindex, nofollow"),
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ];
    for (name, value) in set {
        h.insert(name, HeaderValue::from_static(value));
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefetch_headers() {
        let with = |name: &'static str, value: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(name, HeaderValue::from_static(value));
            is_prefetch(&h)
        };
        assert!(with("sec-purpose", "prefetch"));
        assert!(with("sec-purpose", "prefetch;prerender"));
        assert!(with("Purpose", "Prefetch"));
        assert!(with("x-purpose", "preview"));
        assert!(with("x-moz", "prefetch"));
        assert!(!with("sec-fetch-mode", "navigate"));
        assert!(!is_prefetch(&HeaderMap::new()));
    }

    #[test]
    fn location_encoding() {
        assert_eq!(
            location("https://example.org/a?b=c#d"),
            "https://example.org/a?b=c#d"
        );
        assert_eq!(
            location("https://example.org/a b/é"),
            "https://example.org/a%20b/%C3%A9"
        );
    }
}
