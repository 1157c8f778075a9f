//! Every failure a newcomer met, against the real server: the client's message in
//! the user's terms and its exit code (the table in the README and `--help`).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test harness: a failure is a panic

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::*;

#[test]
fn a_name_taken_by_another_client_is_refused_once_not_retried() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("s"), 0, &[]);
    let a = folder(tmp.path(), "a", "f.bin", &data(1000, 1));
    let b = folder(tmp.path(), "b", "f.bin", &data(1000, 2));
    client(
        &a,
        &["--server", &server.addr(), "--name", "alice", "f.bin"],
    )
    .ok();
    let run = client(
        &b,
        &["--server", &server.addr(), "--name", "alice", "f.bin"],
    );
    run.fails(
        4,
        "the server refused the name \"alice\" (registration refused, 1601)",
    );
    assert!(!run.stderr.contains("attempt"), "{run:#?}");
    let refusals = server
        .log()
        .lines()
        .filter(|l| l.contains("refused") && l.contains("alice"))
        .count();
    assert_eq!(refusals, 1, "{}", server.log());
}

#[test]
fn a_full_disk_is_tried_three_times_then_reported() {
    // A real full disk: the server's folder on a 1 MiB tmpfs (root only; skipped
    // where mounting is not permitted), and a file that cannot fit.
    let tmp = tempfile::tempdir().unwrap();
    let sdir = tmp.path().join("s");
    std::fs::create_dir_all(&sdir).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&sdir)
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("skipped: cannot mount a small tmpfs here");
        return;
    }
    /// Unmounts even when an assertion fails.
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(sdir.clone());
    let server = Server::start(&sdir, 0, &[]);
    let c = folder(tmp.path(), "c", "f.bin", &data(3_000_000, 3));
    let run = client(&c, &["--server", &server.addr(), "--name", "carl", "f.bin"]);
    run.fails(4, "the server could not store f.bin");
    assert!(run.stderr.contains("disk may be full"), "{run:#?}");
    // Two answered attempts are retried; the third ends the run. Refusals of every
    // send are also what server B answers the spec dialect, so --dialect auto tries
    // its preset once more (bounded: one more try of three attempts), then reports.
    assert_eq!(
        run.stderr.matches("server responded with an error").count(),
        4,
        "{run:#?}"
    );
    assert!(
        run.stderr
            .contains("trying --dialect total-first-per-packet"),
        "{run:#?}"
    );
    assert!(run.stderr.contains("to all 3 attempts"), "{run:#?}");
}

#[test]
fn a_file_over_the_servers_limit_is_reported_as_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("s"), 0, &["--max-file-bytes", "1000"]);
    let c = folder(tmp.path(), "c", "big.bin", &data(100_000, 4));
    client(
        &c,
        &["--server", &server.addr(), "--name", "dan", "big.bin"],
    )
    .fails(4, "the server refused the file big.bin");
}

#[test]
fn a_connection_cut_mid_upload_says_so_and_a_second_run_succeeds() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("s"), 0, &[]);
    let c = folder(tmp.path(), "c", "f.bin", &data(3_000_000, 5));
    let (port, _) = proxy(server.port, Tamper::Cut(1_000_000));
    let via = format!("127.0.0.1:{port}");
    client(&c, &["--server", &via, "--name", "erin", "f.bin"]).fails(
        6,
        "the connection to the server was lost during the upload of f.bin",
    );
    // me.info was written before the cut; the same server under another address
    // knows the client, so the run reconnects.
    client(&c, &["--server", &server.addr(), "--name", "erin", "f.bin"]).ok();
}

#[test]
fn the_server_killed_mid_upload_is_a_lost_connection() {
    let tmp = tempfile::tempdir().unwrap();
    let mut server = Server::start(&tmp.path().join("s"), 0, &["--transport", "std"]);
    let c = folder(tmp.path(), "c", "f.bin", &data(3_000_000, 6));
    // The proxy holds the upload after 1 MB, the server is killed meanwhile, and the
    // proxy passes the server's end on to the client.
    let (port, reached) = proxy(server.port, Tamper::Stall(1_000_000));
    let via = format!("127.0.0.1:{port}");
    let child = Command::new(client_bin())
        .arg("--legacy")
        .args(["--server", &via, "--name", "finn", "f.bin"])
        .current_dir(&c)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !reached.load(Ordering::SeqCst) {
        assert!(Instant::now() < deadline, "the upload never reached 1 MB");
        std::thread::sleep(Duration::from_millis(10));
    }
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let run = Run::from(child.wait_with_output().unwrap());
    run.fails(
        6,
        "the connection to the server was lost during the upload of f.bin",
    );
    assert!(run.stderr.contains("run again"), "{run:#?}");
}

