//! Autocrypt with an independent implementation as the correspondent:
//! muacrypt (PyPI, Autocrypt Level 1, driven by `tests/peers/muacrypt_peer.py`)
//! is bob@outside.example; alice@example.org is behind sotto, her mail out
//! through sotto's SMTP listener to the upstream (the sink, standing for her
//! provider and bob's mailbox), her mail in through Postfix as the MX
//! (`deploy/postfix/inbound/`) → sotto's inbound LMTP → Dovecot, read back
//! over IMAP.
//!
//! The exchange the Autocrypt issue asks for: the first message in clear
//! with the Autocrypt header, every later one in both directions
//! encrypted; muacrypt verifies alice's signature; after the first message
//! the copies outside (the sink's, bob's on the wire to the MX) hold
//! neither body nor subject. muacrypt itself leaves the Subject outside
//! what it encrypts (Level 1 asks no more): bob's encrypted mail here has
//! it protected through muacrypt's own plugin hook (`--protect-subject` of
//! the peer script), which sotto's inbound path shows to alice again.
//!
//! muacrypt is missing: the test fails (`tests/run` installs it with pip).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

#[path = "common/mailworld.rs"]
mod mailworld;

use common::{Client, header_values};
use mailworld::{ALICE, MailWorld, record};
use sequoia_openpgp::Cert;
use sequoia_openpgp::parse::Parse as _;
use sotto::openpgp::autocrypt;

const POLICY: &str = "[defaults]\nencrypt = \"if-key\"\nlinks = \"keep\"\nsign = \"sender\"\n";
const BOB: &str = "bob@outside.example";

/// muacrypt with its own state directory (account, keyring, peer states).
struct Muacrypt {
    dir: tempfile::TempDir,
}

impl Muacrypt {
    /// A new muacrypt account for `email`; with its key's fingerprint.
    fn init(email: &str) -> (Muacrypt, String) {
        common::require("gpg");
        common::require_python_module("muacrypt.account", "muacrypt");
        let m = Muacrypt {
            dir: tempfile::tempdir().unwrap(),
        };
        let fpr = m.run(&["init", m.base().to_str().unwrap(), email], b"");
        let fpr = String::from_utf8(fpr).unwrap().trim().to_string();
        assert_eq!(fpr.len(), 40, "a v4 fingerprint: {fpr:?}");
        (m, fpr)
    }

    fn base(&self) -> PathBuf {
        self.dir.path().join("muacrypt")
    }

    /// `muacrypt_peer.py SUBCOMMAND BASEDIR ARGS…` with `input` on stdin;
    /// its stdout, or a panic with its stderr.
    fn run(&self, args: &[&str], input: &[u8]) -> Vec<u8> {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/muacrypt_peer.py");
        let mut child = Command::new("python3")
            .arg(script)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python3");
        use std::io::Write;
        child.stdin.take().unwrap().write_all(input).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "muacrypt_peer.py {args:?}: {}",
            common::output_text(&out)
        );
        out.stdout
    }

    fn cmd(&self, sub: &str, extra: &[&str], input: &[u8]) -> Vec<u8> {
        let base = self.base();
        let mut args = vec![sub, base.to_str().unwrap()];
        args.extend(extra);
        self.run(&args, input)
    }

    /// `process-outgoing`: the message as muacrypt sends it, CRLF.
    fn outgoing(&self, message: &str, flags: &[&str]) -> Vec<u8> {
        crlf(&self.cmd("outgoing", flags, message.as_bytes()))
    }

    /// The Autocrypt UI recommendation for `addr`.
    fn recommend(&self, addr: &str) -> String {
        String::from_utf8(self.cmd("recommend", &[addr], b""))
            .unwrap()
            .trim()
            .to_string()
    }

    /// `process-incoming`, then gpg's decryption on muacrypt's keyring.
    fn open(&self, message: &[u8]) -> serde_json::Value {
        serde_json::from_slice(&self.cmd("open", &[], message)).unwrap()
    }
}

impl Drop for Muacrypt {
    fn drop(&mut self) {
        // The gpg-agent that muacrypt's gpg started for its keyring.
        let _ = Command::new("gpgconf")
            .arg("--homedir")
            .arg(self.base().join("gpg/default"))
            .args(["--kill", "gpg-agent"])
            .stderr(Stdio::null())
            .status();
    }
}

