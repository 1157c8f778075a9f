//! Helpers of the secure-mode end-to-end tests (secure_*.rs): the real client run in
//! a folder, byte comparisons with the real `cmp` and `sha256sum`, relays that cut a
//! connection in one direction, and a raw TLS session (rustls with a pinned
//! verifier, `protocol_core::secure` frames) for what the real client never sends.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use protocol_core::secure::frame::{self, SecureRequest, SecureResponse};
use protocol_core::secure::SessionBinding;
use protocol_core::ClientId;
use transport_interface::tls::rustls;
use transport_interface::tls::{session_binding, Fingerprint};

use rustls::pki_types::ServerName;
use rustls::{ClientConnection, StreamOwned};

/// The real client in `dir` (its working folder and `--dir`).
pub fn client(dir: &Path, args: &[&str]) -> Output {
    Command::new(test_kit::bins::client())
        .args(args)
        .current_dir(dir)
        .output()
        .expect("running the client")
}

/// The real client started in `dir`, its output piped.
pub fn spawn_client(dir: &Path, args: &[&str]) -> Child {
    Command::new(test_kit::bins::client())
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting the client")
}

/// Status, stdout and stderr, for messages.
pub fn said(out: &Output) -> String {
    format!(
        "{}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The run succeeded.
pub fn ok(out: &Output, what: &str) {
    assert!(out.status.success(), "{what}: {}", said(out));
}

/// The run failed with `code`.
pub fn fails(out: &Output, code: i32, what: &str) {
    assert_eq!(out.status.code(), Some(code), "{what}: {}", said(out));
}

/// stdout as text.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// stderr as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `cmp a b`: the real tool says the files are byte-identical.
pub fn same_bytes(a: &Path, b: &Path) -> bool {
    Command::new("cmp")
        .arg(a)
        .arg(b)
        .output()
        .expect("running cmp")
        .status
        .success()
}

/// What `sha256sum` prints for `path`: the hex digest.
pub fn sha256sum(path: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("running sha256sum");
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// Every `"key":N` number in a JSON text, in order.
pub fn json_numbers(text: &str, key: &str) -> Vec<u64> {
    let pat = format!("\"{key}\":");
    text.match_indices(&pat)
        .map(|(i, _)| {
            let rest = &text[i + pat.len()..];
            let end = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            rest[..end].parse().unwrap()
        })
        .collect()
}

/// The `offset=N` of each server log line that contains `what` and `file`.
pub fn logged_offsets(log: &str, what: &str, file: &str) -> Vec<u64> {
    log.lines()
        .filter(|l| l.contains(what) && l.contains(file))
        .filter_map(|l| {
            let rest = &l[l.find("offset=")? + "offset=".len()..];
            let end = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            rest[..end].parse().ok()
        })
        .collect()
}

/// The fingerprint pinned for `server` in the client folder's known_servers.
pub fn pinned(dir: &Path, server: &str) -> Option<Fingerprint> {
    let text = std::fs::read_to_string(dir.join("known_servers")).ok()?;
    text.lines()
        .filter_map(|l| l.split_once(' '))
        .find(|(s, _)| *s == server)
        .and_then(|(_, f)| f.trim().parse().ok())
}

/// The identity a server's log names ("TLS identity SHA256:...", the last one).
pub fn served_identity(log: &str) -> Fingerprint {
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains("TLS identity "))
        .unwrap_or_else(|| panic!("no identity in the log: {log}"));
    let text = line.split("TLS identity ").nth(1).unwrap();
    text.split_whitespace().next().unwrap().parse().unwrap()
}

/// Where a relay cuts each direction of its connections (bytes passed, then both
/// sides closed).
#[derive(Debug, Clone, Copy, Default)]
pub struct Cut {
    /// Client to server.
    pub up: Option<usize>,
    /// Server to client.
    pub down: Option<usize>,
}

/// A relay to 127.0.0.1:`target` that cuts its first connection as `cut` says and
/// passes every later one whole (a network that failed once). Returns its port and
/// a flag raised when a cut happened.
pub fn cutting_relay(target: u16, cut: Cut) -> (u16, Arc<AtomicBool>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let flag = Arc::new(AtomicBool::new(false));
    let cut_done = flag.clone();
    let count = Arc::new(AtomicUsize::new(0));
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                continue;
            };
            let first = count.fetch_add(1, Ordering::SeqCst) == 0;
            let this = if first { cut } else { Cut::default() };
            let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) else {
                continue;
            };
            let (f1, f2) = (cut_done.clone(), cut_done.clone());
            std::thread::spawn(move || pipe(client, server, this.up, &f1));
            std::thread::spawn(move || pipe(s2, c2, this.down, &f2));
        }
    });
    (port, flag)
}

fn pipe(mut from: TcpStream, mut to: TcpStream, limit: Option<usize>, cut: &AtomicBool) {
    let mut seen = 0usize;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let room = limit.map_or(buf.len(), |l| (l - seen).min(buf.len()));
        let n = match from.read(&mut buf[..room]) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
        seen += n;
        if limit == Some(seen) {
            cut.store(true, Ordering::SeqCst);
            break;
        }
    }
    // Either way the whole connection goes: both sockets, both directions.
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}

