//! EHLO, HELO and LHLO: the greeting and the extensions sotto offers.

use super::{Protocol, Session};
use crate::relay::Target;
use crate::reply::Reply;

impl<T: Target> Session<T> {
    pub(super) fn ehlo(&mut self, host: String, extended: bool) {
        if self.protocol == Protocol::Lmtp {
            self.error(Reply::new(500, "5.5.1", "This is an LMTP server; use LHLO"));
            return;
        }
        self.greet(host, extended);
    }

    pub(super) fn lhlo(&mut self, host: String) {
        if self.protocol == Protocol::Smtp {
            self.error(Reply::new(500, "5.5.1", "This is an SMTP server; use EHLO"));
            return;
        }
        self.greet(host, true);
    }

    /// A new greeting resets any transaction (RFC 5321 4.1.4).
    fn greet(&mut self, host: String, extended: bool) {
        if let Some(tx) = self.tx.take() {
            // Aborting needs the target; do it without blocking the reply.
            tokio::spawn(crate::relay::Transaction::abort(tx.target));
        }
        self.helo = Some(host);
        if !extended {
            self.reply(Reply::new(250, "", self.shared.hostname.clone()));
            return;
        }
        let mut lines = vec![self.shared.hostname.clone()];
        lines.push("PIPELINING".into());
        lines.push(format!("SIZE {}", self.shared.max_message_size));
        lines.push("8BITMIME".into());
        lines.push("SMTPUTF8".into());
        lines.push("ENHANCEDSTATUSCODES".into());
        if self.shared.tls.is_some() && !self.tls {
            lines.push("STARTTLS".into());
        }
        if self.auth_offered() {
            lines.push("AUTH PLAIN LOGIN".into());
        }
        self.reply(Reply::new(250, "", lines.join("\n")));
    }
}
