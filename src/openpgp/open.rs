//! Opening: decrypting an OpenPGP message with a local identity's secret
//! key, with a verdict on its signatures against the certificates the
//! sender may have signed with, under a bound on what it decrypts to.
//! For mail (the sender a mail address, signer user IDs `<addr>`) and chat
//! (a bare JID, user IDs `xmpp:jid`) alike.

use std::io::Read;

use sequoia_openpgp as openpgp;
use sequoia_openpgp::cert::amalgamation::ValidAmalgamation;
use sequoia_openpgp::crypto::SessionKey;
use sequoia_openpgp::packet::{PKESK, SKESK};
use sequoia_openpgp::parse::Parse;
use sequoia_openpgp::parse::stream::{
    DecryptionHelper, DecryptorBuilder, MessageLayer, MessageStructure, VerificationError,
    VerificationHelper,
};
use sequoia_openpgp::policy::Policy;
use sequoia_openpgp::types::{RevocationStatus, SymmetricAlgorithm};
use sequoia_openpgp::{Cert, Fingerprint, KeyHandle};

use crate::keys::XMPP_SCHEME;

/// Who is supposed to have signed: a signature counts as theirs only if
/// the signing certificate has a valid user ID naming them.
#[derive(Debug, Clone, Copy)]
pub enum Sender<'a> {
    /// A bare JID, lower-case: user ID `xmpp:<jid>`.
    Jid(&'a str),
    /// A mail address, lower-case: user ID `<address>` or the bare address.
    Mail(&'a str),
}

/// How to open one message.
pub struct Opening<'a> {
    /// The local identity's certificate, secret parts usable.
    pub tsk: &'a Cert,
    pub sender: Sender<'a>,
    /// Certificates the sender may have signed with.
    pub sender_certs: &'a [Cert],
    /// Largest decrypted content accepted, in bytes.
    pub max_bytes: usize,
    pub policy: &'a dyn Policy,
}

/// Why a message could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The message is not encrypted at all.
    #[error("the message is not encrypted")]
    NotEncrypted,
    /// None of the identity's keys can decrypt the message.
    #[error("the message is not encrypted to this key")]
    NotForUs,
    /// The decrypted content is larger than allowed.
    #[error("the decrypted content is larger than {limit} bytes")]
    TooLarge { limit: usize },
    /// Not an OpenPGP message, or corrupt (e.g. the integrity check
    /// failed).
    #[error("OpenPGP: {0}")]
    OpenPgp(String),
}

/// What the signatures of a message came to; the best one counts.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    Unsigned,
    UnknownSigner,
    Bad,
    /// Verifies, but the certificate has no valid user ID naming the sender.
    Mismatch,
    /// Verifies with this certificate, which is the sender's.
    Good(Fingerprint),
}

/// A decrypted message and the verdict on its signatures.
pub struct Opened {
    pub plaintext: Vec<u8>,
    pub verdict: Verdict,
}

#[derive(Default)]
struct State {
    /// A PKESK or SKESK was offered (the message is encrypted).
    offered: bool,
    /// One of the user's keys opened the session key.
    decrypted: bool,
    /// `check` ran: the whole message was processed.
    checked: bool,
    encrypted: bool,
    verdict: Option<Verdict>,
}

struct Helper<'a> {
    tsk: &'a Cert,
    senders: &'a [Cert],
    sender: Sender<'a>,
    policy: &'a dyn Policy,
    state: &'a mut State,
}

