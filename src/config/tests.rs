//! Unit tests of loading: defaults, environment overrides, durations, and
//! problems reported with their position.

use super::*;

fn load_str(text: &str) -> Result<Config, ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("sotto.toml");
    std::fs::write(&p, text).unwrap();
    Config::load(Some(&p), Vec::new())
}

#[test]
fn embedded_defaults_are_valid() {
    let c = Config::load(None, Vec::new()).unwrap();
    assert_eq!(c.smtp.listen, "127.0.0.1:10025");
    assert_eq!(c.lmtp.listen, "127.0.0.1:10024");
    assert_eq!(c.upstream.address, "127.0.0.1:10026");
    assert_eq!(c.admin.listen, "127.0.0.1:9025");
}

#[test]
fn env_overrides_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("sotto.toml");
    std::fs::write(&p, "[upstream]\naddress = \"127.0.0.1:1\"\n").unwrap();
    let env = vec![
        (
            "SOTTO_UPSTREAM__ADDRESS".to_string(),
            "127.0.0.1:2525".to_string(),
        ),
        ("SOTTO_LIMITS__MAX_RECIPIENTS".to_string(), "7".to_string()),
        ("SOTTO_KEYS__SOURCES".to_string(), "dir,vks".to_string()),
        ("PATH".to_string(), "/bin".to_string()),
    ];
    let c = Config::load(Some(&p), env).unwrap();
    assert_eq!(c.upstream.address, "127.0.0.1:2525");
    assert_eq!(c.limits.max_recipients, 7);
    assert_eq!(c.keys.sources, vec![KeySource::Dir, KeySource::Vks]);
}

#[test]
fn durations_read_humanly() {
    let c = load_str("[timeouts]\ncommand = \"5s\"\ndata = \"2m\"\n").unwrap();
    assert_eq!(c.timeouts.command, Duration::from_secs(5));
    assert_eq!(c.timeouts.data, Duration::from_secs(120));
}

#[test]
fn every_semantic_problem_has_its_line() {
    let err = load_str(
        "[smtp]\nlisten = \"nowhere\"\n\n[upstream]\naddress = \"x\"\n[limits]\nmax_recipients = 0\n",
    )
    .unwrap_err();
    let lines: Vec<String> = err.problems.iter().map(|p| p.to_string()).collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines[0].contains("sotto.toml:2:"), "{lines:?}");
    assert!(lines[0].contains("smtp.listen"), "{lines:?}");
    assert!(lines[1].contains("sotto.toml:5:"), "{lines:?}");
    assert!(lines[2].contains("sotto.toml:7:"), "{lines:?}");
    assert!(lines[2].contains("limits.max_recipients"), "{lines:?}");
}

#[test]
fn unknown_key_is_reported_with_position() {
    let err = load_str("[smtp]\nlisten = \"127.0.0.1:25\"\nlistne = 1\n").unwrap_err();
    let s = err.to_string();
    assert!(s.contains("sotto.toml:3:1:"), "{s}");
    assert!(
        s.contains("unknown field `listne`, did you mean `listen`? Known in [smtp]: listen,"),
        "{s}"
    );
}

/// Each problem of a file, one line each, with what follows `sotto.toml:`.
fn problems_of(text: &str) -> Vec<String> {
    load_str(text)
        .unwrap_err()
        .problems
        .iter()
        .map(|p| {
            let s = p.to_string();
            s.split_once("sotto.toml:")
                .map_or(s.clone(), |(_, rest)| rest.to_string())
        })
        .collect()
}

