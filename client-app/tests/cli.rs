//! The client's messages for bad input, all found before any network traffic:
//! each a `Fatal:` in the user's terms and exit code 2 (usage or configuration),
//! or 3 when nothing listens at the server's address.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test harness: a failure is a panic

mod common;

use std::path::Path;

use common::*;

/// A port nothing listens on: a run that reaches the network fails with 3, not 2.
fn unused() -> String {
    format!("127.0.0.1:{}", free_port())
}

#[test]
fn missing_transfer_info() {
    let tmp = tempfile::tempdir().unwrap();
    client(tmp.path(), &[]).fails(2, "transfer.info");
}

#[test]
fn malformed_transfer_info() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path().join("transfer.info");
    std::fs::write(&t, "no port here\nname\nfile\n").unwrap();
    client(tmp.path(), &[]).fails(2, "host:port");
    std::fs::write(&t, "127.0.0.1:1\n").unwrap();
    client(tmp.path(), &[]).fails(2, "line 2");
    std::fs::write(&t, format!("127.0.0.1:1\n{}\nf\n", "x".repeat(101))).unwrap();
    std::fs::write(tmp.path().join("f"), "data").unwrap();
    client(tmp.path(), &[]).fails(2, "at most 100");
}

#[test]
fn a_missing_file_and_a_refused_connection() {
    let tmp = tempfile::tempdir().unwrap();
    let server = unused();
    let args = ["--server", &server, "--name", "alice", "missing.bin"];
    client(tmp.path(), &args).fails(2, "missing.bin, does not exist");
    std::fs::write(tmp.path().join("missing.bin"), "now it exists").unwrap();
    client(tmp.path(), &args).fails(3, "the server is busy or refused the connection");
    assert!(!tmp.path().join("me.info").exists());
}

#[test]
fn malformed_me_info() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("transfer.info"), "127.0.0.1:1\nalice\nf\n").unwrap();
    std::fs::write(tmp.path().join("f"), "data").unwrap();
    write_private(&tmp.path().join("me.info"), "alice\nnot-hex\nAAAA\n");
    client(tmp.path(), &[]).fails(2, "32 hex digits");
    write_private(
        &tmp.path().join("me.info"),
        &format!("alice\n{}\nnot base64!\n", "ab".repeat(16)),
    );
    client(tmp.path(), &[]).fails(2, "private key");
}

#[test]
fn a_folder_as_the_file_is_named_with_its_path_before_registering() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("photos")).unwrap();
    client(
        tmp.path(),
        &["--server", &unused(), "--name", "a", "photos"],
    )
    .fails(2, "photos is a folder");
    assert!(!tmp.path().join("me.info").exists());
}

#[test]
fn a_file_name_the_protocol_cannot_carry_is_refused_before_connecting() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("résumé.pdf"), "x").unwrap();
    client(
        tmp.path(),
        &["--server", &unused(), "--name", "a", "résumé.pdf"],
    )
    .fails(2, "printable ASCII");
    let long = "n".repeat(255);
    std::fs::write(tmp.path().join(&long), "x").unwrap();
    client(tmp.path(), &["--server", &unused(), "--name", "a", &long]).fails(2, "too long");
}

#[test]
fn a_file_over_the_protocols_limit_is_refused_before_connecting() {
    let tmp = tempfile::tempdir().unwrap();
    // Sparse: no disk is used.
    let f = std::fs::File::create(tmp.path().join("huge.img")).unwrap();
    f.set_len(u32::MAX as u64 - 15).unwrap();
    client(
        tmp.path(),
        &["--server", &unused(), "--name", "a", "huge.img"],
    )
    .fails(2, "at most 4294967279 bytes");
    // One byte less fits the protocol: the run goes on to the network.
    f.set_len(u32::MAX as u64 - 16).unwrap();
    client(
        tmp.path(),
        &["--server", &unused(), "--name", "a", "huge.img"],
    )
    .fails(3, "cannot connect");
}

#[test]
fn a_bad_client_name_is_refused_before_connecting() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("f"), "x").unwrap();
    client(
        tmp.path(),
        &["--server", &unused(), "--name", "tab\there", "f"],
    )
    .fails(2, "printable ASCII");
}

