//! Cut transfers in the secure mode, with the real binaries: a download cut in the
//! server-to-client direction leaves its `.NAME.part` and resumes on the next run;
//! an upload cut at seeded random points resumes from the server's offset, both by
//! the client itself within `--timeout` (a network that failed once) and when it is
//! run again, and ends verified with the SHA-256 `sha256sum` computes.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test harness: a failure is a panic

mod common;
mod secure_kit;

use common::{data, proxy, Server, Tamper};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use secure_kit::*;

#[test]
fn a_download_cut_midway_resumes_on_the_next_run_byte_identical() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("server"), 0, &[]);
    let dir = folder(tmp.path(), "dora", &server.addr(), "big.bin");
    let size = 6 << 20;
    std::fs::write(dir.join("big.bin"), data(size, 5)).unwrap();
    ok(&client(&dir, &["put", "big.bin"]), "put");

    // The answers stop after 2.5 MiB: the client reads a cut connection.
    let cut_at = (5 << 20) / 2;
    let (relay, cut) = cutting_relay(
        server.port,
        Cut {
            up: None,
            down: Some(cut_at),
        },
    );
    let via = format!("127.0.0.1:{relay}");
    let out = client(&dir, &["get", "big.bin", "-o", "got.bin", "--server", &via]);
    fails(&out, 6, "a cut download");
    assert!(cut.load(std::sync::atomic::Ordering::SeqCst));
    let part = dir.join(".got.bin.part");
    let kept = std::fs::metadata(&part).unwrap().len();
    assert!(
        kept > 0 && kept < size as u64,
        "{kept} bytes kept: {}",
        said(&out)
    );
    assert!(!dir.join("got.bin").exists());

    // Run again, straight to the server: from the part it kept.
    let out = client(&dir, &["get", "big.bin", "-o", "got.bin"]);
    ok(&out, "the download run again");
    assert!(
        stderr(&out).contains(&format!("resuming at byte {kept}")),
        "{}",
        said(&out)
    );
    assert!(!part.exists());
    assert!(same_bytes(&dir.join("got.bin"), &dir.join("big.bin")));
    let log = server.log();
    assert!(
        logged_offsets(&log, "download", "big.bin").contains(&kept),
        "{log}"
    );
    server.stop();
}

/// Uploads `name` (its bytes already in the folder) through a relay that cuts the
/// client's bytes once at `at`: the client reconnects by itself.
fn cut_once_and_reconnect(dir: &std::path::Path, server: &Server, name: &str, at: usize) {
    let (relay, cut) = cutting_relay(
        server.port,
        Cut {
            up: Some(at),
            down: None,
        },
    );
    let via = format!("127.0.0.1:{relay}");
    let out = client(dir, &["put", name, "--server", &via, "--timeout", "20"]);
    ok(&out, &format!("{name} cut at {at}, reconnecting"));
    assert!(cut.load(std::sync::atomic::Ordering::SeqCst), "{name}");
    assert!(stderr(&out).contains("resuming at byte"), "{}", said(&out));
    check_stored(dir, server, name, &out);
}

/// Uploads `name` through a proxy that takes one connection and cuts it at `at`:
/// the client gives up after a short `--timeout`, and run again straight to the
/// server it resumes.
fn cut_and_run_again(dir: &std::path::Path, server: &Server, name: &str, at: usize) {
    let (port, reached) = proxy(server.port, Tamper::Cut(at));
    let via = format!("127.0.0.1:{port}");
    let out = client(dir, &["put", name, "--server", &via, "--timeout", "2"]);
    assert!(!out.status.success(), "{name}: {}", said(&out));
    assert!(reached.load(std::sync::atomic::Ordering::SeqCst));
    let out = client(dir, &["put", name]);
    ok(&out, &format!("{name} run again after a cut at {at}"));
    assert!(stderr(&out).contains("resuming at byte"), "{}", said(&out));
    check_stored(dir, server, name, &out);
}

/// The server resumed `name` from an offset above 0; the client's SHA-256 is
/// `sha256sum`'s; the stored bytes (`client get`) are the file's.
fn check_stored(dir: &std::path::Path, server: &Server, name: &str, out: &std::process::Output) {
    let log = server.log();
    let offsets = logged_offsets(&log, "secure upload resumed", name);
    let offset = offsets.last().copied().unwrap_or(0);
    assert!(offset > 0, "{name}: no resume in {log}");
    // The client sent from the server's offset.
    assert!(
        said(out).contains(&format!("resuming at byte {offset} of")),
        "{offset}: {}",
        said(out)
    );
    let sha = sha256sum(&dir.join(name));
    assert!(
        said(out).contains(&format!("SHA-256 {sha} verified")),
        "{}",
        said(out)
    );
    let got = format!("{name}.got");
    ok(&client(dir, &["get", name, "-o", &got]), "get");
    assert!(same_bytes(&dir.join(&got), &dir.join(name)), "{name}");
}

#[test]
fn uploads_cut_at_random_points_resume_from_the_servers_offset() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("server"), 0, &[]);
    let dir = folder(tmp.path(), "ursula", &server.addr(), "x.bin");
    // Registered and pinned first, so that every cut falls in an upload.
    std::fs::write(dir.join("x.bin"), data(1000, 1)).unwrap();
    ok(&client(&dir, &["put", "x.bin"]), "first put");

    let size = 4 << 20;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0x005e_c02e);
    for round in 0..4u8 {
        // The server takes content in frames of up to 1 MiB: a cut past the first
        // whole frame (and the handshake), before the end.
        let first = (1 << 20) + 100 * 1024;
        let at = first + (rng.next_u64() as usize) % (size - first - 64 * 1024);
        let name = format!("up{round}.bin");
        std::fs::write(dir.join(&name), data(size, 30 + round)).unwrap();
        eprintln!("{name}: cut at {at}");
        if round % 2 == 0 {
            cut_once_and_reconnect(&dir, &server, &name, at);
        } else {
            cut_and_run_again(&dir, &server, &name, at);
        }
    }
    server.stop();
}

/// The network drops the client mid-upload without a word to the server, which
/// still holds the old connection (and the upload) when the client comes back: the
/// client keeps trying within --timeout until the server lets the stale connection
/// go, and the upload ends verified.
#[test]
fn an_upload_whose_old_connection_the_server_still_holds_finishes_by_itself() {
    let tmp = tempfile::tempdir().unwrap();
    let args = ["--idle-timeout", "2", "--request-timeout", "2"];
    let server = Server::start(&tmp.path().join("server"), 0, &args);
    let dir = folder(tmp.path(), "hank", &server.addr(), "h.bin");
    std::fs::write(dir.join("h.bin"), data(1000, 1)).unwrap();
    ok(&client(&dir, &["put", "h.bin"]), "first put");
    std::fs::write(dir.join("h.bin"), data(4 << 20, 2)).unwrap();
    let (relay, dropped) = dropping_relay(server.port, (2 << 20) + 12_345);
    let via = format!("127.0.0.1:{relay}");
    let out = client(&dir, &["put", "h.bin", "--server", &via, "--timeout", "20"]);
    assert!(dropped.load(std::sync::atomic::Ordering::SeqCst));
    ok(&out, "a put whose old connection the server still held");
    let sha = sha256sum(&dir.join("h.bin"));
    assert!(said(&out).contains(&sha), "{}", said(&out));
    ok(&client(&dir, &["get", "h.bin", "-o", "h.got"]), "get");
    assert!(same_bytes(&dir.join("h.got"), &dir.join("h.bin")));
    server.stop();
}
