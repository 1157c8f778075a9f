//! The server's log lines for failures: one line per failure, at the right level, with
//! ids in one short form. Runs the server in this process (over storage that fails on
//! demand) with a subscriber that keeps every line.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test harness: a failure is a panic

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use common::*;

/// Every log line written in this test process.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn log() -> &'static Lines {
    static LINES: OnceLock<Lines> = OnceLock::new();
    LINES.get_or_init(|| {
        let lines = Lines::default();
        let writer = lines.clone();
        tracing_subscriber::fmt()
            .with_ansi(false)
            .with_env_filter("info")
            .with_writer(move || writer.clone())
            .init();
        lines
    })
}

/// The log is one for the process: tests that read it run one at a time.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    log();
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn text() -> String {
    String::from_utf8_lossy(&log().0.lock().unwrap()).into_owned()
}

#[test]
fn a_full_disk_gives_one_error_line_per_attempt() {
    // Failing in the middle of the file.
    full_disk("dora", 400_000, 150_000);
}

#[test]
fn a_full_disk_on_a_one_packet_file_gives_one_error_line_per_attempt() {
    // Failing on the data of the last packet: the core has taken the upload already
    // and asks for its end, which must get the 1607.
    full_disk("eve", 1000, 100);
}

/// A client sends `size` bytes to a server whose disk takes `room` bytes: three
/// attempts, each answered 1607 and logged in one ERROR line.
fn full_disk(name: &str, size: usize, room: u64) {
    let _guard = one_at_a_time();
    let before = text().len();
    let tmp = tempfile::tempdir().unwrap();
    let sdir = tmp.path().join("server");
    let server = InProcess::start(&sdir, faulty::Plan::full_after(room));
    let c = client_dir(tmp.path(), name, server.port, "big.bin", &data(size, 7));
    // The specification's dialect, named: with the default (auto), a client whose
    // every attempt got 1607 tries once more under another dialect (a deployed server
    // that refuses the packet layout looks the same), and this counts three attempts.
    let out = run_client(&c, &["--dialect", "spec"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{err}\nserver log:\n{}", text());
    assert!(err.contains("all 3 attempts"), "{err}");
    drop(server);
    let all = text()[before..].to_string();
    let errors: Vec<&str> = all.lines().filter(|l| l.contains("ERROR")).collect();
    assert_eq!(errors.len(), 3, "one ERROR line per attempt:\n{all}");
    assert!(!all.contains("internal"), "{all}");
    // The client restarts the file on a request boundary: no misread request.
    assert!(!all.contains("protocol violation"), "{all}");
    assert_eq!(all.matches("828 upload started").count(), 3, "{all}");
    let id = client_id(&c);
    assert!(!all.contains(&id), "whole ids in the log:\n{all}");
    assert!(!all.contains("client=\""), "ids in two forms:\n{all}");
}
