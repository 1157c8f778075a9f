//! A real `server` process in a folder of its own.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{bins, free_port};

/// A running `server` (killed on drop), its folder and its protocol port.
pub struct Server {
    /// The process.
    pub child: Child,
    /// Its folder: `defensive.db`, `server.log` (its stderr, appended), `port.info`.
    pub dir: PathBuf,
    /// Its protocol port on 127.0.0.1.
    pub port: u16,
}

/// Tests run many clients from 127.0.0.1: a per-address cap of 2,000 unless the
/// caller gives its own.
fn default_per_ip(extra: &[&str]) -> &'static [&'static str] {
    if extra.contains(&"--max-connections-per-ip") {
        &[]
    } else {
        &["--max-connections-per-ip", "2000"]
    }
}

impl Server {
    /// Starts the server in `dir` on `port` (0: a free one; written to `port.info`)
    /// with `extra` options, and returns once its own "listening" line is logged and
    /// the port accepts connections. A free port can be taken by another test's
    /// process before the server binds it: on a port of its choosing it tries again.
    ///
    /// # Panics
    /// With the server's log, if it does not start within 20 s.
    pub fn start(dir: &Path, port: u16, extra: &[&str]) -> Server {
        std::fs::create_dir_all(dir).expect("creating the server's folder");
        for _ in 0..5 {
            let port = if port == 0 { free_port() } else { port };
            let mut cmd = Command::new(bins::server());
            cmd.args(["--bind", "127.0.0.1"])
                .args(default_per_ip(extra))
                .args(extra);
            let mut child = spawn(cmd, dir, port, true);
            if wait_listening(&mut child, dir, port) {
                return Server {
                    child,
                    dir: dir.to_path_buf(),
                    port,
                };
            }
        }
        panic!("server did not start: {}", log_of(dir));
    }

    /// [`start`](Self::start) with the descriptor limit set to `nofile` (soft and
    /// hard) by `prlimit`; `None` where there is no `prlimit`. The server runs in
    /// prlimit's own process, so `child.id()` is the server's pid.
    ///
    /// # Panics
    /// With the server's log, if it does not start within 20 s.
    pub fn start_limited(dir: &Path, nofile: u64, extra: &[&str]) -> Option<Server> {
        Command::new("prlimit").arg("--version").output().ok()?;
        std::fs::create_dir_all(dir).expect("creating the server's folder");
        let port = free_port();
        let mut cmd = Command::new("prlimit");
        cmd.arg(format!("--nofile={nofile}:{nofile}"))
            .arg(bins::server())
            .args(["--bind", "127.0.0.1"])
            .args(default_per_ip(extra))
            .args(extra);
        let mut child = spawn(cmd, dir, port, false);
        assert!(
            wait_listening(&mut child, dir, port),
            "server exited: {}",
            log_of(dir)
        );
        Some(Server {
            child,
            dir: dir.to_path_buf(),
            port,
        })
    }

    /// `127.0.0.1:port`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        log_of(&self.dir)
    }

    /// SIGTERM, and the server must exit cleanly within 10 s.
    ///
    /// # Panics
    /// If it does not, or exits with a failure.
    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                assert!(status.success(), "server exit: {status}");
                break;
            }
            assert!(Instant::now() < deadline, "server did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The port of this server's `/metrics` and `/healthz` (run with `--metrics
    /// 127.0.0.1:0`), from its "metrics listening on" line; `None` without one.
    pub fn metrics_port(&self) -> Option<u16> {
        let log = self.log();
        // The log is appended across restarts in the same folder: the last start.
        let start = log.rfind(&format!("listening on 127.0.0.1:{} ", self.port))?;
        let line = log[..start]
            .lines()
            .rev()
            .find(|l| l.contains("metrics listening on "))?;
        let addr = line
            .split("metrics listening on ")
            .nth(1)?
            .split_whitespace()
            .next()?;
        addr.rsplit(':').next()?.parse().ok()
    }

    /// `GET path` on this server's metrics listener: (status, body).
    ///
    /// # Panics
    /// If the server runs without `--metrics`.
    pub fn http_get(&self, path: &str) -> (u16, String) {
        http_get(self.metrics_port().expect("run with --metrics"), path)
    }

    /// `server list-files` in the server's folder.
    pub fn list_files(&self) -> String {
        list_files(&self.dir)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(mut cmd: Command, dir: &Path, port: u16, append: bool) -> Child {
    std::fs::write(dir.join("port.info"), format!("{port}\n")).expect("writing port.info");
    let log = if append {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("server.log"))
    } else {
        std::fs::File::create(dir.join("server.log"))
    }
    .expect("opening server.log");
    cmd.env("RUST_LOG", "info") // the "listening" line is waited for
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("starting the server")
}

/// Waits (20 s at most) for the server's own "listening" line and an open port:
/// `false` if the process exited first.
fn wait_listening(child: &mut Child, dir: &Path, port: u16) -> bool {
    let ours = format!("listening on 127.0.0.1:{port} ");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = log_of(dir);
        if text.contains(&ours) && TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        assert!(Instant::now() < deadline, "server did not start: {text}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn log_of(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
}

/// `server list-files` in `dir`.
///
/// # Panics
/// If it fails.
pub fn list_files(dir: &Path) -> String {
    let out = Command::new(bins::server())
        .arg("list-files")
        .current_dir(dir)
        .output()
        .expect("running server list-files");
    assert!(out.status.success(), "server list-files failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `GET path` from 127.0.0.1:`port` over HTTP/1.1 (one request, the connection
/// closed after): the status code and the body.
///
/// # Panics
/// If the answer is not HTTP.
pub fn http_get(port: u16, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connecting for GET");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("a read timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .expect("sending GET");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .expect("reading the answer");
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP header in {response:?}"));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    (status, body.to_string())
}
