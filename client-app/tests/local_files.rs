//! What the client reads and writes in its folder, and what it makes of the command
//! line before any network traffic: size limits, planted links, a registered folder
//! run again with `--dir` alone, server addresses, `--version`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test harness: a failure is a panic

mod common;

use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

/// Writes a file as the client expects its key files: mode 0600.
fn write_private(path: &Path, contents: &str) {
    std::fs::write(path, contents).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

#[test]
fn version_names_the_program() {
    let tmp = tempfile::tempdir().unwrap();
    let run = client(tmp.path(), &["--version"]);
    run.ok();
    assert!(run.stdout.starts_with("client "), "{run:#?}");
}

#[test]
fn a_server_address_without_a_valid_port_is_a_usage_error_quoting_it() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("f"), "x").unwrap();
    client(tmp.path(), &["--server", "127.0.0.1", "--name", "a", "f"])
        .fails(2, "\"127.0.0.1\" has no port");
    client(
        tmp.path(),
        &["--server", "127.0.0.1:12x56", "--name", "a", "f"],
    )
    .fails(2, "\"12x56\" is not 1 to 65535");
    std::fs::write(tmp.path().join("transfer.info"), "localhost:\nalice\nf\n").unwrap();
    client(tmp.path(), &[]).fails(2, "\"localhost:\" has no valid port");
    assert!(!tmp.path().join("me.info").exists());
}

/// A link to /dev/zero must fail at once with a clear message (the bound is
/// generous: reading it without a limit took seconds and a gigabyte).
fn fails_fast(dir: &Path, args: &[&str], expect: &str) {
    let started = Instant::now();
    client(dir, args).fails(2, expect);
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[test]
fn every_file_the_client_reads_has_a_size_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::write(d.join("f"), "x").unwrap();
    symlink("/dev/zero", d.join("transfer.info")).unwrap();
    fails_fast(d, &[], "more than 65536 bytes");

    // A registered folder: me.server names the server when --server is not given.
    std::fs::remove_file(d.join("transfer.info")).unwrap();
    write_private(&d.join("me.info"), "alice\n");
    symlink("/dev/zero", d.join("me.server")).unwrap();
    fails_fast(d, &["f"], "me.server");
    std::fs::remove_file(d.join("me.server")).unwrap();

    // The key files are never read through a link; a big regular one is refused
    // by its size before it is read.
    let big = std::fs::File::create(d.join("me.info")).unwrap();
    big.set_len(1 << 30).unwrap();
    std::fs::set_permissions(d.join("me.info"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let port = format!("127.0.0.1:{}", free_port());
    fails_fast(
        d,
        &["--server", &port, "f"],
        "a key file holds a few thousand",
    );
    let id = "ab".repeat(16);
    write_private(&d.join("me.info"), &format!("alice\n{id}\n"));
    let big = std::fs::File::create(d.join("priv.key")).unwrap();
    big.set_len(1 << 30).unwrap();
    std::fs::set_permissions(d.join("priv.key"), std::fs::Permissions::from_mode(0o600)).unwrap();
    fails_fast(
        d,
        &["--server", &port, "f"],
        "priv.key holds 1073741824 bytes",
    );
}

#[test]
fn a_damaged_me_info_says_what_to_do() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::write(d.join("f"), "x").unwrap();
    write_private(&d.join("me.info"), "alice\nnot an id\n");
    let port = format!("127.0.0.1:{}", free_port());
    let run = client(d, &["--server", &port, "f"]);
    run.fails(2, "32 hex digits");
    assert!(run.stderr.contains("register anew"), "{run:#?}");
}

#[test]
fn planted_temporary_files_and_links_are_never_written_through() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("s"), 0, &[]);
    let c = folder(tmp.path(), "c", "f.bin", &data(1000, 1));
    let victim = tmp.path().join("victim.txt");
    std::fs::write(&victim, "untouched").unwrap();
    // The names a naive writer would use for its temporary files.
    for name in [
        "me.server.tmp",
        "me.info.tmp",
        "priv.key.tmp",
        ".me.server.tmp",
    ] {
        symlink(&victim, c.join(name)).unwrap();
    }
    symlink(&victim, c.join("me.server")).unwrap();
    client(&c, &["--server", &server.addr(), "--name", "pat", "f.bin"]).ok();
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched");
    let record = std::fs::symlink_metadata(c.join("me.server")).unwrap();
    assert!(record.is_file(), "me.server replaced the link with a file");
    assert_eq!(
        std::fs::read_to_string(c.join("me.server")).unwrap(),
        // The server, and the dialect that worked with it (the default, auto).
        format!("{}\ndialect spec\n", server.addr())
    );
}

#[test]
fn a_registered_folder_runs_again_with_dir_and_a_file_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("s"), 0, &[]);
    let work = folder(tmp.path(), "work", "f.bin", &data(2000, 2));
    let args = ["--server", &server.addr(), "--name", "quinn", "--dir", "d"];
    std::fs::create_dir(work.join("d")).unwrap();
    client(&work, &[&args[..], &["f.bin"]].concat()).ok();
    // me.info names the client and me.server the server: no transfer.info needed.
    let run = client(&work, &["--dir", "d", "f.bin"]);
    run.ok();
    assert!(run.stdout.contains("reconnecting to"), "{run:#?}");
    // Without a file, the message asks for the file only.
    let run = client(&work, &["--dir", "d"]);
    run.fails(2, "transfer.info");
    assert!(run.stderr.contains("FILE"), "{run:#?}");
    assert!(!run.stderr.contains("--name"), "{run:#?}");
    assert!(!run.stderr.contains("--server"), "{run:#?}");
}
