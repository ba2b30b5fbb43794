//! The state store on both back ends, for real: SQLite files and a private
//! PostgreSQL cluster (`common/postgres.rs`). Two `Store`s on one database
//! stand for two sotto processes (each has its own pool and cache).

mod common;
#[path = "common/postgres.rs"]
mod postgres;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use postgres::Postgres;
use sequoia_openpgp::Cert;
use sequoia_openpgp::cert::{CertBuilder, CipherSuite};
use sequoia_openpgp::parse::Parse;
use sequoia_openpgp::serialize::SerializeInto;
use sotto::openpgp::identities::Identities;
use sotto::store::{Options, Store, StoreError, sqlite_url};
use tokio_util::sync::CancellationToken;

const PASS: &str = "store passphrase for the tests";

async fn open(url: &str) -> Store {
    Store::open(&Options::new(url))
        .await
        .expect("open the store")
}

fn sqlite(dir: &tempfile::TempDir) -> String {
    sqlite_url(&dir.path().join("sotto.db"))
}

/// Waits (up to a minute, as a guard only) until `f` holds.
async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..600 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("never happened: {what}");
}

/// Two processes (two pools, two caches), 50 concurrent first uses each,
/// for the same 20 new users: one key per user, and both use it.
async fn race(url: &str) {
    let one = Arc::new(Identities::new(open(url).await, PASS.into()));
    let two = Arc::new(Identities::new(open(url).await, PASS.into()));
    let mut tasks = Vec::new();
    for (p, keys) in [(1, &one), (2, &two)] {
        for i in 0..50 {
            let keys = keys.clone();
            let jid = format!("user{}@example.org", i % 20);
            tasks.push(tokio::spawn(async move {
                let key = keys.get_or_create(&jid).await.expect("a key");
                (jid, p, key.fingerprint().to_hex())
            }));
        }
    }
    let mut seen: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut procs: BTreeMap<String, BTreeSet<i32>> = BTreeMap::new();
    for t in tasks {
        let (jid, p, fpr) = t.await.unwrap();
        seen.entry(jid.clone()).or_default().insert(fpr);
        procs.entry(jid).or_default().insert(p);
    }
    assert_eq!(seen.len(), 20);
    for (jid, fprs) in &seen {
        assert_eq!(fprs.len(), 1, "{jid} got several keys: {fprs:?}");
        assert_eq!(procs[jid].len(), 2, "{jid} was used by both processes");
    }
    let stored = one.store().list_identities().await.unwrap();
    assert_eq!(stored.len(), 20);
    for (jid, fpr, _) in stored {
        assert!(seen[&jid].contains(&fpr), "{jid}: stored {fpr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_processes_race_for_new_users_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    race(&sqlite(&dir)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_processes_race_for_new_users_postgres() {
    let pg = Postgres::start();
    race(&pg.database()).await;
}

/// A rotation and a revocation made through one process reach the other
/// process's cache (its watch polls the store).
async fn change_reaches_the_other_process(url: &str) {
    let a = Arc::new(Identities::new(open(url).await, PASS.into()));
    let b = Identities::new(open(url).await, PASS.into());
    let stop = CancellationToken::new();
    a.watch(stop.clone());
    let jid = "rot@example.org";
    let first = a.get_or_create(jid).await.unwrap().fingerprint();
    let rotated = b.rotate(jid).await.unwrap().fingerprint();
    assert_ne!(first, rotated);
    eventually("the rotated key is used by the other process", || {
        let a = a.clone();
        let want = rotated.clone();
        async move { a.get_or_create(jid).await.unwrap().fingerprint() == want }
    })
    .await;
    assert!(b.store().revoke_identity(jid).await.unwrap());
    eventually("the revoked key is dropped by the other process", || {
        let a = a.clone();
        async move { a.get(jid).await.unwrap().is_none() }
    })
    .await;
    stop.cancel();
}

#[tokio::test]
async fn a_change_reaches_the_other_process_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    change_reaches_the_other_process(&sqlite(&dir)).await;
}

#[tokio::test]
async fn a_change_reaches_the_other_process_postgres() {
    let pg = Postgres::start();
    change_reaches_the_other_process(&pg.database()).await;
}

/// gpg with the given passphrase for secret keys, in its own home.
fn gpg(home: &Path, pass: &str, args: &[&str]) -> Command {
    common::require("gpg");
    let mut c = Command::new("gpg");
    c.env("GNUPGHOME", home).args([
        "--batch",
        "--quiet",
        "--pinentry-mode",
        "loopback",
        "--passphrase",
        pass,
        "--trust-model",
        "always",
    ]);
    c.args(args);
    c
}

fn gpg_home() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        d.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    d
}