#[test]
fn every_kind_of_problem_in_one_file_is_reported_at_its_place() {
    let got = problems_of(
        "[smtp]\n\
         listne = \"127.0.0.1:25\"\n\
         require_tls = \"yes\"\n\
         [upstream]\n\
         tls = \"maybe\"\n\
         address = \"no-port\"\n\
         pool_size = 2.5\n\
         [limits]\n\
         max_recipients = -1\n\
         [timeouts]\n\
         command = \"5 parsecs\"\n\
         [keys]\n\
         sources = [\"dir\", \"wkdd\", \"vks\", 7]\n\
         [log]\n\
         format = 3\n\
         [[redirect.keys]]\n\
         secret_file = \"/x\"\n\
         [[smtp.auth.users]]\n\
         name = \"a\"\n\
         password = \"p\"\n\
         pasword = \"q\"\n",
    );
    let want = [
        "2:1: unknown field `listne`, did you mean `listen`? Known in [smtp]: listen, hostname, tls_cert, tls_key, require_tls, auth",
        "3:15: smtp.require_tls = \"yes\": expected true or false",
        "5:7: upstream.tls = \"maybe\": expected one of none, starttls, tls",
        "6:1: upstream.address: `no-port` is not host:port (e.g. 127.0.0.1:10026)",
        "7:13: upstream.pool_size = 2.5: expected a whole number (0 or more)",
        "9:18: limits.max_recipients = -1: expected a whole number (0 or more)",
        "11:11: timeouts.command = \"5 parsecs\": expected a duration such as 30s, 5m, 1h or 2d",
        "13:19: keys.sources: item \"wkdd\": expected one of dir, autocrypt, wkd, vks, pep",
        "13:34: keys.sources: item 7: expected one of dir, autocrypt, wkd, vks, pep",
        "15:10: log.format = 3: expected one of text, json",
        "16:1: [[redirect.keys]]: `id` is missing; this entry is left out",
        "21:1: unknown field `pasword`, did you mean `password`? Known in [[smtp.auth.users]]: name, password",
    ];
    assert_eq!(got, want);
}

#[test]
fn a_value_that_may_be_a_secret_is_not_echoed() {
    let got = problems_of("[[smtp.auth.users]]\nname = \"a\"\npassword = 123456\n");
    assert_eq!(
        got,
        ["3:12: smtp.auth.users.password = (hidden): expected a string (in quotes in the file)"]
    );
}

fn load_env(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let env = vars.iter().map(|(k, v)| (k.to_string(), v.to_string()));
    Config::load(None, env)
}

#[test]
fn every_bad_variable_is_named_with_its_value() {
    let err = load_env(&[
        ("SOTTO_UPSTREAM__TLS", "yes"),
        ("SOTTO_SMTP__REQUIRE_TLS", "maybe"),
        ("SOTTO_LIMITS__MAX_RECIPIENTS", "many"),
        ("SOTTO_TIMEOUTS__DATA", "10 fortnights"),
        ("SOTTO_KEYS__SOURCES", "dir,foo"),
        ("SOTTO_SMTP__LISTNE", "127.0.0.1:25"),
        ("SOTTO_SMTP", "x"),
        ("SOTTO_UPSTREAM__ADDRESS", "no-port"),
        ("SOTTO_UPSTREAM__AUTH__PASSWORD", "hunter2"),
        ("SOTTO_LIMITS__MAX_COMMANDS", "50"),
        ("PATH", "/bin"),
    ])
    .unwrap_err();
    let got: Vec<String> = err.problems.iter().map(|p| p.to_string()).collect();
    let want = [
        "SOTTO_KEYS__SOURCES=dir,foo: item `foo`: expected one of dir, autocrypt, wkd, vks, pep",
        "SOTTO_LIMITS__MAX_RECIPIENTS=many: expected a whole number (0 or more)",
        "SOTTO_SMTP: names a section, not a setting; set its keys as SOTTO_SMTP__<KEY>",
        "SOTTO_SMTP__LISTNE: no setting `listne` in [smtp], did you mean SOTTO_SMTP__LISTEN? Known in [smtp]: listen, hostname, tls_cert, tls_key, require_tls, auth",
        "SOTTO_SMTP__REQUIRE_TLS=maybe: expected true or false",
        "SOTTO_TIMEOUTS__DATA=10 fortnights: expected a duration such as 30s, 5m, 1h or 2d",
        "SOTTO_UPSTREAM__ADDRESS=no-port: upstream.address: `no-port` is not host:port (e.g. 127.0.0.1:10026)",
        "SOTTO_UPSTREAM__TLS=yes: expected one of none, starttls, tls",
        "configuration: upstream.auth.username: is missing (set it in the file or as SOTTO_UPSTREAM__AUTH__USERNAME)",
    ];
    assert_eq!(got, want);
}

