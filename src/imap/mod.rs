//! The IMAP proxy: sotto between mail clients and the
//! provider's IMAP server, so that the mailbox holds ciphertext while
//! clients read plain. Framing and parsing with imap-codec; messages pass
//! through as the peer sent them unless sotto must change them.
//!
//! Done in this slice: clients over plain TCP, STARTTLS or implicit TLS,
//! the server over verified implicit TLS or plain on loopback, capabilities
//! sotto cannot keep correct removed ([`capabilities`]), the user taken
//! from LOGIN or AUTHENTICATE PLAIN, APPEND of a message that is not
//! already encrypted stored encrypted to the user's identity ([`stored`];
//! the whole message as the payload, so it comes back byte for byte), and
//! FETCH of content items answered from the opened message ([`fetch`],
//! computed by [`view`]). Not yet: STARTTLS to the server, SEARCH inside
//! encrypted mail (see the README).

pub mod capabilities;
pub mod fetch;
pub mod framing;
pub mod login;
pub mod proxy;
pub mod stored;
pub mod view;
