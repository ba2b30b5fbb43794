//! A real Prosody for the XMPP tests, and the slixmpp client that talks to it
//! (`tests/peers/xmpp_client.py`).
//!
//! [`Prosody::start`] runs `prosody -F` on a private configuration in a
//! tempdir: one VirtualHost (`example.org`), client-to-server only, plain TCP
//! on a free 127.0.0.1 port (as behind sotto), internal storage, MAM keeping
//! everything. [`Prosody::archive`] reads a user's archive straight from
//! Prosody over MAM, bypassing any proxy. [`XmppClient`] runs the Python
//! client (async, so that a gateway in the same process keeps running) and
//! hands back the JSON events it printed.
//!
//! With [`Options::component`] Prosody also accepts sotto's service
//! connection: an XEP-0114 component `sotto.<domain>` on its own free
//! 127.0.0.1 port ([`Prosody::component_addr`]), with the XEP-0356
//! privilege (`mod_privilege`, Debian package `prosody-modules`) to send
//! pubsub `set`s as the VirtualHost's users, so that it can publish to their
//! PEP nodes.
//!
//! `Prosody::start`, `register` and `archive` block the calling thread (a
//! second or so, at most their bounds); they talk to Prosody directly, so a
//! gateway in the same runtime need not make progress meanwhile.
//!
//! What this Prosody (0.12) offers on its plain port, worth knowing when a
//! proxy sits in front: `<starttls/>` in the stream features before *and*
//! after SASL, even without a certificate (then the handshake fails);
//! mechanisms PLAIN and SCRAM-SHA-1, never a `-PLUS` one (nor over TLS 1.3);
//! stream management `urn:xmpp:sm:2` and `:3`.
//!
//! A missing peer fails the test loudly; `tests/run` installs them.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use super::free_port;

/// How long Prosody may take to start.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// Bound on one client run, on top of the client's own `--timeout`s.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);

/// How to start Prosody.
#[derive(Debug, Clone)]
pub struct Options {
    /// The VirtualHost; `example.org` by default.
    pub domain: String,
    /// Lua lines added to the global section (after the harness's own, so
    /// they win: Prosody keeps the last assignment).
    pub extra_config: Vec<String>,
    /// Lua lines added inside the VirtualHost section.
    pub host_config: Vec<String>,
    /// Certificate and key (PEM) for the domain. With them Prosody offers
    /// STARTTLS on the c2s port and also listens for direct TLS
    /// ([`Prosody::direct_tls_port`]). Without them it still advertises
    /// STARTTLS (which would then fail), like a backend whose offer a proxy
    /// must not pass on.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// A whole Prosody config to run instead of the harness's (e.g.
    /// `deploy/prosody/prosody.cfg.lua`). Only the places are changed: the
    /// files go to the tempdir, the c2s port is the harness's, s2s and HTTP
    /// are off. Its VirtualHost must be `domain`.
    pub base_config: Option<PathBuf>,
    /// sotto's service connection (see [`Options::component`]).
    pub component: Option<ComponentOptions>,
}

/// An XEP-0114 component for sotto's service connection.
#[derive(Debug, Clone)]
pub struct ComponentOptions {
    /// Its JID; `sotto.<domain>` from [`Options::component`].
    pub jid: String,
    pub secret: String,
    /// The XEP-0356 `iq` permission for the pubsub namespace granted on the
    /// VirtualHost (`"set"` from [`Options::component`]); `None` grants
    /// nothing. Ignored with [`Options::base_config`], whose own
    /// `privileged_entities` apply.
    pub pubsub_privilege: Option<String>,
    /// Further component JIDs with the same secret and privilege, one per
    /// sotto replica ([`Options::replica_components`]).
    pub others: Vec<String>,
}

impl ComponentOptions {
    /// Every component JID: `jid`, then `others`.
    pub fn jids(&self) -> Vec<String> {
        std::iter::once(self.jid.clone())
            .chain(self.others.iter().cloned())
            .collect()
    }
}

