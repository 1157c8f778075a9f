//! The client with no dialect option against fixtures that behave like the four
//! deployed servers A-D of docs/PROTOCOL.md section 8 (tests/peers/scripted_server.py,
//! shapes a-d: Python's standard library and the openssl command line). Each must get
//! the file byte for byte at 0 B, a few KiB and 1 MiB, the preset that worked must be
//! remembered in me.server and tried first by the next run, and when no preset fits
//! the message names the presets instead of blaming overload.
//!
//! No assertion depends on how long anything takes.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test harness: a failure is a panic

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

const MIB: usize = 1 << 20;

struct Fixture {
    child: Child,
    port: u16,
    /// Where the fixture writes each verified file (1.bin, 2.bin, ...).
    kept: tempfile::TempDir,
}

fn available() -> bool {
    let has = |cmd: &str| Command::new(cmd).arg("--version").output().is_ok();
    let ok = has("python3") && has("openssl");
    if !ok {
        eprintln!("python3 or openssl not installed; skipped");
    }
    ok
}

/// A fixture of `shape` that serves `runs` verified uploads.
fn start(shape: &str, runs: usize) -> Fixture {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/scripted_server.py");
    let kept = tempfile::tempdir().unwrap();
    let mut child = Command::new("python3")
        .arg(script)
        .arg(shape)
        .arg(runs.to_string())
        .arg(kept.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line.trim().parse().expect("the fixture's port");
    Fixture { child, port, kept }
}

/// A client folder whose transfer.info names the fixture and `file`.
fn folder(root: &Path, sub: &str, port: u16) -> PathBuf {
    let dir = root.join(sub);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("transfer.info"),
        format!("127.0.0.1:{port}\nauto tester {sub}\ndata.bin\n"),
    )
    .unwrap();
    dir
}

/// Writes `size` bytes as the folder's data.bin and runs the client there.
fn send(dir: &Path, size: usize, args: &[&str]) -> (Vec<u8>, Output) {
    let data: Vec<u8> = (0..size).map(|i| (i * 131 + i / 251) as u8).collect();
    std::fs::write(dir.join("data.bin"), &data).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_client"))
        .arg("--dir")
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    (data, out)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs the client with no option: it must succeed, the fixture must hold exactly
/// `data` as its upload number `run`, and the client must say `said`.
fn sends_identical(fx: &Fixture, dir: &Path, size: usize, run: usize, said: &str) -> String {
    let (data, out) = send(dir, size, &[]);
    let err = stderr(&out);
    assert!(out.status.success(), "{size} bytes, run {run}: {err}");
    let got = std::fs::read(fx.kept.path().join(format!("{run}.bin"))).unwrap();
    assert!(
        got == data,
        "{size} bytes, run {run}: the server holds other bytes"
    );
    assert!(err.contains(said), "run {run}: expected {said:?} in: {err}");
    err
}

/// The whole story against one deployed server: a fresh folder sends 1 MiB with no
/// option (the spec dialect fails there, auto finds `preset`), then the same folder
/// sends 0 B and a few KiB with `preset` tried first, then a fresh folder sends 0 B.
fn works_without_options(shape: &str, preset: &str) {
    if !available() {
        return;
    }
    let fx = start(shape, 4);
    let root = tempfile::tempdir().unwrap();
    let dir = folder(root.path(), "first", fx.port);
    let err = sends_identical(&fx, &dir, MIB, 1, &format!("dialect: {preset}"));
    assert!(
        err.contains(&format!("trying --dialect {preset}")),
        "the retry is said: {err}"
    );
    let record = std::fs::read_to_string(dir.join("me.server")).unwrap();
    assert_eq!(
        record,
        format!("127.0.0.1:{}\ndialect {preset}\n", fx.port),
        "remembered beside the server"
    );
    for (run, size) in [(2, 0), (3, 3000)] {
        let err = sends_identical(
            &fx,
            &dir,
            size,
            run,
            &format!("dialect: {preset} (remembered"),
        );
        assert!(!err.contains("trying --dialect"), "no retry: {err}");
    }
    let fresh = folder(root.path(), "second", fx.port);
    sends_identical(&fx, &fresh, 0, 4, "dialect: ");
    let out = fx.child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn server_a_one_recv_is_recognised_from_the_reset() {
    works_without_options("a", "one-recv");
}

#[test]
fn server_b_total_first_per_packet_is_recognised_from_the_refusals() {
    works_without_options("b", "total-first-per-packet");
}

#[test]
fn server_c_one_recv_is_recognised_from_the_refusal_and_reset() {
    works_without_options("c", "one-recv");
}

#[test]
fn server_d_padded_is_recognised_from_the_silence() {
    works_without_options("d", "padded");
}

#[test]
fn server_d_with_an_empty_file_and_json_names_the_dialect() {
    if !available() {
        return;
    }
    let fx = start("d", 1);
    let root = tempfile::tempdir().unwrap();
    let dir = folder(root.path(), "json", fx.port);
    let (data, out) = send(&dir, 0, &["--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json = String::from_utf8_lossy(&out.stdout);
    assert!(json.contains("\"dialect\":\"padded\""), "{json}");
    assert_eq!(std::fs::read(fx.kept.path().join("1.bin")).unwrap(), data);
    assert!(fx.child.wait_with_output().unwrap().status.success());
}

#[test]
fn an_explicit_dialect_is_used_as_given_with_no_retry() {
    if !available() {
        return;
    }
    let mut fx = start("a", 1);
    let root = tempfile::tempdir().unwrap();
    let dir = folder(root.path(), "explicit", fx.port);
    let (_, out) = send(&dir, MIB, &["--dialect", "spec"]);
    let err = stderr(&out);
    assert!(
        !out.status.success(),
        "server A cannot take 64 KiB packets: {err}"
    );
    assert!(!err.contains("trying --dialect"), "{err}");
    let _ = fx.child.kill();
    let _ = fx.child.wait();
}

#[test]
fn when_nothing_fits_the_message_names_the_presets() {
    if !available() {
        return;
    }
    let mut fx = start("silent", 1);
    let root = tempfile::tempdir().unwrap();
    let dir = folder(root.path(), "none", fx.port);
    // A short --timeout keeps the two silent tries short; no assertion on time.
    let (_, out) = send(&dir, 100, &["--timeout", "2"]);
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("tried spec, padded"), "{err}");
    assert!(
        err.contains("try --dialect one-recv, total-first-per-packet, padded or per-connection"),
        "{err}"
    );
    assert!(!err.contains("overloaded"), "{err}");
    let _ = fx.child.kill();
    let _ = fx.child.wait();
}
