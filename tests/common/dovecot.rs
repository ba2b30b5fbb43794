//! A real Dovecot (2.3) for the mailbox tests: the server behind sotto's
//! LMTP side, and the IMAP reader that checks what a mailbox holds.
//!
//! [`Dovecot::start`] runs `dovecot -F` on a private configuration in a
//! tempdir: its own `base_dir`, `state_dir`, log file and instance name (the
//! system's `/etc/dovecot` and any system Dovecot are never touched, nor
//! needed), IMAP in plain TCP (plaintext auth allowed, no TLS) and LMTP on
//! free 127.0.0.1 ports, users from passwd-files in the tempdir, mail in
//! Maildir under the tempdir. [`Dovecot::add_user`] writes the user's own
//! passwd-file (`users/<user>`), which Dovecot finds at the user's next
//! lookup, so users may be added before or after the start. LMTP looks
//! every RCPT up there: an unknown recipient is refused at RCPT (`550 5.1.1
//! … User doesn't exist`), a known one accepted.
//!
//! One file per user, not one for all, because Dovecot checks a
//! passwd-file for changes at most once a second (`passwd_file_sync`): a
//! user added to a shared file in the second of an earlier lookup stays
//! unknown until the next second. A missing per-user file is looked for
//! again at every lookup, so a new user is known at once; only a changed
//! password waits for the next second ([`Dovecot::add_user`]).
//!
//! Run as root (as `tests/run` does), Dovecot's own processes are the
//! package's users (`dovecot`, `dovenull`) and every mailbox belongs to
//! `nobody`; the test process, root, reads the Maildirs directly
//! ([`Dovecot::messages`]). Run as anyone else, everything is that user
//! (no chroots).
//!
//! What the store holds, worth knowing when comparing bytes: Dovecot adds
//! `Return-Path` and `Received` on top of the delivered message, and
//! `Delivered-To` too when the LMTP transaction had one accepted recipient
//! only (with several, their copies share the headers and have none); it
//! keeps Maildir files with bare LF line ends, and IMAP gives the same
//! message back with CRLF ([`Dovecot::fetch_all`]).
//!
//! Everything here blocks the calling thread (start: about 0.1 s; drop:
//! about 1 s, Dovecot stopping its children; `add_user` again for a known
//! user: up to 2 s); it talks to Dovecot directly, so a gateway in the same
//! runtime need not make progress meanwhile.
//!
//! A missing peer fails the test loudly; `tests/run` installs the Debian
//! packages `dovecot-core`, `dovecot-imapd` and `dovecot-lmtpd`.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::free_port;

/// How long Dovecot may take to start (both ports greeting).
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long Dovecot may take to stop on SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// Bound on one IMAP read-back.
const IMAP_TIMEOUT: Duration = Duration::from_secs(60);

/// Where Debian's packages put the protocol binaries the master runs.
const IMAP_BIN: &str = "/usr/lib/dovecot/imap";
const LMTP_BIN: &str = "/usr/lib/dovecot/lmtp";

/// How to start Dovecot.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Lines added at the end of `dovecot.conf` (after the harness's own, so
    /// a setting given again wins), e.g. `lmtp_add_received_header = no`;
    /// `{imap_port}` in them is the IMAP port the harness picked.
    pub extra_config: Vec<String>,
}

impl Options {
    /// Adds one config line (or a whole `section { … }`).
    pub fn config(mut self, line: &str) -> Options {
        self.extra_config.push(line.into());
        self
    }
}

/// A running Dovecot, stopped (SIGTERM, then SIGKILL) on drop.
pub struct Dovecot {
    /// Plain IMAP port on 127.0.0.1.
    pub imap_port: u16,
    /// LMTP port on 127.0.0.1.
    pub lmtp_port: u16,
    dir: TempDir,
    child: Child,
    /// Each user added and their password.
    users: Mutex<HashMap<String, String>>,
}

/// Who runs what: the `dovecot` master's internal and login users, and the
/// owner of every mailbox.
struct Accounts {
    internal_user: String,
    internal_group: String,
    login_user: String,
    mail_user: String,
    mail_group: String,
    root: bool,
}

