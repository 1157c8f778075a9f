//! How the client reads what a server does mid-run: a refusal followed by a reset,
//! an answer in another protocol, a key that expired before the upload, a client
//! removed by the operator mid-upload, and how much of the file really left.

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
    let server = Server::start(&tmp.path().join("s"), &["--key-lifetime", "1"]);
    let c = folder(tmp.path(), "c", "f.bin", &data(5000, 3));
    client(&c, &["--server", &server.addr(), "--name", "cy", "f.bin"]).ok();
    // The next run reconnects (827); its file (828) is held until the key is older
    // than the server's one-second lifetime.
    let (port, reached, release) = gate_proxy(server.port, RECONNECT_BYTES);
    let via = format!("127.0.0.1:{port}");
    let child = Command::new(client_bin())
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
    let server = Server::start(&tmp.path().join("s"), &[]);
    let c = folder(tmp.path(), "c", "f.bin", &data(3_000_000, 4));
    client(&c, &["--server", &server.addr(), "--name", "dee", "small"]).fails(2, "small");
    // Registered by a first run of a small file, then the big one through a proxy
    // that holds it halfway while the operator removes the client.
    std::fs::write(c.join("small"), "x").unwrap();
    client(&c, &["--server", &server.addr(), "--name", "dee", "small"]).ok();
    let (port, reached, release) = gate_proxy(server.port, RECONNECT_BYTES + 1_000_000);
    let via = format!("127.0.0.1:{port}");
    let child = Command::new(client_bin())
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
