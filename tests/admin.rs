//! The admin endpoint with a real HTTP client: Prometheus metrics after
//! real traffic, `/healthz`, and `/readyz` following the upstream.

mod common;

use common::{Client, Sink, config, gateway};

async fn get(url: String) -> (u16, String) {
    let r = reqwest::get(url).await.expect("admin answers");
    (r.status().as_u16(), r.text().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_real_traffic() {
    let sink = Sink::start(&["--reject-rcpt", "gone@example.org=550 5.1.1 no such user"]);
    let mut cfg = config(&sink.addr);
    let _policy = common::policy(
        &mut cfg,
        "[defaults]\nencrypt = \"if-key\"\nlinks = \"strip\"\n\n[[rule]]\nname = \"must\"\nto = \"secure.example\"\nencrypt = \"required\"\n",
    );
    let gw = gateway(&cfg).await;
    let admin = gw.admin.unwrap();
    let mut c = Client::greeted(gw.smtp.unwrap()).await;
    let r = c
        .send_mail(
            "a@example.com",
            &["b@example.org"],
            b"see https://x.example/p?token=1\r\n.\r\n",
        )
        .await;
    assert!(r.starts_with("250"), "{r}");
    c.cmd("MAIL FROM:<a@example.com>", "250").await;
    c.cmd("RCPT TO:<someone@secure.example>", "550").await;
    c.cmd("RCPT TO:<gone@example.org>", "550").await;
    c.cmd("RSET", "250").await;

    let (status, text) = get(format!("http://{admin}/metrics")).await;
    assert_eq!(status, 200);
    for want in [
        "sotto_messages_total{channel=\"smtp\",outcome=\"accepted\"} 1",
        "sotto_upstream_replies_total{class=\"2xx\"} 1",
        "sotto_link_rewrites_total{mode=\"strip\"} 1",
        "sotto_recipients_refused_total 1",
        "sotto_key_lookups_total{source=\"none\",result=\"none\"}",
        "sotto_connections_total{protocol=\"smtp\"} 1",
        "sotto_message_duration_seconds_bucket",
    ] {
        assert!(text.contains(want), "missing `{want}` in:\n{text}");
    }
    assert!(
        !text.contains("x.example") && !text.contains("b@example.org"),
        "metrics leak addresses or URLs"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn health_and_readiness() {
    let sink = Sink::start(&[]);
    let gw = gateway(&config(&sink.addr)).await;
    let admin = gw.admin.unwrap();
    assert_eq!(
        get(format!("http://{admin}/healthz")).await,
        (200, "ok\n".into())
    );
    assert_eq!(get(format!("http://{admin}/readyz")).await.0, 200);
    // The upstream goes away (its process is killed): not ready, but alive.
    drop(sink);
    let (status, body) = get(format!("http://{admin}/readyz")).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("upstream"));
    assert_eq!(get(format!("http://{admin}/healthz")).await.0, 200);
}