#[test]
fn variables_are_read_as_the_setting_wants() {
    let c = load_env(&[
        ("SOTTO_SMTP__HOSTNAME", "12345"),
        ("SOTTO_SMTP__REQUIRE_TLS", "FALSE"),
        ("SOTTO_LINKS__REDACT_PARAMS", "token, sig"),
        ("SOTTO_KEYS__SOURCES", "vks"),
        ("SOTTO_TIMEOUTS__DATA", "90s"),
        ("SOTTO_LMTP__LISTEN", ""),
    ])
    .unwrap();
    assert_eq!(c.smtp.hostname, "12345");
    assert!(!c.smtp.require_tls);
    assert_eq!(c.links.redact_params, vec!["token", "sig"]);
    assert_eq!(c.keys.sources, vec![KeySource::Vks]);
    assert_eq!(c.timeouts.data, Duration::from_secs(90));
    assert_eq!(c.lmtp.listen, "");
}

#[test]
fn host_port_split() {
    assert_eq!(split_host_port("[::1]:25"), Some(("::1".into(), 25)));
    assert_eq!(
        split_host_port("mx.example:587"),
        Some(("mx.example".into(), 587))
    );
    assert_eq!(split_host_port("mx.example"), None);
    assert_eq!(split_host_port(":25"), None);
}

#[test]
fn a_broken_file_does_not_hide_bad_variables() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("sotto.toml");
    std::fs::write(&p, "[smtp\nlisten = \"127.0.0.1:25\"\n").unwrap();
    let env = vec![("SOTTO_UPSTREAM__TLS".to_string(), "yes".to_string())];
    let got: Vec<String> = Config::load(Some(&p), env)
        .unwrap_err()
        .problems
        .iter()
        .map(|p| p.to_string())
        .collect();
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(
        got[0].ends_with("sotto.toml:1:6: unclosed table, expected `]`"),
        "{got:?}"
    );
    assert_eq!(
        got[1],
        "SOTTO_UPSTREAM__TLS=yes: expected one of none, starttls, tls"
    );
}

#[test]
fn imap_proxy_settings_are_checked_together() {
    let err = load_str(
        "[imap]\nlisten = \"127.0.0.1:1143\"\nlisten_tls = \"127.0.0.1:1993\"\nupstream = \"imap.example.net:143\"\n",
    )
    .unwrap_err();
    let lines: Vec<String> = err.problems.iter().map(|p| p.to_string()).collect();
    let has = |key: &str, what: &str| lines.iter().any(|l| l.contains(key) && l.contains(what));
    assert!(has("imap.listen", "needs identities.domains"), "{lines:?}");
    assert!(
        has("imap.upstream", "imap.upstream_starttls = true"),
        "{lines:?}"
    );
    assert!(
        has("imap.listen_tls", "needs tls_cert and tls_key"),
        "{lines:?}"
    );
    let err = load_str(
        "[identities]\ndomains = [\"example.org\"]\n[imap]\nlisten = \"127.0.0.1:1143\"\nupstream = \"imap.example.net:993\"\nupstream_tls = true\nupstream_starttls = true\n",
    )
    .unwrap_err();
    assert!(
        err.problems
            .iter()
            .any(|p| p.to_string().contains("choose implicit TLS")),
        "{:?}",
        err.problems
    );
    let ok = load_str(&format!(
        "[store]\nsecret_file = \"{}/Cargo.toml\"\n[identities]\ndomains = [\"example.org\"]\n[imap]\nlisten = \"127.0.0.1:1143\"\nupstream = \"imap.example.net:143\"\nupstream_starttls = true\n",
        env!("CARGO_MANIFEST_DIR")
    ));
    assert!(ok.is_ok(), "{:?}", ok.err().map(|e| e.problems));
}
