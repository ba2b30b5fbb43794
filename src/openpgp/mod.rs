//! The one OpenPGP layer for mail and chat: the organisation's local
//! identities ([`identities`]), sealing (encrypt and sign, [`seal`]),
//! opening (decrypt and verify, [`open`]), and PGP/MIME with header
//! protection ([`pgpmime`]). Listeners and protocol code (`smtp`, `xmpp`,
//! the inbound path, HTTP) call it; it knows nothing of sockets, and
//! nothing here does I/O but the identities' store.

pub mod autocrypt;
pub mod identities;
pub mod open;
pub mod pgpmime;
pub mod seal;
pub mod wkd;
