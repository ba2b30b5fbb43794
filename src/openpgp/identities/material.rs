//! Key material of identities: making a key, encrypting and decrypting its
//! secret parts under the store's passphrase, the user IDs an identity
//! carries, adding one, revoking. CPU work; callers run it in
//! `spawn_blocking`.

use sequoia_openpgp::cert::{CertBuilder, CipherSuite};
use sequoia_openpgp::crypto::{Password, S2K};
use sequoia_openpgp::packet::key::{SecretParts, UnspecifiedRole};
use sequoia_openpgp::packet::signature::SignatureBuilder;
use sequoia_openpgp::packet::{Key, UserID};
use sequoia_openpgp::parse::Parse;
use sequoia_openpgp::policy::StandardPolicy;
use sequoia_openpgp::serialize::SerializeInto;
use sequoia_openpgp::types::{
    Features, HashAlgorithm, KeyFlags, ReasonForRevocation, SignatureType, SymmetricAlgorithm,
};
use sequoia_openpgp::{Cert, Packet};

use super::{IdentityError, Uses, pgp_error};
use crate::store::Identity;

/// The user ID an identity carries for `uses`: `<address>` for mail (what
/// WKD, Autocrypt and GnuPG's `--locate-keys` look for), XEP-0373's
/// `xmpp:address` for chat.
pub(super) fn uid_for(address: &str, uses: Uses) -> String {
    match uses {
        Uses::Mail => format!("<{address}>"),
        Uses::Chat => format!("xmpp:{address}"),
    }
}

/// Whether `cert` carries the user ID for `uses`.
pub(super) fn has_uid(cert: &Cert, address: &str, uses: Uses) -> bool {
    let uid = uid_for(address, uses);
    cert.userids().any(|u| u.userid().value() == uid.as_bytes())
}

/// `secret` serialized as a TSK with every secret part encrypted under
/// `passphrase`.
pub(super) fn lock_cert(secret: Cert, passphrase: &Password) -> Result<Vec<u8>, IdentityError> {
    let locked = map_secrets(secret, |k| lock(k, passphrase))?;
    locked.as_tsk().to_vec().map_err(pgp_error)
}

/// The certificate of a stored identity, checked to be `address`'s: one of
/// its user IDs names it (for mail or chat), and the fingerprint matches.
pub(super) fn stored_cert(id: &Identity, address: &str) -> Result<Cert, IdentityError> {
    let corrupt = |why: String| IdentityError::Corrupt {
        jid: address.to_owned(),
        why,
    };
    let cert = Cert::from_bytes(&id.tsk).map_err(|e| corrupt(e.to_string()))?;
    check_uid(&cert, address).map_err(corrupt)?;
    if cert.fingerprint().to_hex() != id.fingerprint {
        return Err(corrupt("the fingerprint does not match".into()));
    }
    Ok(cert)
}

/// Whether `cert` names `address` in a user ID sotto gives identities.
pub(super) fn check_uid(cert: &Cert, address: &str) -> Result<(), String> {
    if has_uid(cert, address, Uses::Chat) || has_uid(cert, address, Uses::Mail) {
        Ok(())
    } else {
        Err(format!("no user ID xmpp:{address} or <{address}>"))
    }
}

/// Bytes hashed by the S2K that turns the passphrase into the key that
/// encrypts secret parts on disk (iterated and salted SHA-256). Sequoia's
/// default is the largest OpenPGP allows (64 MiB, ~0.35 s per key), made
/// for passphrases people choose; this one comes from a config file, and
/// each user's key is unlocked at every restart, so 4 MiB (~20 ms).
const S2K_BYTES: u32 = 4 << 20;

/// `k` with its secret parts encrypted under `passphrase` (AES-256).
fn lock(
    k: Key<SecretParts, UnspecifiedRole>,
    passphrase: &Password,
) -> anyhow::Result<Key<SecretParts, UnspecifiedRole>> {
    let s2k = S2K::new_iterated(HashAlgorithm::SHA256, S2K_BYTES)?;
    let (public, mut secret) = k.take_secret();
    secret.encrypt_in_place_with(&public, s2k, SymmetricAlgorithm::AES256, None, passphrase)?;
    Ok(public.add_secret(secret).0)
}