impl VerificationHelper for Helper<'_> {
    fn get_certs(&mut self, _: &[KeyHandle]) -> openpgp::Result<Vec<Cert>> {
        Ok(self.senders.to_vec())
    }

    fn check(&mut self, structure: MessageStructure) -> openpgp::Result<()> {
        self.state.checked = true;
        let mut verdict = Verdict::Unsigned;
        for layer in structure.into_iter() {
            match layer {
                MessageLayer::Encryption { .. } => self.state.encrypted = true,
                MessageLayer::Compression { .. } => {}
                MessageLayer::SignatureGroup { results } => {
                    for result in results {
                        let this = match result {
                            Ok(good) => {
                                let theirs = good.ka.valid_cert().userids().any(|u| {
                                    !matches!(u.revocation_status(), RevocationStatus::Revoked(_))
                                        && names(u.userid().value(), self.sender)
                                });
                                if theirs {
                                    Verdict::Good(good.ka.cert().fingerprint())
                                } else {
                                    Verdict::Mismatch
                                }
                            }
                            Err(VerificationError::MissingKey { .. }) => Verdict::UnknownSigner,
                            Err(_) => Verdict::Bad,
                        };
                        verdict = verdict.max(this);
                    }
                }
            }
        }
        self.state.verdict = Some(verdict);
        Ok(())
    }
}

impl DecryptionHelper for Helper<'_> {
    fn decrypt(
        &mut self,
        pkesks: &[PKESK],
        skesks: &[SKESK],
        sym_algo: Option<SymmetricAlgorithm>,
        decrypt: &mut dyn FnMut(Option<SymmetricAlgorithm>, &SessionKey) -> bool,
    ) -> openpgp::Result<Option<Cert>> {
        self.state.offered = !pkesks.is_empty() || !skesks.is_empty();
        for ka in self
            .tsk
            .keys()
            .with_policy(self.policy, None)
            .secret()
            .for_transport_encryption()
            .for_storage_encryption()
        {
            let Ok(mut pair) = ka.key().clone().into_keypair() else {
                continue;
            };
            let handle = ka.key().key_handle();
            // Only PKESKs for this key, or with a hidden recipient (tried at
            // most a few times: each try is a public-key operation).
            let mut hidden = 0;
            for pkesk in pkesks {
                match pkesk.recipient() {
                    Some(r) if !handle.aliases(&r) => continue,
                    None => {
                        hidden += 1;
                        if hidden > MAX_HIDDEN_TRIES {
                            continue;
                        }
                    }
                    Some(_) => {}
                }
                if pkesk
                    .decrypt(&mut pair, sym_algo)
                    .is_some_and(|(algo, key)| decrypt(algo, &key))
                {
                    self.state.decrypted = true;
                    return Ok(Some(self.tsk.clone()));
                }
            }
        }
        Err(openpgp::Error::MissingSessionKey("no key of this identity opens it".into()).into())
    }
}

/// Whether a user ID names `sender`.
fn names(uid: &[u8], sender: Sender<'_>) -> bool {
    match sender {
        Sender::Jid(jid) => names_jid(uid, jid),
        Sender::Mail(address) => names_address(uid, address),
    }
}

/// What a user ID holds between its angle brackets (after an optional
/// name, as OpenPGP tools write addresses), or all of it (trimmed).
fn uid_inner(text: &str) -> &str {
    let text = text.trim();
    match (text.rfind('<'), text.strip_suffix('>')) {
        (Some(open), Some(rest)) => rest[open + 1..].trim(),
        _ => text,
    }
}

/// Whether a user ID is the mail address `address` (lower-case): in angle
/// brackets after an optional name (`Alice <alice@example.org>`) or alone
/// (as Autocrypt clients often write it), without regard to case.
fn names_address(uid: &[u8], address: &str) -> bool {
    uid_inner(&String::from_utf8_lossy(uid)).to_lowercase() == address
}

/// Whether a user ID is XEP-0373's `xmpp:` URI of `jid` (a lowercased
/// bare JID): `xmpp:jid` alone, as XEP-0373 and clients' key generators
/// write it, or in angle brackets after an optional name, as OpenPGP tools
/// write addresses; the scheme and the JID compared without regard to case.
fn names_jid(uid: &[u8], jid: &str) -> bool {
    let text = String::from_utf8_lossy(uid);
    let inner = uid_inner(&text);
    inner
        .get(..XMPP_SCHEME.len())
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case(XMPP_SCHEME))
        && inner[XMPP_SCHEME.len()..].trim().to_lowercase() == jid
}

/// PKESKs with a hidden recipient tried per key: a real message hides few
/// recipients; a hostile one may hide thousands to cost CPU.
const MAX_HIDDEN_TRIES: usize = 8;

