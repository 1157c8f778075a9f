//! Helpers shared by the tests that run the real binaries.
#![allow(dead_code)]

pub mod faulty;
#[cfg(feature = "fleet")]
pub mod fleet;
#[cfg(feature = "fleet")]
pub mod postgres;
#[cfg(feature = "fleet")]
pub mod s3;
pub mod scrape;

#[allow(unused_imports)]
pub use test_kit::haproxy;
#[allow(unused_imports)]
pub use test_kit::proxy::{proxy, Tamper};
#[allow(unused_imports)]
pub use test_kit::server::{http_get, list_files};
#[allow(unused_imports)]
pub use test_kit::{data, free_port, Server};

pub fn server_bin() -> PathBuf {
    test_kit::bins::server()
}

pub fn client_bin() -> PathBuf {
    test_kit::bins::client()
}

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

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

/// Runs the client in `dir` with `args` in the legacy protocol (`--legacy` is added
/// unless the arguments choose a mode themselves): the protocol these tests were
/// written for, which deployed peers speak. [`run_secure_client`] runs it as a user
/// does by default.
pub fn run_client(dir: &Path, args: &[&str]) -> Output {
    let chooses = args
        .iter()
        .any(|a| matches!(*a, "--legacy" | "--server-fingerprint" | "--keep-legacy"));
    if chooses {
        return run_secure_client(dir, args);
    }
    run_secure_client(dir, &[&["--legacy"], args].concat())
}

/// Runs the client in `dir` with `args` exactly (the secure mode with a server that
/// offers it).
pub fn run_secure_client(dir: &Path, args: &[&str]) -> Output {
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
