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
    assert!(s.contains("listne"), "{s}");
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
