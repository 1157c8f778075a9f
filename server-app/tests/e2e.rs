//! End to end: the real `server` and `client` binaries on 127.0.0.1, in temporary
//! folders, checked with the `cksum` command and, where python3 is at hand, against
//! an independent client written with Python's standard library and the `openssl`
//! command line.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test harness: a failure is a panic

mod common;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn first_run_reconnect_and_restart(transport: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let sdir = tmp.path().join("server");
    let server = Server::start(&sdir, 0, &["--transport", transport]);
    let c = client_dir(
        tmp.path(),
        "alice",
        server.port,
        "report.pdf",
        &data(300_000, 1),
    );

    let out = run_client(&c, &[]);
    assert_ok(&out, "first run");
    let id = client_id(&c);
    assert_eq!(id.len(), 32);
    assert!(c.join("priv.key").exists());
    let stored = stored_path(&sdir, &id, "report.pdf");
    assert_eq!(
        std::fs::read(&stored).unwrap(),
        std::fs::read(c.join("report.pdf")).unwrap()
    );
    assert_eq!(cksum_cmd(&stored), cksum_cmd(&c.join("report.pdf")));
    assert!(
        server.list_files().contains("yes"),
        "{}",
        server.list_files()
    );

    // Restart the server between runs: the client reconnects without its key.
    server.stop();
    let server = Server::start(&sdir, 0, &["--transport", transport]);
    std::fs::write(c.join("second.txt"), b"a different file\n".repeat(1000)).unwrap();
    write_transfer(&c, server.port, "alice", "second.txt");
    let out = run_client(&c, &[]);
    assert_ok(&out, "second run");
    assert!(String::from_utf8_lossy(&out.stdout).contains("reconnecting"));
    assert_eq!(client_id(&c), id, "reconnect keeps the id");
    let stored2 = stored_path(&sdir, &id, "second.txt");
    assert_eq!(cksum_cmd(&stored2), cksum_cmd(&c.join("second.txt")));
    // The first file is still there, verified.
    assert_eq!(cksum_cmd(&stored), cksum_cmd(&c.join("report.pdf")));
    let listing = server.list_files();
    assert_eq!(listing.matches(" yes ").count(), 2, "{listing}");
    server.stop();
}

#[test]
fn tokio_first_run_reconnect_and_restart() {
    first_run_reconnect_and_restart("tokio");
}

#[test]
fn std_first_run_reconnect_and_restart() {
    first_run_reconnect_and_restart("std");
}

#[test]
fn a_checksum_that_never_matches_ends_in_902_and_a_fatal_exit() {
    let tmp = tempfile::tempdir().unwrap();
    let sdir = tmp.path().join("server");
    // The server answers with zlib CRC-32 while the client compares POSIX cksum.
    let server = Server::start(&sdir, 0, &["--checksum", "crc32"]);
    let c = client_dir(tmp.path(), "bob", server.port, "f.bin", &data(5000, 2));
    let out = run_client(&c, &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.matches("checksum mismatch").count(), 4, "{err}");
    assert!(err.contains("Fatal:"), "{err}");
    let listing = server.list_files();
    assert!(listing.contains(" no "), "{listing}");
    assert!(!listing.contains(" yes "), "{listing}");
}

#[test]
fn a_corrupted_upload_is_resent_and_then_verified() {
    let tmp = tempfile::tempdir().unwrap();
    let sdir = tmp.path().join("server");
    let server = Server::start(&sdir, 0, &[]);
    // 825 (278 bytes), 826 (438), then the first 828 header (23 + 267): flip a
    // ciphertext byte of the first packet.
    let (proxy, _) = proxy(server.port, Tamper::Flip(278 + 438 + 290 + 100));
    let c = client_dir(tmp.path(), "carol", proxy, "g.bin", &data(20_000, 3));
    let out = run_client(&c, &[]);
    assert_ok(&out, "run through the flipping proxy");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.matches("checksum mismatch").count(), 1, "{err}");
    let stored = stored_path(&sdir, &client_id(&c), "g.bin");
    assert_eq!(cksum_cmd(&stored), cksum_cmd(&c.join("g.bin")));
}

#[test]
fn a_server_that_lost_the_client_answers_1606_and_the_client_registers_anew() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("s1"), 0, &[]);
    let c = client_dir(tmp.path(), "dave", server.port, "h.bin", &data(1000, 4));
    assert_ok(&run_client(&c, &[]), "first run");
    let old_id = client_id(&c);
    drop(server);
    // A server with an empty database: the reconnect is refused, the client registers
    // (it is another server than me.info's, so only when told to).
    let server = Server::start(&tmp.path().join("s2"), 0, &["--transport", "std"]);
    write_transfer(&c, server.port, "dave", "h.bin");
    let out = run_client(&c, &["--new-server"]);
    assert_ok(&out, "run after 1606");
    assert!(String::from_utf8_lossy(&out.stdout).contains("registering anew"));
    let new_id = client_id(&c);
    assert_ne!(new_id, old_id, "me.info holds the new id");
    assert!(stored_path(&tmp.path().join("s2"), &new_id, "h.bin").exists());
}

