//! The deployment files in `deploy/`, one test binary a target:
//! `tests/deploy_systemd.rs` (the unit), `tests/deploy_docker.rs` (the
//! Dockerfile and the image's configuration), `tests/deploy_kubernetes.rs`
//! (the manifests), and here every sotto.toml shipped under `deploy/`, which
//! must pass `sotto check`. Helpers shared by them are in
//! `tests/common/deploy.rs`.
//!
//! Postfix's recipes in `deploy/postfix/` run against a real Postfix in
//! `tests/postfix.rs`.

mod common;

use common::deploy::{assert_checks, etc_sotto, read, repo, shipped_policies};

#[test]
fn shipped_sotto_tomls_pass_check() {
    // Files under deploy/ other than the Kubernetes ConfigMap (checked in
    // tests/deploy_kubernetes.rs): they name /etc/sotto paths, moved into a
    // tempdir here.
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
