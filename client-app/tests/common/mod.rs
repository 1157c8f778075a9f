//! Helpers for the tests that run the real `client` against the real `server`.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

pub fn client_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_client"))
}

/// The server binary sits beside the client's; built here if this package's tests
/// run alone (`cargo test --workspace` builds it anyway).
pub fn server_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let path = client_bin().with_file_name("server");
        if !path.exists() {
            let mut cmd = Command::new(env!("CARGO"));
            cmd.args(["build", "-p", "server-app", "--bin", "server"]);
            if client_bin().to_string_lossy().contains("/release/") {
                cmd.arg("--release");
            }
            let status = cmd.status().expect("running cargo build for the server");
            assert!(status.success(), "building the server failed");
        }
        path
    })
    .clone()
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `server` in a folder of its own (killed on drop).
pub struct Server {
    pub child: Child,
    pub dir: PathBuf,
    pub port: u16,
}

impl Server {
    pub fn start(dir: &Path, extra: &[&str]) -> Server {
        std::fs::create_dir_all(dir).unwrap();
        // A free port can be taken by another test's server or proxy before this one
        // binds it: wait for this server's own "listening" line (a connection could
        // reach the other process), and try another port if it exited.
        for _ in 0..5 {
            let port = free_port();
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join("server.log"))
                .unwrap();
            let mut child = Command::new(server_bin())
                .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
                .args(extra)
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
                    return Server {
                        child,
                        dir: dir.to_path_buf(),
                        port,
                    };
                }
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                assert!(Instant::now() < deadline, "server did not start: {text}");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!(
            "server did not start: {}",
            std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
        );
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Deterministic bytes.
pub fn data(n: usize, seed: u8) -> Vec<u8> {
    let mut x: u32 = (seed as u32).wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// A folder with a file to send.
pub fn folder(root: &Path, name: &str, file: &str, contents: &[u8]) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(file), contents).unwrap();
    dir
}

/// Runs the client in `dir` with `args`.
pub fn client(dir: &Path, args: &[&str]) -> Run {
    let out = Command::new(client_bin())
        .args(args)
        .current_dir(dir)
        .output()
        .expect("running the client");
    Run::from(out)
}

/// What a client run printed, and its exit code.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(out: Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl Run {
    /// The run failed with `code`, and its `Fatal:` message says `expect`.
    pub fn fails(&self, code: i32, expect: &str) -> &Run {
        assert_eq!(self.code, code, "exit code; {self:#?}");
        assert!(self.stderr.contains("Fatal: "), "{self:#?}");
        assert!(
            self.stderr.contains(expect),
            "stderr should say {expect:?}: {self:#?}"
        );
        assert!(!self.stderr.contains("panicked"), "{self:#?}");
        // Every failure says what to do, on the line after the message.
        let fatal = &self.stderr[self.stderr.find("Fatal: ").unwrap_or(0)..];
        assert!(
            fatal
                .lines()
                .nth(1)
                .is_some_and(|l| l.starts_with("  ") && l.trim().len() > 10),
            "no 'what to do' line after the Fatal: message: {self:#?}"
        );
        for internal in ["Register", "SendFile", "CrcOk", "GeneralError", "os error"] {
            assert!(
                !self.stderr.contains(internal),
                "internal name {internal:?} in {self:#?}"
            );
        }
        self
    }

    pub fn ok(&self) -> &Run {
        assert_eq!(self.code, 0, "{self:#?}");
        self
    }
}

