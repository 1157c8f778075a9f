//! End to end: the real `server` and `client` binaries on 127.0.0.1, in temporary
//! folders, checked with the `cksum` command and, where python3 is at hand, against
//! an independent client written with Python's standard library and the `openssl`
//! command line.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

fn server_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_server"))
}

/// The client binary sits beside the server's; built here if this package's tests
/// run alone (`cargo test --workspace` builds it anyway).
fn client_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let path = server_bin().with_file_name("client");
        if !path.exists() {
            let release = server_bin().to_string_lossy().contains("/release/");
            let mut cmd = Command::new(env!("CARGO"));
            cmd.args(["build", "-p", "client-app", "--bin", "client"]);
            if release {
                cmd.arg("--release");
            }
            let status = cmd.status().expect("running cargo build for the client");
            assert!(status.success(), "building the client failed");
        }
        path
    })
    .clone()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Server {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl Server {
    fn start(dir: &Path, transport: &str, extra: &[&str]) -> Server {
        std::fs::create_dir_all(dir).unwrap();
        let port = free_port();
        std::fs::write(dir.join("port.info"), format!("{port}\n")).unwrap();
        let log = std::fs::File::create(dir.join("server.log")).unwrap();
        let child = Command::new(server_bin())
            .args(["--bind", "127.0.0.1", "--transport", transport])
            .args(extra)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting the server");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "server did not start: {}",
                Self::log_of(dir)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Server {
            child,
            dir: dir.to_path_buf(),
            port,
        }
    }

    fn log_of(dir: &Path) -> String {
        std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
    }

    fn stop(mut self) {
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

    fn list_files(&self) -> String {
        let out = Command::new(server_bin())
            .arg("list-files")
            .current_dir(&self.dir)
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client folder with transfer.info and a file of `size` pseudo-random bytes.
fn client_dir(root: &Path, name: &str, port: u16, file: &str, size: usize, seed: u32) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let mut x = seed.wrapping_mul(2654435761).wrapping_add(1);
    let data: Vec<u8> = (0..size)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    std::fs::write(dir.join(file), data).unwrap();
    write_transfer(&dir, port, name, file);
    dir
}

fn write_transfer(dir: &Path, port: u16, name: &str, file: &str) {
    std::fs::write(
        dir.join("transfer.info"),
        format!("127.0.0.1:{port}\n{name}\n{file}\n"),
    )
    .unwrap();
}

fn run_client(dir: &Path, args: &[&str]) -> Output {
    Command::new(client_bin())
        .args(args)
        .current_dir(dir)
        .output()
        .expect("running the client")
}

fn cksum_cmd(path: &Path) -> String {
    let out = Command::new("cksum").arg(path).output().expect("cksum");
    let text = String::from_utf8(out.stdout).unwrap();
    let mut parts = text.split_whitespace();
    format!("{} {}", parts.next().unwrap(), parts.next().unwrap())
}

fn stored_path(server: &Path, id: &str, file: &str) -> PathBuf {
    server.join("files").join(id).join(file)
}

fn client_id(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("me.info"))
        .unwrap()
        .lines()
        .nth(1)
        .unwrap()
        .to_string()
}

fn assert_ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what}: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn first_run_reconnect_and_restart(transport: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let sdir = tmp.path().join("server");
    let server = Server::start(&sdir, transport, &[]);
    let c = client_dir(tmp.path(), "alice", server.port, "report.pdf", 300_000, 1);

    let out = run_client(&c, &[]);
    assert_ok(&out, "first run");
    let id = client_id(&c);
    assert_eq!(id.len(), 32);
    assert!(c.join("priv.key").exists());
    let stored = stored_path(&sdir, &id, "report.pdf");
    assert_eq!(
        std::fs::read(&stored).unwrap(),
        std::fs::read(c.join("report.pdf")).unwrap()
    );
    assert_eq!(cksum_cmd(&stored), cksum_cmd(&c.join("report.pdf")));
    assert!(
        server.list_files().contains("yes"),
        "{}",
        server.list_files()
    );

    // Restart the server between runs: the client reconnects without its key.
    server.stop();
    let server = Server::start(&sdir, transport, &[]);
    std::fs::write(c.join("second.txt"), b"a different file\n".repeat(1000)).unwrap();
    write_transfer(&c, server.port, "alice", "second.txt");
    let out = run_client(&c, &[]);
    assert_ok(&out, "second run");
    assert!(String::from_utf8_lossy(&out.stdout).contains("reconnecting"));
    assert_eq!(client_id(&c), id, "reconnect keeps the id");
    let stored2 = stored_path(&sdir, &id, "second.txt");
    assert_eq!(cksum_cmd(&stored2), cksum_cmd(&c.join("second.txt")));
    // The first file is still there, verified.
    assert_eq!(cksum_cmd(&stored), cksum_cmd(&c.join("report.pdf")));
    let listing = server.list_files();
    assert_eq!(listing.matches(" yes ").count(), 2, "{listing}");
    server.stop();
}

#[test]
fn tokio_first_run_reconnect_and_restart() {
    first_run_reconnect_and_restart("tokio");
}

#[test]
fn std_first_run_reconnect_and_restart() {
    first_run_reconnect_and_restart("std");
}

#[test]
fn a_checksum_that_never_matches_ends_in_902_and_a_fatal_exit() {
    let tmp = tempfile::tempdir().unwrap();
    let sdir = tmp.path().join("server");
    // The server answers with zlib CRC-32 while the client compares POSIX cksum.
    let server = Server::start(&sdir, "tokio", &["--checksum", "crc32"]);
    let c = client_dir(tmp.path(), "bob", server.port, "f.bin", 5000, 2);
    let out = run_client(&c, &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.matches("checksum mismatch").count(), 4, "{err}");
    assert!(err.contains("Fatal:"), "{err}");
    let listing = server.list_files();
    assert!(listing.contains(" no "), "{listing}");
    assert!(!listing.contains(" yes "), "{listing}");
}

/// Forwards one connection, flipping one bit of the byte at `flip_at` of the
/// client-to-server stream.
fn flipping_proxy(target: u16, flip_at: usize) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
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
        let mut seen = 0usize;
        let mut buf = [0u8; 65536];
        while let Ok(n) = c_rd.read(&mut buf) {
            if n == 0 {
                break;
            }
            if flip_at >= seen && flip_at < seen + n {
                buf[flip_at - seen] ^= 0x10;
            }
            seen += n;
            if s_wr.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = s_wr.shutdown(std::net::Shutdown::Write);
    });
    port
}

