//! Helpers shared by the tests that run the real binaries.
#![allow(dead_code)]

pub mod faulty;
pub mod haproxy;
#[cfg(feature = "fleet")]
pub mod postgres;
#[cfg(feature = "fleet")]
pub mod s3;
pub mod scrape;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

pub fn server_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_server"))
}

/// The client binary sits beside the server's; built here if this package's tests
/// run alone (`cargo test --workspace` builds it anyway).
pub fn client_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let path = server_bin().with_file_name("client");
        if !path.exists() {
            let mut cmd = Command::new(env!("CARGO"));
            cmd.args(["build", "-p", "client-app", "--bin", "client"]);
            if server_bin().to_string_lossy().contains("/release/") {
                cmd.arg("--release");
            }
            let status = cmd.status().expect("running cargo build for the client");
            assert!(status.success(), "building the client failed");
        }
        path
    })
    .clone()
}

/// Tests run many clients from 127.0.0.1: a per-address cap of 2,000 unless the test
/// gives its own.
fn default_per_ip(extra: &[&str]) -> &'static [&'static str] {
    if extra.contains(&"--max-connections-per-ip") {
        &[]
    } else {
        &["--max-connections-per-ip", "2000"]
    }
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
    /// Starts the server in `dir` on `port` (0: a free one), written to port.info.
    pub fn start(dir: &Path, port: u16, extra: &[&str]) -> Server {
        std::fs::create_dir_all(dir).unwrap();
        // A free port can be taken by another test's server before this one binds it:
        // wait for this server's own "listening" line, and on a chosen port try again.
        for _ in 0..5 {
            let port = if port == 0 { free_port() } else { port };
            std::fs::write(dir.join("port.info"), format!("{port}\n")).unwrap();
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join("server.log"))
                .unwrap();
            let mut child = Command::new(server_bin())
                .args(["--bind", "127.0.0.1"])
                .args(default_per_ip(extra))
                .args(extra)
                .env("RUST_LOG", "info") // the "listening" line is waited for
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

    /// Starts the server in `dir` with its descriptor limit set to `nofile` (soft and
    /// hard) by `prlimit`; `None` where there is no `prlimit`. The server runs in
    /// prlimit's own process, so `child.id()` is the server's pid.
    pub fn start_limited(dir: &Path, nofile: u64, extra: &[&str]) -> Option<Server> {
        Command::new("prlimit").arg("--version").output().ok()?;
        std::fs::create_dir_all(dir).unwrap();
        let port = free_port();
        std::fs::write(dir.join("port.info"), format!("{port}\n")).unwrap();
        let log = std::fs::File::create(dir.join("server.log")).unwrap();
        let mut child = Command::new("prlimit")
            .arg(format!("--nofile={nofile}:{nofile}"))
            .arg(server_bin())
            .args(["--bind", "127.0.0.1"])
            .args(default_per_ip(extra))
            .args(extra)
            .env("RUST_LOG", "info")
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let ours = format!("listening on 127.0.0.1:{port} ");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let text = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
            if text.contains(&ours) {
                break;
            }
            assert!(child.try_wait().unwrap().is_none(), "server exited: {text}");
            assert!(Instant::now() < deadline, "server did not start: {text}");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(Server {
            child,
            dir: dir.to_path_buf(),
            port,
        })
    }

    /// SIGTERM, and the server must exit cleanly.
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
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// The port of this server's `/metrics` and `/healthz` (run with `--metrics
    /// 127.0.0.1:0`), from its "metrics listening on" line; `None` without one.
    pub fn metrics_port(&self) -> Option<u16> {
        let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
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

pub fn list_files(dir: &Path) -> String {
    let out = Command::new(server_bin())
        .arg("list-files")
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

/// Deterministic, not compressible-looking bytes.
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

/// A client folder with transfer.info and the file.
pub fn client_dir(root: &Path, name: &str, port: u16, file: &str, contents: &[u8]) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(file), contents).unwrap();
    write_transfer(&dir, port, name, file);
    dir
}

pub fn write_transfer(dir: &Path, port: u16, name: &str, file: &str) {
    std::fs::write(
        dir.join("transfer.info"),
        format!("127.0.0.1:{port}\n{name}\n{file}\n"),
    )
    .unwrap();
}

pub fn run_client(dir: &Path, args: &[&str]) -> Output {
    Command::new(client_bin())
        .args(args)
        .current_dir(dir)
        .output()
        .expect("running the client")
}

/// Starts a client in every folder at once and waits for them all.
pub fn run_clients_at_once(dirs: &[PathBuf]) -> Vec<Output> {
    let children: Vec<Child> = dirs
        .iter()
        .map(|d| {
            Command::new(client_bin())
                .current_dir(d)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("starting a client")
        })
        .collect();
    children
        .into_iter()
        .map(|c| c.wait_with_output().expect("waiting for a client"))
        .collect()
}

pub fn assert_ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what}: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What the `cksum` command prints: checksum and size.
pub fn cksum_cmd(path: &Path) -> String {
    let out = Command::new("cksum").arg(path).output().expect("cksum");
    let text = String::from_utf8(out.stdout).unwrap();
    let mut parts = text.split_whitespace();
    format!("{} {}", parts.next().unwrap(), parts.next().unwrap())
}

/// Where the server keeps `file` of client `id` (hex), as its database says; a path
/// that does not exist when there is no such record.
pub fn stored_path(server: &Path, id: &str, file: &str) -> PathBuf {
    let record = records(server)
        .into_iter()
        .find(|r| r.client.to_hex() == id && r.file_name == file);
    match record {
        Some(r) => server.join(r.object),
        None => server.join("no such record"),
    }
}

/// Every file record of the server in `server`, read as the listing commands do.
pub fn records(server: &Path) -> Vec<server_app::storage::FileRecord> {
    use server_app::storage::Metadata;
    server_app::storage::sqlite::SqliteMetadata::open_read_only(&server.join("defensive.db"))
        .expect("opening the database read-only")
        .files(None)
        .expect("listing files")
}

/// Every version (replaced verified content) kept by the server in `server`.
pub fn versions(server: &Path) -> Vec<server_app::storage::Version> {
    use server_app::storage::Metadata;
    server_app::storage::sqlite::SqliteMetadata::open_read_only(&server.join("defensive.db"))
        .expect("opening the database read-only")
        .versions(None, None)
        .expect("listing versions")
}

/// The client id from the folder's me.info.
pub fn client_id(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("me.info"))
        .unwrap()
        .lines()
        .nth(1)
        .unwrap()
        .to_string()
}

