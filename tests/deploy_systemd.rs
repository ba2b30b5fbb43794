//! The systemd unit in `deploy/systemd/`: the lines it must keep,
//! `systemd-analyze verify` silent, and `systemd-analyze security` at 2.0
//! exposure at most.

mod common;

use std::process::Command;

use common::deploy::read;
use common::{output_text, require};
use sotto::config::Config;

#[test]
fn systemd_unit_verifies_and_is_hardened() {
    let analyze = require("systemd-analyze");
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
        output_text(&out)
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
        output_text(&out)
    );
}
