//! Sealing: encrypting (and signing) bytes to recipients' certificates,
//! binary or ASCII-armoured, and the signing key pair of a secret key.
//! Format-free: PGP/MIME ([`super::pgpmime`]) and XMPP's OpenPGP elements
//! (`crate::xmpp::ox`) wrap what this makes.

use std::io::Write;

use sequoia_openpgp::Cert;
use sequoia_openpgp::cert::Preferences;
use sequoia_openpgp::cert::amalgamation::ValidAmalgamation;
use sequoia_openpgp::crypto::KeyPair;
use sequoia_openpgp::policy::Policy;
use sequoia_openpgp::serialize::stream::{Encryptor, LiteralWriter, Message, Recipient, Signer};

/// Why a message could not be encrypted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CryptError {
    #[error("no recipient has a usable encryption key")]
    NoRecipients,
    #[error("OpenPGP: {0}")]
    OpenPgp(String),
}

impl From<sequoia_openpgp::Error> for CryptError {
    fn from(e: sequoia_openpgp::Error) -> Self {
        CryptError::OpenPgp(e.to_string())
    }
}

fn pgp<T>(r: sequoia_openpgp::Result<T>) -> Result<T, CryptError> {
    r.map_err(|e| CryptError::OpenPgp(e.to_string()))
}

/// Encrypts (and optionally signs) `data` to the transport-encryption keys
/// of `certs`, ASCII-armoured (lines end in LF).
pub fn seal(
    data: &[u8],
    certs: &[Cert],
    hide: bool,
    signer: Option<KeyPair>,
    policy: &dyn Policy,
) -> Result<Vec<u8>, CryptError> {
    let binary = seal_binary(data, certs, hide, signer, policy)?;
    let mut out = Vec::with_capacity(binary.len() * 4 / 3 + 128);
    armor_into(&binary, "\n", &mut out);
    Ok(out)
}

/// ASCII armour of an OpenPGP message (RFC 9580 6.2), lines ending in
/// `eol`, appended to `out`: 64 base64 characters a line, then the CRC-24
/// footer (optional in RFC 9580, but GnuPG 2.2 misreads the end of an
/// armour without one when the base64 has no padding). Written here rather
/// than by Sequoia's streaming armourer, which cost about 5% of sotto's CPU
/// under load (perf).
pub fn armor_into(binary: &[u8], eol: &str, out: &mut Vec<u8>) {
    use base64::Engine;
    let engine = &base64::engine::general_purpose::STANDARD;
    let b64 = engine.encode(binary);
    out.extend_from_slice(b"-----BEGIN PGP MESSAGE-----");
    out.extend_from_slice(eol.as_bytes());
    out.extend_from_slice(eol.as_bytes());
    for line in b64.as_bytes().chunks(64) {
        out.extend_from_slice(line);
        out.extend_from_slice(eol.as_bytes());
    }
    out.push(b'=');
    out.extend_from_slice(engine.encode(&crc24(binary).to_be_bytes()[1..]).as_bytes());
    out.extend_from_slice(eol.as_bytes());
    out.extend_from_slice(b"-----END PGP MESSAGE-----");
    out.extend_from_slice(eol.as_bytes());
}

/// Encrypts (and optionally signs) `data` to the transport-encryption keys
/// of `certs`: the binary OpenPGP message.
pub fn seal_binary(
    data: &[u8],
    certs: &[Cert],
    hide: bool,
    signer: Option<KeyPair>,
    policy: &dyn Policy,
) -> Result<Vec<u8>, CryptError> {
    let mut recipients: Vec<Recipient<'_>> = Vec::new();
    for cert in certs {
        let vc = pgp(cert.with_policy(policy, None))?;
        for ka in vc
            .keys()
            .supported()
            .alive()
            .revoked(false)
            .for_transport_encryption()
        {
            let r: Recipient<'_> = if hide {
                Recipient::new(ka.valid_cert().features(), None, ka.key())
            } else {
                ka.into()
            };
            recipients.push(r);
        }
    }
    if recipients.is_empty() {
        return Err(CryptError::NoRecipients);
    }
    let mut sink = Vec::with_capacity(data.len() + 1024);
    let message = Message::new(&mut sink);
    let message = pgp(Encryptor::for_recipients(message, recipients).build())?;
    let message = match signer {
        Some(kp) => pgp(Signer::new(message, kp).and_then(|s| s.build()))?,
        None => message,
    };
    let mut literal = pgp(LiteralWriter::new(message).build())?;
    literal
        .write_all(data)
        .map_err(|e| CryptError::OpenPgp(e.to_string()))?;
    pgp(literal.finalize())?;
    Ok(sink)
}

/// The signing key pair of a secret key (the organisation's, or a local
/// identity's unlocked one): its usable signing-capable secret key.
pub fn signing_keypair(tsk: &Cert, policy: &dyn Policy) -> Result<KeyPair, CryptError> {
    let ka = pgp(tsk.with_policy(policy, None))?
        .keys()
        .secret()
        .supported()
        .alive()
        .revoked(false)
        .for_signing()
        .next()
        .ok_or_else(|| {
            CryptError::OpenPgp("the signing key has no usable secret signing key".into())
        })?;
    pgp(ka.key().clone().into_keypair())
}

/// CRC-24 of RFC 9580 6.1.1, table-driven.
fn crc24(data: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut t = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut crc = (i as u32) << 16;
            let mut bit = 0;
            while bit < 8 {
                crc <<= 1;
                if crc & 0x100_0000 != 0 {
                    crc ^= 0x186_4CFB;
                }
                bit += 1;
            }
            t[i] = crc & 0xFF_FFFF;
            i += 1;
        }
        t
    };
    let mut crc: u32 = 0xB7_04CE;
    for &b in data {
        crc = ((crc << 8) ^ TABLE[(((crc >> 16) as u8) ^ b) as usize]) & 0xFF_FFFF;
    }
    crc
}

#[cfg(test)]
mod armor_tests {
    #[test]
    fn crc24_matches_the_rfc_check_value() {
        // CRC-24/OPENPGP of "123456789".
        assert_eq!(super::crc24(b"123456789"), 0x21CF02);
    }
}
