//! Sequoia as a decrypting peer inside the test process: one generated
//! recipient (bob) for the property and hostile-input tests, which make
//! many round trips, too many to spawn gpg for each.
#![allow(dead_code)]

use std::sync::OnceLock;

use sequoia_openpgp as openpgp;
use sequoia_openpgp::Cert;
use sequoia_openpgp::cert::CertBuilder;
use sequoia_openpgp::crypto::SessionKey;
use sequoia_openpgp::packet::{PKESK, SKESK};
use sequoia_openpgp::parse::Parse;
use sequoia_openpgp::parse::stream::{
    DecryptionHelper, DecryptorBuilder, MessageStructure, VerificationHelper,
};
use sequoia_openpgp::policy::{Policy, StandardPolicy};
use sequoia_openpgp::types::SymmetricAlgorithm;

/// bob@example.org's key (secret parts included), made once per test binary.
pub fn bob() -> &'static Cert {
    static CERT: OnceLock<Cert> = OnceLock::new();
    CERT.get_or_init(|| {
        CertBuilder::general_purpose(Some("<bob@example.org>"))
            .generate()
            .expect("generate key")
            .0
    })
}

struct Helper<'a> {
    cert: &'a Cert,
    policy: &'a dyn Policy,
}

impl VerificationHelper for Helper<'_> {
    fn get_certs(&mut self, _: &[openpgp::KeyHandle]) -> openpgp::Result<Vec<Cert>> {
        Ok(Vec::new())
    }
    fn check(&mut self, _: MessageStructure) -> openpgp::Result<()> {
        Ok(())
    }
}

impl DecryptionHelper for Helper<'_> {
    fn decrypt(
        &mut self,
        pkesks: &[PKESK],
        _: &[SKESK],
        sym_algo: Option<SymmetricAlgorithm>,
        decrypt: &mut dyn FnMut(Option<SymmetricAlgorithm>, &SessionKey) -> bool,
    ) -> openpgp::Result<Option<Cert>> {
        for ka in self
            .cert
            .keys()
            .with_policy(self.policy, None)
            .secret()
            .for_transport_encryption()
        {
            let mut pair = ka.key().clone().into_keypair()?;
            for p in pkesks {
                if p.decrypt(&mut pair, sym_algo)
                    .is_some_and(|(algo, sk)| decrypt(algo, &sk))
                {
                    return Ok(Some(self.cert.clone()));
                }
            }
        }
        Err(anyhow::anyhow!("no key decrypts this message"))
    }
}

/// The armoured OpenPGP message of a PGP/MIME message, decrypted.
pub fn decrypt(mime: &[u8]) -> Vec<u8> {
    let armored = super::pgp::armored_part(mime);
    let policy = StandardPolicy::new();
    let helper = Helper {
        cert: bob(),
        policy: &policy,
    };
    let mut d = DecryptorBuilder::from_bytes(&armored)
        .expect("parse")
        .with_policy(&policy, None, helper)
        .expect("decrypt");
    let mut out = Vec::new();
    std::io::copy(&mut d, &mut out).expect("read plaintext");
    out
}

/// `packets` (an OpenPGP message, e.g. one gpg signed) encrypted to `to`
/// as they are, with no literal packet around them: the binary message.
/// What a signer that then encrypts does, with the signed part under the
/// test's control (to tamper with).
pub fn encrypt_as_is(packets: &[u8], to: &Cert) -> Vec<u8> {
    use sequoia_openpgp::serialize::stream::{Encryptor, Message};
    use std::io::Write as _;
    let p = StandardPolicy::new();
    let mut out = Vec::new();
    let recipients = to
        .keys()
        .with_policy(&p, None)
        .supported()
        .for_transport_encryption();
    let mut encryptor = Encryptor::for_recipients(Message::new(&mut out), recipients)
        .build()
        .expect("encryptor");
    encryptor.write_all(packets).expect("write");
    encryptor.finalize().expect("finalize");
    out
}