fn gpg_io(mut c: Command, input: &[u8]) -> Vec<u8> {
    let mut child = c
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "gpg: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Backup on SQLite, restore on PostgreSQL: the same identities (same
/// fingerprints, secret parts still encrypted), learned keys and replay
/// record, and GnuPG decrypts with the restored key what was encrypted to
/// the original.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_on_sqlite_restores_on_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let lite = Identities::new(open(&sqlite(&dir)).await, PASS.into());
    let alice = lite.get_or_create("alice@example.org").await.unwrap();
    lite.get_or_create("bob@example.org").await.unwrap();
    let store = lite.store();
    store
        .learn_key("carol@partner.example", "C0FFEE", b"carol's cert", "wkd")
        .await
        .unwrap();
    assert!(
        store
            .first_sighting(b"digest", Duration::from_secs(3600))
            .await
            .unwrap()
    );

    // A message to alice, encrypted by GnuPG to her public key.
    let sender = gpg_home();
    let public = alice.cert().armored().to_vec().unwrap();
    gpg_io(gpg(sender.path(), "", &["--import"]), &public);
    let fpr = alice.fingerprint().to_hex();
    let enc = gpg(sender.path(), "", &["--armor", "--encrypt", "-r", &fpr]);
    let ciphertext = gpg_io(enc, b"for alice only 4711");

    let file = dir.path().join("backup.txt");
    let summary = store.backup(&file).await.unwrap();
    assert_eq!(
        (summary.identities, summary.keys, summary.replay),
        (2, 1, 1)
    );
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&file).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);

    let pg = Postgres::start();
    let url = pg.database();
    let restored = Identities::new(open(&url).await, PASS.into());
    assert_eq!(restored.store().restore(&file).await.unwrap(), summary);
    assert_eq!(lite.list().await.unwrap(), restored.list().await.unwrap());
    let learned = restored
        .store()
        .learned_keys("carol@partner.example")
        .await
        .unwrap();
    assert_eq!(learned.len(), 1);
    assert_eq!(learned[0].cert, b"carol's cert");
    assert!(
        !restored
            .store()
            .first_sighting(b"digest", Duration::from_secs(3600))
            .await
            .unwrap(),
        "the replay record came along"
    );
    // A second restore into a store that is no longer empty is refused.
    assert!(matches!(
        restored.store().restore(&file).await,
        Err(StoreError::NotEmpty(_))
    ));

    // The restored secret key, still passphrase-protected, decrypts.
    let row = restored
        .store()
        .identity("alice@example.org")
        .await
        .unwrap()
        .unwrap();
    let tsk = Cert::from_bytes(&row.tsk).unwrap();
    assert!(tsk.keys().secret().all(|k| k.key().secret().is_encrypted()));
    let reader = gpg_home();
    let armored = tsk.as_tsk().armored().to_vec().unwrap();
    gpg_io(gpg(reader.path(), PASS, &["--import"]), &armored);
    let plain = gpg_io(gpg(reader.path(), PASS, &["--decrypt"]), &ciphertext);
    assert_eq!(plain, b"for alice only 4711");
    // And sotto itself uses it: the same key, unlocked.
    let key = restored.get("alice@example.org").await.unwrap().unwrap();
    assert_eq!(key.fingerprint(), alice.fingerprint());
}

