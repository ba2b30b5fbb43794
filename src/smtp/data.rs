//! DATA: read the message to its real end, hand it to the target, and answer
//! with what the target said — once, or once per recipient in LMTP.

use super::session::Stop;
use super::wire::{DataError, DataReader};
use super::{Protocol, Session};
use crate::envelope::domain_of;
use crate::relay::{Target, Transaction};
use crate::reply::Reply;

impl<T: Target> Session<T> {
    pub(super) async fn data(&mut self) -> Result<(), Stop> {
        match &self.tx {
            None => {
                self.error(Reply::new(503, "5.5.1", "Need MAIL and RCPT before DATA"));
                return Ok(());
            }
            Some(tx) if tx.envelope.rcpts.is_empty() => {
                self.error(Reply::new(554, "5.5.1", "No valid recipients"));
                return Ok(());
            }
            Some(_) => {}
        }
        self.reply(Reply::new(354, "2.0.0", "End data with <CR><LF>.<CR><LF>"));
        let mut reader = DataReader::new(self.shared.max_message_size);
        let deadline = tokio::time::Instant::now() + self.shared.data_timeout;
        loop {
            let (used, done) = reader.feed(&self.rbuf);
            self.rbuf.drain(..used);
            if done {
                break;
            }
            // A transaction is open: shutdown waits for it.
            self.fill(deadline, false).await?;
        }
        let Some(tx) = self.tx.take() else {
            return Ok(());
        };
        let rcpts = tx.envelope.rcpts.len();
        let lmtp = self.protocol == Protocol::Lmtp;
        let (size, replies) = match reader.finish() {
            Ok(message) => {
                let size = message.len();
                let replies = if lmtp {
                    tx.target.commit_each(message, rcpts).await
                } else {
                    vec![tx.target.commit(message).await]
                };
                (size, replies)
            }
            Err(e) => {
                tx.target.abort().await;
                let reply = match e {
                    DataError::BareNewline => Reply::new(
                        550,
                        "5.6.0",
                        "Message refused: bare CR or LF found; lines must end with CRLF",
                    ),
                    DataError::TooBig => Reply::new(
                        552,
                        "5.3.4",
                        format!(
                            "Message size exceeds the limit of {} bytes",
                            self.shared.max_message_size
                        ),
                    ),
                };
                (0, vec![reply; if lmtp { rcpts } else { 1 }])
            }
        };
        self.tx_count += 1;
        let mut domains: Vec<String> = tx.envelope.rcpts.iter().map(|r| domain_of(r)).collect();
        domains.sort();
        domains.dedup();
        let mut codes: Vec<String> = replies
            .iter()
            .map(|r| format!("{} {}", r.code, r.status))
            .collect();
        codes.dedup();
        tracing::info!(
            event = "message",
            tx = self.tx_count,
            size,
            rcpts,
            domains = %domains.join(","),
            replies = %codes.join(","),
            ms = tx.started.elapsed().as_millis() as u64,
        );
        let outcome = if replies.iter().all(Reply::is_positive) {
            "accepted"
        } else if replies.iter().any(Reply::is_positive) {
            "partial"
        } else if replies.iter().all(Reply::is_transient) {
            "temporary"
        } else {
            "permanent"
        };
        metrics::counter!("sotto_messages_total", "channel" => "smtp", "outcome" => outcome)
            .increment(1);
        metrics::histogram!("sotto_message_duration_seconds", "channel" => "smtp")
            .record(tx.started.elapsed().as_secs_f64());
        for reply in replies {
            self.reply(reply);
        }
        Ok(())
    }
}
