//! What an operator installs beside the binary: the systemd unit and configuration file
//! of docs/systemd (also shown in docs/OPERATIONS.md), `--config`, shell completions
//! and the manual page.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test harness: a failure is a panic

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn unit_text() -> String {
    std::fs::read_to_string(repo().join("docs/systemd/fileserver.service")).unwrap()
}

/// The `ExecStart=` line's arguments, after the program.
fn exec_start_args(unit: &str) -> Vec<String> {
    let line = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("an ExecStart line");
    let mut words = line.split_whitespace().map(str::to_string);
    assert_eq!(words.next().as_deref(), Some("/usr/local/bin/server"));
    words.collect()
}

/// Waits for `text` in the file at `log`, while `child` runs.
fn wait_for(log: &Path, text: &str, child: &mut std::process::Child) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let seen = std::fs::read_to_string(log).unwrap_or_default();
        if seen.contains(text) {
            return seen;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the server exited ({status}) before {text:?}: {seen}");
        }
        assert!(Instant::now() < deadline, "no {text:?} in: {seen}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn operations_md_shows_the_unit_and_configuration_as_they_are_in_docs_systemd() {
    let ops = std::fs::read_to_string(repo().join("docs/OPERATIONS.md")).unwrap();
    let config = std::fs::read_to_string(repo().join("docs/systemd/server.toml")).unwrap();
    assert!(
        ops.contains(&unit_text()),
        "docs/OPERATIONS.md differs from the unit file"
    );
    assert!(
        ops.contains(&config),
        "docs/OPERATIONS.md differs from server.toml"
    );
}

/// `systemd-analyze verify` accepts the unit without a single warning (it exits 0 on
/// unknown keys and bad values, and says so on stderr).
#[test]
fn systemd_analyze_verifies_the_unit_without_a_warning() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_err()
    {
        eprintln!("skipped: no systemd-analyze (Debian's systemd package)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let unit = tmp.path().join("fileserver.service");
    let text = unit_text().replace("/usr/local/bin/server", server_bin().to_str().unwrap());
    std::fs::write(&unit, text).unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&unit)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && err.trim().is_empty(), "{err}");
}

/// The unit's command line, with its configuration file, starts the server; options
/// added on the command line override the file's.
#[test]
fn the_units_command_line_and_configuration_start_the_server() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("server.toml");
    std::fs::copy(repo().join("docs/systemd/server.toml"), &config).unwrap();
    let data = tmp.path().join("data");
    let args: Vec<String> = exec_start_args(&unit_text())
        .into_iter()
        .map(|a| match a.as_str() {
            "/etc/fileserver/server.toml" => config.to_str().unwrap().to_string(),
            "/var/lib/fileserver" => data.to_str().unwrap().to_string(),
            _ => a,
        })
        .collect();
    let port = free_port();
    let log = tmp.path().join("server.log");
    let mut child = Command::new(server_bin())
        .args(&args)
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let seen = wait_for(&log, &format!("listening on 127.0.0.1:{port}"), &mut child);
    let _ = child.kill();
    let _ = child.wait();
    // server.toml asks for JSON log lines: the file was read.
    assert!(
        seen.lines().all(|l| l.starts_with('{')),
        "not JSON lines: {seen}"
    );
    assert!(data.join("defensive.db").exists(), "no database in --dir");
}

#[test]
fn config_values_are_defaults_and_the_command_line_wins() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("c.toml");
    std::fs::write(&config, "max-connections = 77\nidle-timeout = 42\n").unwrap();
    let help = Command::new(server_bin())
        .args(["--config", config.to_str().unwrap(), "help", "serve"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("[default: 77]"), "{help}");
    assert!(help.contains("[default: 42]"), "{help}");

    // The port from the file, then from the command line over it.
    let data = tmp.path().join("data");
    let port = free_port();
    std::fs::write(&config, format!("port = {port}\nbind = \"127.0.0.1\"\n")).unwrap();
    for (extra, expected) in [(None, port), (Some(free_port()), 0)] {
        let expected = if expected == 0 {
            extra.unwrap()
        } else {
            expected
        };
        let log = tmp.path().join(format!("server-{expected}.log"));
        let mut cmd = Command::new(server_bin());
        cmd.args(["--config", config.to_str().unwrap()])
            .args(["--dir", data.to_str().unwrap()]);
        if let Some(p) = extra {
            cmd.args(["--port", &p.to_string()]);
        }
        let mut child = cmd
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        wait_for(
            &log,
            &format!("listening on 127.0.0.1:{expected}"),
            &mut child,
        );
        let _ = child.kill();
        let _ = child.wait();
    }
}

#[test]
fn a_bad_config_file_is_a_usage_error_that_names_the_problem() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("c.toml");
    for (text, says) in [
        (
            "max-conections = 1\n",
            "\"max-conections\" is not an option",
        ),
        ("yes = true\n", "\"yes\" is not an option"),
        ("max-connections = \n", "not valid TOML"),
        ("max-connections = \"many\"\n", "many"),
        ("[serve]\nport = 1\n", "\"serve\" is not an option"),
        (
            "port = [1, 2]\n",
            "must be a string, a number or true/false",
        ),
    ] {
        std::fs::write(&config, text).unwrap();
        let out = Command::new(server_bin())
            .args(["--config", config.to_str().unwrap(), "--dir"])
            .arg(tmp.path())
            .args(["--port", "0"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{text}: {err}");
        assert!(err.contains(says), "{text}: {err}");
    }
    let missing = tmp.path().join("none.toml");
    let out = Command::new(server_bin())
        .args(["--config", missing.to_str().unwrap(), "status"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("none.toml"));
}

#[test]
fn completions_and_the_manual_page_describe_every_command() {
    for shell in ["bash", "zsh", "fish"] {
        let out = Command::new(server_bin())
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(out.status.success(), "{shell}");
        let script = String::from_utf8_lossy(&out.stdout);
        // (fish names options without their dashes.)
        for word in ["list-files", "remove-client", "max-connections", "config"] {
            assert!(script.contains(word), "{shell} lacks {word}");
        }
    }
    let bash = Command::new(server_bin())
        .args(["completions", "bash"])
        .output()
        .unwrap();
    let script = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(script.path(), &bash.stdout).unwrap();
    let syntax = Command::new("bash").arg("-n").arg(script.path()).status();
    assert!(syntax.map(|s| s.success()).unwrap_or(true), "bash -n");

    let out = Command::new(server_bin()).arg("man").output().unwrap();
    assert!(out.status.success());
    let page = String::from_utf8_lossy(&out.stdout);
    assert!(
        page.starts_with(".ie") || page.contains(".TH server 1"),
        "{page}"
    );
    for word in ["list\\-files", "status", "max\\-connections"] {
        assert!(page.contains(word), "the page lacks {word}");
    }
    let out = Command::new(server_bin())
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "an unknown shell is a usage error"
    );
}
