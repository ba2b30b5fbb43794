//! The `sotto` binary: help texts, `check` golden outputs, and the SIGTERM
//! shutdown that lets an open transaction finish.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Client, Sink, free_port};

/// `sotto` in the repository (the tests' own SOTTO_* settings must not leak
/// in).
fn sotto() -> Command {
    let mut c = common::sotto();
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

#[test]
fn help_explains_each_subcommand() {
    let out = sotto().arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for s in ["serve", "check", "SOTTO_", "127.0.0.1:10025"] {
        assert!(text.contains(s), "--help lacks {s}: {text}");
    }
    let out = sotto().args(["serve", "--help"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("SIGTERM") && text.contains("--config"),
        "{text}"
    );
    let out = sotto().args(["check", "--help"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("file:line:col"), "{text}");
    assert!(text.contains("SOTTO_UPSTREAM__TLS=yes"), "{text}");
    let out = sotto().args(["transform", "--help"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("==> sotto would relay to RCPT, RCPT (TREATMENT), N bytes:"),
        "{text}"
    );
    let out = sotto()
        .args(["keys", "refresh", "--help"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("with neither"), "{text}");
}

#[test]
fn shipped_example_and_defaults_check_clean() {
    let out = sotto()
        .args(["check", "--config", "sotto.example.toml"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = sotto().arg("check").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Each `tests/data/config/NAME.toml` is checked; the output must equal
/// `NAME.expected` exactly. A mismatch writes `NAME.failed` beside it.
#[test]
fn check_reports_match_golden_files() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/config");
    let mut cases = 0;
    let mut failed = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        cases += 1;
        let rel = path.strip_prefix(env!("CARGO_MANIFEST_DIR")).unwrap();
        let out = sotto()
            .args(["check", "--config"])
            .arg(rel)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(1),
            "{} should fail the check",
            rel.display()
        );
        let want = std::fs::read_to_string(path.with_extension("expected")).unwrap();
        let got = String::from_utf8_lossy(&out.stderr).into_owned();
        if got != want {
            std::fs::write(path.with_extension("failed"), &got).unwrap();
            failed.push(format!("{}:\n got: {got}\nwant: {want}", rel.display()));
        }
    }
    assert!(cases >= 5, "only {cases} golden cases found");
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

/// Each directory `tests/data/policy/NAME/` is checked as the policy
/// directory; the output must equal `NAME.expected` exactly.
#[test]
fn policy_check_reports_match_golden_files() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/policy");
    let mut cases = 0;
    let mut failed = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if !path.is_dir() {
            continue;
        }
        cases += 1;
        let rel = path.strip_prefix(env!("CARGO_MANIFEST_DIR")).unwrap();
        let out = sotto()
            .args(["check", "--policies"])
            .arg(rel)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(1),
            "{} should fail the check",
            rel.display()
        );
        let want = std::fs::read_to_string(path.with_extension("expected")).unwrap();
        let got = String::from_utf8_lossy(&out.stderr).into_owned();
        if got != want {
            std::fs::write(path.with_extension("failed"), &got).unwrap();
            failed.push(format!("{}:\n got: {got}\nwant: {want}", rel.display()));
        }
    }
    assert!(cases >= 4, "only {cases} golden cases found");
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

#[test]
fn explain_names_the_deciding_rule_and_the_key() {
    let out = sotto()
        .args([
            "explain",
            "--from",
            "a@corp.example",
            "--to",
            "b@partner.example",
            "--to",
            "c@lists.example",
        ])
        .env("SOTTO_KEYS__SOURCES", "dir")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("encrypt               = required  (rule \"partner must be encrypted\" at policies/50-examples.toml:"),
        "{text}"
    );
    assert!(
        text.contains(
            "missing_key           = plain     ([defaults] at policies/00-defaults.toml:"
        ),
        "{text}"
    );
    assert!(text.contains("key: none (no key found)"), "{text}");
    assert!(text.contains("result: refused: 550 5.7.1"), "{text}");
    assert!(
        text.contains("encrypt               = never     (rule \"mailing lists stay readable\""),
        "{text}"
    );
    assert!(text.contains("key: not looked up"), "{text}");
    assert!(text.contains("result: relayed readable"), "{text}");
}

#[test]
fn explain_for_chat_names_the_format_and_never_makes_keys() {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    std::fs::create_dir(&policies).unwrap();
    std::fs::write(
        policies.join("00.toml"),
        "[defaults]\nencrypt = \"if-key\"\n\n[[rule]]\nname = \"partners get legacy\"\n\
         channel = [\"xmpp\"]\nto = [\"*@partner.example\"]\nencrypt = \"required\"\nxmpp_format = \"legacy\"\nstore = false\n",
    )
    .unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "pass\n").unwrap();
    let store = format!("sqlite://{}", dir.path().join("sotto.db").display());
    let out = sotto()
        .args(["explain", "--channel", "xmpp", "--policies"])
        .arg(&policies)
        .args([
            "--from",
            "alice@example.org",
            "--to",
            "bob@example.org",
            "--to",
            "x@partner.example",
        ])
        .env("SOTTO_KEYS__SOURCES", "dir")
        .env("SOTTO_XMPP__DOMAIN", "example.org")
        .env("SOTTO_STORE__URL", &store)
        .env("SOTTO_XMPP__USER_KEYS_SECRET", &secret)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("xmpp from <alice@example.org> to <bob@example.org>:"),
        "{text}"
    );
    assert!(
        text.contains(
            "key: none (no key found (sotto lookup failed: a local user without a key yet"
        ),
        "{text}"
    );
    assert!(
        text.contains("result: encrypted (ox) with the key sotto makes for this local user"),
        "{text}"
    );
    assert!(
        text.contains("xmpp_format           = legacy    (rule \"partners get legacy\""),
        "{text}"
    );
    assert!(text.contains("store                 = false"), "{text}");
    assert!(
        text.contains(
            "result: refused: 550 5.7.1 Encryption required (policy rule \"partners get legacy\")"
        ),
        "{text}"
    );
    // explain only reads: no key was made for the local user.
    let snapshot = dir.path().join("snapshot");
    let out = sotto()
        .args(["store", "backup"])
        .arg(&snapshot)
        .env("SOTTO_STORE__URL", &store)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains(": 0 identities"),
        "explain must not create keys: {said}"
    );
}