#[test]
fn a_folder_that_cannot_take_me_info_is_refused_before_registering() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("f"), "x").unwrap();
    // /proc takes no new files, even for root (a chmod would not stop root).
    let args = ["--dir", "/proc", "--server", &unused(), "--name", "a", "f"];
    client(tmp.path(), &args).fails(2, "cannot write in /proc");
}

#[test]
fn a_packet_size_that_cannot_carry_the_file_is_refused_not_overridden() {
    let tmp = tempfile::tempdir().unwrap();
    let f = std::fs::File::create(tmp.path().join("f")).unwrap();
    f.set_len(2_000_000).unwrap();
    let args = [
        "--server",
        &unused(),
        "--name",
        "a",
        "--packet-size",
        "16",
        "f",
    ];
    client(tmp.path(), &args).fails(2, "--packet-size 16 would cut");
}

#[test]
fn usage_errors_exit_2_and_help_lists_the_exit_codes() {
    let tmp = tempfile::tempdir().unwrap();
    let run = client(tmp.path(), &["--no-such-option"]);
    assert_eq!(run.code, 2, "{run:#?}");
    let help = client(tmp.path(), &["--help"]).ok().stdout.clone();
    for line in [
        "Exit codes:",
        "2    usage",
        "3    cannot reach the server",
        "4    refused by the server",
        "5    the checksum differed four times",
        "6    the connection was lost",
        "8    the server's identity changed",
        "130  interrupted",
    ] {
        assert!(help.contains(line), "{line:?} missing from {help}");
    }
    assert!(!help.contains("section 8"), "{help}");
}

#[test]
fn the_readme_lists_the_same_exit_codes_as_help() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .unwrap();
    for (code, what) in [
        ("| 2 |", "usage"),
        ("| 3 |", "cannot reach"),
        ("| 4 |", "refused"),
        ("| 5 |", "checksum"),
        ("| 6 |", "lost"),
        ("| 7 |", "protocol"),
        ("| 8 |", "identity changed"),
        ("| 130 |", "interrupted"),
    ] {
        let line = readme
            .lines()
            .find(|l| l.starts_with(code))
            .unwrap_or_else(|| panic!("README has no row {code}"));
        assert!(line.to_lowercase().contains(what), "{line}");
    }
}

/// Writes a file as the client expects its key files: mode 0600.
fn write_private(path: &Path, contents: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, contents).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// `client completions SHELL` and `client man` print what a package installs beside the
/// program; a file named like one of these commands is still sent as `./NAME`.
#[test]
fn completions_and_the_manual_page_name_every_option() {
    let tmp = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let run = client(tmp.path(), &["completions", shell]);
        assert_eq!(run.code, 0, "{shell}: {run:#?}");
        for word in ["dialect", "server", "json", "completions"] {
            assert!(run.stdout.contains(word), "{shell} lacks {word}");
        }
    }
    let bash = client(tmp.path(), &["completions", "bash"]);
    std::fs::write(tmp.path().join("c.bash"), &bash.stdout).unwrap();
    if let Ok(status) = std::process::Command::new("bash")
        .arg("-n")
        .arg(tmp.path().join("c.bash"))
        .status()
    {
        assert!(status.success(), "bash -n rejects the script");
    }
    let man = client(tmp.path(), &["man"]);
    assert_eq!(man.code, 0, "{man:#?}");
    assert!(man.stdout.contains(".TH client 1"), "{}", man.stdout);
    assert!(man.stdout.contains("\\-\\-dialect"), "{}", man.stdout);
    let run = client(tmp.path(), &["completions", "tcsh"]);
    assert_eq!(run.code, 2, "{run:#?}");
    assert!(run.stderr.contains("tcsh"), "{run:#?}");
    // A file called `man`: `./man` is a file, not the command.
    std::fs::write(tmp.path().join("man"), b"x").unwrap();
    let port = unused();
    client(tmp.path(), &["--server", &port, "--name", "m", "./man"])
        .fails(3, "the server is busy or refused the connection");
}
