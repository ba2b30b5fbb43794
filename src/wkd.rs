//! WKD over HTTP for the organisation's domains (`identities.wkd_listen`):
//! the advanced method (`openpgpkey.<domain>/.well-known/openpgpkey/
//! <domain>/hu/<hash>`) and the direct method (`<domain>/.well-known/
//! openpgpkey/hu/<hash>`), and each domain's `policy` file. A key is served
//! for a local address that has an identity (revoked ones with their
//! revocation, own keys as registered); nothing is made on request.
//! Plain HTTP: a TLS reverse proxy in front answers for the domains (see
//! the README). Logs and metrics never name an address.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use sequoia_openpgp::serialize::SerializeInto as _;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::openpgp::identities::Identities;
use crate::openpgp::wkd;

/// What the WKD service needs.
pub struct Wkd {
    identities: Arc<Identities>,
    /// The local domains, lower-case.
    domains: Vec<String>,
}

impl Wkd {
    pub fn new(identities: Arc<Identities>, domains: &[String]) -> Wkd {
        Wkd {
            identities,
            domains: domains.iter().map(|d| d.to_ascii_lowercase()).collect(),
        }
    }

    pub fn router(self) -> Router {
        Router::new().fallback(handle).with_state(Arc::new(self))
    }

    /// The address the hash names at `domain`: `local` if it hashes to it
    /// (what clients send as `l=`), else the identity of that domain whose
    /// local part does.
    async fn address(
        &self,
        domain: &str,
        hash: &str,
        local: Option<String>,
    ) -> Result<Option<String>, String> {
        if let Some(local) = local
            && wkd::hash(&local) == hash
        {
            return Ok(Some(format!("{}@{domain}", local.to_ascii_lowercase())));
        }
        let all = self.identities.list().await.map_err(|e| e.to_string())?;
        Ok(all.into_iter().map(|(a, _)| a).find(|a| {
            a.rsplit_once('@')
                .is_some_and(|(l, d)| d == domain && wkd::hash(l) == hash)
        }))
    }
}

/// Serves WKD on `listener` until `shutdown`.
pub async fn run(listener: TcpListener, wkd: Wkd, shutdown: CancellationToken) {
    let result = axum::serve(listener, wkd.router())
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await;
    if let Err(e) = result {
        tracing::warn!(event = "wkd_failed", error = %e);
    }
}

fn respond(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Response {
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // WKD clients in browsers (e.g. Mailvelope) fetch across origins.
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    resp
}

fn counted(result: &'static str, resp: Response) -> Response {
    metrics::counter!("sotto_wkd_requests_total", "result" => result).increment(1);
    resp
}

async fn handle(State(w): State<Arc<Wkd>>, req: Request) -> Response {
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        let mut resp = respond(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            b"GET or HEAD\n".to_vec(),
        );
        resp.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return counted("bad_method", resp);
    }
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(|h| h.rsplit_once(':').map_or(h, |(name, _)| name))
        .unwrap_or_default()
        .to_ascii_lowercase();
    let not_found = || {
        counted(
            "not_found",
            respond(StatusCode::NOT_FOUND, "text/plain", b"not found\n".to_vec()),
        )
    };
    let Some(request) = wkd::parse(&host, req.uri().path(), req.uri().query()) else {
        return not_found();
    };
    match request {
        wkd::Request::Policy { domain } if w.domains.contains(&domain) => {
            counted("policy", respond(StatusCode::OK, "text/plain", Vec::new()))
        }
        wkd::Request::Key {
            domain,
            hash,
            local,
        } if w.domains.contains(&domain) => {
            let unavailable = |e: String| {
                tracing::warn!(event = "wkd_store_failed", error = %e);
                counted(
                    "unavailable",
                    respond(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "text/plain",
                        b"try again later\n".to_vec(),
                    ),
                )
            };
            let address = match w.address(&domain, &hash, local).await {
                Ok(Some(a)) => a,
                Ok(None) => return not_found(),
                Err(e) => return unavailable(e),
            };
            match w.identities.published(&address).await {
                Ok(Some(cert)) => match cert.to_vec() {
                    Ok(bytes) => counted(
                        "key",
                        respond(StatusCode::OK, "application/octet-stream", bytes),
                    ),
                    Err(e) => unavailable(e.to_string()),
                },
                Ok(None) => not_found(),
                Err(e) => unavailable(e.to_string()),
            }
        }
        _ => not_found(),
    }
}
