//! A real Postfix for the tests of the recipes in `deploy/postfix/`
//! (`tests/postfix.rs`): each instance runs (`postfix -c DIR start`) with its
//! own configuration, queue and data directories in a tempdir, loopback only,
//! and is stopped on drop, also when an assertion fails (then the end of its
//! maillog is printed).
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use super::{output_text, require};

/// A recipe file from `deploy/postfix/`.
pub fn recipe(path: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy/postfix")
        .join(path);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// `text` with `from` replaced by `to`; `from` must be there, so a changed
/// recipe fails here instead of testing something else.
pub fn subst(text: &str, from: &str, to: &str) -> String {
    assert!(
        text.contains(from),
        "the recipe no longer contains {from:?}:\n{text}"
    );
    text.replace(from, to)
}

/// What every test instance has in main.cf before the recipe: its own
/// directories, loopback only, no local delivery, relaying for 127.0.0.0/8.
fn base_main_cf(root: &Path, relayhost: Option<&str>) -> String {
    let root = root.display();
    let relayhost = relayhost
        .map(|r| format!("relayhost = {r}\n"))
        .unwrap_or_default();
    format!(
        "\
compatibility_level = 3.6
queue_directory = {root}/spool
data_directory = {root}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = mx.sotto.test
mydomain = sotto.test
myorigin = $myhostname
mydestination =
local_recipient_maps =
local_transport = error:local delivery is disabled
alias_maps =
alias_database =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relay_domains =
smtpd_relay_restrictions = permit_mynetworks, reject
smtpd_recipient_restrictions = permit_mynetworks, reject
smtputf8_enable = yes
biff = no
# No notices to postmaster (they would be relayed to the sink and queued
# beside the messages the tests count).
notify_classes =
maillog_file = {root}/maillog
maillog_file_prefixes = {root}
{relayhost}"
    )
}

/// The internal services a Postfix needs (no chroot, nothing on the network).
const BASE_MASTER_CF: &str = "\
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
";

/// A running Postfix in a tempdir; stopped on drop.
pub struct Postfix {
    root: tempfile::TempDir,
    /// The configuration directory (`postfix -c`).
    pub conf: PathBuf,
    /// Where clients submit (the recipe's receiving smtpd).
    pub public: SocketAddr,
    started: bool,
}

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

impl Postfix {
    /// Writes main.cf (the base plus `main_extra`) and master.cf (the base
    /// plus `master_extra`, which must hold the listener on `public`),
    /// validates them and starts Postfix.
    pub fn start(
        relayhost: Option<&str>,
        main_extra: &str,
        master_extra: &str,
        public: u16,
    ) -> Self {
        for tool in ["postfix", "postconf", "postqueue"] {
            require(tool);
        }
        let uid = run(Command::new("id").arg("-u"));
        assert_eq!(
            String::from_utf8_lossy(&uid.stdout).trim(),
            "0",
            "tests/postfix.rs starts its own Postfix, whose master runs as root: run the tests as root"
        );
        assert!(
            run(Command::new("id").arg("postfix")).status.success(),
            "the postfix user is missing: install the Debian package postfix (tests/run does)"
        );
        let root = tempfile::tempdir().unwrap();
        let conf = root.path().join("etc");
        // Postfix wants its directories owned by root and not writable by
        // others (the tempdir is 0700: open it for the postfix user).
        for d in [root.path(), &conf, &root.path().join("spool")] {
            std::fs::create_dir_all(d).unwrap();
            std::fs::set_permissions(d, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .unwrap();
        }
        let data = root.path().join("data");
        std::fs::create_dir(&data).unwrap();
        let out = run(Command::new("chown").arg("postfix:").arg(&data));
        assert!(
            out.status.success(),
            "chown postfix data: {}",
            output_text(&out)
        );

        let main_cf = format!("{}\n{main_extra}", base_main_cf(root.path(), relayhost));
        std::fs::write(conf.join("main.cf"), main_cf).unwrap();
        std::fs::write(
            conf.join("master.cf"),
            format!("{BASE_MASTER_CF}\n{master_extra}"),
        )
        .unwrap();
        let mut pf = Postfix {
            root,
            conf,
            public: format!("127.0.0.1:{public}").parse().unwrap(),
            started: false,
        };

        // Every parameter in main.cf and in master.cf's -o options must be
        // one Postfix knows: a typo in a recipe is a warning here.
        let out = run(Command::new("postconf").arg("-c").arg(&pf.conf).arg("-n"));
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "postconf -n: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = run(Command::new("postconf").arg("-c").arg(&pf.conf).arg("-M"));
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "postconf -M: {}",
            output_text(&out)
        );
        // One Postfix starts at a time: instances starting at once in one
        // test binary have failed with nothing but "mail system startup
        // failed" in their log.
        static STARTING: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _one = STARTING.lock().unwrap_or_else(|p| p.into_inner());
        // `check` also creates the queue directories.
        let out = run(Command::new("postfix").arg("-c").arg(&pf.conf).arg("check"));
        assert!(out.status.success(), "postfix check: {}", output_text(&out));
        pf.assert_no_warnings();
        // A port picked free may be held for a moment by another test's
        // connection (outgoing connections use the same port range): the
        // master then fails to bind and startup fails. Try again shortly.
        let mut out = run(Command::new("postfix").arg("-c").arg(&pf.conf).arg("start"));
        for _ in 0..3 {
            if out.status.success() {
                break;
            }
            std::thread::sleep(Duration::from_millis(500));
            out = run(Command::new("postfix").arg("-c").arg(&pf.conf).arg("start"));
        }
        assert!(
            out.status.success(),
            "postfix start: {}\n{}",
            output_text(&out),
            pf.maillog()
        );
        pf.started = true;
        let public = pf.public;
        let end = std::time::Instant::now() + Duration::from_secs(30);
        let mut up = false;
        while !up && std::time::Instant::now() < end {
            up = std::net::TcpStream::connect(public).is_ok();
            if !up {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        assert!(up, "Postfix does not listen on {public}");
        pf
    }

    /// Postfix logged no warning (a recipe problem shows up as one).
    pub fn assert_no_warnings(&self) {
        let log = self.maillog();
        let warnings: Vec<&str> = log.lines().filter(|l| l.contains("warning:")).collect();
        assert!(warnings.is_empty(), "Postfix warned: {warnings:#?}");
    }

    pub fn maillog(&self) -> String {
        std::fs::read_to_string(self.root.path().join("maillog")).unwrap_or_default()
    }

    /// The queue as `postqueue -j` reports it: one JSON object per message.
    pub fn queue(&self) -> Vec<serde_json::Value> {
        let out = run(Command::new("postqueue")
            .arg("-c")
            .arg(&self.conf)
            .arg("-j"));
        assert!(out.status.success(), "postqueue -j: {}", output_text(&out));
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    /// `postqueue -f`: attempt delivery of everything queued now.
    pub fn flush(&self) {
        let out = run(Command::new("postqueue")
            .arg("-c")
            .arg(&self.conf)
            .arg("-f"));
        assert!(out.status.success(), "postqueue -f: {}", output_text(&out));
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.maillog();
            let tail: Vec<&str> = log.lines().rev().take(80).collect();
            eprintln!(
                "--- Postfix maillog ({}), last {} lines:",
                self.root.path().join("maillog").display(),
                tail.len()
            );
            for l in tail.iter().rev() {
                eprintln!("{l}");
            }
            eprintln!("--- end of maillog");
        }
        if self.started {
            let stopped = Command::new("postfix")
                .arg("-c")
                .arg(&self.conf)
                .arg("stop")
                .output()
                .is_ok_and(|o| o.status.success());
            if !stopped {
                let _ = Command::new("postfix")
                    .arg("-c")
                    .arg(&self.conf)
                    .arg("abort")
                    .output();
            }
        }
    }
}
