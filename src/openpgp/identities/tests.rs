use sequoia_openpgp::parse::Parse;
use sequoia_openpgp::policy::StandardPolicy;
use sequoia_openpgp::types::PublicKeyAlgorithm;

use super::*;

const P: &StandardPolicy<'static> = &StandardPolicy::new();

#[tokio::test]
async fn made_once_stored_encrypted_and_reloaded() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Identities::open(dir.path().join("k"), "s3cret".into()).unwrap();
    assert_eq!(
        keys.get("alice@example.org")
            .await
            .unwrap()
            .map(|k| k.fingerprint()),
        None
    );
    let a = keys.get_or_create("alice@example.org").await.unwrap();
    let again = keys.get_or_create("Alice@Example.ORG").await.unwrap();
    assert!(Arc::ptr_eq(&a, &again));
    assert_eq!(a.jid(), "alice@example.org");

    // The key: Ed25519 certify+sign, Curve25519 encryption, no expiry.
    let vc = a.cert().with_policy(P, None).unwrap();
    assert_eq!(vc.primary_key().key().pk_algo(), PublicKeyAlgorithm::EdDSA);
    assert!(vc.primary_key().for_certification() && vc.primary_key().for_signing());
    assert_eq!(vc.primary_key().key_expiration_time(), None);
    let enc: Vec<_> = vc.keys().subkeys().for_transport_encryption().collect();
    assert_eq!(enc.len(), 1);
    assert_eq!(enc[0].key().pk_algo(), PublicKeyAlgorithm::ECDH);
    let uids: Vec<_> = vc.userids().map(|u| u.userid().value().to_vec()).collect();
    assert_eq!(uids, [b"xmpp:alice@example.org".to_vec()]);
    assert!(!a.cert().is_tsk(), "the public cert holds secrets");
    assert!(crate::openpgp::seal::signing_keypair(a.secret(), P).is_ok());

    // In the store: one TSK, every secret encrypted.
    let row = keys
        .store()
        .identity("alice@example.org")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.fingerprint, a.fingerprint().to_hex());
    let stored = Cert::from_bytes(&row.tsk).unwrap();
    assert_eq!(stored.keys().count(), 2);
    for ka in stored.keys() {
        let key = ka.key().clone().parts_into_secret().expect("secret stored");
        assert!(!key.has_unencrypted_secret());
        assert!(key.secret().is_encrypted());
    }
    assert_eq!(
        keys.list().await.unwrap(),
        [("alice@example.org".into(), a.fingerprint())]
    );

    // A restart: same key from the store; the wrong passphrase is refused
    // and does not replace the key.
    let keys2 = Identities::open(dir.path().join("k"), "s3cret".into()).unwrap();
    let public = keys2
        .public_cert("alice@example.org")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(public.fingerprint(), a.fingerprint());
    assert!(!public.is_tsk());
    let b = keys2.get("alice@example.org").await.unwrap().unwrap();
    assert_eq!(b.fingerprint(), a.fingerprint());
    assert!(crate::openpgp::seal::signing_keypair(b.secret(), P).is_ok());

    let wrong = Identities::open(dir.path().join("k"), "guess".into()).unwrap();
    let err = wrong.get_or_create("alice@example.org").await.unwrap_err();
    assert!(
        matches!(err, IdentityError::WrongPassphrase { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("passphrase"), "{err}");
    let after = keys
        .store()
        .identity("alice@example.org")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.tsk, row.tsk);
}

#[tokio::test]
async fn racing_callers_get_one_key() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Arc::new(Identities::open(dir.path(), "pw".into()).unwrap());
    // A second process on the same store.
    let other = Arc::new(Identities::open(dir.path(), "pw".into()).unwrap());
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let keys = if i % 2 == 0 {
                keys.clone()
            } else {
                other.clone()
            };
            tokio::spawn(async move {
                keys.get_or_create("bob@example.org")
                    .await
                    .unwrap()
                    .fingerprint()
            })
        })
        .collect();
    let mut fprs = Vec::new();
    for t in tasks {
        fprs.push(t.await.unwrap());
    }
    fprs.dedup();
    assert_eq!(fprs.len(), 1, "{fprs:?}");
    assert_eq!(keys.list().await.unwrap().len(), 1);
}

#[tokio::test]
async fn rotation_and_revocation_reach_other_processes() {
    let dir = tempfile::tempdir().unwrap();
    let a = Arc::new(Identities::open(dir.path(), "pw".into()).unwrap());
    let b = Identities::open(dir.path(), "pw".into()).unwrap();
    let first = a.get_or_create("carol@example.org").await.unwrap();
    let rotated = b.rotate("carol@example.org").await.unwrap();
    assert_ne!(rotated.fingerprint(), first.fingerprint());
    // a's cache still has the old key until it learns of the change.
    let cached = a.get_or_create("carol@example.org").await.unwrap();
    assert_eq!(cached.fingerprint(), first.fingerprint());
    let changed = a.store().identities_changed_since(0).await.unwrap();
    for (jid, generation) in changed {
        a.invalidate_older(&jid, generation);
    }
    let now = a.get_or_create("carol@example.org").await.unwrap();
    assert_eq!(now.fingerprint(), rotated.fingerprint());

    // Revoked: no longer used; the next need makes a new key.
    assert!(
        b.store()
            .revoke_identity("carol@example.org")
            .await
            .unwrap()
    );
    b.forget("carol@example.org");
    assert!(b.get("carol@example.org").await.unwrap().is_none());
    assert!(b.public_cert("carol@example.org").await.unwrap().is_none());
    let fresh = b.get_or_create("carol@example.org").await.unwrap();
    assert_ne!(fresh.fingerprint(), rotated.fingerprint());
    let row = b
        .store()
        .identity("carol@example.org")
        .await
        .unwrap()
        .unwrap();
    assert!(row.revoked.is_none());
    assert_eq!(row.fingerprint, fresh.fingerprint().to_hex());
}