fn id(args: &[&str]) -> String {
    let out = Command::new("id").args(args).output().expect("run id");
    assert!(out.status.success(), "id {args:?} failed");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

impl Accounts {
    fn here() -> Accounts {
        if id(&["-u"]) == "0" {
            // Dovecot refuses mail as root (uid 0): mailboxes are `nobody`'s.
            Accounts {
                internal_user: "dovecot".into(),
                internal_group: "dovecot".into(),
                login_user: "dovenull".into(),
                mail_user: "nobody".into(),
                mail_group: id(&["-gn", "nobody"]),
                root: true,
            }
        } else {
            let user = id(&["-un"]);
            let group = id(&["-gn"]);
            Accounts {
                internal_user: user.clone(),
                internal_group: group.clone(),
                login_user: user.clone(),
                mail_user: user,
                mail_group: group,
                root: false,
            }
        }
    }
}

/// Fails loudly unless Dovecot and its IMAP and LMTP servers are installed.
fn require_dovecot() -> PathBuf {
    let missing: Vec<&str> = [
        ("/usr/sbin/dovecot", "dovecot-core"),
        (IMAP_BIN, "dovecot-imapd"),
        (LMTP_BIN, "dovecot-lmtpd"),
    ]
    .into_iter()
    .filter(|(path, _)| !Path::new(path).exists())
    .map(|(_, package)| package)
    .collect();
    assert!(
        missing.is_empty(),
        "Dovecot is not installed (missing Debian packages: {}): run tests/run, which installs dovecot-core, dovecot-imapd and dovecot-lmtpd",
        missing.join(" ")
    );
    PathBuf::from("/usr/sbin/dovecot")
}

enum Retry {
    PortTaken,
    Fatal(String),
}

impl Dovecot {
    /// Starts Dovecot with the default options and waits (bounded) until
    /// both its IMAP and LMTP ports greet. Panics with Dovecot's log if it
    /// does not.
    pub fn start() -> Dovecot {
        Dovecot::start_with(Options::default())
    }

    /// Like [`Dovecot::start`], with `opts`.
    pub fn start_with(opts: Options) -> Dovecot {
        let dovecot = require_dovecot();
        let accounts = Accounts::here();
        let mut last_log = String::new();
        // A port picked free may be taken again before Dovecot binds it
        // (Dovecot then exits): try a few.
        for _ in 0..5 {
            let dir = tempfile::Builder::new()
                .prefix("sotto-dovecot-")
                .tempdir()
                .expect("tempdir");
            let imap_port = free_port();
            let lmtp_port = free_port();
            prepare_dir(dir.path(), &accounts);
            let config = dir.path().join("dovecot.conf");
            std::fs::write(
                &config,
                config_text(&opts, dir.path(), &accounts, imap_port, lmtp_port),
            )
            .expect("write dovecot.conf");
            let out = std::fs::File::create(dir.path().join("console.log")).expect("console log");
            let child = Command::new(&dovecot)
                .arg("-F")
                .arg("-c")
                .arg(&config)
                .current_dir(dir.path())
                .stdin(Stdio::null())
                .stdout(out.try_clone().expect("dup"))
                .stderr(out)
                .spawn()
                .expect("start dovecot");
            let mut d = Dovecot {
                imap_port,
                lmtp_port,
                dir,
                child,
                users: Mutex::new(HashMap::new()),
            };
            match d.wait_ready() {
                Ok(()) => return d,
                Err(Retry::PortTaken) => last_log = d.log(),
                Err(Retry::Fatal(why)) => panic!("dovecot did not start: {why}\n{}", d.log()),
            }
        }
        panic!("dovecot could not bind free ports in 5 tries:\n{last_log}");
    }

    fn wait_ready(&mut self) -> Result<(), Retry> {
        let end = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait dovecot") {
                return Err(if self.log().contains("Address already in use") {
                    Retry::PortTaken
                } else {
                    Retry::Fatal(format!("dovecot exited: {status}"))
                });
            }
            if greets(self.imap_port, "* OK") && greets(self.lmtp_port, "220 ") {
                return Ok(());
            }
            if Instant::now() > end {
                return Err(Retry::Fatal(format!(
                    "IMAP on 127.0.0.1:{} and LMTP on 127.0.0.1:{} not both ready within {START_TIMEOUT:?}",
                    self.imap_port, self.lmtp_port
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `127.0.0.1:<imap_port>`.
    pub fn imap_addr(&self) -> String {
        format!("127.0.0.1:{}", self.imap_port)
    }

    /// `127.0.0.1:<lmtp_port>`, for sotto's mailbox delivery.
    pub fn lmtp_addr(&self) -> String {
        format!("127.0.0.1:{}", self.lmtp_port)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Adds a user (a full address, e.g. `alice@example.org`, as LMTP's
    /// RCPT and IMAP's LOGIN name it) with `password`, known to Dovecot as
    /// soon as this returns, in any case (Dovecot lowercases names). Adding
    /// a user again changes the password; that takes up to two seconds (see
    /// the module's doc).
    pub fn add_user(&self, user: &str, password: &str) {
        assert!(
            !user.is_empty()
                && !user.contains([':', '/', '\n', '\r'])
                && user != "."
                && user != "..",
            "user {user:?} cannot be a passwd-file name and Maildir directory"
        );
        assert!(
            !password.contains([':', '\n', '\r']),
            "password {password:?} cannot go in a passwd-file"
        );
        // Dovecot lowercases names (auth_username_format %Lu) before it
        // looks them up.
        let user = &user.to_ascii_lowercase();
        let mut users = self.users.lock().unwrap();
        let again = users.insert(user.into(), password.into()).is_some();
        // A file Dovecot has read is read again only if its mtime or size
        // changed, and then at the first lookup in a later second: write in
        // a second of its own, return in the next.
        if again {
            next_second();
        }
        let file = self.dir.path().join("users").join(user);
        let tmp = self.dir.path().join("users").join(format!(".{user}.new"));
        // Whole or not at all: Dovecot must never read half a file.
        std::fs::write(&tmp, format!("{user}:{{PLAIN}}{password}::::::\n"))
            .expect("write passwd-file");
        std::fs::rename(&tmp, &file).expect("replace passwd-file");
        if again {
            next_second();
        }
    }

    /// The password `add_user` was given for `user`.
    pub fn password(&self, user: &str) -> String {
        self.users
            .lock()
            .unwrap()
            .get(&user.to_ascii_lowercase())
            .unwrap_or_else(|| panic!("{user} was not added through the harness"))
            .clone()
    }

    /// `user`'s Maildir (its INBOX; `new/` and `cur/` inside once mail came).
    pub fn maildir(&self, user: &str) -> PathBuf {
        self.dir
            .path()
            .join("mail")
            .join(user.to_ascii_lowercase())
            .join("Maildir")
    }

    /// Every message file in `user`'s INBOX (`new/` and `cur/`), sorted by
    /// file name, raw as Dovecot stored them (bare LF line ends, with the
    /// headers it added). None yet: empty.
    pub fn messages(&self, user: &str) -> Vec<Vec<u8>> {
        let maildir = self.maildir(user);
        let mut files: Vec<(std::ffi::OsString, PathBuf)> = ["new", "cur"]
            .iter()
            .flat_map(|sub| std::fs::read_dir(maildir.join(sub)).into_iter().flatten())
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .map(|e| (e.file_name(), e.path()))
            .collect();
        files.sort();
        files
            .into_iter()
            .map(|(_, p)| std::fs::read(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display())))
            .collect()
    }

    /// Every message in `user`'s INBOX read back over IMAP (Python's
    /// imaplib: AUTHENTICATE PLAIN (UTF-8), EXAMINE INBOX, FETCH BODY.PEEK[] of each, in
    /// sequence order), as the server sends it (CRLF line ends). Panics
    /// with the client's error and Dovecot's log if the login or a fetch
    /// fails.
    pub fn fetch_all(&self, user: &str, password: &str) -> Vec<Vec<u8>> {
        super::require("python3");
        let mut child = Command::new("python3")
            .args(["-c", IMAP_FETCH_ALL])
            .arg(self.imap_port.to_string())
            .arg(user)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start python3 imaplib reader");
        // The password on stdin, not in the process list.
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(password.as_bytes())
            .expect("write password");
        let end = Instant::now() + IMAP_TIMEOUT;
        while child.try_wait().expect("wait imap reader").is_none() {
            if Instant::now() > end {
                let _ = child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = child.wait_with_output().expect("imap reader output");
        assert!(
            out.status.success(),
            "reading {user}'s INBOX over IMAP failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        parse_length_prefixed(&out.stdout)
    }

    /// Dovecot's log, and anything it printed before its log was up.
    pub fn log(&self) -> String {
        let read = |f: &str| std::fs::read_to_string(self.dir.path().join(f)).unwrap_or_default();
        format!(
            "--- dovecot.log ---\n{}--- console ---\n{}",
            read("dovecot.log"),
            read("console.log")
        )
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        // SIGTERM lets the master stop its children (auth, anvil, log, …)
        // itself; SIGKILL only if it does not go in time.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .stderr(Stdio::null())
            .status();
        let end = Instant::now() + STOP_TIMEOUT;
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sleeps until the wall clock (Dovecot's `ioloop_time`) is in the next
/// second.
fn next_second() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970");
    std::thread::sleep(Duration::from_nanos(
        1_000_000_000 - u64::from(now.subsec_nanos()) + 1_000_000,
    ));
}

/// Whether something on 127.0.0.1:`port` sends a first line starting
/// with `want`.
fn greets(port: u16, want: &str) -> bool {
    let Ok(s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let mut line = String::new();
    let ok = BufReader::new(&s).read_line(&mut line).is_ok() && line.starts_with(want);
    let bye: &[u8] = if want == "* OK" {
        b"a LOGOUT\r\n"
    } else {
        b"QUIT\r\n"
    };
    let _ = (&s).write_all(bye);
    ok
}

/// The tempdir's layout: open to Dovecot's own users (the auth process
/// reads the passwd-files as `dovecot`), and `mail/` owned by the mailbox
/// user, who creates each user's Maildir in it.
fn prepare_dir(dir: &Path, accounts: &Accounts) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).expect("chmod tempdir");
    for sub in ["mail", "state", "users"] {
        std::fs::create_dir(dir.join(sub)).expect("mkdir");
    }
    if accounts.root {
        let st = Command::new("chown")
            .arg(format!("{}:{}", accounts.mail_user, accounts.mail_group))
            .arg(dir.join("mail"))
            .status()
            .expect("chown");
        assert!(
            st.success(),
            "chown the mail directory to {}",
            accounts.mail_user
        );
    }
}

fn config_text(
    opts: &Options,
    dir: &Path,
    accounts: &Accounts,
    imap_port: u16,
    lmtp_port: u16,
) -> String {
    let d = dir.display();
    let Accounts {
        internal_user,
        internal_group,
        login_user,
        mail_user,
        mail_group,
        root,
    } = accounts;
    // Not root: no chroot (the default for anvil and imap-login), which
    // only root may do.
    let chroot = if *root { "" } else { "\n  chroot =" };
    let mut text = format!(
        r#"# A private Dovecot for sotto's tests (tests/common/dovecot.rs).
instance_name = sotto-test-{imap_port}
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
protocols = imap lmtp
listen = 127.0.0.1
hostname = dovecot.test
postmaster_address = postmaster@example.org
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_verbose = yes
auth_failure_delay = 0
default_internal_user = {internal_user}
default_internal_group = {internal_group}
default_login_user = {login_user}
first_valid_uid = 1
first_valid_gid = 1
mail_uid = {mail_user}
mail_gid = {mail_group}
mail_location = maildir:~/Maildir
mail_fsync = never

# A file per user, for both: a user LMTP cannot look up is refused at RCPT.
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {d}/users/%u
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {d}/users/%u
  default_fields = uid={mail_user} gid={mail_group} home={d}/mail/%u
}}

service anvil {{{chroot}
}}
service imap-login {{{chroot}
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap_port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {lmtp_port}
  }}
  unix_listener lmtp {{
    mode = 0
  }}
}}
"#
    );
    for line in &opts.extra_config {
        text.push_str(&line.replace("{imap_port}", &imap_port.to_string()));
        text.push('\n');
    }
    text
}

/// Python: `python3 -c IMAP_FETCH_ALL <port> <user>`, password on stdin;
/// prints each INBOX message as `<length>\n<bytes>`.
const IMAP_FETCH_ALL: &str = r#"
import imaplib, os, sys
port, user = int(sys.argv[1]), os.fsencode(sys.argv[2])
password = sys.stdin.buffer.read()
m = imaplib.IMAP4("127.0.0.1", port, timeout=30)
# AUTHENTICATE PLAIN, not LOGIN: imaplib sends LOGIN's arguments in ASCII.
m.authenticate("PLAIN", lambda _: b"\0" + user + b"\0" + password)
typ, data = m.select("INBOX", readonly=True)
assert typ == "OK", (typ, data)
typ, data = m.search(None, "ALL")
assert typ == "OK", (typ, data)
out = sys.stdout.buffer
for num in data[0].split():
    typ, data = m.fetch(num, "(BODY.PEEK[])")
    assert typ == "OK", (typ, data)
    bodies = [part[1] for part in data if isinstance(part, tuple)]
    assert len(bodies) == 1, data
    out.write(b"%d\n" % len(bodies[0]) + bodies[0])
m.logout()
out.flush()
"#;

fn parse_length_prefixed(mut bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut messages = Vec::new();
    while !bytes.is_empty() {
        let nl = bytes
            .iter()
            .position(|&b| b == b'\n')
            .expect("length line from the imap reader");
        let len: usize = std::str::from_utf8(&bytes[..nl])
            .ok()
            .and_then(|n| n.parse().ok())
            .expect("length from the imap reader");
        bytes = &bytes[nl + 1..];
        messages.push(bytes[..len].to_vec());
        bytes = &bytes[len..];
    }
    messages
}
