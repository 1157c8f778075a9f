//! The `server` command line: options before or after subcommands, help that names
//! the codes it mentions, and its log lines (format, levels, connection lines).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test harness: a failure is a panic

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

#[test]
fn options_go_before_or_after_the_subcommand() {
    let tmp = tempfile::tempdir().unwrap();
    let sdir = tmp.path().join("server");
    let server = Server::start(&sdir, 0, &[]);
    let c = client_dir(tmp.path(), "uma", server.port, "f.txt", b"hello\n");
    assert_ok(&run_client(&c, &[]), "client");
    let elsewhere = tmp.path();
    for args in [
        vec!["list-files", "--dir", sdir.to_str().unwrap()],
        vec!["--dir", sdir.to_str().unwrap(), "list-files"],
    ] {
        let out = Command::new(server_bin())
            .args(&args)
            .current_dir(elsewhere)
            .output()
            .unwrap();
        assert_ok(&out, &format!("server {args:?}"));
        assert!(String::from_utf8_lossy(&out.stdout).contains("f.txt"));
    }
}

#[test]
fn help_names_every_code_it_mentions() {
    let out = Command::new(server_bin()).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for (code, name) in [
        ("828", "send file"),
        ("1603", "file received"),
        ("1602", "public key received"),
        ("1605", "reconnect accepted"),
        ("1604", "acknowledgement"),
    ] {
        assert!(help.contains(code), "{code} in {help}");
        let near = help
            .lines()
            .filter(|l| l.contains(code))
            .any(|l| l.contains(name) || help.contains(&format!("{name} ({code})")));
        assert!(near, "{code} is not named ({name}) in {help}");
    }
    assert!(help.contains("docs/PROTOCOL.md"), "{help}");
    assert!(!help.contains("../shared"), "{help}");
    // The layout that exists: objects/ and uploads/ (files/ is only the old one).
    assert!(
        help.contains("objects/") && help.contains("uploads/"),
        "{help}"
    );
    assert!(!help.contains("and files/"), "{help}");
}

/// Starts a server with `args` and RUST_LOG=debug, sends `bytes` on one connection,
/// and returns the log once the server has closed that connection.
fn log_after(args: &[&str], bytes: &[u8]) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let sdir = tmp.path().join("server");
    std::fs::create_dir_all(&sdir).unwrap();
    let port = free_port();
    let log = std::fs::File::create(sdir.join("server.log")).unwrap();
    let mut child = Command::new(server_bin())
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args(args)
        .env("RUST_LOG", "debug")
        .current_dir(&sdir)
        .stderr(log)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut s = loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => break s,
            Err(_) => {
                assert!(Instant::now() < deadline, "server did not start");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    };
    s.write_all(bytes).unwrap();
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut rest = Vec::new();
    let _ = std::io::Read::read_to_end(&mut s, &mut rest);
    // The close line follows the close; wait for it (bounded), not for a time.
    let text = loop {
        let text = std::fs::read_to_string(sdir.join("server.log")).unwrap();
        if text.contains("connection closed") || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = child.kill();
    let _ = child.wait();
    text
}

/// A request with an unknown code: a protocol violation.
fn garbage() -> Vec<u8> {
    let mut req = vec![0u8; 16];
    req.push(3);
    req.extend_from_slice(&4242u16.to_le_bytes());
    req.extend_from_slice(&0u32.to_le_bytes());
    req
}

#[test]
fn tokio_logs_connections_at_debug_and_violations_at_warn() {
    let log = log_after(&["--transport", "tokio"], &garbage());
    let line = |what: &str| log.lines().find(|l| l.contains(what)).map(str::to_string);
    let accepted = line("connection accepted").expect(&log);
    assert!(
        accepted.contains("DEBUG") && accepted.contains("peer=127.0.0.1:"),
        "{log}"
    );
    let closed = line("connection closed").expect(&log);
    assert!(
        closed.contains("DEBUG") && closed.contains("peer=127.0.0.1:"),
        "{log}"
    );
    let violation = line("protocol violation").expect(&log);
    assert!(violation.contains("WARN"), "{violation}");
    assert!(violation.contains("peer=127.0.0.1:"), "{violation}");
    assert!(violation.contains("4242"), "the reason: {violation}");
}

#[test]
fn std_logs_violations_at_warn_too() {
    let log = log_after(&["--transport", "std"], &garbage());
    let violation = log
        .lines()
        .find(|l| l.contains("protocol violation"))
        .expect(&log);
    assert!(
        violation.contains("WARN") && violation.contains("4242"),
        "{violation}"
    );
}

#[test]
fn log_format_json_writes_one_object_per_line() {
    let log = log_after(&["--log-format", "json"], &garbage());
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(lines.len() >= 3, "{log}");
    for l in &lines {
        assert!(l.starts_with('{') && l.ends_with('}'), "not JSON: {l}");
        assert!(l.contains("\"level\":"), "{l}");
    }
    assert!(log.contains("\"level\":\"WARN\""), "{log}");
}

#[test]
fn a_typo_in_port_info_is_a_usage_error_quoting_it() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("port.info"), "12S6\n").unwrap();
    let out = Command::new(server_bin())
        .args(["--bind", "127.0.0.1"])
        .current_dir(tmp.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("\"12S6\"") && err.contains("port.info"),
        "{err}"
    );
    // Refused before anything is made in the folder.
    assert!(!tmp.path().join("defensive.db").exists());
}

