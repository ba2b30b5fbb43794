//! The redirector over real HTTP on 127.0.0.1: what scanners (HEAD,
//! prefetch) and people (GET, then POST) get, the security headers on every
//! answer, bad and expired tokens, the rate limit, and logs without URLs.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::{Client, Method, StatusCode};
use sotto::config::RedirectConfig;
use sotto::links::token::{TokenError, TokenKeys};
use sotto::redirect::{self, Redirector};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const DEST: &str = "https://files.example.org/reset/abc123?token=s3cr3t-value&utm_source=mail#frag";
const DEST_HOST: &str = "files.example.org";

struct Server {
    base: String,
    keys: Arc<TokenKeys>,
    client: Client,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

impl Server {
    async fn start(rate_limit: u32) -> Server {
        let keys = Arc::new(TokenKeys::from_secrets(vec![(1, [7; 32]), (0, [9; 32])]));
        let cfg = RedirectConfig {
            rate_limit,
            ..RedirectConfig::default()
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(redirect::run(
            listener,
            Redirector::new(keys.clone(), &cfg),
            shutdown.clone(),
        ));
        let client = Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .unwrap();
        Server {
            base: format!("http://{addr}"),
            keys,
            client,
            shutdown,
            task,
        }
    }

    fn link(&self, token: &str) -> String {
        format!("{}/l/{token}", self.base)
    }

    fn seal(&self, url: &str) -> String {
        self.keys.seal(url, Duration::from_secs(3600)).unwrap()
    }

    async fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
    ) -> (StatusCode, HeaderMap, String) {
        let mut req = self.client.request(method, url);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.text().await.unwrap();
        (status, headers, body)
    }

    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("the redirector stops on shutdown")
            .unwrap();
    }
}

/// The headers every answer carries, errors included.
#[track_caller]
fn assert_security_headers(h: &HeaderMap) {
    let get = |name: &str| {
        h.get(name)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    };
    assert_eq!(get("referrer-policy"), "no-referrer");
    assert_eq!(get("cache-control"), "no-store");
    assert!(get("x-robots-tag").contains("noindex"), "{h:?}");
    assert_eq!(get("x-content-type-options"), "nosniff");
    let csp = get("content-security-policy");
    for directive in [
        "default-src 'none'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action",
    ] {
        assert!(csp.contains(directive), "{csp}");
    }
    assert!(!csp.contains("script-src"), "{csp}");
}

/// Nothing in a response that reveals the destination.
#[track_caller]
fn assert_no_destination(h: &HeaderMap, body: &str) {
    assert!(h.get("location").is_none(), "{h:?}");
    assert!(!body.contains(DEST_HOST), "{body}");
    assert!(!body.contains("s3cr3t"), "{body}");
    assert!(!body.contains("abc123"), "{body}");
    for (_, v) in h {
        let v = String::from_utf8_lossy(v.as_bytes());
        assert!(!v.contains(DEST_HOST) && !v.contains("s3cr3t"), "{h:?}");
    }
}

#[tokio::test]
async fn head_gets_nothing() {
    let s = Server::start(1000).await;
    let link = s.link(&s.seal(DEST));
    let (status, h, body) = s.send(Method::HEAD, &link, &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.is_empty());
    assert_eq!(
        h.get("content-length").map(|v| v.to_str().unwrap()),
        Some("0")
    );
    assert_no_destination(&h, &body);
    assert_security_headers(&h);
    s.stop().await;
}