/// `cert` with its secret parts decrypted with `passphrase`.
pub(super) fn unlock(cert: Cert, jid: &str, passphrase: &Password) -> Result<Cert, IdentityError> {
    map_secrets(cert, |k| {
        if k.has_unencrypted_secret() {
            Ok(k)
        } else {
            k.decrypt_secret(passphrase)
        }
    })
    .map_err(|_| IdentityError::WrongPassphrase {
        jid: jid.to_owned(),
    })
}

/// Applies `op` to every secret key packet of `cert`.
fn map_secrets(
    cert: Cert,
    op: impl Fn(Key<SecretParts, UnspecifiedRole>) -> anyhow::Result<Key<SecretParts, UnspecifiedRole>>,
) -> Result<Cert, IdentityError> {
    let mut packets = Vec::new();
    for packet in cert.into_tsk().into_packets() {
        packets.push(match packet {
            Packet::SecretKey(k) => Packet::SecretKey(
                op(k.role_into_unspecified())
                    .map_err(pgp_error)?
                    .role_into_primary(),
            ),
            Packet::SecretSubkey(k) => Packet::SecretSubkey(
                op(k.role_into_unspecified())
                    .map_err(pgp_error)?
                    .role_into_subordinate(),
            ),
            other => other,
        });
    }
    Cert::from_packets(packets.into_iter()).map_err(pgp_error)
}

/// A new key for `address` with the user ID for `uses`, secret parts
/// unencrypted: Ed25519 primary (certify, sign), Curve25519 encryption
/// subkey, no expiry, SEIPDv1 only (what GnuPG 2.2 and every Autocrypt
/// client read).
pub(super) fn generate(address: &str, uses: Uses) -> Result<Cert, IdentityError> {
    let (cert, _revocation) = CertBuilder::new()
        .set_cipher_suite(CipherSuite::Cv25519)
        .set_primary_key_flags(KeyFlags::empty().set_certification().set_signing())
        .add_subkey(
            KeyFlags::empty()
                .set_transport_encryption()
                .set_storage_encryption(),
            None,
            None,
        )
        .add_userid(uid_for(address, uses))
        .set_features(Features::empty().set_seipdv1())
        .map_err(pgp_error)?
        .generate()
        .map_err(pgp_error)?;
    Ok(cert)
}

/// The primary key's signer of an unlocked `secret`.
fn primary_signer(secret: &Cert) -> Result<sequoia_openpgp::crypto::KeyPair, IdentityError> {
    secret
        .primary_key()
        .key()
        .clone()
        .parts_into_secret()
        .and_then(|k| k.into_keypair())
        .map_err(pgp_error)
}

/// `secret` (unlocked) with the user ID for `uses` added, bound by a
/// positive certification that keeps the existing binding's preferences.
pub(super) fn add_uid(secret: Cert, address: &str, uses: Uses) -> Result<Cert, IdentityError> {
    let policy = StandardPolicy::new();
    let template = secret
        .with_policy(&policy, None)
        .and_then(|vc| vc.primary_userid().map(|u| u.binding_signature().clone()))
        .map_err(pgp_error)?;
    let mut signer = primary_signer(&secret)?;
    let uid = UserID::from(uid_for(address, uses));
    let builder = SignatureBuilder::from(template)
        .set_type(SignatureType::PositiveCertification)
        .set_primary_userid(false)
        .map_err(pgp_error)?;
    let binding = uid.bind(&mut signer, &secret, builder).map_err(pgp_error)?;
    let (cert, _) = secret
        .insert_packets([Packet::from(uid), Packet::from(binding)])
        .map_err(pgp_error)?;
    Ok(cert)
}

/// `secret` (unlocked) with a revocation of its primary key ("retired"):
/// what is published in its place once the identity is revoked.
pub(super) fn revoke(secret: Cert) -> Result<Cert, IdentityError> {
    let mut signer = primary_signer(&secret)?;
    let revocation = secret
        .revoke(
            &mut signer,
            ReasonForRevocation::KeyRetired,
            b"revoked by the organisation's sotto",
        )
        .map_err(pgp_error)?;
    let (cert, _) = secret
        .insert_packets([Packet::from(revocation)])
        .map_err(pgp_error)?;
    Ok(cert)
}
