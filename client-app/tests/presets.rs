//! Each `--dialect` preset against a scripted server that behaves like the deployed
//! peers it is for (tests/peers/scripted_server.py: Python's standard library and the
//! openssl command line). Every shape reads a request with one `recv` or one request
//! per connection, and answers the last 828 with the plaintext size (variant 11).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test harness: a failure is a panic

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

struct Scripted {
    child: Child,
    port: u16,
}

fn has(cmd: &str) -> bool {
    Command::new(cmd).arg("--version").output().is_ok()
}

fn start(shape: &str) -> Scripted {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/scripted_server.py");
    let mut child = Command::new("python3")
        .arg(script)
        .arg(shape)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line.trim().parse().expect("the scripted server's port");
    Scripted { child, port }
}

/// Sends `size` bytes with `args` to a scripted server of `shape`; checks that the
/// client succeeded and the server verified the same bytes by cksum.
fn send(shape: &str, size: usize, args: &[&str]) {
    if !has("python3") || !has("openssl") {
        eprintln!("python3 or openssl not installed; skipped");
        return;
    }
    let server = start(shape);
    let tmp = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..size).map(|i| (i * 131 + i / 255) as u8).collect();
    std::fs::write(tmp.path().join("data.bin"), &data).unwrap();
    std::fs::write(
        tmp.path().join("transfer.info"),
        format!("127.0.0.1:{}\npreset tester\ndata.bin\n", server.port),
    )
    .unwrap();
    let client = Command::new(env!("CARGO_BIN_EXE_client"))
        .arg("--dir")
        .arg(tmp.path())
        .args(["--timeout", "60"])
        .args(args)
        .output()
        .unwrap();
    let out = server.child.wait_with_output().unwrap();
    let (client_err, server_err) = (
        String::from_utf8_lossy(&client.stderr),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        client.status.success() && out.status.success(),
        "{shape} {args:?}: client: {client_err}\nserver: {server_err}"
    );
    let cksum = Command::new("cksum")
        .arg(tmp.path().join("data.bin"))
        .output()
        .unwrap();
    let sum = String::from_utf8_lossy(&cksum.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().last(),
        Some(format!("verified {size} {sum}").as_str())
    );
}

#[test]
fn one_recv_preset_with_a_small_file() {
    // 32 bytes: the upload's last cipher block went out as a write of its own.
    send("one-recv", 32, &["--dialect", "one-recv"]);
}

#[test]
fn one_recv_preset_with_a_50_megabyte_file() {
    // 50 MB in 1 KiB packets: coalesced writes put request boundaries anywhere in a
    // segment, and one-recv servers failed on files of a few MB.
    send("one-recv", 50 << 20, &["--dialect", "one-recv"]);
}

#[test]
fn a_small_packet_size_alone_is_the_one_recv_mode() {
    send("one-recv", 100_000, &["--packet-size", "1024"]);
}

#[test]
fn padded_preset_sends_the_fixed_content_field() {
    for size in [32, 3000, 100_000] {
        send("padded", size, &["--dialect", "padded"]);
    }
}

#[test]
fn per_connection_preset_counts_the_answers() {
    send("per-connection", 10_000, &["--dialect", "per-connection"]);
}
