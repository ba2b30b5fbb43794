//! Prometheus metrics: one recorder per process, rendered at `/metrics` on
//! the admin port. Names and labels are fixed here; the modules only count.
//! Labels never carry addresses, subjects or URLs.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the recorder (once per process) and returns its handle.
pub fn install() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Suffix("_seconds".into()),
                    &[
                        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                        10.0, 30.0,
                    ],
                )
                .ok()?
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            describe();
            Some(handle)
        })
        .clone()
}

fn describe() {
    use metrics::{describe_counter, describe_histogram};
    describe_counter!(
        "sotto_connections_total",
        "Client connections accepted, by protocol"
    );
    describe_counter!(
        "sotto_connections_refused_total",
        "Client connections refused over max_connections"
    );
    describe_counter!(
        "sotto_messages_total",
        "Messages by channel and outcome (accepted, temporary, permanent)"
    );
    describe_histogram!(
        "sotto_message_duration_seconds",
        "Time from MAIL to the reply to DATA"
    );
    describe_counter!(
        "sotto_upstream_replies_total",
        "Upstream replies to the data, by class (2xx, 4xx, 5xx, error)"
    );
    describe_counter!(
        "sotto_encryptions_total",
        "Messages encrypted, by result (ok, failed, already_encrypted)"
    );
    describe_histogram!(
        "sotto_encryption_duration_seconds",
        "Time to encrypt one message"
    );
    describe_counter!(
        "sotto_key_lookups_total",
        "Key lookups by source and result (found, rejected, none, error)"
    );
    describe_counter!("sotto_link_rewrites_total", "URLs rewritten, by mode");
    describe_counter!(
        "sotto_recipients_refused_total",
        "Recipients refused by policy (no key where encryption is required)"
    );
    describe_counter!(
        "sotto_policy_reloads_total",
        "Policy reloads by result (ok, refused)"
    );
    describe_counter!(
        "sotto_xmpp_messages_total",
        "Chat messages treated, by direction (out, in) and action (encrypted, encrypted_legacy, rewritten, unchanged, refused; decrypted, undecryptable)"
    );
    describe_histogram!(
        "sotto_xmpp_message_duration_seconds",
        "Time to treat one outgoing chat message (policy, key lookup, encryption)"
    );
    describe_counter!(
        "sotto_xmpp_key_publications_total",
        "Local users' keys published to PEP, by result (ok, failed)"
    );
}

/// The reply class of an SMTP code: `2xx`, `4xx`, `5xx`.
pub fn class(code: u16) -> &'static str {
    match code / 100 {
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        _ => "5xx",
    }
}
