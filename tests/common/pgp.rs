//! OpenPGP peers for the tests: GnuPG with a throwaway home directory and
//! Sequoia's `sq`, generating the recipients' keys and decrypting what sotto
//! produced.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::require;

/// A throwaway GnuPG home plus a directory of exported public keys.
pub struct Gpg {
    pub home: tempfile::TempDir,
    pub keys: PathBuf,
}

impl Gpg {
    pub fn new() -> Gpg {
        require("gpg");
        let home = tempfile::tempdir().unwrap();
        let keys = home.path().join("public-keys");
        std::fs::create_dir(&keys).unwrap();
        let gnupg = home.path().join("gnupg");
        std::fs::create_dir(&gnupg).unwrap();
        std::fs::set_permissions(&gnupg, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .unwrap();
        Gpg { home, keys }
    }

    pub fn gnupg(&self) -> PathBuf {
        self.home.path().join("gnupg")
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new("gpg");
        c.env("GNUPGHOME", self.gnupg()).args([
            "--batch",
            "--quiet",
            "--pinentry-mode",
            "loopback",
            "--passphrase",
            "",
        ]);
        c
    }

    fn run(&self, args: &[&str]) -> Vec<u8> {
        let out = self.cmd().args(args).output().expect("run gpg");
        assert!(
            out.status.success(),
            "gpg {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// The fingerprint of the (first) key for `uid_email`.
    pub fn fingerprint(&self, email: &str) -> String {
        let out = String::from_utf8(self.run(&["--with-colons", "--list-keys", email])).unwrap();
        out.lines()
            .find(|l| l.starts_with("fpr:"))
            .unwrap()
            .split(':')
            .nth(9)
            .unwrap()
            .to_string()
    }

    /// Generates an Ed25519 key with a Curve25519 encryption subkey for
    /// `email` (or no encryption subkey), valid for `days`, created at
    /// `faked_time` (gpg's `--faked-system-time`) if given.
    pub fn generate(
        &self,
        email: &str,
        encrypt: bool,
        days: &str,
        faked_time: Option<&str>,
    ) -> String {
        let mut base: Vec<String> = Vec::new();
        if let Some(t) = faked_time {
            base.push("--faked-system-time".into());
            base.push(t.into());
        }
        let uid = format!("Test <{email}>");
        let mut args = base.clone();
        args.extend([
            "--quick-gen-key".into(),
            uid,
            "ed25519".into(),
            "sign".into(),
            days.into(),
        ]);
        self.run(&args.iter().map(String::as_str).collect::<Vec<_>>());
        let fpr = self.fingerprint(email);
        if encrypt {
            let mut args = base;
            args.extend([
                "--quick-add-key".into(),
                fpr.clone(),
                "cv25519".into(),
                "encr".into(),
                days.into(),
            ]);
            self.run(&args.iter().map(String::as_str).collect::<Vec<_>>());
        }
        fpr
    }

    /// Generates a chat key as Profanity's OX guide has users make it
    /// (`--quick-generate-key xmpp:JID future-default default 3y`: Ed25519,
    /// Curve25519 encryption subkey, the XEP-0373 user ID `xmpp:JID` alone);
    /// its fingerprint.
    pub fn generate_xmpp(&self, jid: &str) -> String {
        let uid = format!("xmpp:{jid}");
        self.run(&[
            "--quick-generate-key",
            &uid,
            "future-default",
            "default",
            "3y",
        ]);
        self.fingerprint(&uid)
    }

    /// Exports the public key of `email` into the key directory as `name`.
    pub fn export(&self, email: &str, name: &str) -> PathBuf {
        let path = self.keys.join(name);
        std::fs::write(&path, self.public(email)).unwrap();
        path
    }

    pub fn public(&self, email: &str) -> Vec<u8> {
        self.run(&["--armor", "--export", email])
    }

    pub fn secret(&self, email: &str) -> Vec<u8> {
        self.run(&["--armor", "--export-secret-keys", email])
    }

    /// Imports keys (e.g. a signer's public key, to verify signatures).
    pub fn import(&self, armored: &[u8]) {
        let file = self.home.path().join("import.asc");
        std::fs::write(&file, armored).unwrap();
        self.run(&["--import", file.to_str().unwrap()]);
    }

    /// Revokes the key with the revocation certificate gpg made at generation.
    pub fn revoke(&self, fpr: &str) {
        let rev = self
            .gnupg()
            .join("openpgp-revocs.d")
            .join(format!("{fpr}.rev"));
        let text = std::fs::read_to_string(rev)
            .unwrap()
            .replace(":-----BEGIN", "-----BEGIN");
        let file = self.home.path().join("rev.asc");
        std::fs::write(&file, text).unwrap();
        self.run(&["--import", file.to_str().unwrap()]);
    }

    /// Decrypts an armoured OpenPGP message, with gpg's status lines:
    /// (plaintext, status); never fails (the status says why).
    pub fn decrypt_status(&self, armored: &[u8]) -> (String, String) {
        let out = self.piped(&["--status-fd", "2", "--decrypt"], armored);
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Runs gpg with `args`, `input` on its standard input.
    pub fn piped(&self, args: &[&str], input: &[u8]) -> std::process::Output {
        let mut child = self
            .cmd()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(input).unwrap();
        child.wait_with_output().unwrap()
    }

    /// Decrypts an armoured OpenPGP message; returns the plaintext.
    pub fn decrypt(&self, armored: &[u8]) -> Vec<u8> {
        let mut child = self
            .cmd()
            .arg("--decrypt")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(armored).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "gpg --decrypt: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// gpg's packet listing of an armoured message (key IDs of recipients).
    pub fn list_packets(&self, armored: &[u8]) -> String {
        let mut child = self
            .cmd()
            .args(["--list-packets", "--list-only"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(armored).unwrap();
        let out = child.wait_with_output().unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }
}

/// Generates a key with `sq` (cv25519) for `email`; returns (secret key file, public cert file).
pub fn sq_generate(dir: &Path, email: &str) -> (PathBuf, PathBuf) {
    require("sq");
    let secret = dir.join(format!("{email}.secret.asc"));
    let public = dir.join(format!("{email}.asc"));
    let st = Command::new("sq")
        .args([
            "key",
            "generate",
            "--userid",
            &format!("<{email}>"),
            "--export",
        ])
        .arg(&secret)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "sq key generate");
    let st = Command::new("sq")
        .args(["key", "extract-cert", "--output"])
        .arg(&public)
        .arg(&secret)
        .status()
        .unwrap();
    assert!(st.success(), "sq key extract-cert");
    (secret, public)
}

/// Decrypts with `sq decrypt --recipient-key` (sq 0.27).
pub fn sq_decrypt(secret: &Path, armored: &[u8]) -> Vec<u8> {
    let mut child = Command::new("sq")
        .args(["decrypt", "--recipient-key"])
        .arg(secret)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(armored).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "sq decrypt: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The armoured OpenPGP message inside a PGP/MIME message.
pub fn armored_part(mime: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(mime);
    let start = text
        .find("-----BEGIN PGP MESSAGE-----")
        .expect("no PGP message in the output");
    let end = text
        .find("-----END PGP MESSAGE-----")
        .expect("unterminated PGP message")
        + 25;
    text[start..end].as_bytes().to_vec()
}

/// gpg --encrypt --sign --armor of `data` to `recipient`'s key, signed by
/// `signer_uid` in `signer`'s home.
pub fn seal(signer: &Gpg, signer_uid: &str, recipient: &str, data: &[u8]) -> String {
    {
        let mut child = signer
            .cmd()
            .args([
                "--armor",
                "--trust-model",
                "always",
                "--encrypt",
                "--sign",
                "--local-user",
                signer_uid,
                "--recipient",
                recipient,
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(data).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().replace('\n', "\r\n")
    }
}

pub fn pgp_mime(headers: &str, armored: &str) -> Vec<u8> {
    format!(
        "{headers}Subject: [...]\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\";\r\n boundary=\"b-4242\"\r\n\r\n\
         This is an OpenPGP/MIME encrypted message.\r\n--b-4242\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n\r\n\
         --b-4242\r\nContent-Type: application/octet-stream; name=\"encrypted.asc\"\r\n\r\n{armored}\r\n--b-4242--\r\n"
    )
    .into_bytes()
}
