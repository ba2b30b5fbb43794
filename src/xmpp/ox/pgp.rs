//! The OpenPGP layer under both formats: sealing bytes (through
//! [`crate::crypt::seal`]) and opening a message with a verdict on its
//! signatures, under a bound on what it decrypts to.

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

use super::{Incoming, OxError};
use crate::crypt::{seal, seal_binary, signing_keypair};
use crate::keys::XMPP_SCHEME;
use crate::xmpp::identity::bare_jid;

/// Signs `data` with `signer`'s signing key and encrypts it to every valid
/// transport-encryption key of `recipients`; armoured if `armor`, else the
/// binary OpenPGP message.
pub(super) fn seal_to(
    data: &[u8],
    recipients: &[Cert],
    signer: Option<&Cert>,
    policy: &dyn Policy,
    armor: bool,
) -> Result<Vec<u8>, OxError> {
    let keypair = signer.map(|tsk| signing_keypair(tsk, policy)).transpose()?;
    if armor {
        return Ok(seal(data, recipients, false, keypair, policy)?);
    }
    Ok(seal_binary(data, recipients, false, keypair, policy)?)
}

/// What the signatures of a message came to; the best one counts.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Verdict {
    Unsigned,
    UnknownSigner,
    Bad,
    /// Verifies, but the certificate has no valid user ID `xmpp:<sender>`.
    Mismatch,
    /// Verifies with this certificate, which is the sender's.
    Good(Fingerprint),
}

/// A decrypted message and the verdict on its signatures.
pub(super) struct Opened {
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
    /// The sender's bare JID, lowercased.
    sender: String,
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
                                        && names_jid(u.userid().value(), &self.sender)
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
        Err(openpgp::Error::MissingSessionKey("no key of this user opens it".into()).into())
    }
}

/// Whether a user ID is XEP-0373's `xmpp:` URI of `jid` (a lowercased
/// bare JID): `xmpp:jid` alone, as XEP-0373 and clients' key generators
/// write it, or in angle brackets after an optional name, as OpenPGP tools
/// write addresses; the scheme and the JID compared without regard to case.
fn names_jid(uid: &[u8], jid: &str) -> bool {
    let text = String::from_utf8_lossy(uid);
    let text = text.trim();
    let inner = match (text.rfind('<'), text.strip_suffix('>')) {
        (Some(open), Some(rest)) => &rest[open + 1..],
        _ => text,
    };
    inner
        .get(..XMPP_SCHEME.len())
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case(XMPP_SCHEME))
        && inner[XMPP_SCHEME.len()..].trim().to_lowercase() == jid
}

/// PKESKs with a hidden recipient tried per key: a real message hides few
/// recipients; a hostile one may hide thousands to cost CPU.
const MAX_HIDDEN_TRIES: usize = 8;

/// Decrypts the binary OpenPGP message `message` with `how.tsk`, checking
/// signatures against `how.sender_certs`, reading at most `how.max_bytes`.
///
/// # Security
/// Memory is bounded by about twice `max_bytes` whatever the message
/// claims (compression included): sequoia buffers at most that much to
/// verify before releasing data, and reading stops one byte past the limit.
/// A message that is not encrypted is refused even if its signature is good.
pub(super) fn open(message: &[u8], how: &Incoming<'_>) -> Result<Opened, OxError> {
    let mut state = State::default();
    let result = open_with(message, how, &mut state);
    if !state.decrypted {
        return Err(if state.offered {
            OxError::NotForUs
        } else if result.is_ok() || state.checked {
            OxError::NotEncrypted
        } else {
            result.err().unwrap_or(OxError::NotEncrypted)
        });
    }
    let plaintext = result?;
    if !state.checked || !state.encrypted {
        return Err(OxError::OpenPgp("the message ended early".into()));
    }
    Ok(Opened {
        plaintext,
        verdict: state.verdict.unwrap_or(Verdict::Unsigned),
    })
}

fn open_with(message: &[u8], how: &Incoming<'_>, state: &mut State) -> Result<Vec<u8>, OxError> {
    let helper = Helper {
        tsk: how.tsk,
        senders: how.sender_certs,
        sender: bare_jid(how.sender),
        policy: how.policy,
        state,
    };
    let pgp_error = |e: anyhow::Error| OxError::OpenPgp(e.to_string());
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
        .map_err(|e| OxError::OpenPgp(e.to_string()))?;
    if plaintext.len() > limit {
        return Err(OxError::TooLarge { limit });
    }
    Ok(plaintext)
}

/// Whether the binary message `message` names one of `tsk`'s keys (or hides
/// its recipients) in a PKESK: read from its first packets, without any
/// public-key work.
pub(super) fn addressed_to(message: &[u8], tsk: &Cert) -> bool {
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
