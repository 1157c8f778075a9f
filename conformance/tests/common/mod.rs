//! Helpers for the conformance tests: our real binaries, and fixtures built from
//! protocol-core's dialect options.
#![allow(dead_code)]

pub mod fixture_client;
pub mod fixture_server;
pub mod mem;

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub fn conformance_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_conformance"))
}

/// A binary of another package, beside ours; built here if missing (as the
/// client-app and server-app tests do for each other).
fn sibling(name: &str, package: &str) -> PathBuf {
    let path = conformance_bin().with_file_name(name);
    if !path.exists() {
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args(["build", "-p", package, "--bin", name]);
        if conformance_bin().to_string_lossy().contains("/release/") {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("running cargo build");
        assert!(status.success(), "building {name} failed");
    }
    path
}

pub fn server_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| sibling("server", "server-app")).clone()
}

pub fn client_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| sibling("client", "client-app")).clone()
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Our real `server` in a folder of its own (killed on drop).
pub struct Server {
    pub child: Child,
    pub port: u16,
}

impl Server {
    pub fn start(dir: &Path) -> Server {
        std::fs::create_dir_all(dir).unwrap();
        for _ in 0..5 {
            let port = free_port();
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join("server.log"))
                .unwrap();
            let mut child = Command::new(server_bin())
                .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
                .args(["--max-connections-per-ip", "2000"])
                .env("RUST_LOG", "info")
                .current_dir(dir)
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("starting the server");
            let ours = format!("listening on 127.0.0.1:{port} ");
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                let text = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
                if text.contains(&ours) && TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Server { child, port };
                }
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                assert!(Instant::now() < deadline, "server did not start: {text}");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("server did not start");
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One fixture's check: `Err` says what differs.
pub type FixtureCheck = Box<dyn Fn() -> Result<(), String> + Send + Sync>;

/// Runs every fixture check at once (they wait on sockets, not on the CPU) and
/// fails with every mismatch, by fixture name.
pub fn run_all(fixtures: Vec<(&str, FixtureCheck)>) {
    let failures: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = fixtures
            .iter()
            .map(|(name, f)| (name, s.spawn(f)))
            .collect();
        handles
            .into_iter()
            .filter_map(|(name, h)| match h.join() {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(format!("{name}: {e}")),
                Err(_) => Some(format!("{name}: panicked")),
            })
            .collect()
    });
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
