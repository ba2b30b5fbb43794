//! Helpers shared by the tests of `deploy/` (`tests/deploy*.rs`): the
//! repository's files, a deployment's /etc/sotto in a tempdir checked with
//! `sotto check`, linters installed with pip, and the Dockerfile read as
//! instructions.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{output_text, sotto};

pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

pub fn read(rel: &str) -> String {
    let p = repo().join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// A program installed by the PyPI package `package` (in Python's scripts
/// directory, the user's, or on PATH), or a loud failure.
pub fn require_pip_tool(tool: &str, package: &str) -> PathBuf {
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

/// A copy of a deployment's /etc/sotto in a tempdir: `config` (a sotto.toml
/// naming files under /etc/sotto) with those paths moved into the tempdir,
/// plus `files` (relative to /etc/sotto). Returns the tempdir and the
/// rewritten configuration's path.
pub fn etc_sotto(config: &str, files: &[(String, String)]) -> (tempfile::TempDir, PathBuf) {
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
pub fn assert_checks(what: &str, path: &Path, env: &[(String, String)]) {
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
        output_text(&out)
    );
}

/// The shipped policy files, as (policies/NAME, text).
pub fn shipped_policies() -> Vec<(String, String)> {
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

/// Dockerfile instructions: (KEYWORD, arguments), continuation lines
/// joined, comments and parser directives dropped.
pub fn instructions(dockerfile: &str) -> Vec<(String, String)> {
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
pub fn image_uid() -> u32 {
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
