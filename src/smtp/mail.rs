//! MAIL and RCPT: the envelope. Each is passed to the target at once, so the
//! client hears the upstream's own answer for the sender and each recipient.

use std::time::Instant;

use smtp_proto::{
    MAIL_BODY_8BITMIME, MAIL_BODY_BINARYMIME, MAIL_SMTPUTF8, MailFrom as ProtoMailFrom, RcptTo,
};

use super::Session;
use super::session::Tx;
use crate::envelope::{Envelope, MailFrom};
use crate::relay::{Target, Transaction};
use crate::reply::Reply;

impl<T: Target> Session<T> {
    pub(super) async fn mail(&mut self, from: ProtoMailFrom<String>) {
        if self.helo.is_none() {
            return self.error(Reply::new(503, "5.5.1", "Send EHLO first"));
        }
        if self.tx.is_some() {
            return self.error(Reply::new(503, "5.5.1", "Nested MAIL command"));
        }
        if self.shared.require_tls && !self.tls {
            return self.error(Reply::new(
                530,
                "5.7.0",
                "Must issue a STARTTLS command first",
            ));
        }
        if self.shared.auth_required && self.user.is_none() {
            return self.error(Reply::new(530, "5.7.0", "Authentication required"));
        }
        if from.flags & MAIL_BODY_BINARYMIME != 0 {
            return self.error(Reply::new(555, "5.5.4", "BODY=BINARYMIME is not supported"));
        }
        if from.size > self.shared.max_message_size {
            return self.reply(Reply::new(
                552,
                "5.3.4",
                format!(
                    "Message size exceeds the limit of {} bytes",
                    self.shared.max_message_size
                ),
            ));
        }
        let smtputf8 = from.flags & MAIL_SMTPUTF8 != 0;
        if !smtputf8 && !from.address.is_ascii() {
            return self.error(Reply::new(
                553,
                "5.6.7",
                "Non-ASCII sender address needs SMTPUTF8",
            ));
        }
        let mail = MailFrom {
            address: from.address,
            body_8bit: from.flags & MAIL_BODY_8BITMIME != 0,
            smtputf8,
            size: (from.size > 0).then_some(from.size),
            per_recipient: self.protocol == super::Protocol::Lmtp,
        };
        match self.shared.target.begin(&mail).await {
            Ok(target) => {
                let envelope = Envelope {
                    from: mail,
                    rcpts: Vec::new(),
                };
                self.tx = Some(Tx {
                    started: Instant::now(),
                    envelope,
                    target,
                });
                self.reply(Reply::new(250, "2.1.0", "Sender ok"));
            }
            Err(reply) => {
                tracing::info!(event = "mail_refused", code = reply.code, status = %reply.status);
                self.reply(reply);
            }
        }
    }

    pub(super) async fn rcpt(&mut self, to: RcptTo<String>) {
        let max = self.shared.max_recipients;
        let Some(tx) = self.tx.as_mut() else {
            return self.error(Reply::new(503, "5.5.1", "Need MAIL before RCPT"));
        };
        if to.address.is_empty() {
            return self.error(Reply::new(501, "5.1.3", "Null recipient is not allowed"));
        }
        if !tx.envelope.from.smtputf8 && !to.address.is_ascii() {
            return self.error(Reply::new(
                553,
                "5.6.7",
                "Non-ASCII recipient address needs SMTPUTF8",
            ));
        }
        if tx.envelope.rcpts.len() >= max {
            return self.reply(Reply::new(
                452,
                "4.5.3",
                format!("Too many recipients (at most {max} per message)"),
            ));
        }
        let reply = tx.target.add_rcpt(&to.address).await;
        if reply.is_positive() {
            tx.envelope.rcpts.push(to.address);
            self.reply(Reply::new(250, "2.1.5", "Recipient ok"));
        } else {
            tracing::info!(
                event = "rcpt_refused",
                domain = %crate::envelope::domain_of(&to.address),
                code = reply.code,
                status = %reply.status,
            );
            self.reply(reply);
        }
    }
}
