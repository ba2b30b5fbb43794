//! Unit tests of the service handle: bare-JID checks, error kinds,
//! settings from config, and failing fast while the connection is down.

use crate::config::XmppConfig;

use super::*;

#[test]
fn bare_jids() {
    assert!(check_bare("alice@example.org").is_ok());
    for bad in [
        "example.org",
        "@example.org",
        "alice@",
        "a@b/c",
        "a b@c",
        "a@b@c",
    ] {
        assert!(check_bare(bad).is_err(), "{bad}");
    }
}

#[test]
fn conditions_map_to_kinds() {
    let e = |c: &str| ServiceError::from_condition(c.to_owned());
    assert_eq!(e("item-not-found"), ServiceError::ItemNotFound);
    assert!(matches!(e("forbidden"), ServiceError::Forbidden { .. }));
    assert!(matches!(e("not-allowed"), ServiceError::Forbidden { .. }));
    assert!(e("internal-server-error").is_transient());
    assert!(!e("item-not-found").is_transient());
}

#[test]
fn settings_from_config() {
    let mut cfg = XmppConfig::default();
    assert!(ServiceSettings::from_config(&cfg).unwrap().is_none());
    cfg.component = "sotto.example.org".into();
    assert!(matches!(
        ServiceSettings::from_config(&cfg),
        Err(SettingsError::NoSecret)
    ));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secret");
    std::fs::write(&path, "\n").unwrap();
    cfg.component_secret = Some(path.clone());
    assert!(matches!(
        ServiceSettings::from_config(&cfg),
        Err(SettingsError::EmptySecret { .. })
    ));
    std::fs::write(&path, "s3cret \nignored\n").unwrap();
    let s = ServiceSettings::from_config(&cfg).unwrap().unwrap();
    assert_eq!(s.secret, "s3cret");
    assert_eq!(s.names, ["sotto.example.org"]);
    cfg.component = "sotto-1.example.org, Sotto-2.example.org sotto-1.example.org".into();
    let s = ServiceSettings::from_config(&cfg).unwrap().unwrap();
    assert_eq!(s.names, ["sotto-1.example.org", "sotto-2.example.org"]);
    assert_eq!(s.upstream, "127.0.0.1:5347");
}

#[tokio::test]
async fn requests_fail_fast_while_down() {
    // Nothing listens on the port of a listener just dropped.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let shutdown = CancellationToken::new();
    let service = Service::start(
        ServiceSettings::new("sotto.example.org", &format!("127.0.0.1:{port}"), "x"),
        shutdown.clone(),
    );
    let err = service.wait_connected(Duration::from_secs(2)).await;
    assert!(
        matches!(
            err,
            Err(ServiceError::NotConnected {
                last: Some(ConnectError::Io(_))
            })
        ),
        "{err:?}"
    );
    let started = std::time::Instant::now();
    let err = service.fetch_keys("bob@example.org").await.unwrap_err();
    assert!(matches!(err, ServiceError::NotConnected { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_millis(100));
    shutdown.cancel();
}
