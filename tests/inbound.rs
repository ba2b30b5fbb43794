//! The inbound path with real peers: Postfix as the MX (the recipe in
//! `deploy/postfix/inbound/`) → sotto's inbound LMTP listener → Dovecot's
//! LMTP, the mailbox read back over IMAP. The correspondent is GnuPG
//! scripted: it learns alice's key from the Autocrypt header of her mail
//! out through sotto, and writes PGP/MIME and inline PGP as GnuPG makes
//! them, signed with its own key, announced in its own Autocrypt header.

mod common;

use std::process::Stdio;
use std::time::Duration;

use base64::Engine as _;
#[path = "common/mailworld.rs"]
mod mailworld;

use common::Client;
use common::pgp::{Gpg, pgp_mime, seal};
use mailworld::{MailWorld, record};
use sequoia_openpgp::parse::Parse as _;
use sotto::openpgp::autocrypt;

const POLICY: &str = "[defaults]\nencrypt = \"if-key\"\nlinks = \"keep\"\nsign = \"sender\"\n";
const BOB: &str = "bob@outside.example";

/// The mail world, and bob (GnuPG) as the correspondent.
struct World {
    mail: MailWorld,
    bob: Gpg,
}

impl std::ops::Deref for World {
    type Target = MailWorld;
    fn deref(&self) -> &MailWorld {
        &self.mail
    }
}

async fn world(policy_text: &str) -> World {
    let bob = Gpg::new();
    bob.generate(BOB, true, "1y", None);
    World {
        mail: MailWorld::start(policy_text).await,
        bob,
    }
}

