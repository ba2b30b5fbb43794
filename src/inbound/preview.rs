//! `sotto transform --inbound`: what the inbound path would hand the
//! mailbox server for a message, per recipient, with the configured store
//! and identities; no identity is made (only existing ones decrypt), and
//! nothing is delivered.

use std::sync::Arc;

use super::{Inbound, InboundTarget};
use crate::config::Config;
use crate::envelope::MailFrom;
use crate::keys::KeyStore;
use crate::openpgp::identities::{Identities, read_passphrase};
use crate::relay::{Capture, Target, Transaction};

/// One delivery: its recipients and the message they would get.
pub type Delivery = (Vec<String>, Vec<u8>);

/// Runs `message` (CRLF) from `from` to `to` through the inbound path
/// into a capture; the deliveries, in order, or why it could not run.
pub async fn transform(
    cfg: &Config,
    from: &str,
    to: &[String],
    message: Vec<u8>,
) -> Result<Vec<Delivery>, String> {
    if cfg.identities.domains.is_empty() {
        return Err("the inbound path needs identities.domains in the configuration".into());
    }
    let secret = cfg
        .store
        .secret_file(&cfg.xmpp)
        .ok_or("the inbound path needs store.secret_file (the identities' passphrase)")?;
    let passphrase = read_passphrase(secret).map_err(|e| e.to_string())?;
    let store = crate::store::cli::open(cfg)
        .await
        .map_err(|e| e.to_string())?;
    let keys = KeyStore::from_config(cfg);
    keys.set_store(store.clone());
    let ids = Arc::new(Identities::new(store.clone(), passphrase));
    let policies = crate::policy::Policies::load(cfg.policy.dir.clone()).map_err(|problems| {
        format!(
            "the policy files have {} problem(s); `sotto check` lists them",
            problems.len()
        )
    })?;
    let capture = Capture::default();
    let target = InboundTarget(Inbound::preview(
        capture.clone(),
        ids,
        keys,
        &cfg.identities.domains,
        cfg.limits.max_message_size,
        policies,
    ));
    let mail = MailFrom {
        address: from.to_owned(),
        body_8bit: !message.is_ascii(),
        smtputf8: false,
        size: None,
        per_recipient: true,
    };
    let mut tx = target.begin(&mail).await.map_err(|r| r.to_string())?;
    for rcpt in to {
        let r = tx.add_rcpt(rcpt).await;
        if !r.is_positive() {
            return Err(format!("<{rcpt}>: {r}"));
        }
    }
    let replies = tx.commit_each(message, to.len()).await;
    if let Some(bad) = replies.iter().find(|r| !r.is_positive()) {
        return Err(bad.to_string());
    }
    store.close().await;
    Ok(capture
        .delivered()
        .into_iter()
        .map(|(envelope, bytes)| (envelope.rcpts, bytes))
        .collect())
}