impl Default for Options {
    fn default() -> Options {
        Options {
            domain: "example.org".into(),
            extra_config: Vec::new(),
            host_config: Vec::new(),
            tls: None,
            base_config: None,
            component: None,
        }
    }
}

impl Options {
    /// Adds one global config line, e.g. `c2s_stanza_size_limit = 20000`.
    pub fn config(mut self, line: &str) -> Options {
        self.extra_config.push(line.into());
        self
    }

    /// Runs this Prosody config file (see [`Options::base_config`]).
    pub fn base_config(mut self, path: &Path) -> Options {
        self.base_config = Some(path.into());
        self
    }

    /// Adds sotto's service connection: Prosody listens for the component
    /// `sotto.<domain>` with `secret` on a free 127.0.0.1 port, loads
    /// `mod_privilege` on the VirtualHost and the component, and grants the
    /// component `iq = { pubsub = "set" }` there, so that it may publish to
    /// users' PEP nodes. Set the domain first.
    pub fn component(mut self, secret: &str) -> Options {
        self.component = Some(ComponentOptions {
            jid: format!("sotto.{}", self.domain),
            secret: secret.into(),
            pubsub_privilege: Some("set".into()),
            others: Vec::new(),
        });
        self
    }

    /// Like [`Options::component`], for `n` sotto replicas: components
    /// `sotto-1.<domain>` … `sotto-<n>.<domain>`, each with `secret` and
    /// the pubsub privilege on the VirtualHost.
    pub fn replica_components(self, secret: &str, n: usize) -> Options {
        let mut opts = self.component(secret);
        if let Some(c) = &mut opts.component {
            let domain = opts.domain.clone();
            let mut jids = (1..=n).map(|i| format!("sotto-{i}.{domain}"));
            c.jid = jids.next().expect("at least one replica");
            c.others = jids.collect();
        }
        opts
    }

    /// Like [`Options::component`], with no privilege granted: the
    /// component connects, but may not publish as users.
    pub fn component_without_privilege(self, secret: &str) -> Options {
        let mut opts = self.component(secret);
        if let Some(c) = &mut opts.component {
            c.pubsub_privilege = None;
        }
        opts
    }

    /// Gives Prosody a certificate and key for the domain.
    pub fn tls(mut self, cert: &Path, key: &Path) -> Options {
        self.tls = Some((cert.into(), key.into()));
        self
    }
}

/// A running Prosody, killed on drop.
pub struct Prosody {
    /// Plain-TCP client port on 127.0.0.1 (STARTTLS offered if `tls` given).
    pub c2s_port: u16,
    /// Direct-TLS (XEP-0368) client port on 127.0.0.1, with `Options::tls`.
    pub direct_tls_port: Option<u16>,
    /// Component port on 127.0.0.1, with `Options::component`.
    pub component_port: Option<u16>,
    /// The component's JID and secret, with `Options::component`.
    pub component: Option<ComponentOptions>,
    pub domain: String,
    dir: TempDir,
    child: Child,
    config: PathBuf,
    passwords: Mutex<HashMap<String, String>>,
}

