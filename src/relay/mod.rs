//! Delivery targets: where a transaction goes once a listener accepted it.
//!
//! A delivery is a transaction (maddy's model): [`Target::begin`] with the
//! reverse path, [`Transaction::add_rcpt`] per recipient, then
//! [`Transaction::commit`] with the message bytes or [`Transaction::abort`].
//! Each step returns the [`Reply`] the client should see, so the client's
//! transaction and the upstream's stay one and the same: sotto never says
//! "accepted" for something the upstream did not accept.
//!
//! This module knows nothing of the client side's sockets or parsing.

mod capture;
pub mod lmtp;
pub(crate) mod stream;
pub mod upstream;

use std::future::Future;

pub use capture::Capture;
pub use lmtp::Lmtp;
pub use upstream::Upstream;

use crate::envelope::MailFrom;
use crate::reply::Reply;

/// Something that can take transactions: the upstream SMTP server, or in
/// tests anything that records what it was given.
pub trait Target: Clone + Send + Sync + 'static {
    type Tx: Transaction;

    /// Starts a transaction for `from`; a refusal is the reply for MAIL.
    fn begin(&self, from: &MailFrom) -> impl Future<Output = Result<Self::Tx, Reply>> + Send;
}

/// One transaction in progress at a target.
pub trait Transaction: Send + 'static {
    /// Adds a recipient; the reply is the one for this RCPT.
    fn add_rcpt(&mut self, rcpt: &str) -> impl Future<Output = Reply> + Send;

    /// Hands over the message (unstuffed, CRLF line endings) and ends the
    /// transaction; a positive reply means the target took responsibility.
    fn commit(self, message: Vec<u8>) -> impl Future<Output = Reply> + Send;

    /// As [`Transaction::commit`], with one reply per accepted recipient, in
    /// order (LMTP). By default every recipient gets the one reply.
    fn commit_each(self, message: Vec<u8>, rcpts: usize) -> impl Future<Output = Vec<Reply>> + Send
    where
        Self: Sized,
    {
        async move {
            let reply = self.commit(message).await;
            vec![reply; rcpts]
        }
    }

    /// Ends the transaction without a message.
    fn abort(self) -> impl Future<Output = ()> + Send;
}
