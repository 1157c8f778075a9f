//! Faults and hostile peers against the real binaries: a client cut off mid-upload,
//! the server killed with SIGKILL mid-upload, a full disk, files and the database
//! kept private, a symlink planted in the storage folder, and 200 clients at once
//! while another peer sends garbage.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

fn server_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_server"))
}

fn client_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let path = server_bin().with_file_name("client");
        if !path.exists() {
            let mut cmd = Command::new(env!("CARGO"));
            cmd.args(["build", "-p", "client-app", "--bin", "client"]);
            if server_bin().to_string_lossy().contains("/release/") {
                cmd.arg("--release");
            }
            assert!(
                cmd.status().unwrap().success(),
                "building the client failed"
            );
        }
        path
    })
    .clone()
}

struct Server {
    child: Child,
    port: u16,
}

impl Server {
    /// Starts the server in `dir` on `port` (0: a free one, written to port.info).
    fn start(dir: &Path, port: u16, extra: &[&str]) -> Server {
        std::fs::create_dir_all(dir).unwrap();
        let port = if port == 0 {
            TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        } else {
            port
        };
        std::fs::write(dir.join("port.info"), port.to_string()).unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("server.log"))
            .unwrap();
        let child = Command::new(server_bin())
            .args(["--bind", "127.0.0.1", "--max-connections-per-ip", "2000"])
            .args(extra)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Server { child, port }
    }

    fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn client_dir(root: &Path, name: &str, port: u16, file: &str, data: &[u8]) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(file), data).unwrap();
    set_target(&dir, port, name, file);
    dir
}

fn set_target(dir: &Path, port: u16, name: &str, file: &str) {
    std::fs::write(
        dir.join("transfer.info"),
        format!("127.0.0.1:{port}\n{name}\n{file}\n"),
    )
    .unwrap();
}

fn run_client(dir: &Path) -> Output {
    Command::new(client_bin())
        .current_dir(dir)
        .output()
        .unwrap()
}

fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "client failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn client_id(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("me.info"))
        .unwrap()
        .lines()
        .nth(1)
        .unwrap()
        .to_string()
}

fn data(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn part_files(server: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Ok(dirs) = std::fs::read_dir(server.join("files")) {
        for d in dirs.flatten() {
            for f in std::fs::read_dir(d.path()).into_iter().flatten().flatten() {
                if f.file_name().to_string_lossy().ends_with(".part") {
                    v.push(f.path());
                }
            }
        }
    }
    v
}

/// Forwards connections to `target`; once `limit` bytes from the client have passed,
/// it forwards no more and, if `cut`, closes both sides (else holds them open).
fn stalling_proxy(target: u16, limit: usize, cut: bool) -> (u16, Arc<AtomicBool>) {
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
        });
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
                if cut {
                    let _ = s_wr.shutdown(std::net::Shutdown::Both);
                    let _ = c_rd.shutdown(std::net::Shutdown::Both);
                    return;
                }
                // Hold the connections open, forwarding nothing more.
                std::thread::sleep(Duration::from_secs(120));
                return;
            }
        }
    });
    (port, reached)
}

#[test]
fn a_client_cut_off_mid_upload_changes_nothing_and_can_retry() {
    let tmp = tempfile::tempdir().unwrap();
    let sdir = tmp.path().join("server");
    let server = Server::start(&sdir, 0, &[]);
    let first = data(100_000, 1);
    let c = client_dir(tmp.path(), "erin", server.port, "doc.bin", &first);
    assert_ok(&run_client(&c));
    let id = client_id(&c);
    let stored = sdir.join("files").join(&id).join("doc.bin");
    assert_eq!(std::fs::read(&stored).unwrap(), first);

    // The second version is cut off after ~1 MB of its upload.
    let second = data(3_000_000, 2);
    std::fs::write(c.join("doc.bin"), &second).unwrap();
    let (proxy, _) = stalling_proxy(server.port, 1_000_000, true);
    set_target(&c, proxy, "erin", "doc.bin");
    let out = run_client(&c);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Fatal:"));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        std::fs::read(&stored).unwrap(),
        first,
        "verified file unchanged"
    );

    // The retry succeeds, and no temporary file is left behind.
    set_target(&c, server.port, "erin", "doc.bin");
    assert_ok(&run_client(&c));
    assert_eq!(std::fs::read(&stored).unwrap(), second);
    assert!(part_files(&sdir).is_empty(), "{:?}", part_files(&sdir));
}

#[test]
fn the_server_killed_mid_upload_restarts_with_everything_verified_intact() {
    let tmp = tempfile::tempdir().unwrap();
    let sdir = tmp.path().join("server");
    let server = Server::start(&sdir, 0, &["--transport", "std"]);
    let port = server.port;
    let first = data(50_000, 3);
    let c = client_dir(tmp.path(), "frank", port, "a.bin", &first);
    assert_ok(&run_client(&c));
    let id = client_id(&c);

    // Start a second upload through a proxy that stalls halfway, then SIGKILL.
    let big = data(2_000_000, 4);
    std::fs::write(c.join("b.bin"), &big).unwrap();
    let (proxy, reached) = stalling_proxy(port, 1_000_000, false);
    set_target(&c, proxy, "frank", "b.bin");
    let mut stuck = Command::new(client_bin())
        .current_dir(&c)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !reached.load(Ordering::SeqCst) {
        assert!(Instant::now() < deadline, "the upload never got halfway");
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(200));
    server.kill9();
    let _ = stuck.kill();
    let _ = stuck.wait();

    // Restart on the same folder and port: the database opens, the first file is
    // intact and verified, the client reconnects and finishes.
    let server = Server::start(&sdir, port, &["--transport", "std"]);
    assert_eq!(
        std::fs::read(sdir.join("files").join(&id).join("a.bin")).unwrap(),
        first
    );
    set_target(&c, server.port, "frank", "b.bin");
    let out = run_client(&c);
    assert_ok(&out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("reconnecting"));
    assert_eq!(
        std::fs::read(sdir.join("files").join(&id).join("b.bin")).unwrap(),
        big
    );
    assert!(part_files(&sdir).is_empty());
    let listing = Command::new(server_bin())
        .arg("list-files")
        .current_dir(&sdir)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&listing.stdout)
            .matches(" yes ")
            .count(),
        2
    );
}