impl Prosody {
    /// Starts Prosody and waits (bounded) until it answers an XMPP stream on
    /// its port. Panics with Prosody's log if it does not.
    pub fn start(opts: Options) -> Prosody {
        let prosody = super::require("prosody");
        super::require("prosodyctl");
        if opts.component.is_some() {
            require_mod_privilege();
        }
        let mut last_log = String::new();
        // A port picked free may be taken again before Prosody binds it
        // (Prosody then just logs and carries on): try a few.
        for _ in 0..5 {
            let dir = tempfile::tempdir().expect("tempdir");
            let c2s_port = free_port();
            let direct_tls_port = opts.tls.as_ref().map(|_| free_port());
            let component_port = opts.component.as_ref().map(|_| free_port());
            let config = dir.path().join("prosody.cfg.lua");
            let ports = Ports {
                c2s: c2s_port,
                direct_tls: direct_tls_port,
                component: component_port,
            };
            std::fs::write(&config, config_text(&opts, dir.path(), &ports))
                .expect("write prosody config");
            std::fs::create_dir(dir.path().join("data")).expect("mkdir data");
            std::fs::create_dir(dir.path().join("certs")).expect("mkdir certs");
            if let Some((cert, key)) = &opts.tls {
                // Where Prosody's certmanager looks for the host's certificate:
                // found there, it serves both STARTTLS and direct TLS (SNI).
                let certs = dir.path().join("certs");
                std::fs::copy(cert, certs.join(format!("{}.crt", opts.domain))).expect("copy cert");
                std::fs::copy(key, certs.join(format!("{}.key", opts.domain))).expect("copy key");
            }
            let out = std::fs::File::create(dir.path().join("console.log")).expect("console log");
            let child = Command::new(&prosody)
                .arg("-F")
                .arg("--config")
                .arg(&config)
                .current_dir(dir.path())
                .stdin(Stdio::null())
                .stdout(out.try_clone().expect("dup"))
                .stderr(out)
                .spawn()
                .expect("start prosody");
            let mut p = Prosody {
                c2s_port,
                direct_tls_port,
                component_port,
                component: opts.component.clone(),
                domain: opts.domain.clone(),
                dir,
                child,
                config,
                passwords: Mutex::new(HashMap::new()),
            };
            match p.wait_ready() {
                Ok(()) => return p,
                Err(Retry::PortTaken) => last_log = p.log(),
                Err(Retry::Fatal(why)) => panic!("prosody did not start: {why}\n{}", p.log()),
            }
        }
        panic!("prosody could not bind a free port in 5 tries:\n{last_log}");
    }

    /// Starts Prosody with the default options.
    pub fn start_default() -> Prosody {
        Prosody::start(Options::default())
    }

