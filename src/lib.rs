//! sotto: a privacy gateway for mail and chat.
//!
//! The flow, and the modules that own each step:
//! listeners ([`smtp`]) → policy → transform (encrypt, links) → [`relay`].
//! Configuration is in [`config`]; [`serve`] wires the pieces together.

pub mod admin;
pub mod config;
pub mod envelope;
pub mod imap;
pub mod inbound;
pub mod keys;
pub mod links;
pub mod mail;
pub mod openpgp;
pub mod policy;
pub mod redirect;
pub mod relay;
pub mod reply;
pub mod serve;
pub mod smtp;
pub mod store;
pub mod telemetry;
pub mod transform;
pub mod wkd;
pub mod xmpp;