#[test]
fn a_full_disk_gets_1607_and_loses_nothing_earlier() {
    let tmp = tempfile::tempdir().unwrap();
    let sdir = tmp.path().join("server");
    // Room for the first file and part of the second.
    let server = Server::start(&sdir, 0, &["--inject-write-failure-after", "150000"]);
    let first = data(100_000, 5);
    let c = client_dir(tmp.path(), "grace", server.port, "keep.bin", &first);
    assert_ok(&run_client(&c));
    let id = client_id(&c);
    std::fs::write(c.join("keep.bin"), data(400_000, 6)).unwrap();
    let out = run_client(&c);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("server responded with an error"), "{err}");
    assert!(err.contains("Fatal:"), "{err}");
    assert_eq!(
        std::fs::read(sdir.join("files").join(&id).join("keep.bin")).unwrap(),
        first,
        "the verified file survived"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(part_files(&sdir).is_empty(), "{:?}", part_files(&sdir));
}

#[test]
fn database_and_files_are_readable_by_the_server_user_only() {
    let tmp = tempfile::tempdir().unwrap();
    let sdir = tmp.path().join("server");
    let server = Server::start(&sdir, 0, &[]);
    let c = client_dir(tmp.path(), "heidi", server.port, "p.bin", &data(1000, 7));
    assert_ok(&run_client(&c));
    let id = client_id(&c);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    for name in ["defensive.db", "defensive.db-wal", "defensive.db-shm"] {
        let p = sdir.join(name);
        if p.exists() {
            assert_eq!(mode(&p), 0o600, "{name}");
        }
    }
    assert_eq!(mode(&sdir.join("files")), 0o700);
    assert_eq!(mode(&sdir.join("files").join(&id)), 0o700);
    assert_eq!(mode(&sdir.join("files").join(&id).join("p.bin")), 0o600);
    assert_eq!(mode(&c.join("me.info")), 0o600);
    assert_eq!(mode(&c.join("priv.key")), 0o600);
}

#[test]
fn a_symlink_planted_in_the_storage_folder_is_replaced_not_followed() {
    let tmp = tempfile::tempdir().unwrap();
    let sdir = tmp.path().join("server");
    let server = Server::start(&sdir, 0, &[]);
    let c = client_dir(tmp.path(), "ivan", server.port, "one.bin", &data(1000, 8));
    assert_ok(&run_client(&c));
    let id = client_id(&c);
    let outside = tmp.path().join("outside.txt");
    std::fs::write(&outside, b"must not change").unwrap();
    let planted = sdir.join("files").join(&id).join("two.bin");
    std::os::unix::fs::symlink(&outside, &planted).unwrap();
    let second = data(5000, 9);
    std::fs::write(c.join("two.bin"), &second).unwrap();
    set_target(&c, server.port, "ivan", "two.bin");
    assert_ok(&run_client(&c));
    assert_eq!(std::fs::read(&outside).unwrap(), b"must not change");
    assert!(!std::fs::symlink_metadata(&planted)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(std::fs::read(&planted).unwrap(), second);
}

#[test]
fn two_hundred_clients_at_once_while_one_peer_sends_garbage() {
    let tmp = tempfile::tempdir().unwrap();
    let sdir = tmp.path().join("server");
    let server = Server::start(&sdir, 0, &[]);
    let port = server.port;
    let stop = Arc::new(AtomicBool::new(false));
    let garbage = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut x: u32 = 12345;
            let mut sent = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
                    continue;
                };
                let junk: Vec<u8> = (0..4096)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 17;
                        x ^= x << 5;
                        x as u8
                    })
                    .collect();
                if s.write_all(&junk).is_ok() {
                    sent += junk.len() as u64;
                }
            }
            sent
        })
    };
    let file = data(20_000, 10);
    let dirs: Vec<PathBuf> = (0..200)
        .map(|i| client_dir(tmp.path(), &format!("c{i}"), port, "f.bin", &file))
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
    let mut failed = Vec::new();
    for (i, child) in children.into_iter().enumerate() {
        let out = child.wait_with_output().unwrap();
        if !out.status.success() {
            failed.push((i, String::from_utf8_lossy(&out.stderr).into_owned()));
        }
    }
    stop.store(true, Ordering::SeqCst);
    let sent = garbage.join().unwrap();
    assert!(
        failed.is_empty(),
        "{} failed: {:?}",
        failed.len(),
        &failed[..failed.len().min(3)]
    );
    assert!(sent > 0);
    let listing = Command::new(server_bin())
        .arg("list-files")
        .current_dir(&sdir)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&listing.stdout)
            .matches(" yes ")
            .count(),
        200
    );
}