/// Uploads in progress left in the server's folder, and objects no record or version
/// names.
pub fn part_files(server: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(server.join("uploads"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect();
    if server.join("defensive.db").exists() {
        let named: Vec<PathBuf> = records(server)
            .into_iter()
            .map(|r| server.join(r.object))
            .chain(versions(server).into_iter().map(|v| server.join(v.object)))
            .collect();
        for d in std::fs::read_dir(server.join("objects"))
            .into_iter()
            .flatten()
            .flatten()
        {
            for f in std::fs::read_dir(d.path()).into_iter().flatten().flatten() {
                if !named.contains(&f.path()) {
                    v.push(f.path());
                }
            }
        }
    }
    v
}

/// [`part_files`] once it is empty, or after 5 s what is still there: a replaced
/// file is removed by a thread of its own after the client has its answer.
pub fn part_files_settled(server: &Path) -> Vec<PathBuf> {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let left = part_files(server);
        if left.is_empty() || std::time::Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What a [`proxy`] does to the client-to-server stream at a byte offset.
#[derive(Clone, Copy)]
pub enum Tamper {
    /// Flip one bit of the byte there.
    Flip(usize),
    /// Forward nothing from there on and close both sides.
    Cut(usize),
    /// Forward nothing from there on but hold both sides open.
    Stall(usize),
}

/// Forwards one connection to `target`, tampering with the client's bytes. The
/// flag is raised when the offset is reached.
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
        std::thread::spawn(move || {
            let mut buf = [0u8; 65536];
            while let Ok(n) = s_rd.read(&mut buf) {
                if n == 0 || c_wr.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            let _ = c_wr.shutdown(std::net::Shutdown::Write);
        });
        let limit = match tamper {
            Tamper::Cut(at) | Tamper::Stall(at) => at,
            Tamper::Flip(_) => usize::MAX,
        };
        let mut seen = 0usize;
        let mut buf = [0u8; 65536];
        while let Ok(n) = c_rd.read(&mut buf) {
            if n == 0 {
                break;
            }
            if let Tamper::Flip(at) = tamper {
                if at >= seen && at < seen + n {
                    buf[at - seen] ^= 0x10;
                    flag.store(true, Ordering::SeqCst);
                }
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
                    std::thread::sleep(Duration::from_secs(120));
                }
                return;
            }
        }
        let _ = s_wr.shutdown(std::net::Shutdown::Write);
    });
    (port, reached)
}

/// A server run inside the test process over storage wrapped in [`faulty`] wrappers,
/// serving real clients on loopback (std transport). Stopped on drop.
pub struct InProcess {
    pub dir: PathBuf,
    pub port: u16,
    pub app: Arc<server_app::app::App>,
    shutdown: transport_interface::Shutdown,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl InProcess {
    pub fn start(dir: &Path, plan: Arc<faulty::Plan>) -> InProcess {
        use server_app::storage::{local::LocalContents, sqlite::SqliteMetadata, Storage};
        std::fs::create_dir_all(dir).unwrap();
        let meta = SqliteMetadata::open(&dir.join("defensive.db")).unwrap();
        let contents = LocalContents::open(dir).unwrap();
        let storage = Storage::new(
            Arc::new(faulty::FaultyMeta {
                inner: meta,
                plan: plan.clone(),
            }),
            Arc::new(faulty::FaultyContents {
                inner: contents,
                plan,
            }),
        );
        let app =
            Arc::new(server_app::app::App::with_storage(storage, Default::default()).unwrap());
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let shutdown = transport_interface::Shutdown::new();
        let factory = Arc::new(server_app::app::SharedApp(app.clone()));
        let stop = shutdown.clone();
        let thread = std::thread::spawn(move || {
            let _ = transport_std::serve(
                listener,
                transport_interface::ServerOptions::default(),
                factory,
                stop,
            );
        });
        InProcess {
            dir: dir.to_path_buf(),
            port,
            app,
            shutdown,
            thread: Some(thread),
        }
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        self.shutdown.trigger();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.app.discard_uploads();
    }
}

/// `GET path` from 127.0.0.1:`port` over HTTP/1.1 (one request, the connection closed
/// after): the status code and the body.
pub fn http_get(port: u16, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connecting for GET");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
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

/// The next answer on `s` (bytes already read wait in `buf`); `None` when the server
/// closed or reset the connection.
pub fn recv_response(
    s: &mut TcpStream,
    buf: &mut bytes::BytesMut,
) -> Option<protocol_core::wire::Response> {
    let mut chunk = [0u8; 4096];
    loop {
        if let Ok(Some(r)) = protocol_core::wire::decode_response(buf) {
            return Some(r);
        }
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}