/// A relay to 127.0.0.1:`target` whose first connection loses the client after
/// `at` of its bytes, while the server's side stays open and silent (a network that
/// dropped the client without a word to the server); later connections pass whole.
pub fn dropping_relay(target: u16, at: usize) -> (u16, Arc<AtomicBool>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let flag = Arc::new(AtomicBool::new(false));
    let dropped = flag.clone();
    std::thread::spawn(move || {
        let mut first = true;
        for client in listener.incoming().flatten() {
            let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                continue;
            };
            let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) else {
                continue;
            };
            if std::mem::take(&mut first) {
                let dropped = dropped.clone();
                std::thread::spawn(move || {
                    let (mut client, mut server) = (client, server);
                    let mut seen = 0usize;
                    let mut buf = vec![0u8; 64 * 1024];
                    while seen < at {
                        let room = (at - seen).min(buf.len());
                        match client.read(&mut buf[..room]) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                let _ = server.write_all(&buf[..n]);
                                seen += n;
                            }
                        }
                    }
                    let _ = client.shutdown(Shutdown::Both);
                    dropped.store(true, Ordering::SeqCst);
                    // The server's side is held open, silent, until the server
                    // gives up on it.
                    let _ = server.read_to_end(&mut Vec::new());
                });
                std::thread::spawn(move || {
                    let _ = io::copy(&mut { s2 }, &mut { c2 });
                });
                continue;
            }
            let flag = Arc::new(AtomicBool::new(false));
            let f2 = flag.clone();
            std::thread::spawn(move || pipe(client, server, None, &flag));
            std::thread::spawn(move || pipe(s2, c2, None, &f2));
        }
    });
    (port, flag)
}

/// A TLS session to the server, speaking the secure frames by hand.
pub struct Raw {
    tls: StreamOwned<ClientConnection, TcpStream>,
    /// The session's binding (what a sign-in signs).
    pub binding: SessionBinding,
    input: BytesMut,
}

impl Raw {
    /// A finished handshake with the server at `addr` that shows `pin`.
    pub fn connect(addr: &str, pin: Fingerprint) -> Raw {
        let config = transport_interface::tls::client::PinnedConfig::new(Some(pin))
            .unwrap()
            .config();
        let mut conn =
            ClientConnection::new(config, ServerName::try_from("localhost").unwrap()).unwrap();
        let mut tcp = TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        while conn.is_handshaking() {
            conn.complete_io(&mut tcp).unwrap();
        }
        let binding = session_binding(&conn).expect("a session binding");
        Raw {
            tls: StreamOwned::new(conn, tcp),
            binding,
            input: BytesMut::new(),
        }
    }

    /// Sends bytes as they are (a server that closed shows at the next `recv`).
    pub fn send_bytes(&mut self, bytes: &[u8]) {
        let _ = self.tls.write_all(bytes).and_then(|_| self.tls.flush());
    }

    /// Sends one request with `id` in its header.
    pub fn send(&mut self, id: ClientId, request: &SecureRequest) {
        let mut out = BytesMut::new();
        frame::encode_request(&mut out, id, request);
        self.send_bytes(&out);
    }

    /// The next response; `None` once the server closed the session.
    pub fn recv(&mut self) -> Option<SecureResponse> {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            if let Some(r) = frame::decode_response(&mut self.input).unwrap() {
                return Some(r);
            }
            match self.tls.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.input.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return None,
            }
        }
    }

    /// Whether the server closes the session without another response.
    pub fn closed(&mut self) -> bool {
        self.recv().is_none()
    }
}

/// The Ed25519 key a client folder signs in with (`secure.key`: 64 hex digits).
pub fn secure_key(dir: &Path) -> ed25519_dalek::SigningKey {
    let text = std::fs::read_to_string(dir.join("secure.key")).unwrap();
    let text = text.trim();
    assert_eq!(text.len(), 64, "secure.key: {text:?}");
    let mut seed = [0u8; 32];
    for (i, b) in seed.iter_mut().enumerate() {
        *b = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).unwrap();
    }
    ed25519_dalek::SigningKey::from_bytes(&seed)
}

/// Makes a P-256 certificate and key with `openssl req -x509` in `dir` (the key
/// 0600), as an operator gives a fleet one identity.
pub fn openssl_identity(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let (cert, key) = (dir.join("fleet.crt"), dir.join("fleet.key"));
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:P-256", "-nodes", "-days", "30"])
        .args(["-subj", "/CN=files.example"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    ok(&out, "openssl req -x509");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    (cert, key)
}

/// A client folder whose transfer.info names `addr`, `name` and `file`.
pub fn folder(root: &Path, name: &str, addr: &str, file: &str) -> std::path::PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("transfer.info"),
        format!("{addr}\n{name}\n{file}\n"),
    )
    .unwrap();
    dir
}

/// The S3 variables the servers read (the same values for every test of a process).
#[cfg(feature = "fleet")]
#[allow(unused_imports)] // not every test file that includes the kit uses it
pub use crate::common::fleet::set_s3_environment;
