//! The Kubernetes manifests in `deploy/kubernetes/`: the Kubernetes API's
//! schemas (kubernetes-validate, unknown fields refused), and their
//! consistency with each other, with the image (its USER, its ports) and
//! with sotto's configuration, which must pass `sotto check` as the pod
//! would see it (ConfigMaps mounted as the kubelet does, Secrets filled in).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use sotto::config::Config;

use common::deploy::{assert_checks, etc_sotto, image_uid, repo};
use common::{output_text, require_python_module, sotto};

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
        output_text(&out)
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
        out.status.success() && !output_text(&out).contains("ERROR"),
        "kubernetes-validate:\n{}",
        output_text(&out)
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
    assert!(out.status.success(), "policies: {}", output_text(&out));

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