#[test]
fn each_subcommand_help_lists_only_its_own_options() {
    let help = |args: &[&str]| {
        let out = Command::new(server_bin()).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    for args in [&["help", "status"][..], &["status", "--help"]] {
        let text = help(args);
        assert!(text.contains("--json") && text.contains("--dir"), "{text}");
        for serving in [
            "--idle-timeout",
            "--transport",
            "--max-connections",
            "--port",
        ] {
            assert!(!text.contains(serving), "{args:?} lists {serving}: {text}");
        }
    }
    let text = help(&["help", "list-files"]);
    assert!(
        text.contains("--client") && !text.contains("--aes-bits"),
        "{text}"
    );
    // Serving has its options, before `serve` and after it.
    for args in [&["help", "serve"][..], &["--help"]] {
        let text = help(args);
        assert!(text.contains("--idle-timeout"), "{args:?}: {text}");
    }
    // Given on both sides, they would have to be merged: refused instead.
    let out = Command::new(server_bin())
        .args(["--port", "5", "serve", "--port", "6"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn the_licenses_cargo_toml_names_are_in_the_repository() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mit = std::fs::read_to_string(root.join("LICENSE-MIT")).unwrap();
    assert!(mit.contains("MIT License"));
    let apache = std::fs::read_to_string(root.join("LICENSE-APACHE")).unwrap();
    assert!(apache.contains("Apache License") && apache.contains("Version 2.0"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    assert!(readme.contains("cargo install --path server-app"));
    assert!(readme.contains("cargo install --path client-app"));
}

#[test]
fn duration_options_past_a_year_are_usage_errors() {
    let huge = "18446744073709551615";
    // Were a value accepted, the server would stop at this port.info (exit 2 too, but
    // without the range in the message) rather than serve.
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("port.info"), "not a port").unwrap();
    for option in [
        "--idle-timeout",
        "--request-timeout",
        "--key-lifetime",
        "--abandoned-upload-timeout",
        "--registration-hold",
        "--shutdown-grace",
    ] {
        for args in [vec![option, huge], vec!["serve", option, "31536001"]] {
            let out = Command::new(server_bin())
                .args(&args)
                .current_dir(tmp.path())
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
            assert!(
                err.contains(option) && err.contains("31536000"),
                "{args:?}: {err}"
            );
        }
    }
    let out = Command::new(server_bin()).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("31536000, a year"), "{help}");
}

#[test]
fn storage_folders_open_to_others_are_set_to_0700_and_logged() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let sdir = tmp.path().join("server");
    for folder in ["objects", "uploads"] {
        std::fs::create_dir_all(sdir.join(folder)).unwrap();
        let open = std::fs::Permissions::from_mode(0o755);
        std::fs::set_permissions(sdir.join(folder), open).unwrap();
    }
    let server = Server::start(&sdir, 0, &[]);
    server.stop();
    let log = std::fs::read_to_string(sdir.join("server.log")).unwrap();
    for folder in ["objects", "uploads"] {
        let mode = std::fs::metadata(sdir.join(folder))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700, "{folder}");
        let line = log
            .lines()
            .find(|l| l.contains(&format!("{folder} had mode 0755")))
            .unwrap_or_else(|| panic!("no line for {folder}: {log}"));
        assert!(line.contains("WARN") && line.contains("0700"), "{line}");
    }
}

/// A database password given in the arguments is warned of and never shown again:
/// not in the log, not in an error, whichever command fails.
#[cfg(feature = "fleet")]
#[test]
fn a_database_password_never_appears_in_the_log_or_errors() {
    let tmp = tempfile::tempdir().unwrap();
    // Nothing listens on port 9 of the loopback: every connection fails.
    let url = "postgres://alice:s3cr3t-pw@127.0.0.1:9/files?connect_timeout=2";
    for args in [&["list-files"][..], &["--port", "0"]] {
        let out = Command::new(server_bin())
            .args(["--dir", tmp.path().to_str().unwrap(), "--database", url])
            .args(args)
            .env("RUST_LOG", "debug")
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.status.success(), "{args:?}: {text}");
        assert!(!text.contains("s3cr3t-pw"), "{args:?}: {text}");
        assert!(text.contains("holds a password"), "{args:?}: {text}");
    }
    // From a file instead: no warning, and a missing file is a usage error.
    let file = tmp.path().join("pw");
    std::fs::write(&file, "s3cr3t-pw\n").unwrap();
    let out = Command::new(server_bin())
        .args(["--dir", tmp.path().to_str().unwrap()])
        .args([
            "--database",
            "postgres://alice@127.0.0.1:9/files?connect_timeout=2",
        ])
        .arg("--database-password-file")
        .arg(&file)
        .arg("list-files")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.contains("s3cr3t-pw") && !err.contains("holds a password"),
        "{err}"
    );
    let out = Command::new(server_bin())
        .args(["--database-password-file", "/nonexistent/pw", "list-files"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A build without the fleet backends refuses their options as usage errors, naming
/// the feature to build with, before it opens or creates anything.
#[cfg(not(feature = "fleet"))]
#[test]
fn a_lean_build_refuses_the_fleet_options_with_the_feature_to_build() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_str().unwrap();
    for args in [
        &["--database", "postgres://app@127.0.0.1:9/files"][..],
        &["--files", "s3://bucket/prefix"],
        &["--metrics", "127.0.0.1:0"],
        &["--database-password-file", "/nonexistent"],
        &["--database-ca-file", "/nonexistent"],
        &[
            "--database",
            "postgres://app@127.0.0.1:9/files",
            "list-files",
        ],
    ] {
        let out = Command::new(server_bin())
            .args(["--dir", dir, "--port", "0"])
            .args(args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("--features fleet"), "{args:?}: {err}");
    }
    let made: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
    assert!(made.is_empty(), "created {made:?}");
}
