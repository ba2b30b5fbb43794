//! The IMAP proxy (first slice): sotto between mail clients and the
//! provider's IMAP server, so that the mailbox holds ciphertext while
//! clients read plain. Framing and parsing with imap-codec; messages pass
//! through as the peer sent them unless sotto must change them.
//!
//! Done in this slice: clients over plain TCP, STARTTLS or implicit TLS,
//! the server over verified implicit TLS or plain on loopback, capabilities
//! sotto cannot keep correct removed ([`capabilities`]), the user taken
//! from LOGIN or AUTHENTICATE PLAIN, APPEND of a message that is not
//! already encrypted stored encrypted to the user's identity (the whole
//! message as the payload, so it comes back byte for byte), and FETCH of
//! `BODY[]`/`BODY.PEEK[]`/`RFC822` of a message encrypted to the user
//! answered with the plaintext (`RFC822.SIZE` in the same answer fixed).
//! Not yet: STARTTLS to the server, sections, BODYSTRUCTURE, ENVELOPE, SEARCH
//! inside encrypted mail (see the README).

pub mod capabilities;
pub mod proxy;