/// Decrypts the binary OpenPGP message `message` with `how.tsk`, checking
/// signatures against `how.sender_certs`, reading at most `how.max_bytes`
/// (armoured input is read too).
///
/// # Security
/// Memory is bounded by about twice `max_bytes` whatever the message
/// claims (compression included): sequoia buffers at most that much to
/// verify before releasing data, and reading stops one byte past the limit.
/// A message that is not encrypted is refused even if its signature is good.
pub fn open(message: &[u8], how: &Opening<'_>) -> Result<Opened, OpenError> {
    let mut state = State::default();
    let result = open_with(message, how, &mut state);
    if !state.decrypted {
        return Err(if state.offered {
            OpenError::NotForUs
        } else if result.is_ok() || state.checked {
            OpenError::NotEncrypted
        } else {
            result.err().unwrap_or(OpenError::NotEncrypted)
        });
    }
    let plaintext = result?;
    if !state.checked || !state.encrypted {
        return Err(OpenError::OpenPgp("the message ended early".into()));
    }
    Ok(Opened {
        plaintext,
        verdict: state.verdict.unwrap_or(Verdict::Unsigned),
    })
}

fn open_with(message: &[u8], how: &Opening<'_>, state: &mut State) -> Result<Vec<u8>, OpenError> {
    let helper = Helper {
        tsk: how.tsk,
        senders: how.sender_certs,
        sender: how.sender,
        policy: how.policy,
        state,
    };
    let pgp_error = |e: anyhow::Error| OpenError::OpenPgp(e.to_string());
    let decryptor = DecryptorBuilder::from_bytes(message)
        .map_err(pgp_error)?
        .buffer_size(how.max_bytes.saturating_add(1))
        .with_policy(how.policy, None, helper)
        .map_err(pgp_error)?;
    let limit = how.max_bytes;
    let mut plaintext = Vec::with_capacity(message.len().min(limit));
    decryptor
        .take(limit as u64 + 1)
        .read_to_end(&mut plaintext)
        .map_err(|e| OpenError::OpenPgp(e.to_string()))?;
    if plaintext.len() > limit {
        return Err(OpenError::TooLarge { limit });
    }
    Ok(plaintext)
}

/// Whether the binary message `message` names one of `tsk`'s keys (or hides
/// its recipients) in a PKESK: read from its first packets, without any
/// public-key work.
/// Whether `message` (armoured or binary) is an encrypted OpenPGP message:
/// it starts with key packets (PKESK or SKESK) followed by encrypted data.
pub fn is_encrypted(message: &[u8]) -> bool {
    use openpgp::Packet;
    use openpgp::parse::{PacketParser, PacketParserResult};
    let Ok(mut ppr) = PacketParser::from_bytes(message) else {
        return false;
    };
    let mut keys = false;
    while let PacketParserResult::Some(pp) = ppr {
        match &pp.packet {
            Packet::PKESK(_) | Packet::SKESK(_) => keys = true,
            Packet::SEIP(_) => return keys,
            _ => return false,
        }
        ppr = match pp.next() {
            Ok((_, next)) => next,
            Err(_) => return false,
        };
    }
    false
}

pub fn addressed_to(message: &[u8], tsk: &Cert) -> bool {
    use openpgp::Packet;
    use openpgp::parse::{PacketParser, PacketParserResult};
    let mine: Vec<KeyHandle> = tsk.keys().map(|k| k.key().key_handle()).collect();
    let Ok(mut ppr) = PacketParser::from_bytes(message) else {
        return false;
    };
    while let PacketParserResult::Some(pp) = ppr {
        match &pp.packet {
            Packet::PKESK(p) => match p.recipient() {
                None => return true,
                Some(r) if mine.iter().any(|m| m.aliases(&r)) => return true,
                Some(_) => {}
            },
            Packet::SKESK(_) => {}
            _ => return false,
        }
        ppr = match pp.next() {
            Ok((_, next)) => next,
            Err(_) => return false,
        };
    }
    false
}