/// CRLF line ends throughout.
fn crlf(text: &[u8]) -> Vec<u8> {
    String::from_utf8_lossy(text)
        .replace("\r\n", "\n")
        .replace('\n', "\r\n")
        .into_bytes()
}

/// Now as an RFC 5322 date.
fn date() -> String {
    let out = Command::new("date").args(["-u", "-R"]).output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// The fingerprint of the key in an `Autocrypt:` header of `mail` for `addr`.
fn autocrypt_fpr(mail: &[u8], addr: &str) -> String {
    let values = header_values(mail, "Autocrypt");
    assert_eq!(values.len(), 1, "one Autocrypt header: {values:?}");
    let header = autocrypt::parse(&values[0], false).expect("a Level 1 header");
    assert_eq!(header.addr, addr);
    assert!(header.mutual, "prefer-encrypt=mutual: {}", values[0]);
    header
        .cert()
        .expect("keydata is a key")
        .fingerprint()
        .to_hex()
}

struct World {
    mail: MailWorld,
}

impl std::ops::Deref for World {
    type Target = MailWorld;
    fn deref(&self) -> &MailWorld {
        &self.mail
    }
}

async fn world() -> World {
    World {
        mail: MailWorld::start(POLICY).await,
    }
}

impl World {
    /// alice writes `subject`/`body` to bob through sotto; what the
    /// upstream (her provider) got.
    async fn alice_writes(&self, n: usize, subject: &str, body: &str) -> Vec<u8> {
        let message = format!(
            "From: Alice <{ALICE}>\r\nTo: Bob <{BOB}>\r\nSubject: {subject}\r\nDate: {}\r\n\
             Message-ID: <a{n}@example.org>\r\nMIME-Version: 1.0\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n",
            date()
        );
        let mut wire = common::dot_stuff(message.as_bytes());
        wire.extend_from_slice(b".\r\n");
        let mut c = Client::greeted(self.running.smtp.unwrap()).await;
        let reply = c.send_mail(ALICE, &[BOB], &wire).await;
        assert!(reply.starts_with("250"), "{reply}");
        let out = self.sink.messages();
        assert_eq!(out.len(), n, "the upstream has alice's {n} messages");
        let last = out.last().unwrap();
        assert_eq!(last.rcpts, vec![BOB.to_string()]);
        last.data.clone()
    }
}

/// What sotto sent for alice is encrypted: no body, no subject, the
/// obscured Subject, her Autocrypt header; muacrypt opens it, the
/// signature good and by her Autocrypt key. Returns that key's fingerprint.
fn bob_opens(bob: &Muacrypt, sent: &[u8], subject: &str, body: &str) -> String {
    let text = String::from_utf8_lossy(sent);
    assert!(!text.contains(body), "no body outside: {text}");
    assert!(!text.contains(subject), "no subject outside: {text}");
    assert_eq!(header_values(sent, "Subject"), vec!["[...]".to_string()]);
    assert!(text.contains("multipart/encrypted"), "{text}");
    let alice_fpr = autocrypt_fpr(sent, ALICE);

    let opened = bob.open(sent);
    assert_eq!(
        opened["incoming_error"],
        serde_json::Value::Null,
        "muacrypt's process-incoming took it: {opened:#}"
    );
    assert_eq!(opened["goodsig"], true, "{opened:#}");
    assert_eq!(opened["signer"], alice_fpr.as_str(), "{opened:#}");
    assert!(
        opened["text"].as_str().unwrap_or_default().contains(body),
        "{opened:#}"
    );
    // sotto protects the headers: the real Subject is inside.
    assert_eq!(opened["subject"], subject, "{opened:#}");
    // muacrypt learned alice's header, the key that signed.
    let learned = opened["learned"]["keyhandle"].as_str().expect("learned");
    assert!(
        alice_fpr.ends_with(learned) && learned.len() >= 16,
        "{opened:#}"
    );
    assert_eq!(opened["learned"]["prefer_encrypt"], "mutual", "{opened:#}");
    alice_fpr
}

#[tokio::test(flavor = "multi_thread")]
async fn muacrypt_and_sotto_exchange_in_clear_once_then_encrypted() {
    common::require_python_module("muacrypt.account", "muacrypt");
    // muacrypt's account (two gpg key generations) while the world starts.
    let bob = std::thread::spawn(|| Muacrypt::init(BOB));
    let w = world().await;
    let (bob, bob_fpr) = bob.join().unwrap_or_else(|e| std::panic::resume_unwind(e));

    // 1. bob's first message, in clear: muacrypt adds his Autocrypt header.
    assert_eq!(bob.recommend(ALICE), "disable", "no key for alice yet");
    let first = bob.outgoing(
        &format!(
            "From: Bob <{BOB}>\nTo: <{ALICE}>\nSubject: hello alice 1010\nDate: {}\n\
             Message-ID: <m1@outside.example>\nMIME-Version: 1.0\n\
             Content-Type: text/plain; charset=utf-8\n\nplain words 1010\n",
            date()
        ),
        &[],
    );
    assert_eq!(autocrypt_fpr(&first, BOB), bob_fpr);
    assert!(String::from_utf8_lossy(&first).contains("plain words 1010"));
    w.mx_receives(BOB, ALICE, &first).await;
    let inbox = w.inbox(1).await;
    assert!(inbox[0].contains("plain words 1010"), "{}", inbox[0]);
    assert!(
        inbox[0].contains("Subject: hello alice 1010"),
        "{}",
        inbox[0]
    );
    assert!(record(&inbox[0]).is_none(), "nothing opened: {}", inbox[0]);

    // sotto learned bob's key from muacrypt's header.
    let store = w.store().await;
    let peer = store
        .autocrypt_peer(BOB)
        .await
        .unwrap()
        .expect("bob learned");
    assert!(peer.prefer_mutual, "{peer:?}");
    let learned = Cert::from_bytes(peer.public_key.as_deref().expect("bob's key")).unwrap();
    assert_eq!(learned.fingerprint().to_hex(), bob_fpr);

    // 2. alice replies in clear to sotto: encrypted to bob's learned key,
    // signed by her, opened and verified by muacrypt.
    let sent = w
        .alice_writes(1, "re: hello 2020", "reply words 2020")
        .await;
    let alice_fpr = bob_opens(&bob, &sent, "re: hello 2020", "reply words 2020");
    assert_eq!(
        bob.recommend(ALICE),
        "encrypt",
        "muacrypt knows alice's key"
    );

    // 3. bob writes encrypted (muacrypt's PGP/MIME, signed), its Subject
    // protected: nothing of either on the wire to the MX; alice's copy is
    // opened, the signature good and bob's.
    let third = bob.outgoing(
        &format!(
            "From: Bob <{BOB}>\nTo: <{ALICE}>\nSubject: the real subject 3030\nDate: {}\n\
             Message-ID: <m3@outside.example>\nMIME-Version: 1.0\n\
             Content-Type: text/plain; charset=utf-8\n\nsecret body 3030\n",
            date()
        ),
        &["--encrypt", "--protect-subject"],
    );
    let wire = String::from_utf8_lossy(&third).into_owned();
    assert!(wire.contains("multipart/encrypted"), "{wire}");
    assert!(wire.contains("-----BEGIN PGP MESSAGE-----"), "{wire}");
    assert!(!wire.contains("secret body 3030"), "{wire}");
    assert!(!wire.contains("the real subject 3030"), "{wire}");
    assert_eq!(autocrypt_fpr(&third, BOB), bob_fpr);
    w.mx_receives(BOB, ALICE, &third).await;
    let inbox = w.inbox(2).await;
    let got = &inbox[1];
    assert!(got.contains("secret body 3030"), "{got}");
    assert!(got.contains("Subject: the real subject 3030"), "{got}");
    assert!(!got.contains("BEGIN PGP MESSAGE"), "{got}");
    let rec = record(got).expect("record header");
    assert!(
        rec.starts_with(&format!("decrypted; key={alice_fpr};"))
            && rec.ends_with(&format!("signature=good; signer={bob_fpr}")),
        "{rec}"
    );

    // 4. alice writes again: encrypted, verified by muacrypt, the same key.
    let sent = w.alice_writes(2, "plans 4040", "second reply 4040").await;
    assert_eq!(
        bob_opens(&bob, &sent, "plans 4040", "second reply 4040"),
        alice_fpr
    );

    w.running.shutdown();
}