/// An older `xmpp.user_keys` directory: one armoured secret key per user,
/// named by the SHA-256 of the JID, under its own passphrase.
fn legacy_dir(dir: &Path, pass: &str) -> BTreeMap<String, String> {
    std::fs::create_dir_all(dir).unwrap();
    let mut made = BTreeMap::new();
    for jid in ["alice@example.org", "bob@example.org"] {
        let (cert, _) = CertBuilder::new()
            .set_cipher_suite(CipherSuite::Cv25519)
            .add_signing_subkey()
            .add_transport_encryption_subkey()
            .add_userid(format!("xmpp:{jid}"))
            .generate()
            .unwrap();
        let cert = locked(cert, pass);
        let out = Command::new("sha256sum")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin.take().unwrap().write_all(jid.as_bytes())?;
                c.wait_with_output()
            })
            .unwrap();
        let hex = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .next()
            .unwrap()
            .to_string();
        std::fs::write(
            dir.join(format!("{hex}.pgp")),
            cert.as_tsk().armored().to_vec().unwrap(),
        )
        .unwrap();
        made.insert(jid.to_string(), cert.fingerprint().to_hex());
    }
    std::fs::write(dir.join("junk.pgp"), "not a key").unwrap();
    std::fs::write(dir.join("README"), "not even named like a key").unwrap();
    made
}

/// `cert` with its secret parts encrypted under `pass`, with the S2K the
/// old directories used (iterated SHA-256, 4 MiB).
fn locked(cert: Cert, pass: &str) -> Cert {
    use sequoia_openpgp::Packet;
    use sequoia_openpgp::crypto::S2K;
    use sequoia_openpgp::packet::Key;
    use sequoia_openpgp::packet::key::{KeyRole, SecretParts};
    use sequoia_openpgp::types::{HashAlgorithm, SymmetricAlgorithm};
    fn lock<R: KeyRole>(
        k: Key<SecretParts, R>,
        pass: &sequoia_openpgp::crypto::Password,
    ) -> Key<SecretParts, R> {
        let (public, mut secret) = k.take_secret();
        let s2k = S2K::new_iterated(HashAlgorithm::SHA256, 4 << 20).unwrap();
        secret
            .encrypt_in_place_with(&public, s2k, SymmetricAlgorithm::AES256, None, pass)
            .unwrap();
        public.add_secret(secret).0
    }
    let pass = pass.into();
    let packets = cert.into_tsk().into_packets().map(|p| match p {
        Packet::SecretKey(k) => Packet::SecretKey(lock(k, &pass)),
        Packet::SecretSubkey(k) => Packet::SecretSubkey(lock(k, &pass)),
        other => other,
    });
    Cert::from_packets(packets).unwrap()
}

fn listing(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            (p.display().to_string(), std::fs::read(&p).unwrap())
        })
        .collect()
}

