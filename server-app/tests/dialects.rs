//! The real client, in deployed peers' dialects, against the real server: the server
//! takes a zero-padded fixed content field (variant 12) and logs, once per
//! connection, the variants it detected.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test harness: a failure is a panic

mod common;

use common::*;

#[test]
fn the_server_logs_the_dialect_it_detected_and_takes_padded_packets() {
    let tmp = tempfile::tempdir().unwrap();
    let sdir = tmp.path().join("server");
    let server = Server::start(&sdir, 0, &[]);
    let contents = data(5000, 3);
    let c = client_dir(tmp.path(), "padder", server.port, "spec.txt", &contents);
    let out = run_client(
        &c,
        &[
            "--big-endian",
            "--total-first",
            "--pad-packets",
            "--packet-size",
            "1024",
        ],
    );
    assert_ok(&out, "padded, big-endian client");
    let id = client_id(&c);
    assert_eq!(
        std::fs::read(stored_path(&sdir, &id, "spec.txt")).unwrap(),
        contents
    );
    server.stop();
    let log = std::fs::read_to_string(sdir.join("server.log")).unwrap();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("dialect seen")).collect();
    assert_eq!(lines.len(), 1, "one line per connection: {log}");
    assert!(
        lines[0].contains(
            "requests big-endian, total packets first, total size, stream encryption, \
             zero-padded packets, cksum"
        ),
        "{}",
        lines[0]
    );
}
