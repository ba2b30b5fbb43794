//! The key store against real sources: a directory, a WKD server and a VKS
//! server run by the test on 127.0.0.1 (Python's http.server serving
//! certificates GnuPG generated). Expired, revoked, sign-only and
//! wrong-user-ID certificates are rejected with their reason.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::pgp::Gpg;
use common::{config, require};
use sotto::config::{Config, KeySource};
use sotto::keys::{KeyStore, Rejection};

/// `python3 -m http.server` on 127.0.0.1, serving `root`; its request log
/// goes to `log`.
struct HttpServer {
    child: Child,
    url: String,
    log: std::path::PathBuf,
}

impl HttpServer {
    fn start(root: &Path) -> HttpServer {
        require("python3");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = root.with_extension("log");
        let child = Command::new("python3")
            .args(["-m", "http.server", "--bind", "127.0.0.1", "--directory"])
            .arg(root)
            .arg(port.to_string())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        HttpServer {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log,
        }
    }

    fn requests(&self) -> usize {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .matches("\"GET ")
            .count()
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Places `cert` where a WKD server (advanced method, base URL form) serves it.
fn publish_wkd(root: &Path, address: &str, cert: &[u8]) {
    let [advanced, _] = sotto::keys::web::wkd_urls(address, Some("http://x")).unwrap();
    let path = advanced
        .trim_start_matches("http://x/")
        .split('?')
        .next()
        .unwrap()
        .to_string();
    let file = root.join(path);
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(file, cert).unwrap();
}

fn publish_vks(root: &Path, address: &str, cert: &[u8]) {
    let dir = root.join("vks/v1/by-email");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(address), cert).unwrap();
}

fn store(cfg: &Config) -> KeyStore {
    KeyStore::from_config(cfg)
}

#[tokio::test(flavor = "multi_thread")]
async fn each_source_finds_keys_in_order() {
    let gpg = Gpg::new();
    gpg.generate("dir@example.org", true, "1y", None);
    gpg.export("dir@example.org", "dir.asc");
    gpg.generate("wkd@example.org", true, "1y", None);
    gpg.generate("vks@example.org", true, "1y", None);
    let web = tempfile::tempdir().unwrap();
    publish_wkd(
        web.path(),
        "wkd@example.org",
        &gpg.public("wkd@example.org"),
    );
    publish_vks(
        web.path(),
        "vks@example.org",
        &gpg.public("vks@example.org"),
    );
    let server = HttpServer::start(web.path());

    let mut cfg = config("127.0.0.1:1");
    cfg.keys.dir = Some(gpg.keys.clone());
    cfg.keys.sources = vec![KeySource::Dir, KeySource::Wkd, KeySource::Vks];
    cfg.keys.wkd_url = Some(server.url.clone());
    cfg.keys.vks_url = server.url.clone();
    let keys = store(&cfg);
    for (addr, source) in [
        ("dir@example.org", KeySource::Dir),
        ("WKD@example.org", KeySource::Wkd),
        ("vks@example.org", KeySource::Vks),
    ] {
        let l = keys.lookup(addr).await;
        let why = l.why_none();
        let found = l.found.unwrap_or_else(|| panic!("{addr}: {why}"));
        assert_eq!(found.source, source, "{addr}");
        assert_eq!(
            found.cert.fingerprint().to_hex(),
            gpg.fingerprint(&addr.to_lowercase())
        );
    }
    let l = keys.lookup("nobody@example.org").await;
    assert!(l.found.is_none());
    assert_eq!(l.why_none(), "no key found");

    // The cache answers again without asking, and concurrent lookups of one
    // address share one fetch.
    let before = server.requests();
    assert!(keys.lookup("vks@example.org").await.found.is_some());
    assert_eq!(
        server.requests(),
        before,
        "a cached hit asked the server again"
    );
    let fresh = store(&cfg);
    let lookups: Vec<_> = (0..10)
        .map(|_| fresh.clone())
        .map(|k| tokio::spawn(async move { k.lookup("wkd@example.org").await }))
        .collect();
    for l in lookups {
        assert!(l.await.unwrap().found.is_some());
    }
    assert_eq!(
        server.requests(),
        before + 1,
        "ten concurrent lookups made more than one request"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unusable_certificates_are_rejected_with_their_reason() {
    let gpg = Gpg::new();
    gpg.generate("expired@example.org", true, "1d", Some("20200101T000000"));
    gpg.export("expired@example.org", "expired.asc");
    let fpr = gpg.generate("revoked@example.org", true, "1y", None);
    gpg.revoke(&fpr);
    gpg.export("revoked@example.org", "revoked.asc");
    gpg.generate("signonly@example.org", false, "1y", None);
    gpg.export("signonly@example.org", "signonly.asc");
    gpg.generate("other@example.org", true, "1y", None);
    let web = tempfile::tempdir().unwrap();
    // A WKD server answering for bob with someone else's certificate.
    publish_wkd(
        web.path(),
        "bob@example.org",
        &gpg.public("other@example.org"),
    );
    let server = HttpServer::start(web.path());

    let mut cfg = config("127.0.0.1:1");
    cfg.keys.dir = Some(gpg.keys.clone());
    cfg.keys.sources = vec![KeySource::Dir, KeySource::Wkd];
    cfg.keys.wkd_url = Some(server.url.clone());
    let keys = store(&cfg);
    for (addr, reason) in [
        ("expired@example.org", Rejection::Expired),
        ("revoked@example.org", Rejection::Revoked),
        ("signonly@example.org", Rejection::NoEncryptionKey),
        ("bob@example.org", Rejection::WrongUserId),
    ] {
        let l = keys.lookup(addr).await;
        assert!(l.found.is_none(), "{addr} should have no usable key");
        assert_eq!(
            l.rejected.first().map(|r| r.reason.clone()),
            Some(reason.clone()),
            "{addr}: {l:?}"
        );
        assert!(
            l.why_none().contains(&reason.to_string()),
            "{}",
            l.why_none()
        );
    }

    // The command line says the same.
    let cfg_file = gpg.home.path().join("sotto.toml");
    std::fs::write(
        &cfg_file,
        format!(
            "[keys]\ndir = \"{}\"\nsources = [\"dir\", \"wkd\"]\nwkd_url = \"{}\"\n",
            gpg.keys.display(),
            server.url
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sotto"))
        .args(["keys", "--config"])
        .arg(&cfg_file)
        .args(["lookup", "revoked@example.org"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("rejected {fpr} from dir: revoked")),
        "{text}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_sotto"))
        .args(["keys", "--config"])
        .arg(&cfg_file)
        .arg("list")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("<expired@example.org>  not used: expired"),
        "{text}"
    );
    assert!(
        text.contains("<signonly@example.org>  not used: no valid encryption-capable key"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn import_and_refresh_keep_the_directory_current() {
    let gpg = Gpg::new();
    let fpr = gpg.generate("carol@example.org", true, "1y", None);
    let keydir = tempfile::tempdir().unwrap();
    let exported = gpg.home.path().join("carol.asc");
    std::fs::write(&exported, gpg.public("carol@example.org")).unwrap();
    let web = tempfile::tempdir().unwrap();
    let server = HttpServer::start(web.path());
    let cfg_file = gpg.home.path().join("sotto.toml");
    std::fs::write(
        &cfg_file,
        format!(
            "[keys]\ndir = \"{}\"\nsources = [\"dir\", \"vks\"]\nvks_url = \"{}\"\n",
            keydir.path().display(),
            server.url
        ),
    )
    .unwrap();
    let sotto = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_sotto"))
            .args(["keys", "--config"])
            .arg(&cfg_file)
            .args(args)
            .output()
            .unwrap()
    };
    let out = sotto(&["import", exported.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(keydir.path().join(format!("{fpr}.asc")).exists());
    assert!(sotto(&["lookup", "carol@example.org"]).status.success());

    // Carol revokes her key and publishes the revocation on the keyserver.
    gpg.revoke(&fpr);
    publish_vks(
        web.path(),
        "carol@example.org",
        &gpg.public("carol@example.org"),
    );
    let out = sotto(&["refresh"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("{fpr}  updated")), "{text}");
    let out = sotto(&["lookup", "carol@example.org"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("revoked"));
}