/// `sotto store import-user-keys DIR`: same fingerprints, re-encrypted
/// under the store's passphrase; a second run imports nothing; the
/// directory is left as it was.
async fn import_user_keys(url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("user-keys");
    let made = legacy_dir(&keys, "old passphrase");
    let before = listing(&keys);
    let (old, new) = (
        dir.path().join("old.secret"),
        dir.path().join("store.secret"),
    );
    std::fs::write(&old, "old passphrase\n").unwrap();
    std::fs::write(&new, format!("{PASS}\n")).unwrap();
    let run = || {
        common::sotto()
            .args(["store", "import-user-keys"])
            .arg(&keys)
            .env("SOTTO_STORE__URL", url)
            .env("SOTTO_STORE__SECRET_FILE", &new)
            .env("SOTTO_XMPP__USER_KEYS_SECRET", &old)
            .output()
            .unwrap()
    };
    let out = run();
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains("2 imported, 0 already in the store, 1 skipped"),
        "{said}"
    );
    let out = run();
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        said.contains("0 imported, 2 already in the store"),
        "{said}"
    );
    assert_eq!(listing(&keys), before, "the directory was written to");

    let users = Identities::new(open(url).await, PASS.into());
    let stored: BTreeMap<String, String> = users
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|(j, f)| (j, f.to_hex()))
        .collect();
    assert_eq!(stored, made);
    let alice = users.get("alice@example.org").await.unwrap().unwrap();
    assert_eq!(alice.fingerprint().to_hex(), made["alice@example.org"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_user_keys_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    import_user_keys(&sqlite(&dir)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_user_keys_postgres() {
    let pg = Postgres::start();
    import_user_keys(&pg.database()).await;
}

/// What `serve` does at start with `xmpp.user_keys` set: the directory is
/// imported into the store, same fingerprints.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_imports_user_keys_on_first_start() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("user-keys");
    let made = legacy_dir(&keys, PASS);
    let secret = dir.path().join("secret");
    std::fs::write(&secret, format!("{PASS}\n")).unwrap();
    let mut cfg = sotto::config::Config::default();
    cfg.store.url = Some(sqlite(&dir));
    cfg.xmpp.user_keys = Some(keys);
    cfg.xmpp.user_keys_secret = Some(secret);
    assert!(sotto::store::cli::wanted(&cfg));
    let store = sotto::store::cli::open(&cfg).await.unwrap();
    let users = sotto::store::cli::user_keys(&cfg, &store)
        .await
        .unwrap()
        .expect("chat keys configured");
    let stored: BTreeMap<String, String> = users
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|(j, f)| (j, f.to_hex()))
        .collect();
    assert_eq!(stored, made);
}

/// A schema newer than the binary knows is refused, by the library and
/// by `sotto store migrate`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newer_schema_is_refused_postgres() {
    let pg = Postgres::start();
    let url = pg.database();
    open(&url).await.close().await;
    let db = url.rsplit('/').next().unwrap();
    pg.sql_in(
        db,
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (99990101, 'from the future', TRUE, '\\x00', 0)",
    );
    let err = Store::open(&Options::new(&url)).await.unwrap_err();
    assert!(matches!(err, StoreError::NewerSchema { .. }), "{err}");
    let out = common::sotto()
        .args(["store", "migrate"])
        .env("SOTTO_STORE__URL", &url)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("newer than this sotto knows"), "{said}");
}

/// PostgreSQL stopped under a running process: what is cached keeps
/// working, what needs the database fails as transient (so callers answer
/// 4xx), and it recovers by itself once the database is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_stopped_and_restarted() {
    let pg = Postgres::start();
    let url = pg.database();
    let users = Identities::new(open(&url).await, PASS.into());
    let alice = users.get_or_create("alice@example.org").await.unwrap();
    pg.halt();
    let err = users.store().ping().await.unwrap_err();
    assert!(err.is_transient(), "{err}");
    let cached = users.get_or_create("alice@example.org").await.unwrap();
    assert_eq!(cached.fingerprint(), alice.fingerprint());
    let err = users.get_or_create("new@example.org").await.unwrap_err();
    assert!(err.is_transient(), "{err}");
    pg.resume();
    eventually("the store answers again", || {
        let store = users.store().clone();
        async move { store.ping().await.is_ok() }
    })
    .await;
    let new = users.get_or_create("new@example.org").await.unwrap();
    assert_ne!(new.fingerprint(), alice.fingerprint());
    assert_eq!(users.list().await.unwrap().len(), 2);
}