#[test]
fn env_override_is_checked_too() {
    let out = sotto()
        .args(["check", "--config", "sotto.example.toml"])
        .env("SOTTO_UPSTREAM__ADDRESS", "no-port")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err,
        "SOTTO_UPSTREAM__ADDRESS=no-port: upstream.address: `no-port` is not host:port (e.g. 127.0.0.1:10026)\n"
    );
}

#[test]
fn every_bad_variable_is_named_with_its_value() {
    let out = sotto()
        .args(["check", "--config", "sotto.example.toml"])
        .env("SOTTO_UPSTREAM__TLS", "yes")
        .env("SOTTO_KEYS__SOURCES", "dir,foo")
        .env("SOTTO_TIMEOUTS__DATA", "10 fortnights")
        .env("SOTTO_LIMITS__MAX_RECIPIENTS", "many")
        .env("SOTTO_SMTP__REQUIRE_TLS", "maybe")
        .env("SOTTO_UPSTREM__ADDRESS", "mx.example:25")
        // Good ones are taken, whatever their type.
        .env("SOTTO_SMTP__HOSTNAME", "12345")
        .env("SOTTO_LIMITS__MAX_COMMANDS", "500")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    let want = "\
SOTTO_KEYS__SOURCES=dir,foo: item `foo`: expected one of dir, autocrypt, wkd, vks, pep
SOTTO_LIMITS__MAX_RECIPIENTS=many: expected a whole number (0 or more)
SOTTO_SMTP__REQUIRE_TLS=maybe: expected true or false
SOTTO_TIMEOUTS__DATA=10 fortnights: expected a duration such as 30s, 5m, 1h or 2d
SOTTO_UPSTREAM__TLS=yes: expected one of none, starttls, tls
SOTTO_UPSTREM__ADDRESS: no setting `upstrem` at the top level, did you mean SOTTO_UPSTREAM__ADDRESS? \
Known at the top level: smtp, lmtp, upstream, limits, timeouts, admin, log, keys, policy, crypt, links, redirect, xmpp, store, identities, inbound, imap
";
    assert_eq!(err, want);
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_finishes_the_open_transaction_then_exits_zero() {
    let sink = Sink::start(&[]);
    let (smtp, lmtp, admin) = (free_port(), free_port(), free_port());
    let mut child = sotto()
        .arg("serve")
        .env("SOTTO_SMTP__LISTEN", format!("127.0.0.1:{smtp}"))
        .env("SOTTO_LMTP__LISTEN", format!("127.0.0.1:{lmtp}"))
        .env("SOTTO_ADMIN__LISTEN", format!("127.0.0.1:{admin}"))
        .env("SOTTO_REDIRECT__LISTEN", "127.0.0.1:0")
        .env("SOTTO_UPSTREAM__ADDRESS", &sink.addr)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{smtp}").parse().unwrap();
    let mut up = false;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "sotto serve did not start");
    // One client mid-message, one idle.
    let mut busy = Client::connect(addr).await;
    busy.cmd("EHLO busy", "250").await;
    busy.cmd("MAIL FROM:<a@example.com>", "250").await;
    busy.cmd("RCPT TO:<b@example.org>", "250").await;
    busy.cmd("DATA", "354").await;
    busy.send(b"Subject: in flight\r\n\r\nfirst half\r\n").await;
    let mut idle = Client::connect(addr).await;
    idle.cmd("EHLO idle", "250").await;

    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    // The idle client is told, and the listener stops accepting.
    let r = idle.reply().await;
    assert!(r.starts_with("421 4.3.2"), "{r:?}");
    let mut refused = false;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(addr).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(refused, "still accepting after SIGTERM");
    // The open transaction finishes and is relayed.
    busy.send(b"second half\r\n.\r\n").await;
    let r = busy.reply().await;
    assert!(r.starts_with("250"), "{r:?}");
    let r = busy.cmd("NOOP", "421").await;
    assert!(r.contains("4.3.2"), "{r}");
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));
    let stored = sink.messages();
    assert_eq!(stored.len(), 1);
    assert_eq!(
        stored[0].data,
        b"Subject: in flight\r\n\r\nfirst half\r\nsecond half\r\n"
    );
}

