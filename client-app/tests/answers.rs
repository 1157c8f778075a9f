//! How the client reads what a server does mid-run: a refusal followed by a reset,
//! an answer in another protocol, a key that expired before the upload, a client
//! removed by the operator mid-upload, and how much of the file really left.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test harness: a failure is a panic

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::*;

#[test]
fn an_answer_in_another_protocol_is_recognised_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    // An HTTP server on the port: it answers the first bytes and keeps the
    // connection open, as a keep-alive server does.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in listener.incoming() {
            let Ok(mut s) = s else { return };
            std::thread::spawn(move || {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf);
                let _ = s.write_all(
                    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 11\r\n\r\nBad Request",
                );
                std::thread::sleep(Duration::from_secs(120));
            });
        }
    });
    let c = folder(tmp.path(), "c", "f.bin", &data(1000, 2));
    let started = Instant::now();
    let via = format!("127.0.0.1:{port}");
    let run = client(&c, &["--server", &via, "--name", "bo", "f.bin"]);
    run.fails(7, "is not this protocol");
    assert!(!run.stderr.contains("overloaded"), "{run:#?}");
    // The default --timeout is 60 s; a recognised answer ends the run long before.
    assert!(started.elapsed() < Duration::from_secs(30), "{run:#?}");
}

/// Bytes of a reconnect request (827): header and the 255-byte name.
const RECONNECT_BYTES: usize = 16 + 1 + 2 + 4 + 255;

#[test]
fn a_key_that_expired_before_the_upload_is_renewed_once() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("s"), 0, &["--key-lifetime", "1"]);
    let c = folder(tmp.path(), "c", "f.bin", &data(5000, 3));
    client(&c, &["--server", &server.addr(), "--name", "cy", "f.bin"]).ok();
    // The next run reconnects (827); its file (828) is held until the key is older
    // than the server's one-second lifetime.
    let (port, reached, release) = gate_proxy(server.port, RECONNECT_BYTES);
    let via = format!("127.0.0.1:{port}");
    let child = Command::new(client_bin())
        .arg("--legacy")
        .args(["--server", &via, "--new-server", "f.bin"])
        .current_dir(&c)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(&reached, "the reconnect");
    std::thread::sleep(Duration::from_millis(2500));
    release.store(true, Ordering::SeqCst);
    let run = Run::from(child.wait_with_output().unwrap());
    run.ok();
    assert!(run.stderr.contains("key expired"), "{run:#?}");
    assert_eq!(
        run.stderr.matches("reconnecting for a new key").count(),
        1,
        "{run:#?}"
    );
}

#[test]
fn a_client_removed_mid_upload_is_told_so_and_not_retried() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("s"), 0, &[]);
    let c = folder(tmp.path(), "c", "f.bin", &data(3_000_000, 4));
    client(&c, &["--server", &server.addr(), "--name", "dee", "small"]).fails(2, "small");
    // Registered by a first run of a small file, then the big one through a proxy
    // that holds it halfway while the operator removes the client.
    std::fs::write(c.join("small"), "x").unwrap();
    client(&c, &["--server", &server.addr(), "--name", "dee", "small"]).ok();
    let (port, reached, release) = gate_proxy(server.port, RECONNECT_BYTES + 1_000_000);
    let via = format!("127.0.0.1:{port}");
    let child = Command::new(client_bin())
        .arg("--legacy")
        .args(["--server", &via, "--new-server", "f.bin"])
        .current_dir(&c)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(&reached, "the upload's first megabyte");
    let removed = Command::new(server_bin())
        .args(["remove-client", "dee", "--yes", "--dir"])
        .arg(&server.dir)
        .output()
        .unwrap();
    assert!(removed.status.success(), "{removed:?}");
    release.store(true, Ordering::SeqCst);
    let run = Run::from(child.wait_with_output().unwrap());
    run.fails(4, "no longer knows the client \"dee\"");
    assert!(!run.stderr.contains("attempt 2"), "not retried: {run:#?}");
    assert!(!run.stderr.contains("run again later"), "{run:#?}");
}

#[test]
fn a_refusal_followed_by_a_reset_is_a_refusal() {
    let tmp = tempfile::tempdir().unwrap();
    // The server refuses the file at its first packet (1607) and closes while the
    // client is still writing: the close resets the connection.
    let server = Server::start(&tmp.path().join("s"), 0, &["--max-file-bytes", "1000"]);
    let c = folder(tmp.path(), "c", "big.bin", &data(8_000_000, 1));
    let run = client(
        &c,
        &["--server", &server.addr(), "--name", "ann", "big.bin"],
    );
    run.fails(4, "the server refused the file big.bin");
    assert!(
        !run.stderr.contains("connection to the server was lost"),
        "{run:#?}"
    );
}

#[test]
fn bytes_sent_are_those_written_to_the_socket_not_those_queued() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("s"), 0, &[]);
    let c = folder(tmp.path(), "c", "f.bin", &data(16_000_000, 5));
    client(
        &c,
        &[
            "--server",
            &server.addr(),
            "--name",
            "eve",
            "--json",
            "f.bin",
        ],
    );
    // The proxy stops taking the upload after 1 MB; the client's writes then block
    // and the run times out. What it says was sent must be near what left, not what
    // the client had encrypted and queued behind it.
    let at = RECONNECT_BYTES + 1_000_000;
    let (port, _reached, _release) = gate_proxy(server.port, at);
    let via = format!("127.0.0.1:{port}");
    // An explicit dialect: with auto, a stall after the key exchange looks like the
    // silence of a fixed-shape server and the file would go again under padded.
    let run = client(
        &c,
        &[
            "--server",
            &via,
            "--new-server",
            "--timeout",
            "3",
            "--dialect",
            "spec",
            "f.bin",
        ],
    );
    run.fails(3, "bytes sent");
    let sent: u64 = run
        .stderr
        .split(" of 16000000 bytes sent")
        .next()
        .and_then(|s| s.rsplit(|ch: char| !ch.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {run:#?}"));
    // Kernel buffers on both sides of the loopback hold some; the bound is generous
    // but far below what was queued (several MB).
    assert!(sent <= 1_000_000 + 1_500_000, "{sent}: {run:#?}");
}
