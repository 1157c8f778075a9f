//! The server's TLS identity with the real binaries: made at the first start
//! (the key 0600), kept across restarts, printed as the fingerprint `openssl`
//! computes, shown by `server status`; served on the protocol port beside legacy
//! uploads on every transport; replaced by a CA-issued certificate
//! (`--tls-cert`/`--tls-key`, or the configuration file); a readable key refused;
//! `--no-tls` answering a ClientHello as before.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test harness: a failure is a panic

mod common;

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::*;
use transport_interface::tls::rustls;
use transport_interface::tls::{session_binding, Fingerprint};

use rustls::pki_types::ServerName;
use rustls::ClientConnection;

/// The fingerprint `openssl x509 -noout -fingerprint -sha256` prints for `cert`.
fn openssl_fingerprint(cert: &Path) -> Fingerprint {
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(cert)
        .output()
        .expect("running openssl");
    assert_ok(&out, "openssl x509 -fingerprint");
    let text = String::from_utf8(out.stdout).unwrap();
    // "sha256 Fingerprint=AB:CD:..." (the label's case varies between versions).
    let hex = text.trim().rsplit('=').next().unwrap();
    hex.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// The identity the server's last listening line names.
fn served_identity(server: &Server) -> Fingerprint {
    let log = server.log();
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains(&format!("listening on 127.0.0.1:{} ", server.port)))
        .unwrap_or_else(|| panic!("no listening line: {log}"));
    let shown = line
        .split("identity ")
        .nth(1)
        .unwrap_or_else(|| panic!("no identity in {line:?}"));
    shown.trim().parse().unwrap()
}

fn client_connection(pin: Fingerprint) -> ClientConnection {
    let config = transport_interface::tls::client::PinnedConfig::new(Some(pin))
        .unwrap()
        .config();
    ClientConnection::new(config, ServerName::try_from("localhost").unwrap()).unwrap()
}

/// A finished handshake with the server at `addr` that serves `pin`.
fn handshake(addr: &str, pin: Fingerprint) -> (ClientConnection, TcpStream) {
    let mut tls = client_connection(pin);
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    while tls.is_handshaking() {
        tls.complete_io(&mut tcp).unwrap();
    }
    assert!(session_binding(&tls).is_some());
    (tls, tcp)
}

/// Sends close_notify; whether the server answers with its own.
fn close(mut tls: ClientConnection, mut tcp: TcpStream) -> bool {
    tls.send_close_notify();
    while tls.wants_write() {
        tls.write_tls(&mut tcp).unwrap();
    }
    let mut buf = [0u8; 256];
    loop {
        match tls.reader().read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => return false,
        }
        match tls.read_tls(&mut tcp) {
            Ok(_) => {
                tls.process_new_packets().unwrap();
            }
            Err(_) => return false,
        }
    }
}

fn key_mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// `server ARGS` (ending in `status ...`) in `dir`: what it prints.
fn status(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(server_bin())
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert_ok(&out, "server status");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_first_start_makes_the_identity_and_restarts_keep_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("server");
    let server = Server::start(&dir, 0, &[]);
    let (cert, key) = (dir.join("tls/identity.crt"), dir.join("tls/identity.key"));
    assert_eq!(key_mode(&key), 0o600);
    assert_eq!(key_mode(&dir.join("tls")), 0o700);
    let first = served_identity(&server);
    // What operators and clients compare: the certificate's SHA-256 as openssl
    // computes it, on the listening line, in its own log line and in `status`.
    assert_eq!(first, openssl_fingerprint(&cert));
    assert!(
        server.log().contains(&format!("TLS identity {first}")),
        "{}",
        server.log()
    );
    assert!(status(&dir, &["status"]).contains(&format!("identity:  {first}")));
    let json = status(&dir, &["status", "--json"]);
    assert!(
        json.contains(&format!("\"identity\":\"{first}\"")),
        "{json}"
    );
    let names = Command::new("openssl")
        .args(["x509", "-noout", "-ext", "subjectAltName", "-in"])
        .arg(&cert)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&names.stdout).contains("DNS:localhost"));
    server.stop();
    let server = Server::start(&dir, 0, &[]);
    assert_eq!(served_identity(&server), first);
    assert_eq!(server.log().matches("made now").count(), 1);
    server.stop();
}

#[test]
fn tls_and_legacy_uploads_share_the_port_on_every_transport() {
    for transport in ["std", "tokio", "smol"] {
        let tmp = tempfile::tempdir().unwrap();
        let server = Server::start(&tmp.path().join("server"), 0, &["--transport", transport]);
        let pin = served_identity(&server);
        let (tls, tcp) = handshake(&server.addr(), pin);
        // The legacy client of today, on the same port while the session is open.
        let c = client_dir(tmp.path(), "lena", server.port, "f.bin", &data(70_000, 9));
        assert_ok(&run_client(&c, &[]), transport);
        assert!(close(tls, tcp), "{transport}: close_notify");
        server.stop();
    }
}