/// The `cksum` command's checksum of a file.
pub fn cksum(path: &Path) -> String {
    let out = Command::new("cksum").arg(path).output().expect("cksum");
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// What [`proxy`] does to the client's bytes from an offset on.
#[derive(Clone, Copy)]
pub enum Tamper {
    /// Close both sides there.
    Cut(usize),
    /// Forward nothing more but hold both sides open.
    Stall(usize),
}

/// Forwards one connection to `target`; the flag is raised when the offset is reached.
pub fn proxy(target: u16, tamper: Tamper) -> (u16, Arc<AtomicBool>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let reached = Arc::new(AtomicBool::new(false));
    let flag = reached.clone();
    std::thread::spawn(move || {
        let Ok((client, _)) = listener.accept() else {
            return;
        };
        let server = TcpStream::connect(("127.0.0.1", target)).unwrap();
        let (mut c_rd, mut s_wr) = (client.try_clone().unwrap(), server.try_clone().unwrap());
        let (mut s_rd, mut c_wr) = (server, client);
        let gone = Arc::new(AtomicBool::new(false));
        let server_gone = gone.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 65536];
            while let Ok(n) = s_rd.read(&mut buf) {
                if n == 0 || c_wr.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            // The server went away: so does the client's connection.
            let _ = c_wr.shutdown(std::net::Shutdown::Both);
            server_gone.store(true, Ordering::SeqCst);
        });
        let limit = match tamper {
            Tamper::Cut(at) | Tamper::Stall(at) => at,
        };
        let mut seen = 0usize;
        let mut buf = [0u8; 65536];
        while let Ok(n) = c_rd.read(&mut buf) {
            if n == 0 {
                break;
            }
            let take = n.min(limit - seen);
            if s_wr.write_all(&buf[..take]).is_err() {
                break;
            }
            seen += take;
            if seen >= limit {
                flag.store(true, Ordering::SeqCst);
                if let Tamper::Cut(_) = tamper {
                    let _ = s_wr.shutdown(std::net::Shutdown::Both);
                    let _ = c_rd.shutdown(std::net::Shutdown::Both);
                } else {
                    // Held until the server goes; then the socket is closed with the
                    // client's unread bytes in it, which resets the connection as a
                    // killed server's kernel would (a FIN alone leaves a client that is
                    // blocked on a full window waiting).
                    let until = Instant::now() + Duration::from_secs(120);
                    while !gone.load(Ordering::SeqCst) && Instant::now() < until {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                }
                return;
            }
        }
    });
    (port, reached)
}

/// Forwards every connection to `target`. On the first, the client's bytes stop
/// after `at` of them (`reached` is raised) until `release` is raised; later
/// connections pass straight through.
///
/// Its receive buffers are small (64 KiB asked), so that what the client counts as
/// sent is close to what passed the gate.
pub fn gate_proxy(target: u16, at: usize) -> (u16, Arc<AtomicBool>, Arc<AtomicBool>) {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(64 * 1024).unwrap();
    socket
        .bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    socket.listen(16).unwrap();
    let listener: TcpListener = socket.into();
    let port = listener.local_addr().unwrap().port();
    let reached = Arc::new(AtomicBool::new(false));
    let release = Arc::new(AtomicBool::new(false));
    let (reached2, release2) = (reached.clone(), release.clone());
    std::thread::spawn(move || {
        let mut first = true;
        for client in listener.incoming() {
            let Ok(client) = client else { return };
            let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                return;
            };
            let gate = first.then(|| (at, reached2.clone(), release2.clone()));
            first = false;
            let (c_rd, s_wr) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            std::thread::spawn(move || pipe(server, client, None));
            std::thread::spawn(move || pipe(c_rd, s_wr, gate));
        }
    });
    (port, reached, release)
}

/// Copies `from` to `to` until either side ends, holding at the gate if there is one.
fn pipe(
    mut from: TcpStream,
    mut to: TcpStream,
    gate: Option<(usize, Arc<AtomicBool>, Arc<AtomicBool>)>,
) {
    let mut seen = 0usize;
    let mut buf = [0u8; 65536];
    loop {
        let limit = match &gate {
            Some((at, _, _)) if seen < *at => (*at - seen).min(buf.len()),
            _ => buf.len(),
        };
        let n = match from.read(&mut buf[..limit]) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
        seen += n;
        if let Some((at, reached, release)) = &gate {
            if seen == *at {
                reached.store(true, Ordering::SeqCst);
                let deadline = Instant::now() + Duration::from_secs(120);
                while !release.load(Ordering::SeqCst) && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Both);
    let _ = from.shutdown(std::net::Shutdown::Both);
}

/// Waits for `flag` (at most a minute).
pub fn wait_for(flag: &AtomicBool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !flag.load(Ordering::SeqCst) {
        assert!(Instant::now() < deadline, "{what} never happened");
        std::thread::sleep(Duration::from_millis(10));
    }
}