#[test]
fn a_corrupted_upload_is_resent_and_then_verified() {
    let tmp = tempfile::tempdir().unwrap();
    let sdir = tmp.path().join("server");
    let server = Server::start(&sdir, "tokio", &[]);
    // 825 (278 bytes), 826 (438), then the first 828 header (23 + 267): flip a
    // ciphertext byte of the first packet.
    let proxy = flipping_proxy(server.port, 278 + 438 + 290 + 100);
    let c = client_dir(tmp.path(), "carol", proxy, "g.bin", 20_000, 3);
    let out = run_client(&c, &[]);
    assert_ok(&out, "run through the flipping proxy");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.matches("checksum mismatch").count(), 1, "{err}");
    let stored = stored_path(&sdir, &client_id(&c), "g.bin");
    assert_eq!(cksum_cmd(&stored), cksum_cmd(&c.join("g.bin")));
}

#[test]
fn a_server_that_lost_the_client_answers_1606_and_the_client_registers_anew() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("s1"), "tokio", &[]);
    let c = client_dir(tmp.path(), "dave", server.port, "h.bin", 1000, 4);
    assert_ok(&run_client(&c, &[]), "first run");
    let old_id = client_id(&c);
    drop(server);
    // A server with an empty database: the reconnect is refused, the client registers.
    let server = Server::start(&tmp.path().join("s2"), "std", &[]);
    write_transfer(&c, server.port, "dave", "h.bin");
    let out = run_client(&c, &[]);
    assert_ok(&out, "run after 1606");
    assert!(String::from_utf8_lossy(&out.stdout).contains("registering anew"));
    let new_id = client_id(&c);
    assert_ne!(new_id, old_id, "me.info holds the new id");
    assert!(stored_path(&tmp.path().join("s2"), &new_id, "h.bin").exists());
}

fn many_clients_at_once(transport: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let sdir = tmp.path().join("server");
    let server = Server::start(&sdir, transport, &[]);
    let dirs: Vec<PathBuf> = (0..20)
        .map(|i| {
            client_dir(
                tmp.path(),
                &format!("client{i}"),
                server.port,
                "data.bin",
                50_000 + i * 1000,
                10 + i as u32,
            )
        })
        .collect();
    let children: Vec<Child> = dirs
        .iter()
        .map(|d| {
            Command::new(client_bin())
                .current_dir(d)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for (child, d) in children.into_iter().zip(&dirs) {
        let out = child.wait_with_output().unwrap();
        assert_ok(&out, &d.display().to_string());
        let stored = stored_path(&sdir, &client_id(d), "data.bin");
        assert_eq!(cksum_cmd(&stored), cksum_cmd(&d.join("data.bin")));
    }
    assert_eq!(server.list_files().matches(" yes ").count(), 20);
    server.stop();
}

#[test]
fn tokio_twenty_clients_at_once() {
    many_clients_at_once("tokio");
}

#[test]
fn std_twenty_clients_at_once() {
    many_clients_at_once("std");
}

#[test]
fn missing_port_info_warns_and_uses_1256() {
    let tmp = tempfile::tempdir().unwrap();
    if TcpStream::connect(("127.0.0.1", 1256)).is_ok() {
        eprintln!("port 1256 is in use here; skipped");
        return;
    }
    let child = Command::new(server_bin())
        .args(["--bind", "127.0.0.1"])
        .current_dir(tmp.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", 1256)).is_err() {
        assert!(Instant::now() < deadline, "no server on 1256");
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("port.info") && err.contains("1256"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn an_independent_python_and_openssl_client_is_served() {
    let has = |cmd: &str| Command::new(cmd).arg("--version").output().is_ok();
    if !has("python3") || !has("openssl") {
        eprintln!("python3 or openssl not installed; skipped");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let sdir = tmp.path().join("server");
    let server = Server::start(&sdir, "tokio", &[]);
    let file = tmp.path().join("peer.bin");
    std::fs::write(
        &file,
        (0..10_000u32)
            .map(|i| (i * 7 % 251) as u8)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let peer = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peer.py");
    let out = Command::new("python3")
        .arg(&peer)
        .arg(server.port.to_string())
        .arg(&file)
        .current_dir(tmp.path())
        .output()
        .unwrap();
    assert_ok(&out, "python peer");
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let stored = stored_path(&sdir, &id, "peer.bin");
    assert_eq!(cksum_cmd(&stored), cksum_cmd(&file));
    assert!(server.list_files().contains(" yes "));
}