    fn wait_ready(&mut self) -> Result<(), Retry> {
        let end = Instant::now() + START_TIMEOUT;
        let mut ports = vec![self.c2s_port];
        ports.extend(self.direct_tls_port);
        ports.extend(self.component_port);
        let want: Vec<String> = ports
            .iter()
            .map(|p| format!("on [127.0.0.1]:{p}"))
            .collect();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait prosody") {
                return Err(Retry::Fatal(format!("prosody exited: {status}")));
            }
            let log =
                std::fs::read_to_string(self.dir.path().join("prosody.log")).unwrap_or_default();
            if log.contains("Failed to open server port") {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return Err(Retry::PortTaken);
            }
            if want.iter().all(|w| log.contains(w.as_str())) && self.answers_stream() {
                return Ok(());
            }
            if Instant::now() > end {
                return Err(Retry::Fatal(format!(
                    "not ready on 127.0.0.1:{} within {START_TIMEOUT:?}",
                    self.c2s_port
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether the c2s port answers a stream header for our domain with
    /// stream features.
    fn answers_stream(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.c2s_port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        let header = format!(
            "<?xml version='1.0'?><stream:stream to='{}' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>",
            self.domain
        );
        if s.write_all(header.as_bytes()).is_err() {
            return false;
        }
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while !got.windows(17).any(|w| w == b"</stream:features") {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => return false,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        let _ = s.write_all(b"</stream:stream>");
        true
    }

    /// `127.0.0.1:<c2s_port>`, for sotto's `[xmpp] upstream`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.c2s_port)
    }

    /// `127.0.0.1:<component_port>`, for sotto's `[xmpp] component_upstream`.
    /// Panics without `Options::component`.
    pub fn component_addr(&self) -> String {
        let port = self
            .component_port
            .expect("Prosody was started without Options::component");
        format!("127.0.0.1:{port}")
    }

    /// The component's JID (`sotto.<domain>`). Panics without
    /// `Options::component`.
    pub fn component_jid(&self) -> String {
        self.component
            .as_ref()
            .expect("Prosody was started without Options::component")
            .jid
            .clone()
    }

    /// Every component JID (see [`Options::replica_components`]), as
    /// `xmpp.component` lists them. Panics without `Options::component`.
    pub fn component_jids(&self) -> Vec<String> {
        self.component
            .as_ref()
            .expect("Prosody was started without Options::component")
            .jids()
    }

    /// The component's secret. Panics without `Options::component`.
    pub fn component_secret(&self) -> String {
        self.component
            .as_ref()
            .expect("Prosody was started without Options::component")
            .secret
            .clone()
    }

    /// `user@domain`.
    pub fn jid(&self, user: &str) -> String {
        format!("{user}@{}", self.domain)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn config_path(&self) -> &Path {
        &self.config
    }

    /// Prosody's data_path (internal storage: `<host>/accounts`, `<host>/archive`, …).
    pub fn data_path(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Prosody's log (debug level) and anything it printed.
    pub fn log(&self) -> String {
        let read = |f: &str| std::fs::read_to_string(self.dir.path().join(f)).unwrap_or_default();
        format!(
            "--- prosody.log ---\n{}--- console ---\n{}",
            read("prosody.log"),
            read("console.log")
        )
    }

    /// Creates an account with `prosodyctl register`, on this config.
    pub fn register(&self, user: &str, password: &str) {
        self.register_at(user, &self.domain, password);
        self.passwords
            .lock()
            .unwrap()
            .insert(user.to_string(), password.to_string());
    }

    /// Creates an account on another VirtualHost of this config (one added
    /// with [`Options::config`]); its password is not remembered.
    pub fn register_at(&self, user: &str, host: &str, password: &str) {
        let out = Command::new(super::require("prosodyctl"))
            .arg("--config")
            .arg(&self.config)
            .args(["register", user, host, password])
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .output()
            .expect("run prosodyctl");
        assert!(
            out.status.success(),
            "prosodyctl register {user} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The password `register` was given for `user`.
    pub fn password(&self, user: &str) -> String {
        self.passwords
            .lock()
            .unwrap()
            .get(user)
            .unwrap_or_else(|| panic!("{user} was not registered through the harness"))
            .clone()
    }

    /// A client for `user` (registered with [`register`](Self::register))
    /// connecting straight to Prosody's c2s port in plain TCP.
    pub fn client(&self, user: &str) -> XmppClient {
        XmppClient::new(&self.addr(), &self.jid(user), &self.password(user))
    }

    /// Every message in `user`'s archive, oldest first, as Prosody stored it
    /// (the `<message>` inside each MAM result, serialised): the server's
    /// archive queried directly over MAM on its own port, bypassing any proxy.
    /// Blocks; it needs nothing from the test's runtime.
    pub fn archive(&self, user: &str) -> Vec<String> {
        self.archive_entries(user)
            .into_iter()
            .map(|e| e["xml"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// Like [`archive`](Self::archive), with each result's archive `id` and
    /// `stamp` besides its `xml`.
    pub fn archive_entries(&self, user: &str) -> Vec<Value> {
        let run = self
            .client(user)
            .resource("archive-reader")
            .no_presence()
            .run_blocking(&serde_json::json!([{ "op": "mam" }]));
        assert!(
            run.ok(),
            "reading {user}'s archive failed:\n{}\n{}",
            run.transcript(),
            self.log()
        );
        let mam = run.events("mam");
        assert_eq!(mam.len(), 1, "one MAM answer: {}", run.transcript());
        mam[0]["results"].as_array().cloned().unwrap_or_default()
    }
}

impl Drop for Prosody {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("{}", self.log());
        }
    }
}

enum Retry {
    PortTaken,
    Fatal(String),
}

fn lua_string(s: &Path) -> String {
    format!("{:?}", s.to_str().expect("utf-8 path"))
}

/// The ports Prosody listens on, all on 127.0.0.1.
struct Ports {
    c2s: u16,
    direct_tls: Option<u16>,
    component: Option<u16>,
}

/// A Lua string literal.
fn lua_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The Component section for sotto's service connection. mod_privilege must
/// be loaded on the component too: it hooks the component's authentication
/// to tell it, and to remember, what it may do.
fn component_section(c: &ComponentOptions, with_modules: bool) -> String {
    let mut out = String::new();
    for jid in c.jids() {
        out.push_str(&format!(
            "\n-- sotto's service connection (XEP-0114 component, tests/common/prosody.rs)\nComponent {}\n    component_secret = {}\n",
            lua_str(&jid),
            lua_str(&c.secret)
        ));
        if with_modules {
            out.push_str("    modules_enabled = { \"privilege\" }\n");
        }
    }
    out
}

/// VirtualHost lines granting the component its XEP-0356 privilege.
fn privilege_lines(c: &ComponentOptions) -> String {
    let mut out = String::from("    modules_enabled = { \"privilege\" }\n");
    if let Some(perm) = &c.pubsub_privilege {
        out.push_str("    privileged_entities = {\n");
        for jid in c.jids() {
            out.push_str(&format!(
                "        [{}] = {{ iq = {{ [\"http://jabber.org/protocol/pubsub\"] = {} }} }};\n",
                lua_str(&jid),
                lua_str(perm)
            ));
        }
        out.push_str("    }\n");
    }
    out
}

fn config_text(opts: &Options, dir: &Path, ports: &Ports) -> String {
    let (c2s, direct_tls) = (ports.c2s, ports.direct_tls);
    // Where the files go and which ports are open: always the harness's.
    let places = format!(
        r#"-- tests/common/prosody.rs: files in the tempdir, only c2s on 127.0.0.1
run_as_root = true -- the tests may run as root; Prosody refuses that otherwise
pidfile = {pid}
data_path = {data}
certificates = {certs}
log = {{ debug = {log} }}
interfaces = {{ "127.0.0.1" }}
local_interfaces = {{ "127.0.0.1" }}
c2s_interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {c2s} }}
c2s_direct_tls_interfaces = {{ "127.0.0.1" }}
c2s_direct_tls_ports = {{ {direct} }}
s2s_ports = {{ }}
s2s_direct_tls_ports = {{ }}
http_ports = {{ }}
https_ports = {{ }}
component_interfaces = {{ "127.0.0.1" }}
component_ports = {{ {component} }}
modules_disabled = {{ "s2s"; "s2s_auth_certs" }}
"#,
        pid = lua_string(&dir.join("prosody.pid")),
        data = lua_string(&dir.join("data")),
        certs = lua_string(&dir.join("certs")),
        log = lua_string(&dir.join("prosody.log")),
        direct = direct_tls.map(|p| p.to_string()).unwrap_or_default(),
        component = ports.component.map(|p| p.to_string()).unwrap_or_default(),
    );
    let extra: String = opts.extra_config.iter().map(|l| format!("{l}\n")).collect();
    let host: String = opts
        .host_config
        .iter()
        .map(|l| format!("    {l}\n"))
        .collect();
    if let Some(base) = &opts.base_config {
        // A shipped config (deploy/prosody/prosody.cfg.lua): its global
        // section, then the harness's places (which win), then its hosts,
        // the harness's host lines right under the VirtualHost line (a
        // Component section may follow it). With a component, its own
        // secret is set last; the rest (privileges, modules) is the file's.
        let text = std::fs::read_to_string(base)
            .unwrap_or_else(|e| panic!("read {}: {e}", base.display()));
        let at = text
            .find("\nVirtualHost ")
            .unwrap_or_else(|| panic!("{} has no VirtualHost", base.display()));
        let (globals, hosts) = text.split_at(at);
        let line_end = hosts[1..].find('\n').map_or(hosts.len(), |i| i + 1);
        let (vhost_line, rest) = hosts.split_at(line_end);
        let component = opts
            .component
            .as_ref()
            .map(|c| component_section(c, false))
            .unwrap_or_default();
        return format!("{globals}\n{places}{extra}{vhost_line}\n{host}{rest}\n{component}");
    }
    let (privileges, component) = match &opts.component {
        Some(c) => (privilege_lines(c), component_section(c, true)),
        None => (String::new(), String::new()),
    };
    format!(
        r#"{places}modules_enabled = {{
    "roster"; "saslauth"; "tls"; "disco"; "carbons"; "mam"; "pep"; "smacks"; "ping";
}}
allow_registration = false
authentication = "internal_hashed"
storage = "internal"
-- TLS ends at sotto; Prosody only listens on loopback.
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
archive_expires_after = "never"
default_archive_policy = true
{extra}
VirtualHost {domain:?}
{host}{privileges}{component}"#,
        domain = opts.domain
    )
}

/// Where Debian's prosody-modules puts mod_privilege: a directory per
/// module under Prosody's own plugin path, which Prosody 0.12 searches
/// (`mod_NAME/mod_NAME.lua`), so no `plugin_paths` is needed.
const MOD_PRIVILEGE: &str = "/usr/lib/prosody/modules/mod_privilege/mod_privilege.lua";

fn require_mod_privilege() {
    assert!(
        Path::new(MOD_PRIVILEGE).exists(),
        "Prosody's mod_privilege ({MOD_PRIVILEGE}) is missing (Debian package `prosody-modules`): run tests/run, which installs it"
    );
}

fn require_slixmpp() {
    let ok = Command::new("python3")
        .args(["-c", "import slixmpp"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "python module `slixmpp` is missing (PyPI package `slixmpp`): run tests/run, which installs it with pip"
    );
}

/// One run of `tests/peers/xmpp_client.py`: what to connect to, as whom, how.
#[derive(Debug, Clone)]
pub struct XmppClient {
    addr: String,
    jid: String,
    password: String,
    resource: Option<String>,
    args: Vec<String>,
}

impl XmppClient {
    /// A client for `jid` (bare or full) at `addr` (`host:port`), plain TCP.
    pub fn new(addr: &str, jid: &str, password: &str) -> XmppClient {
        XmppClient {
            addr: addr.into(),
            jid: jid.into(),
            password: password.into(),
            resource: None,
            args: Vec::new(),
        }
    }

    fn flag(mut self, f: &str) -> XmppClient {
        self.args.push(f.into());
        self
    }

    /// Binds this resource (default: one the server picks).
    pub fn resource(mut self, r: &str) -> XmppClient {
        self.resource = Some(r.into());
        self
    }

    /// Only this SASL mechanism, e.g. `SCRAM-SHA-1` or `PLAIN`.
    pub fn mech(self, m: &str) -> XmppClient {
        self.flag("--mech").flag(m)
    }

    /// Requires STARTTLS.
    pub fn starttls(self) -> XmppClient {
        self.flag("--starttls")
    }

    /// TLS from the first byte (XEP-0368).
    pub fn direct_tls(self) -> XmppClient {
        self.flag("--direct-tls")
    }

    /// Trusts this CA (PEM) for the server's certificate (checked against
    /// the JID's domain).
    pub fn cafile(self, pem: &Path) -> XmppClient {
        self.flag("--cafile")
            .flag(pem.to_str().expect("utf-8 path"))
    }

    /// Accepts any certificate.
    pub fn insecure(self) -> XmppClient {
        self.flag("--insecure")
    }

    pub fn carbons(self) -> XmppClient {
        self.flag("--carbons")
    }

    /// Requires stream management (XEP-0198) to be enabled.
    pub fn sm(self) -> XmppClient {
        self.flag("--sm")
    }

    pub fn no_presence(self) -> XmppClient {
        self.flag("--no-presence")
    }

    /// The client's bound on each wait, in seconds (default 20).
    pub fn timeout(self, secs: u32) -> XmppClient {
        self.flag("--timeout").flag(&secs.to_string())
    }

    /// slixmpp's debug log (the XML both ways) in `stderr`.
    pub fn verbose(self) -> XmppClient {
        self.flag("--verbose")
    }

    fn command_args(&self) -> (PathBuf, Vec<String>) {
        require_slixmpp();
        let (host, port) = self
            .addr
            .rsplit_once(':')
            .unwrap_or_else(|| panic!("addr {:?} is not host:port", self.addr));
        let jid = match &self.resource {
            Some(r) => format!("{}/{r}", self.jid),
            None => self.jid.clone(),
        };
        let mut args: Vec<String> = vec![
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/peers/xmpp_client.py")
                .to_str()
                .unwrap()
                .into(),
            "--host".into(),
            host.trim_matches(['[', ']']).into(),
            "--port".into(),
            port.into(),
            "--jid".into(),
            jid,
            "--password".into(),
            self.password.clone(),
            "--script".into(),
            "-".into(),
        ];
        args.extend(self.args.iter().cloned());
        (PathBuf::from("python3"), args)
    }

    /// Runs the client with `script` (a JSON list of steps) to its end,
    /// without blocking the runtime.
    pub async fn run(&self, script: &Value) -> ClientRun {
        self.spawn(script).await.finish().await
    }

    /// Starts the client; read its events while it runs with
    /// [`RunningClient::wait_event`], then [`RunningClient::finish`].
    pub async fn spawn(&self, script: &Value) -> RunningClient {
        let (python, args) = self.command_args();
        let mut child = tokio::process::Command::new(python)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start tests/peers/xmpp_client.py");
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(script.to_string().as_bytes())
            .await
            .expect("write script");
        drop(stdin);
        let mut stderr = child.stderr.take().expect("stderr");
        let stderr = tokio::spawn(async move {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s).await;
            s
        });
        let lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        RunningClient {
            child,
            lines,
            events: Vec::new(),
            stderr,
            who: self.jid.clone(),
        }
    }

    /// Runs the client to its end, blocking this thread (for helpers outside
    /// an async context, like [`Prosody::archive`]).
    pub fn run_blocking(&self, script: &Value) -> ClientRun {
        let (python, args) = self.command_args();
        let mut child = Command::new(python)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tests/peers/xmpp_client.py");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(script.to_string().as_bytes())
            .expect("write script");
        // The client bounds its own waits; this is only a backstop.
        let end = Instant::now() + CLIENT_TIMEOUT;
        while child.try_wait().expect("wait client").is_none() {
            if Instant::now() > end {
                let _ = child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = child.wait_with_output().expect("client output");
        ClientRun::from_output(
            &self.jid,
            out.status.code(),
            &String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

/// A client still running.
pub struct RunningClient {
    child: tokio::process::Child,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    events: Vec<Value>,
    stderr: tokio::task::JoinHandle<String>,
    who: String,
}

impl RunningClient {
    /// Reads events until one named `name` (e.g. `"ready"`: logged in,
    /// presence sent and seen by the server) and returns it. Panics, with
    /// everything read so far, if the client ends or 30 s pass first.
    pub async fn wait_event(&mut self, name: &str) -> Value {
        let end = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let line = tokio::time::timeout_at(end, self.lines.next_line()).await;
            match line {
                Ok(Ok(Some(line))) => {
                    let v = parse_event(&line);
                    self.events.push(v.clone());
                    if v["event"] == name {
                        return v;
                    }
                }
                Ok(_) => panic!(
                    "{}: ended before event {name:?}:\n{}",
                    self.who,
                    events_text(&self.events)
                ),
                Err(_) => panic!(
                    "{}: no event {name:?} within 30s:\n{}",
                    self.who,
                    events_text(&self.events)
                ),
            }
        }
    }

    /// Waits (bounded) for the client to end and returns all it printed.
    pub async fn finish(mut self) -> ClientRun {
        let mut rest = String::new();
        let read = async {
            while let Ok(Some(line)) = self.lines.next_line().await {
                rest.push_str(&line);
                rest.push('\n');
            }
            self.child.wait().await
        };
        let status = match tokio::time::timeout(CLIENT_TIMEOUT, read).await {
            Ok(s) => s.ok().and_then(|s| s.code()),
            Err(_) => {
                let _ = self.child.kill().await;
                None
            }
        };
        let stderr = self.stderr.await.unwrap_or_default();
        let mut run = ClientRun::from_output(&self.who, status, &rest, stderr);
        let mut events = std::mem::take(&mut self.events);
        events.append(&mut run.events);
        run.events = events;
        run
    }
}

/// What one client run printed.
#[derive(Debug, Clone)]
pub struct ClientRun {
    pub who: String,
    /// The exit code (0 success, 2 authentication failure, 3 timeout, 1
    /// other); None if it was killed.
    pub code: Option<i32>,
    /// One JSON object per line, each with an `"event"`.
    pub events: Vec<Value>,
    pub stderr: String,
}

impl ClientRun {
    fn from_output(who: &str, code: Option<i32>, stdout: &str, stderr: String) -> ClientRun {
        ClientRun {
            who: who.into(),
            code,
            events: stdout
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(parse_event)
                .collect(),
            stderr,
        }
    }

    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }

    /// The events named `name`, in order.
    pub fn events(&self, name: &str) -> Vec<&Value> {
        self.events.iter().filter(|e| e["event"] == name).collect()
    }

    /// Received messages (`"message"` events), except the empty XEP-0356
    /// `<privilege/>` advert that Prosody's mod_privilege (loaded by
    /// [`Options::component`] and by the deploy recipe) sends every client
    /// from the server after its initial presence: server noise, not a
    /// message under test. [`ClientRun::events`] still has it.
    pub fn messages(&self) -> Vec<&Value> {
        self.events("message")
            .into_iter()
            .filter(|m| !is_privilege_advert(m))
            .collect()
    }

    /// The `"error"` event, if the run failed.
    pub fn error(&self) -> Option<&Value> {
        self.events("error").into_iter().next()
    }

    /// Everything, for assertion messages.
    pub fn transcript(&self) -> String {
        format!(
            "{} (exit {:?}):\n{}--- stderr ---\n{}",
            self.who,
            self.code,
            events_text(&self.events),
            self.stderr
        )
    }

    /// Asserts the run succeeded; returns it.
    #[track_caller]
    pub fn assert_ok(self) -> ClientRun {
        assert!(self.ok(), "xmpp client failed: {}", self.transcript());
        self
    }
}

/// Whether a `"message"` event is mod_privilege's advert to a client that
/// has no privilege: from a bare domain, no body, only an empty
/// `<privilege xmlns='urn:xmpp:privilege:2'/>` inside.
fn is_privilege_advert(m: &Value) -> bool {
    let from = m["from"].as_str().unwrap_or_default();
    let xml = m["xml"].as_str().unwrap_or_default();
    m["body"].is_null()
        && !from.is_empty()
        && !from.contains(['@', '/'])
        && (xml.contains("<privilege xmlns=\"urn:xmpp:privilege:2\" />")
            || xml.contains("<privilege xmlns=\"urn:xmpp:privilege:2\"/>"))
        && !xml.contains("<perm")
}

fn parse_event(line: &str) -> Value {
    serde_json::from_str(line)
        .unwrap_or_else(|_| serde_json::json!({ "event": "unparsed", "line": line }))
}

fn events_text(events: &[Value]) -> String {
    events.iter().map(|e| format!("{e}\n")).collect()
}
