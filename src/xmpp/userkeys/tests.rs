use std::os::unix::fs::PermissionsExt;

use sequoia_openpgp::policy::StandardPolicy;
use sequoia_openpgp::types::PublicKeyAlgorithm;

use super::*;

const P: &StandardPolicy<'static> = &StandardPolicy::new();

fn files(dir: &Path) -> Vec<PathBuf> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect()
}

#[tokio::test]
async fn made_once_stored_encrypted_and_reloaded() {
    let dir = tempfile::tempdir().unwrap();
    let keys = UserKeys::open(dir.path().join("k"), "s3cret".into()).unwrap();
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
    assert!(crate::crypt::signing_keypair(a.secret(), P).is_ok());

    // On disk: one armoured TSK, mode 0600, every secret encrypted.
    let on_disk = files(keys.dir());
    assert_eq!(on_disk.len(), 1, "{on_disk:?}");
    let mode = fs::metadata(&on_disk[0]).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let text = fs::read_to_string(&on_disk[0]).unwrap();
    assert!(
        text.starts_with("-----BEGIN PGP PRIVATE KEY BLOCK-----"),
        "{:.80}",
        text
    );
    let stored = Cert::from_bytes(text.as_bytes()).unwrap();
    assert_eq!(stored.keys().count(), 2);
    for ka in stored.keys() {
        let key = ka.key().clone().parts_into_secret().expect("secret stored");
        assert!(!key.has_unencrypted_secret());
        assert!(key.secret().is_encrypted());
    }
    assert_eq!(
        keys.list().unwrap(),
        [("alice@example.org".into(), a.fingerprint())]
    );

    // A restart: same key from disk; the wrong passphrase is refused and
    // does not replace the key.
    let keys2 = UserKeys::open(dir.path().join("k"), "s3cret".into()).unwrap();
    let public = keys2.public_cert("alice@example.org").unwrap().unwrap();
    assert_eq!(public.fingerprint(), a.fingerprint());
    assert!(!public.is_tsk());
    let b = keys2.get("alice@example.org").await.unwrap().unwrap();
    assert_eq!(b.fingerprint(), a.fingerprint());
    assert!(crate::crypt::signing_keypair(b.secret(), P).is_ok());

    let wrong = UserKeys::open(dir.path().join("k"), "guess".into()).unwrap();
    let err = wrong.get_or_create("alice@example.org").await.unwrap_err();
    assert!(matches!(err, UserKeyError::WrongPassphrase { .. }), "{err}");
    assert!(err.to_string().contains("passphrase"), "{err}");
    assert_eq!(fs::read_to_string(&on_disk[0]).unwrap(), text);
}

#[tokio::test]
async fn racing_callers_get_one_key() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Arc::new(UserKeys::open(dir.path(), "pw".into()).unwrap());
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let keys = keys.clone();
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
    assert_eq!(fprs.len(), 1);
    assert_eq!(files(dir.path()).len(), 1);

    // Two directories' worth of callers (two processes) on one dir: the
    // first file stored wins for both.
    let other = UserKeys::open(dir.path(), "pw".into()).unwrap();
    assert_eq!(
        other
            .get_or_create("bob@example.org")
            .await
            .unwrap()
            .fingerprint(),
        fprs[0]
    );
}

#[tokio::test]
async fn jids_cannot_name_paths() {
    let dir = tempfile::tempdir().unwrap();
    let inner = dir.path().join("keys");
    let keys = UserKeys::open(&inner, "pw".into()).unwrap();
    for bad in ["", " ", "../../evil@x", "a@b/res", "a b@c", "a\0@b"] {
        assert!(
            matches!(keys.get_or_create(bad).await, Err(UserKeyError::BadJid(_))),
            "{bad:?}"
        );
    }
    let odd = keys.get_or_create("..@..").await.unwrap();
    assert_eq!(odd.jid(), "..@..");
    let stored = files(&inner);
    assert_eq!(stored.len(), 1);
    let name = stored[0].file_name().unwrap().to_str().unwrap().to_owned();
    assert!(name.len() == 68 && name.ends_with(".pgp"), "{name}");
    assert_eq!(files(dir.path()), [inner]);
    assert_eq!(keys.list().unwrap()[0].0, "..@..");
}

#[test]
fn passphrase_file_first_line() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    fs::write(&secret, "").unwrap();
    assert!(matches!(
        UserKeys::open_with_secret_file(dir.path().join("k"), &secret),
        Err(UserKeyError::EmptyPassphrase(_))
    ));
    fs::write(&secret, "correct horse\r\nignored\n").unwrap();
    let keys = UserKeys::open_with_secret_file(dir.path().join("k"), &secret).unwrap();
    assert_eq!(keys.passphrase, Password::from("correct horse"));
}