/// A certificate and key made by `openssl req -x509` in `dir`, the key 0600.
fn ca_style_identity(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (cert, key) = (dir.join("fleet.crt"), dir.join("fleet.key"));
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:P-256", "-nodes", "-days", "30"])
        .args(["-subj", "/CN=files.example"])
        .args(["-addext", "subjectAltName=DNS:files.example"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert_ok(&out, "openssl req -x509");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    (cert, key)
}

#[test]
fn a_given_certificate_replaces_the_folders_identity() {
    let tmp = tempfile::tempdir().unwrap();
    let (cert, key) = ca_style_identity(tmp.path());
    let expected = openssl_fingerprint(&cert);
    let dir = tmp.path().join("server");
    let (c, k) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let server = Server::start(&dir, 0, &["--tls-cert", c, "--tls-key", k]);
    assert_eq!(served_identity(&server), expected);
    let (tls, tcp) = handshake(&server.addr(), expected);
    assert!(close(tls, tcp));
    assert!(!dir.join("tls").exists(), "no identity of its own made");
    server.stop();
    // The same from the configuration file, which `status` reads too.
    let config = tmp.path().join("server.toml");
    std::fs::write(&config, format!("tls-cert = {c:?}\ntls-key = {k:?}\n")).unwrap();
    let config = config.to_str().unwrap();
    let server = Server::start(&dir, 0, &["--config", config]);
    assert_eq!(served_identity(&server), expected);
    assert!(
        status(&dir, &["--config", config, "status"]).contains(&format!("identity:  {expected}"))
    );
    server.stop();
}

/// Starts the server in `dir` with `args`, expecting it to refuse: its stderr.
fn refused(dir: &Path, args: &[&str]) -> (Option<i32>, String) {
    std::fs::create_dir_all(dir).unwrap();
    let out: Output = Command::new(server_bin())
        .args(["--bind", "127.0.0.1", "--port", &free_port().to_string()])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_key_others_can_read_or_half_an_identity_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("server");
    Server::start(&dir, 0, &[]).stop();
    let key = dir.join("tls/identity.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (_, err) = refused(&dir, &[]);
    let chmod = format!("chmod 600 {}", key.canonicalize().unwrap().display());
    assert!(err.contains(&chmod) && err.contains("0644"), "{err}");
    // The same for a given key.
    let (cert, given) = ca_style_identity(tmp.path());
    std::fs::set_permissions(&given, std::fs::Permissions::from_mode(0o640)).unwrap();
    let (c, k) = (cert.to_str().unwrap(), given.to_str().unwrap());
    let (_, err) = refused(&dir, &["--tls-cert", c, "--tls-key", k]);
    let whole = given.canonicalize().unwrap();
    assert!(
        err.contains(&format!("chmod 600 {}", whole.display())),
        "{err}"
    );
    // A key that is not the certificate's.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (_, err) = refused(&dir, &["--tls-cert", c, "--tls-key", key.to_str().unwrap()]);
    assert!(err.contains("does not belong to the certificate"), "{err}");
    // A certificate without its key is a usage error.
    let (code, err) = refused(&dir, &["--tls-cert", c]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--tls-cert needs --tls-key"), "{err}");
    // Half of the folder's own pair.
    std::fs::remove_file(dir.join("tls/identity.crt")).unwrap();
    let (_, err) = refused(&dir, &[]);
    let missing = dir.canonicalize().unwrap().join("tls/identity.crt");
    assert!(
        err.contains(&format!("{} does not", missing.display())),
        "{err}"
    );
}

#[test]
fn without_tls_a_client_hello_is_refused_as_before() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("server");
    let server = Server::start(&dir, 0, &["--no-tls"]);
    assert!(server.log().contains("legacy only"), "{}", server.log());
    assert!(!dir.join("tls").exists());
    let mut hello = Vec::new();
    let mut tls = client_connection(Fingerprint::of_certificate(b"none"));
    while tls.wants_write() {
        tls.write_tls(&mut hello).unwrap();
    }
    let mut tcp = TcpStream::connect(server.addr()).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    tcp.write_all(&hello).unwrap();
    let mut got = Vec::new();
    let _ = tcp.read_to_end(&mut got);
    // A legacy 1607 (version 3, code 1607 little-endian), no TLS record.
    assert!(got.len() >= 7, "{got:?}");
    assert_eq!((got[0], u16::from_le_bytes([got[1], got[2]])), (3, 1607));
    assert!(status(&dir, &["--no-tls", "status"]).contains("identity:  none: --no-tls"));
    server.stop();
}