/// `sotto keys refresh` against a key directory holding one certificate,
/// with `sources` as keys.sources.
fn refresh(gpg: &common::pgp::Gpg, sources: &str) -> std::process::Output {
    sotto()
        .args(["keys", "refresh"])
        .env("SOTTO_KEYS__DIR", &gpg.keys)
        .env("SOTTO_KEYS__SOURCES", sources)
        .env("SOTTO_KEYS__VKS_URL", "http://127.0.0.1:1")
        .output()
        .unwrap()
}

#[test]
fn keys_refresh_without_a_web_source_says_what_to_set() {
    let gpg = common::pgp::Gpg::new();
    let fpr = gpg.generate("carol@example.org", true, "1y", None);
    gpg.export("carol@example.org", "carol.asc");
    let before = std::fs::read(gpg.keys.join("carol.asc")).unwrap();
    let out = refresh(&gpg, "dir");
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "{}", common::output_text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err,
        "sotto keys: refresh asks the web sources (wkd, vks) for the certificates of keys.dir, \
         and keys.sources = [\"dir\"] names none: nothing was refreshed. \
         Add \"wkd\" and/or \"vks\" to keys.sources (e.g. SOTTO_KEYS__SOURCES=dir,wkd,vks)\n"
    );
    assert_eq!(std::fs::read(gpg.keys.join("carol.asc")).unwrap(), before);

    // With a web source it asks, and says what came of each certificate
    // (here the keyserver is down: nothing found, nothing changed).
    let out = refresh(&gpg, "dir,vks");
    assert_eq!(out.status.code(), Some(0), "{}", common::output_text(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("{fpr}  not found on the web sources")),
        "{text}"
    );
    assert!(
        text.contains("1 certificate(s) of ")
            && text.contains(" asked of vks: 0 updated, 0 unchanged, 1 not found"),
        "{text}"
    );
    assert!(
        text.contains("vks lookup for <carol@example.org> failed"),
        "{text}"
    );
    assert_eq!(std::fs::read(gpg.keys.join("carol.asc")).unwrap(), before);
}

#[test]
fn keys_refresh_of_an_empty_directory_says_there_is_nothing_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let out = sotto()
        .args(["keys", "refresh"])
        .env("SOTTO_KEYS__DIR", dir.path())
        .env("SOTTO_KEYS__SOURCES", "dir,wkd")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", common::output_text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!(
            "no certificates in {}: nothing to refresh\n",
            dir.path().display()
        )
    );
}