#[test]
fn another_clients_key_in_me_info_is_named_as_such() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("s"), 0, &[]);
    let a = folder(tmp.path(), "a", "f.bin", &data(1000, 7));
    let b = folder(tmp.path(), "b", "f.bin", &data(1000, 8));
    client(&a, &["--server", &server.addr(), "--name", "gail", "f.bin"]).ok();
    client(&b, &["--server", &server.addr(), "--name", "hank", "f.bin"]).ok();
    // gail's name and id, hank's key.
    let gail = std::fs::read_to_string(a.join("me.info")).unwrap();
    let hank = std::fs::read_to_string(b.join("me.info")).unwrap();
    let mixed: Vec<&str> = gail.lines().take(2).chain(hank.lines().skip(2)).collect();
    std::fs::write(a.join("me.info"), mixed.join("\n") + "\n").unwrap();
    client(&a, &["--server", &server.addr(), "f.bin"])
        .fails(2, "do not belong to the client \"gail\"");
}

#[test]
fn a_server_at_its_connection_limit_is_busy() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("s"), 0, &["--max-connections", "1"]);
    // Hold the one connection: registered, so the server surely counts it.
    let mut held = hold_the_only_connection(server.port);
    let c = folder(tmp.path(), "c", "f.bin", &data(1000, 9));
    // The client tries again within --timeout; 2 s is less than the 5 s of silence
    // after which the held connection could be shed for it.
    let run = client(
        &c,
        &[
            "--server",
            &server.addr(),
            "--name",
            "ivy",
            "--timeout",
            "2",
            "-v",
            "f.bin",
        ],
    );
    run.fails(3, "the server is busy or refused the connection");
    assert!(!run.stderr.contains("broke the protocol"), "{run:#?}");
    assert!(
        !run.stderr.contains("does not follow the protocol"),
        "{run:#?}"
    );
    assert!(run.stderr.contains("trying again in"), "retried: {run:#?}");
    held.write_all(b"").unwrap();
}

/// One connection held on a server that takes one: registered, so it is busy, not
/// idle, and the server refuses newcomers with a 1607.
fn hold_the_only_connection(port: u16) -> TcpStream {
    loop {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let mut req = vec![0u8; 16];
        req.push(3);
        req.extend_from_slice(&825u16.to_le_bytes());
        req.extend_from_slice(&255u32.to_le_bytes());
        let mut name = b"holder".to_vec();
        name.resize(255, 0);
        req.extend_from_slice(&name);
        s.write_all(&req).unwrap();
        let mut head = [0u8; 7];
        if s.read_exact(&mut head).is_ok() && u16::from_le_bytes([head[1], head[2]]) == 1600 {
            return s;
        }
        // The start-up probe still held the slot (this one was refused): try again.
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_busy_server_is_waited_out_within_the_timeout() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("s"), 0, &["--max-connections", "1"]);
    let held = hold_the_only_connection(server.port);
    // The slot is freed once the server has refused the client's first try (the
    // server logs refusals, at most once a second, with their count).
    let log = server.dir.join("server.log");
    let before = std::fs::read_to_string(&log).unwrap_or_default().len();
    let release = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(30);
        let refused = |l: String| l.get(before..).is_some_and(|new| new.contains("refused "));
        while Instant::now() < deadline && !std::fs::read_to_string(&log).is_ok_and(refused) {
            std::thread::sleep(Duration::from_millis(20));
        }
        drop(held);
    });
    let c = folder(tmp.path(), "c", "f.bin", &data(1000, 11));
    let run = client(
        &c,
        &[
            "--server",
            &server.addr(),
            "--name",
            "una",
            "--timeout",
            "30",
            "-v",
            "f.bin",
        ],
    );
    release.join().unwrap();
    run.ok();
    assert!(run.stderr.contains("trying again in"), "{run:#?}");
}

#[test]
fn a_checksum_that_never_matches_ends_after_the_fourth_mismatch() {
    let tmp = tempfile::tempdir().unwrap();
    // The server answers with zlib CRC-32 while the client compares POSIX cksum.
    let server = Server::start(&tmp.path().join("s"), 0, &["--checksum", "crc32"]);
    let c = folder(tmp.path(), "c", "f.bin", &data(5000, 10));
    let run = client(&c, &["--server", &server.addr(), "--name", "jo", "f.bin"]);
    run.fails(5, "differed from ours four times");
    assert_eq!(
        run.stderr.matches("checksum mismatch").count(),
        4,
        "{run:#?}"
    );
    assert_eq!(run.stderr.matches("giving up").count(), 1, "{run:#?}");
    assert!(!run.stderr.contains("attempt 5"), "{run:#?}");
    let giving_up = run.stderr.find("giving up").unwrap();
    let attempt4 = run.stderr.find("attempt 4 of 4").unwrap();
    assert!(attempt4 < giving_up, "{run:#?}");
}
