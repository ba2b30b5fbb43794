//! The envelope of one message: who sent it, to whom, and with which
//! SMTP extensions the sender asked for.

/// The reverse path and the MAIL parameters sotto passes on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailFrom {
    /// The reverse path without angle brackets; empty for the null sender `<>`.
    pub address: String,
    /// `BODY=8BITMIME` was given.
    pub body_8bit: bool,
    /// `SMTPUTF8` was given.
    pub smtputf8: bool,
    /// `SIZE=` the client declared, if any.
    pub size: Option<usize>,
    /// The client takes one reply per recipient after DATA (LMTP).
    pub per_recipient: bool,
}

/// A transaction's envelope as relayed upstream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Envelope {
    pub from: MailFrom,
    /// Recipients accepted so far, in order.
    pub rcpts: Vec<String>,
}

/// The domain of an address, lower-cased, for logs (never the local part).
pub fn domain_of(address: &str) -> String {
    match address.rsplit_once('@') {
        Some((_, d)) => d.to_ascii_lowercase(),
        None => String::from("-"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn domain_only() {
        assert_eq!(super::domain_of("Bob@Example.ORG"), "example.org");
        assert_eq!(super::domain_of("postmaster"), "-");
    }
}