/// `sotto store backup` and `restore` from the command line, SQLite to
/// SQLite (the PostgreSQL direction is above).
#[test]
fn backup_and_restore_commands() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (
        sqlite_url(&dir.path().join("a.db")),
        sqlite_url(&dir.path().join("b.db")),
    );
    let file = dir.path().join("snap");
    let run = |url: &str, args: &[&str]| {
        common::sotto()
            .arg("store")
            .args(args)
            .env("SOTTO_STORE__URL", url)
            .output()
            .unwrap()
    };
    let out = run(&a, &["migrate"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("sqlite store at schema version"));
    let out = run(&a, &["backup", file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&b, &["restore", file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("restored 0 identities"));
    std::fs::write(&file, "sotto-store-backup 1 1\nidentity x\n").unwrap();
    let out = run(&b, &["restore", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("backup line 2"));
}

async fn http_get(url: String) -> (u16, String) {
    let r = reqwest::get(url).await.expect("admin answers");
    (r.status().as_u16(), r.text().await.unwrap_or_default())
}

/// `serve` on a PostgreSQL store that goes away: `/readyz` says not ready
/// (and why), mail that needs no store keeps flowing, the store metrics
/// count the failures, and readiness comes back by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_reports_the_store_in_readyz_and_keeps_relaying() {
    let pg = Postgres::start();
    let sink = common::Sink::start(&[]);
    let mut cfg = common::config(&sink.addr);
    cfg.store.url = Some(pg.database());
    cfg.store.timeout = Duration::from_secs(1);
    let gw = common::gateway(&cfg).await;
    let admin = gw.admin.unwrap();
    let ready = || http_get(format!("http://{admin}/readyz"));
    assert_eq!(ready().await, (200, "ready\n".into()));

    pg.halt();
    let (status, body) = ready().await;
    assert_eq!((status, body.as_str()), (503, "state store unavailable\n"));
    let mut c = common::Client::greeted(gw.smtp.unwrap()).await;
    let r = c
        .send_mail("a@example.com", &["b@example.org"], b"hello\r\n.\r\n")
        .await;
    assert!(r.starts_with("250"), "mail needs no store: {r}");
    let (_, metrics) = http_get(format!("http://{admin}/metrics")).await;
    assert!(
        metrics.contains("sotto_store_errors_total{op=\"ping\",backend=\"postgres\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("sotto_store_query_duration_seconds_bucket"),
        "{metrics}"
    );

    pg.resume();
    eventually("readyz is ready again", || async { ready().await.0 == 200 }).await;
}

/// A tmpfs of `kib` KiB mounted on a fresh directory, unmounted on drop:
/// a disk that really fills up. Needs root (the test suite runs as root;
/// tests/run says so).
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(kib: u32) -> SmallDisk {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={kib}k,mode=0700"),
                "tmpfs",
            ])
            .arg(dir.path())
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "mounting a small tmpfs for the full-disk test failed (needs root with CAP_SYS_ADMIN, as tests/run runs): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        SmallDisk { dir }
    }

    /// Fills the disk with one file until the kernel says it is full.
    fn fill(&self) -> std::path::PathBuf {
        use std::io::Write as _;
        let path = self.dir.path().join("filler");
        let mut f = std::fs::File::create(&path).expect("create filler");
        let chunk = vec![0x5a_u8; 4096];
        loop {
            match f.write_all(&chunk).and_then(|()| f.sync_all()) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(28) => return path, // ENOSPC
                Err(e) => panic!("filling the disk: {e}"),
            }
        }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// SQLite on a disk that fills up: making a key fails with a temporary
/// error that says the disk is full (a chat user's first message gets a
/// retryable refusal, nothing is half written), keys already made keep
/// working, and once space is freed the same request succeeds.
#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_is_reported_as_such_and_passes() {
    let disk = SmallDisk::mount(1024);
    let url = sqlite_url(&disk.dir.path().join("sotto.db"));
    let keys = Identities::new(open(&url).await, PASS.into());
    let known = keys.get_or_create("known@example.org").await.unwrap();

    let filler = disk.fill();
    let mut failure = None;
    // The WAL may still hold a page or two: a few more users fill it.
    for i in 0..50 {
        match keys.get_or_create(&format!("new{i}@example.org")).await {
            Ok(_) => continue,
            Err(e) => {
                failure = Some((i, e));
                break;
            }
        }
    }
    let (i, err) = failure.expect("a full disk never refused a new key");
    let text = err.to_string();
    assert!(
        text.contains("the disk holding the store is full"),
        "a clear message: {text}"
    );
    assert!(err.is_transient(), "a full disk is temporary: {err:?}");
    // What is known still works.
    let again = keys.get_or_create("known@example.org").await.unwrap();
    assert_eq!(again.cert().fingerprint(), known.cert().fingerprint());

    std::fs::remove_file(filler).unwrap();
    let made = keys
        .get_or_create(&format!("new{i}@example.org"))
        .await
        .expect("with space again, the key is made");
    let store = open(&url).await;
    let row = store
        .identity(&format!("new{i}@example.org"))
        .await
        .unwrap()
        .expect("stored");
    let stored = Cert::from_bytes(&row.tsk).unwrap();
    assert_eq!(stored.fingerprint(), made.cert().fingerprint());
    store.close().await;
}