impl World {
    /// bob's minimal public key as Autocrypt keydata, folded.
    fn bob_autocrypt(&self) -> String {
        let out = self
            .bob
            .cmd()
            .args(["--export", "--export-options", "export-minimal", BOB])
            .output()
            .unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(out.stdout);
        let folded: Vec<&str> = b64
            .as_bytes()
            .chunks(72)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "Autocrypt: addr={BOB}; prefer-encrypt=mutual; keydata=\r\n {}\r\n",
            folded.join("\r\n ")
        )
    }

    /// gpg --encrypt --sign --armor of `data` to `recipient`'s key, signed
    /// by `signer_uid` in `signer`'s home.
    fn seal(&self, signer: &Gpg, signer_uid: &str, recipient: &str, data: &[u8]) -> String {
        seal(signer, signer_uid, recipient, data)
    }

    /// [`seal`] by bob in `bob`'s home.
    fn sealer(bob: &Gpg) -> impl Fn(&str, &[u8]) -> String + '_ {
        move |to, data| seal(bob, BOB, to, data)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn mail_for_local_users_is_learned_from_decrypted_and_verified() {
    let w = world(POLICY).await;

    // 1. bob writes in clear with his Autocrypt header, and a forged
    // record: delivered with the forgery removed and nothing else changed.
    let first = format!(
        "From: Bob <{BOB}>\r\nTo: <alice@example.org>\r\nSubject: hello alice\r\n\
         Date: Wed, 02 Dec 2026 09:00:00 +0000\r\nMessage-ID: <m1@outside.example>\r\n{}\
         X-Sotto-Inbound: decrypted; signature=good; forged\r\n\r\nplain words 1010\r\n",
        w.bob_autocrypt()
    );
    w.mx_receives(BOB, "alice@example.org", first.as_bytes())
        .await;
    let inbox = w.inbox(1).await;
    assert!(inbox[0].contains("plain words 1010"));
    assert!(
        record(&inbox[0]).is_none(),
        "forged record stripped: {}",
        inbox[0]
    );
    assert!(inbox[0].contains("Autocrypt: addr=bob@outside.example"));

    // The store learned bob's Autocrypt state.
    let store = w.store().await;
    let peer = store
        .autocrypt_peer(BOB)
        .await
        .unwrap()
        .expect("bob learned");
    assert!(peer.prefer_mutual && peer.public_key.is_some());
    // alice got her identity when Dovecot accepted her as a recipient;
    // the MX's unknown recipients get none.
    assert!(store.identity("alice@example.org").await.unwrap().is_some());

    // 2. alice replies through sotto: bob's key is known from his header, so
    // her reply is encrypted, and carries her own Autocrypt header.
    let mut c = Client::greeted(w.running.smtp.unwrap()).await;
    let reply = c
        .send_mail(
            "alice@example.org",
            &[BOB],
            b"From: <alice@example.org>\r\nTo: <bob@outside.example>\r\nSubject: re: hello\r\n\r\nreply 2020\r\n.\r\n",
        )
        .await;
    assert!(reply.starts_with("250"), "{reply}");
    let out = &w.sink.messages()[0];
    let text = String::from_utf8_lossy(&out.data).into_owned();
    assert!(
        !text.contains("reply 2020"),
        "encrypted to bob's learned key: {text}"
    );
    let value = common::header_values(&out.data, "Autocrypt")
        .pop()
        .expect("alice's Autocrypt header");
    let alice_key = autocrypt::parse(&value, false).unwrap().keydata;
    w.bob.import(&alice_key);
    let (plain, status) = w.bob.decrypt_status(&common::pgp::armored_part(&out.data));
    assert!(
        plain.contains("reply 2020") && status.contains("GOODSIG"),
        "{status}"
    );

    // 3. bob writes PGP/MIME with protected headers, signed: alice reads the
    // real Subject and body, and the record says the signature is bob's.
    let inner = "Content-Type: text/plain; charset=utf-8; protected-headers=\"v1\"\r\n\
                 Subject: the real subject 3030\r\nFrom: Bob <bob@outside.example>\r\n\r\nsecret body 3030\r\n";
    let armored = w.seal(&w.bob, BOB, "alice@example.org", inner.as_bytes());
    let headers = format!(
        "From: Bob <{BOB}>\r\nTo: <alice@example.org>\r\nDate: Wed, 02 Dec 2026 09:30:00 +0000\r\n\
         Message-ID: <m3@outside.example>\r\n{}",
        w.bob_autocrypt()
    );
    w.mx_receives(BOB, "alice@example.org", &pgp_mime(&headers, &armored))
        .await;
    let inbox = w.inbox(2).await;
    let got = &inbox[1];
    assert!(got.contains("secret body 3030"), "{got}");
    assert!(got.contains("Subject: the real subject 3030"), "{got}");
    assert!(!got.contains("Subject: [...]"), "{got}");
    assert!(!got.contains("BEGIN PGP MESSAGE"), "{got}");
    let rec = record(got).expect("record header");
    let bob_fpr = w.bob.fingerprint(BOB);
    assert!(
        rec.starts_with("decrypted; key=")
            && rec.ends_with(&format!("signature=good; signer={bob_fpr}")),
        "{rec}"
    );

    // 4. Encrypted to someone else's key: delivered untouched.
    let carol = Gpg::new();
    carol.generate("carol@else.example", true, "1y", None);
    w.bob.import(&carol.public("carol@else.example"));
    let armored = w.seal(
        &w.bob,
        BOB,
        "carol@else.example",
        b"Content-Type: text/plain\r\n\r\nnot for alice 4040\r\n",
    );
    let headers = format!(
        "From: Bob <{BOB}>\r\nTo: <alice@example.org>\r\nMessage-ID: <m4@outside.example>\r\n"
    );
    let sent = pgp_mime(&headers, &armored);
    w.mx_receives(BOB, "alice@example.org", &sent).await;
    let inbox = w.inbox(3).await;
    assert!(record(&inbox[2]).is_none(), "{}", inbox[2]);
    assert!(
        inbox[2].contains(armored.trim_end()),
        "the ciphertext as it came"
    );

    // 5. Signed by another key that claims to be bob (mallory's): opened,
    // and the record never says good.
    let mallory = Gpg::new();
    mallory.generate(BOB, true, "1y", None);
    mallory.import(&alice_key);
    let armored = w.seal(
        &mallory,
        BOB,
        "alice@example.org",
        b"Content-Type: text/plain\r\n\r\nfrom mallory 5050\r\n",
    );
    let headers = format!(
        "From: Bob <{BOB}>\r\nTo: <alice@example.org>\r\nMessage-ID: <m5@outside.example>\r\n"
    );
    w.mx_receives(BOB, "alice@example.org", &pgp_mime(&headers, &armored))
        .await;
    let inbox = w.inbox(4).await;
    assert!(inbox[3].contains("from mallory 5050"));
    let rec = record(&inbox[3]).expect("record");
    assert!(rec.ends_with("signature=unknown-key"), "{rec}");

    // 6. Inline PGP, as GnuPG writes it into a text/plain body.
    let armored = w.seal(&w.bob, BOB, "alice@example.org", b"inline secret 6060\r\n");
    let inline = format!(
        "From: Bob <{BOB}>\r\nTo: <alice@example.org>\r\nSubject: inline\r\nMessage-ID: <m6@outside.example>\r\n\
         Content-Type: text/plain; charset=us-ascii\r\n\r\n{armored}"
    );
    w.mx_receives(BOB, "alice@example.org", inline.as_bytes())
        .await;
    let inbox = w.inbox(5).await;
    assert!(inbox[4].contains("inline secret 6060"), "{}", inbox[4]);
    assert!(record(&inbox[4]).unwrap().contains("signature=good"));

    // 7. bob's real signature over changed content (signed by gpg without
    // compression, one byte changed, then encrypted as it is): bad, never
    // good.
    let out = w.bob.piped(
        &["--sign", "--compress-algo", "none", "--local-user", BOB],
        b"Content-Type: text/plain\r\n\r\nsigned words 9090\r\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut signed = out.stdout;
    let at = signed
        .windows(4)
        .position(|x| x == b"9090")
        .expect("the signed text, uncompressed");
    signed[at + 3] = b'1';
    let alice_cert = sequoia_openpgp::Cert::from_bytes(&alice_key).unwrap();
    let binary = common::sequoia::encrypt_as_is(&signed, &alice_cert);
    let mut armored = Vec::new();
    sotto::openpgp::seal::armor_into(&binary, "\r\n", &mut armored);
    let headers = format!(
        "From: Bob <{BOB}>\r\nTo: <alice@example.org>\r\nMessage-ID: <m7@outside.example>\r\n"
    );
    w.mx_receives(
        BOB,
        "alice@example.org",
        &pgp_mime(&headers, &String::from_utf8(armored).unwrap()),
    )
    .await;
    let inbox = w.inbox(6).await;
    assert!(inbox[5].contains("signed words 9091"), "{}", inbox[5]);
    let rec = record(&inbox[5]).expect("record");
    assert!(rec.ends_with("signature=bad"), "{rec}");

    // Unknown local recipients: Dovecot refuses them (the MX bounces), and
    // no identity is made for them.
    w.mx_receives(BOB, "nobody@example.org", first.as_bytes())
        .await;
    for _ in 0..100 {
        if w.postfix.maillog().contains("nobody@example.org")
            && w.postfix.maillog().contains("status=bounced")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        w.postfix.maillog().contains("status=bounced"),
        "{}",
        w.postfix.maillog()
    );
    assert!(
        store
            .identity("nobody@example.org")
            .await
            .unwrap()
            .is_none()
    );
    w.running.shutdown();
}

/// A peer whose mail stopped carrying Autocrypt headers over 35 days ago:
/// Level 1 discourages their key; `keys lookup` says so, with where the
/// key came from and when they were last seen, and the policy decides
/// (here `stale_key = "plain"`).
#[tokio::test(flavor = "multi_thread")]
async fn a_stale_autocrypt_key_is_visible_and_the_policy_decides() {
    let w = world(&format!("{POLICY}stale_key = \"plain\"\n")).await;
    let old = format!(
        "From: Bob <{BOB}>\r\nTo: <alice@example.org>\r\nSubject: long ago\r\n\
         Date: Sat, 03 Oct 2026 09:00:00 +0000\r\nMessage-ID: <s1@outside.example>\r\n{}\r\nold 1\r\n",
        w.bob_autocrypt()
    );
    w.mx_receives(BOB, "alice@example.org", old.as_bytes())
        .await;
    w.inbox(1).await;
    let keys = sotto::keys::KeyStore::from_config(&w.mail.cfg);
    keys.set_store(
        sotto::store::Store::open(&sotto::store::Options::new(w.mail.store_url.clone()))
            .await
            .unwrap(),
    );
    let (said, found) = sotto::keys::admin::lookup(&keys, BOB).await;
    assert!(found, "{said}");
    assert!(
        said.contains("autocrypt: recommendation encrypt; key from their own Autocrypt header of 2026-10-03T09:00:00Z; last seen 2026-10-03T09:00:00Z"),
        "{said}"
    );

    // Mail from bob today without the header: the key is now stale.
    let now = format!(
        "From: Bob <{BOB}>\r\nTo: <alice@example.org>\r\nSubject: new client\r\n\
         Message-ID: <s2@outside.example>\r\n\r\nnew 2\r\n"
    );
    w.mx_receives(BOB, "alice@example.org", now.as_bytes())
        .await;
    w.inbox(2).await;
    let (said, _) = sotto::keys::admin::lookup(&keys, BOB).await;
    assert!(said.contains("autocrypt: recommendation discourage; key from their own Autocrypt header of 2026-10-03"), "{said}");

    // stale_key = "plain": alice's reply goes as if bob had no key.
    let mut c = Client::greeted(w.running.smtp.unwrap()).await;
    let reply = c
        .send_mail(
            "alice@example.org",
            &[BOB],
            b"From: <alice@example.org>\r\nTo: <bob@outside.example>\r\nSubject: re\r\n\r\nreadable 7070\r\n.\r\n",
        )
        .await;
    assert!(reply.starts_with("250"), "{reply}");
    let out = String::from_utf8_lossy(&w.sink.messages()[0].data).into_owned();
    assert!(out.contains("readable 7070"), "{out}");
    w.running.shutdown();
}

/// `sotto transform --inbound` prints what the inbound path would deliver:
/// the message GnuPG encrypted to alice's (existing) identity, opened.
#[tokio::test(flavor = "multi_thread")]
async fn transform_inbound_shows_the_delivered_message() {
    use sotto::openpgp::identities::{Identities, Uses, read_passphrase};
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("store.secret");
    std::fs::write(&secret, "preview passphrase\n").unwrap();
    let url = sotto::store::sqlite_url(&dir.path().join("sotto.db"));
    let store = sotto::store::Store::open(&sotto::store::Options::new(url.clone()))
        .await
        .unwrap();
    let ids = Identities::new(store.clone(), read_passphrase(&secret).unwrap());
    let alice = ids
        .get_or_create_for("alice@example.org", Uses::Mail)
        .await
        .unwrap();
    store.close().await;
    let bob = Gpg::new();
    bob.generate(BOB, true, "1y", None);
    let public = sequoia_openpgp::serialize::SerializeInto::to_vec(alice.cert().as_ref()).unwrap();
    bob.import(&public);
    let toml = format!(
        "[store]\nurl = {url:?}\nsecret_file = {:?}\n[identities]\ndomains = [\"example.org\"]\n\
         [keys]\nsources = [\"dir\", \"autocrypt\"]\n",
        secret.display().to_string()
    );
    let cfg_path = dir.path().join("sotto.toml");
    std::fs::write(&cfg_path, toml).unwrap();
    let w = World::sealer(&bob);
    let armored = w(
        "alice@example.org",
        b"Content-Type: text/plain; protected-headers=\"v1\"\r\nSubject: previewed 8080\r\n\r\npreview body 8080\r\n",
    );
    let msg = pgp_mime(
        &format!("From: <{BOB}>\r\nTo: <alice@example.org>\r\n"),
        &armored,
    );
    let mut child = common::sotto()
        .args(["transform", "--inbound", "--config"])
        .arg(&cfg_path)
        .args(["--from", BOB, "--to", "alice@example.org"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(&msg).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = common::output_text(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("preview body 8080") && text.contains("Subject: previewed 8080"),
        "{text}"
    );
    assert!(
        text.starts_with(&format!(
            // bob's key is unknown to sotto here: no Autocrypt header, no
            // key directory.
            "X-Sotto-Inbound: decrypted; key={}; signature=unknown-key",
            alice.fingerprint().to_hex()
        )),
        "{text}"
    );
    // Nothing was made for another local address.
    let store = sotto::store::Store::open(&sotto::store::Options::new(url))
        .await
        .unwrap();
    assert_eq!(store.list_identities().await.unwrap().len(), 1);
}
