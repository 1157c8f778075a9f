//! The blocking TLS client over real sockets: a rustls server, a legacy server that
//! answers 1607 or closes, a silent one, and nothing at all.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ServerConfig, ServerConnection, StreamOwned};
use transport_interface::tls::{provider, session_binding};
use transport_std::{connect_tls, ClientOptions, Fingerprint, TlsConnectError};

fn options(secs: u64) -> ClientOptions {
    ClientOptions {
        response_timeout: Duration::from_secs(secs),
        ..ClientOptions::default()
    }
}

/// What the test server saw: the session binding (none when the handshake failed)
/// and the application data it received.
type ServerSaw = (Option<[u8; 32]>, Vec<u8>);

/// A self-signed certificate and its key, as the servers make them.
fn identity() -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let key = PrivatePkcs8KeyDer::from(made.signing_key.serialize_der());
    (made.cert.der().clone(), key.into())
}

/// Shows one certificate and signs with one key, whether they match or not.
#[derive(Debug)]
struct Shows(Arc<CertifiedKey>);

impl ResolvesServerCert for Shows {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// A TLS 1.3 server for one connection: it echoes what it reads, and reports the
/// session binding and the bytes it received (none when the handshake failed).
fn tls_server() -> (SocketAddr, Fingerprint, JoinHandle<ServerSaw>) {
    let (cert, key) = identity();
    tls_server_showing(cert, key)
}

/// [`tls_server`], showing `cert` and signing with `key`.
fn tls_server_showing(
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
) -> (SocketAddr, Fingerprint, JoinHandle<ServerSaw>) {
    let fingerprint = Fingerprint::of_certificate(cert.as_ref());
    let provider = provider();
    let signing = provider.key_provider.load_private_key(key).unwrap();
    let shown = Arc::new(CertifiedKey::new(vec![cert], signing));
    let config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(Shows(shown)));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let thread = std::thread::spawn(move || {
        let (socket, _) = listener.accept().unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let conn = ServerConnection::new(Arc::new(config)).unwrap();
        let mut tls = StreamOwned::new(conn, socket);
        let mut received = Vec::new();
        while tls.conn.is_handshaking() {
            if tls.conn.complete_io(&mut tls.sock).is_err() {
                return (None, received);
            }
        }
        let binding = session_binding(&tls.conn).map(|b| *b.as_bytes());
        let mut buf = [0u8; 1024];
        loop {
            match tls.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    received.extend_from_slice(&buf[..n]);
                    if tls.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        (binding, received)
    });
    (addr, fingerprint, thread)
}

/// A legacy server for one connection: it reads what comes, then answers `answer`
/// (nothing: it just closes).
fn legacy_server(answer: &'static [u8]) -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let thread = std::thread::spawn(move || {
        let (mut socket, _) = listener.accept().unwrap();
        let mut header = [0u8; 23];
        let _ = socket.read_exact(&mut header);
        let _ = socket.write_all(answer);
    });
    (addr, thread)
}

/// A 1607 (general error) as a legacy server sends it: version 3, code, no payload.
const GENERAL_ERROR: &[u8] = &[3, 0x47, 0x06, 0, 0, 0, 0];

#[test]
fn first_use_connects_and_reports_the_fingerprint_and_binding() {
    let (addr, fingerprint, server) = tls_server();
    let mut secure = connect_tls(&addr.to_string(), None, &options(10)).unwrap();
    assert_eq!(secure.fingerprint, fingerprint);
    secure.stream.write_all(b"hello").unwrap();
    let mut echo = [0u8; 5];
    secure.stream.read_exact(&mut echo).unwrap();
    assert_eq!(&echo, b"hello");
    let binding = secure.binding;
    secure.close().unwrap();
    let (server_binding, received) = server.join().unwrap();
    assert_eq!(server_binding, Some(*binding.as_bytes()));
    assert_eq!(received, b"hello");
}

#[test]
fn the_pinned_server_is_accepted() {
    let (addr, fingerprint, server) = tls_server();
    let secure = connect_tls(&addr.to_string(), Some(fingerprint), &options(10)).unwrap();
    assert_eq!(secure.fingerprint, fingerprint);
    secure.close().unwrap();
    server.join().unwrap();
}

#[test]
fn another_key_is_refused_before_anything_is_sent() {
    let (addr, seen, server) = tls_server();
    let expected = Fingerprint::of_certificate(b"the certificate pinned before");
    match connect_tls(&addr.to_string(), Some(expected), &options(10)) {
        Err(TlsConnectError::IdentityChanged {
            expected: e,
            seen: s,
        }) => {
            assert_eq!(e, expected);
            assert_eq!(s, seen);
        }
        other => panic!("expected IdentityChanged, got {other:?}"),
    }
    let (binding, received) = server.join().unwrap();
    assert_eq!(binding, None, "the server finished a handshake");
    assert!(received.is_empty());
}

#[test]
fn a_copy_of_the_certificate_without_its_key_is_refused() {
    let (cert, _) = identity();
    let (_, other_key) = identity();
    let pinned = Fingerprint::of_certificate(cert.as_ref());
    for expected in [Some(pinned), None] {
        let (addr, _, server) = tls_server_showing(cert.clone(), other_key.clone_key());
        match connect_tls(&addr.to_string(), expected, &options(10)) {
            Err(TlsConnectError::KeyNotHeld { seen }) => assert_eq!(seen, pinned),
            other => panic!("expected KeyNotHeld, got {other:?}"),
        }
        let (binding, received) = server.join().unwrap();
        assert_eq!(binding, None, "the server finished a handshake");
        assert!(received.is_empty());
    }
}

#[test]
fn a_legacy_answer_or_close_is_not_tls() {
    for answer in [GENERAL_ERROR, b""] {
        let (addr, server) = legacy_server(answer);
        let result = connect_tls(&addr.to_string(), None, &options(10));
        assert!(
            matches!(result, Err(TlsConnectError::NotTls)),
            "{answer:?}: {result:?}"
        );
        server.join().unwrap();
    }
}

#[test]
fn a_silent_server_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let started = Instant::now();
    let result = connect_tls(&addr.to_string(), None, &options(1));
    assert!(
        matches!(result, Err(TlsConnectError::Timeout(_))),
        "{result:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    drop(listener);
}

#[test]
fn nothing_listening_is_unreachable() {
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let result = connect_tls(&addr.to_string(), None, &options(5));
    assert!(
        matches!(result, Err(TlsConnectError::Unreachable(_))),
        "{result:?}"
    );
    let result = connect_tls("no-such-host.invalid:1256", None, &options(5));
    assert!(
        matches!(result, Err(TlsConnectError::Unreachable(_))),
        "{result:?}"
    );
}