#[tokio::test]
async fn bad_jids_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Identities::open(dir.path(), "pw".into()).unwrap();
    for bad in ["", " ", "a@b/res", "a b@c", "a\0@b"] {
        assert!(
            matches!(keys.get_or_create(bad).await, Err(IdentityError::BadJid(_))),
            "{bad:?}"
        );
    }
    let odd = keys.get_or_create("..@..").await.unwrap();
    assert_eq!(odd.jid(), "..@..");
    assert_eq!(keys.list().await.unwrap()[0].0, "..@..");
}

#[test]
fn passphrase_file_first_line() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "").unwrap();
    assert!(matches!(
        read_passphrase(&secret),
        Err(IdentityError::EmptyPassphrase(_))
    ));
    std::fs::write(&secret, "correct horse\r\nignored\n").unwrap();
    assert_eq!(
        read_passphrase(&secret).unwrap(),
        Password::from("correct horse")
    );
}

fn uids(cert: &Cert) -> Vec<String> {
    let mut u: Vec<String> = cert
        .userids()
        .map(|u| String::from_utf8_lossy(u.userid().value()).into_owned())
        .collect();
    u.sort();
    u
}

#[tokio::test]
async fn one_key_for_mail_and_chat_with_both_user_ids() {
    let dir = tempfile::tempdir().unwrap();
    let ids = Identities::open(dir.path().join("k"), "s3cret".into()).unwrap();
    let mail = ids
        .get_or_create_for("dora@example.org", Uses::Mail)
        .await
        .unwrap();
    assert_eq!(uids(mail.cert()), ["<dora@example.org>"]);
    // The same person chats: same key, the xmpp: user ID added and stored.
    let chat = ids.get_or_create("dora@example.org").await.unwrap();
    assert_eq!(chat.fingerprint(), mail.fingerprint());
    assert_eq!(
        uids(chat.cert()),
        ["<dora@example.org>", "xmpp:dora@example.org"]
    );
    let vc = chat.cert().with_policy(P, None).unwrap();
    assert_eq!(vc.userids().count(), 2, "both user IDs valid");
    // Another process reads the key with both.
    let other = Identities::open(dir.path().join("k"), "s3cret".into()).unwrap();
    let again = other
        .get_or_create_for("dora@example.org", Uses::Mail)
        .await
        .unwrap();
    assert_eq!(again.fingerprint(), mail.fingerprint());
    assert_eq!(uids(again.cert()).len(), 2);
}

#[tokio::test]
async fn revoked_keys_stay_published_with_their_revocation() {
    use sequoia_openpgp::types::RevocationStatus;
    let dir = tempfile::tempdir().unwrap();
    let ids = Identities::open(dir.path().join("k"), "s3cret".into()).unwrap();
    let old = ids
        .get_or_create_for("erin@example.org", Uses::Mail)
        .await
        .unwrap();
    assert!(ids.revoke("erin@example.org").await.unwrap());
    assert!(!ids.revoke("erin@example.org").await.unwrap(), "once");
    let published = ids.published("erin@example.org").await.unwrap().unwrap();
    assert_eq!(published.fingerprint(), old.fingerprint());
    assert!(!published.is_tsk());
    assert!(matches!(
        published.revocation_status(P, None),
        RevocationStatus::Revoked(_)
    ));
    assert!(ids.public_cert("erin@example.org").await.unwrap().is_none());
    // The next need makes a new key.
    let new = ids
        .get_or_create_for("erin@example.org", Uses::Mail)
        .await
        .unwrap();
    assert_ne!(new.fingerprint(), old.fingerprint());
}

#[tokio::test]
async fn an_own_key_is_published_and_never_unlocked() {
    let dir = tempfile::tempdir().unwrap();
    let ids = Identities::open(dir.path().join("k"), "s3cret".into()).unwrap();
    let (own, _) = sequoia_openpgp::cert::CertBuilder::general_purpose(Some("<fay@example.org>"))
        .generate()
        .unwrap();
    ids.register_own("fay@example.org", &own).await.unwrap();
    let published = ids.published("fay@example.org").await.unwrap().unwrap();
    assert_eq!(published.fingerprint(), own.fingerprint());
    assert!(!published.is_tsk(), "only the public part is kept");
    let err = ids
        .get_or_create_for("fay@example.org", Uses::Mail)
        .await
        .unwrap_err();
    assert!(matches!(err, IdentityError::OwnKey(_)), "{err}");
    // A key for someone else is refused.
    let (other, _) = sequoia_openpgp::cert::CertBuilder::general_purpose(Some("<gil@example.org>"))
        .generate()
        .unwrap();
    assert!(ids.register_own("fay@example.org", &other).await.is_err());
}