fn many_clients_at_once(transport: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let sdir = tmp.path().join("server");
    let server = Server::start(&sdir, 0, &["--transport", transport]);
    let dirs: Vec<PathBuf> = (0..20)
        .map(|i| {
            client_dir(
                tmp.path(),
                &format!("client{i}"),
                server.port,
                "data.bin",
                &data(50_000 + i * 1000, 10 + i as u8),
            )
        })
        .collect();
    for (out, d) in run_clients_at_once(&dirs).into_iter().zip(&dirs) {
        assert_ok(&out, &d.display().to_string());
        let stored = stored_path(&sdir, &client_id(d), "data.bin");
        assert_eq!(cksum_cmd(&stored), cksum_cmd(&d.join("data.bin")));
    }
    assert_eq!(server.list_files().matches(" yes ").count(), 20);
    server.stop();
}

#[test]
fn tokio_twenty_clients_at_once() {
    many_clients_at_once("tokio");
}

#[test]
fn std_twenty_clients_at_once() {
    many_clients_at_once("std");
}

#[test]
fn missing_port_info_warns_and_uses_1256() {
    let tmp = tempfile::tempdir().unwrap();
    if TcpStream::connect(("127.0.0.1", 1256)).is_ok() {
        eprintln!("port 1256 is in use here; skipped");
        return;
    }
    let child = Command::new(server_bin())
        .args(["--bind", "127.0.0.1"])
        .current_dir(tmp.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", 1256)).is_err() {
        assert!(Instant::now() < deadline, "no server on 1256");
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("port.info") && err.contains("1256"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn an_independent_python_and_openssl_client_is_served() {
    let has = |cmd: &str| Command::new(cmd).arg("--version").output().is_ok();
    if !has("python3") || !has("openssl") {
        eprintln!("python3 or openssl not installed; skipped");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let sdir = tmp.path().join("server");
    let server = Server::start(&sdir, 0, &[]);
    let file = tmp.path().join("peer.bin");
    std::fs::write(
        &file,
        (0..10_000u32)
            .map(|i| (i * 7 % 251) as u8)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let peer = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peer.py");
    let out = Command::new("python3")
        .arg(&peer)
        .arg(server.port.to_string())
        .arg(&file)
        .current_dir(tmp.path())
        .output()
        .unwrap();
    assert_ok(&out, "python peer");
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let stored = stored_path(&sdir, &id, "peer.bin");
    assert_eq!(cksum_cmd(&stored), cksum_cmd(&file));
    assert!(server.list_files().contains(" yes "));
}

#[test]
fn a_client_with_a_connection_per_request_is_served() {
    let tmp = tempfile::tempdir().unwrap();
    let sdir = tmp.path().join("server");
    let server = Server::start(&sdir, 0, &[]);
    let c = client_dir(
        tmp.path(),
        "oscar",
        server.port,
        "v7.bin",
        &data(10_000, 21),
    );
    let args = ["--connection-per-request", "--packet-size", "1024"];
    assert_ok(&run_client(&c, &args), "first run");
    let stored = stored_path(&sdir, &client_id(&c), "v7.bin");
    assert_eq!(cksum_cmd(&stored), cksum_cmd(&c.join("v7.bin")));
    // And a reconnect, in the same dialect.
    std::fs::write(c.join("v7.bin"), data(3000, 22)).unwrap();
    assert_ok(&run_client(&c, &args), "second run");
    // Each version is a new object: the record names the new one.
    let stored = stored_path(&sdir, &client_id(&c), "v7.bin");
    assert_eq!(cksum_cmd(&stored), cksum_cmd(&c.join("v7.bin")));
}

#[test]
fn a_large_upload_over_a_connection_per_packet_resumes_its_direct_writes() {
    // Past 4 MiB the server writes uploads with O_DIRECT from an aligned buffer; with
    // a connection per packet every packet resumes the temporary file at an
    // unaligned end. Odd sizes on purpose; the stored bytes must be exact.
    let tmp = tempfile::tempdir().unwrap();
    let sdir = tmp.path().join("server");
    let server = Server::start(&sdir, 0, &["--transport", "std"]);
    let c = client_dir(
        tmp.path(),
        "petra",
        server.port,
        "big.bin",
        &data(9_000_017, 23),
    );
    let args = ["--connection-per-request", "--packet-size", "700001"];
    assert_ok(&run_client(&c, &args), "connection per packet");
    let stored = stored_path(&sdir, &client_id(&c), "big.bin");
    assert_eq!(cksum_cmd(&stored), cksum_cmd(&c.join("big.bin")));
    // And on one connection, replacing it.
    std::fs::write(c.join("big.bin"), data(7_340_033, 24)).unwrap();
    assert_ok(&run_client(&c, &[]), "one connection");
    let stored = stored_path(&sdir, &client_id(&c), "big.bin");
    assert_eq!(cksum_cmd(&stored), cksum_cmd(&c.join("big.bin")));
}