#[tokio::test]
async fn get_names_only_the_host() {
    let s = Server::start(1000).await;
    let link = s.link(&s.seal(DEST));
    let (status, h, body) = s.send(Method::GET, &link, &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_security_headers(&h);
    assert!(h.get("location").is_none());
    assert!(h["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(body.contains(DEST_HOST), "{body}");
    for secret in [
        "/reset",
        "abc123",
        "token=",
        "s3cr3t",
        "utm_source",
        "frag",
        "https://files",
    ] {
        assert!(!body.contains(secret), "{secret} in {body}");
    }
    // A plain form that POSTs back to this very URL; no script at all.
    assert!(body.contains("<form method=\"post\">"), "{body}");
    assert!(!body.contains("action="), "{body}");
    assert!(!body.to_ascii_lowercase().contains("<script"), "{body}");
    s.stop().await;
}

#[tokio::test]
async fn host_is_html_escaped() {
    let s = Server::start(1000).await;
    let link = s.link(&s.seal("http://a<b>&\"c/x"));
    let (status, _, body) = s.send(Method::GET, &link, &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("a&lt;b&gt;&amp;&quot;c"), "{body}");
    assert!(!body.contains("a<b>"), "{body}");
    s.stop().await;
}

#[tokio::test]
async fn post_redirects_to_the_destination() {
    let s = Server::start(1000).await;
    let link = s.link(&s.seal(DEST));
    let resp = s
        .client
        .post(&link)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(resp.headers()["location"], DEST);
    assert_security_headers(resp.headers());
    // Other destinations, and the same token again: tokens are not single-use.
    for dest in [
        "http://127.0.0.1:1/",
        "https://[2001:db8::1]:8443/a?b=c",
        "https://example.org",
    ] {
        let (status, h, _) = s.send(Method::POST, &s.link(&s.seal(dest)), &[]).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert_eq!(h["location"], dest);
    }
    let (status, h, _) = s.send(Method::POST, &link, &[]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(h["location"], DEST);
    // Non-ASCII is percent-encoded as a browser would.
    let (_, h, _) = s
        .send(
            Method::POST,
            &s.link(&s.seal("https://example.org/café")),
            &[],
        )
        .await;
    assert_eq!(h["location"], "https://example.org/caf%C3%A9");
    s.stop().await;
}

#[tokio::test]
async fn prefetches_get_no_destination() {
    let s = Server::start(1000).await;
    let link = s.link(&s.seal(DEST));
    let prefetches: [(&str, &str); 6] = [
        ("Sec-Purpose", "prefetch"),
        ("Sec-Purpose", "prefetch;prerender"),
        ("Purpose", "prefetch"),
        ("X-Purpose", "preview"),
        ("X-Purpose", "prefetch"),
        ("X-Moz", "prefetch"),
    ];
    for header in prefetches {
        for method in [Method::GET, Method::HEAD, Method::POST] {
            let (status, h, body) = s.send(method.clone(), &link, &[header]).await;
            assert!(
                !status.is_success() && !status.is_redirection(),
                "{header:?} {method}: {status}"
            );
            assert_no_destination(&h, &body);
            assert_security_headers(&h);
        }
    }
    s.stop().await;
}

#[tokio::test]
async fn bad_tokens_are_not_found() {
    let s = Server::start(1000).await;
    let token = s.seal(DEST);
    let mut altered: Vec<char> = token.chars().collect();
    let mid = altered.len() / 2;
    altered[mid] = if altered[mid] == 'A' { 'B' } else { 'A' };
    let altered: String = altered.into_iter().collect();
    let other_key = TokenKeys::from_secrets(vec![(1, [8; 32])])
        .seal(DEST, Duration::from_secs(3600))
        .unwrap();
    let unknown_id = TokenKeys::from_secrets(vec![(200, [7; 32])])
        .seal(DEST, Duration::from_secs(3600))
        .unwrap();
    let cases = [
        s.link(&altered),
        s.link(&other_key),
        s.link(&unknown_id),
        s.link(&token[..token.len() - 3]),
        s.link("not-a-token"),
        s.link(&format!("{token}/x")),
        format!("{}/l/", s.base),
        format!("{}/", s.base),
        format!("{}/other", s.base),
        format!("{}/L/{token}", s.base),
    ];
    for url in &cases {
        for method in [Method::GET, Method::HEAD, Method::POST] {
            let (status, h, body) = s.send(method.clone(), url, &[]).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{method} {url}");
            assert_no_destination(&h, &body);
            assert_security_headers(&h);
            if method == Method::GET {
                assert!(!body.contains("Forged") && !body.contains("key"), "{body}");
            }
        }
    }
    s.stop().await;
}

#[tokio::test]
async fn expired_tokens_are_gone() {
    let s = Server::start(1000).await;
    let token = s.keys.seal_until(DEST, 1_000_000).unwrap();
    for method in [Method::GET, Method::HEAD, Method::POST] {
        let (status, h, body) = s.send(method.clone(), &s.link(&token), &[]).await;
        assert_eq!(status, StatusCode::GONE, "{method}");
        assert_no_destination(&h, &body);
        assert_security_headers(&h);
    }
    s.stop().await;
}

#[tokio::test]
async fn only_http_urls_are_sealed() {
    let keys = TokenKeys::from_secrets(vec![(1, [7; 32])]);
    for url in [
        "javascript:alert(document.cookie)",
        "data:text/html;base64,PHNjcmlwdD4=",
        "ftp://example.org/x",
    ] {
        assert_eq!(
            keys.seal(url, Duration::from_secs(60)),
            Err(TokenError::NotHttp),
            "{url}"
        );
    }
}

#[tokio::test]
async fn other_methods_and_health() {
    let s = Server::start(1000).await;
    let link = s.link(&s.seal(DEST));
    for method in [Method::PUT, Method::DELETE, Method::OPTIONS, Method::PATCH] {
        let (status, h, body) = s.send(method.clone(), &link, &[]).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method}");
        assert_no_destination(&h, &body);
        assert_security_headers(&h);
    }
    let (status, h, body) = s
        .send(Method::GET, &format!("{}/healthz", s.base), &[])
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.trim(), "ok");
    assert_security_headers(&h);
    s.stop().await;
}

#[tokio::test]
async fn rate_limited_per_ip() {
    const LIMIT: u32 = 5;
    let s = Server::start(LIMIT).await;
    let link = s.link(&s.seal(DEST));
    // The first LIMIT requests pass (whatever the path); one more must be
    // refused, unless the bucket refilled in between (12 s per request), so
    // allow a few.
    for i in 0..LIMIT {
        let url = if i % 2 == 0 {
            link.clone()
        } else {
            format!("{}/nothing", s.base)
        };
        let (status, _, _) = s.send(Method::GET, &url, &[]).await;
        assert_ne!(status, StatusCode::TOO_MANY_REQUESTS, "request {i}");
    }
    let mut limited = None;
    for _ in 0..3 {
        let (status, h, body) = s.send(Method::POST, &link, &[]).await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            limited = Some((h, body));
            break;
        }
    }
    let (h, body) = limited.expect("a 429 after the limit");
    let retry: u64 = h["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry >= 1);
    assert_no_destination(&h, &body);
    assert_security_headers(&h);
    // Health checks are not limited.
    let (status, _, _) = s
        .send(Method::GET, &format!("{}/healthz", s.base), &[])
        .await;
    assert_eq!(status, StatusCode::OK);
    s.stop().await;
}

/// A `tracing` writer into a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

// The current-thread runtime runs the server on this thread, so the
// thread-local subscriber sees its events.
#[tokio::test(flavor = "current_thread")]
async fn destinations_are_never_logged() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("sotto=trace"))
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let s = Server::start(4).await;
    let token = s.seal(DEST);
    let link = s.link(&token);
    let expired = s.link(&s.keys.seal_until(DEST, 1_000_000).unwrap());
    for (method, url, headers) in [
        (Method::HEAD, &link, &[][..]),
        (Method::GET, &link, &[][..]),
        (Method::GET, &link, &[("Sec-Purpose", "prefetch")][..]),
        (Method::POST, &link, &[][..]),
        (Method::GET, &expired, &[][..]),
        (Method::POST, &link, &[][..]),
    ] {
        s.send(method, url, headers).await;
    }
    s.stop().await;

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("redirect"), "{logs}");
    for secret in [DEST_HOST, "s3cr3t", "abc123", "https://", token.as_str()] {
        assert!(!logs.contains(secret), "{secret} in logs:\n{logs}");
    }
}
