//! A target that keeps what it is given: for `sotto transform` (which
//! prints exactly what would be relayed) and for tests of the pipeline.

use std::sync::{Arc, Mutex};

use super::{Target, Transaction};
use crate::envelope::{Envelope, MailFrom};
use crate::reply::Reply;

/// Records every committed transaction, accepting everything.
#[derive(Clone, Default)]
pub struct Capture {
    delivered: Arc<Mutex<Vec<Delivered>>>,
}

/// One committed transaction: its envelope and the message bytes.
pub type Delivered = (Envelope, Vec<u8>);

impl Capture {
    /// What has been committed so far, in order.
    pub fn delivered(&self) -> Vec<Delivered> {
        self.delivered
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

pub struct CaptureTx {
    envelope: Envelope,
    store: Capture,
}

impl Target for Capture {
    type Tx = CaptureTx;

    async fn begin(&self, from: &MailFrom) -> Result<CaptureTx, Reply> {
        Ok(CaptureTx {
            envelope: Envelope {
                from: from.clone(),
                rcpts: Vec::new(),
            },
            store: self.clone(),
        })
    }
}

impl Transaction for CaptureTx {
    async fn add_rcpt(&mut self, rcpt: &str) -> Reply {
        self.envelope.rcpts.push(rcpt.to_string());
        Reply::new(250, "2.1.5", "Recipient ok")
    }

    async fn commit(self, message: Vec<u8>) -> Reply {
        self.store
            .delivered
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((self.envelope, message));
        Reply::new(250, "2.0.0", "captured")
    }

    async fn abort(self) {}
}