/// Runs `sotto transform` with `policies` and `keys` on `message`.
fn transform(policies: &Path, keys: &Path, to: &[&str], message: &[u8]) -> std::process::Output {
    let mut cmd = sotto();
    cmd.args(["transform", "--policies"])
        .arg(policies)
        .args(["--from", "alice@example.com"]);
    for t in to {
        cmd.args(["--to", t]);
    }
    let mut child = cmd
        .env("SOTTO_KEYS__DIR", keys)
        .env("SOTTO_KEYS__SOURCES", "dir")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(message).unwrap();
    child.wait_with_output().unwrap()
}

/// Splits `transform`'s output into groups: (header line, message bytes),
/// each header saying how many bytes follow.
fn groups(mut out: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut groups = Vec::new();
    while !out.is_empty() {
        let nl = out.iter().position(|&b| b == b'\n').expect("a header line");
        let header = String::from_utf8(out[..nl].to_vec()).unwrap();
        assert!(header.starts_with("==> sotto would relay to "), "{header}");
        let count: usize = header
            .strip_suffix(" bytes:")
            .and_then(|h| h.rsplit_once(", "))
            .and_then(|(_, n)| n.parse().ok())
            .unwrap_or_else(|| panic!("no byte count in {header:?}"));
        let body = &out[nl + 1..];
        assert!(body.len() >= count, "{header}: only {} bytes", body.len());
        groups.push((header, body[..count].to_vec()));
        out = &body[count..];
    }
    groups
}

#[test]
fn transform_shows_each_group_of_recipients_that_share_a_treatment() {
    let gpg = common::pgp::Gpg::new();
    gpg.generate("bob@example.org", true, "1y", None);
    gpg.export("bob@example.org", "bob.asc");
    let policies = tempfile::tempdir().unwrap();
    std::fs::write(
        policies.path().join("00.toml"),
        "[defaults]\nencrypt = \"if-key\"\nlinks = \"strip\"\n\n\
         [[rule]]\nname = \"legal\"\nto = [\"*@legal.example\"]\nencrypt = \"required\"\n",
    )
    .unwrap();
    let message = b"To: bob@example.org, carol@example.net\nSubject: plans\n\n\
                    secret body https://example.com/reset?token=abc\n";
    let out = transform(
        policies.path(),
        &gpg.keys,
        &[
            "bob@example.org",
            "carol@example.net",
            "nokey@legal.example",
            "dave@example.net",
        ],
        message,
    );
    assert_eq!(out.status.code(), Some(0), "{}", common::output_text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(
            "<nokey@legal.example>: 550 5.7.1 Encryption required (policy rule \"legal\")"
        ),
        "{err}"
    );
    let groups = groups(&out.stdout);
    assert_eq!(groups.len(), 2, "{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(
        groups[0].0,
        format!(
            "==> sotto would relay to bob@example.org (encrypted; links: keep), {} bytes:",
            groups[0].1.len()
        )
    );
    let inner = gpg.decrypt(&common::pgp::armored_part(&groups[0].1));
    assert!(
        String::from_utf8_lossy(&inner).contains("secret body https://example.com/reset?token=abc"),
        "{}",
        String::from_utf8_lossy(&inner)
    );
    assert_eq!(
        groups[1].0,
        format!(
            "==> sotto would relay to carol@example.net, dave@example.net (readable; links: strip), {} bytes:",
            groups[1].1.len()
        )
    );
    let readable = String::from_utf8_lossy(&groups[1].1);
    assert!(readable.contains("Subject: plans\r\n"), "{readable}");
    assert!(
        readable.contains("secret body [link removed]"),
        "{readable}"
    );
    assert!(!readable.contains("token=abc"), "{readable}");

    // One group: the message alone, as `> out.eml` wants it.
    let out = transform(
        policies.path(),
        &gpg.keys,
        &["carol@example.net", "nokey@legal.example"],
        message,
    );
    assert_eq!(out.status.code(), Some(0), "{}", common::output_text(&out));
    assert!(
        out.stdout
            .starts_with(b"To: bob@example.org, carol@example.net\r\n")
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("secret body [link removed]\r\n"));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("<nokey@legal.example>: 550 5.7.1"));

    // Everybody refused: nothing on standard output, exit 2.
    let out = transform(
        policies.path(),
        &gpg.keys,
        &["nokey@legal.example", "other@legal.example"],
        message,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("<nokey@legal.example>: 550 5.7.1")
            && err.contains("<other@legal.example>: 550 5.7.1"),
        "{err}"
    );
}
