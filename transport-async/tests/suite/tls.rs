//! Secure mode on every transport: TLS 1.3 on the port of the legacy protocol.
//! A rustls client (trusting the test's own certificate) finishes the handshake
//! and the application sees a secure connection, while a legacy client uploads
//! on the same port; a server without TLS answers a ClientHello as it always did;
//! a client that stalls its handshake is closed at the first-header deadline; a
//! ClientHello that is not one gets an alert and the close; behind a balancer the
//! ClientHello follows the PROXY header.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use protocol_core::secure::SessionBinding;
use protocol_core::{Limits, Outcome, ServerConfig};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::ClientConnection;
use transport_interface::memory::MemoryApp;
use transport_interface::tls::{server::server_config, session_binding};
use transport_interface::ServerOptions;

use crate::cases::{check_stored, upload};
use crate::drivers::Driver;

/// A self-signed certificate for `localhost` and the server options that serve it.
fn tls_options() -> (ServerOptions, CertificateDer<'static>) {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert = made.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(made.signing_key.serialize_der()));
    let config = server_config(vec![cert.clone()], key).unwrap();
    let options = ServerOptions {
        tls: Some(config),
        ..ServerOptions::default()
    };
    (options, cert)
}

fn client_connection(cert: &CertificateDer<'static>) -> ClientConnection {
    let config = transport_interface::tls::client::PinnedConfig::new(Some(
        transport_interface::tls::Fingerprint::of_certificate(cert),
    ))
    .unwrap()
    .config();
    ClientConnection::new(config, ServerName::try_from("localhost").unwrap()).unwrap()
}

/// A finished TLS session with the server at `addr`, and its binding.
struct Secure {
    tls: ClientConnection,
    tcp: TcpStream,
    binding: SessionBinding,
}

fn handshake(addr: SocketAddr, cert: &CertificateDer<'static>) -> Secure {
    let mut tls = client_connection(cert);
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    while tls.is_handshaking() {
        tls.complete_io(&mut tcp).unwrap();
    }
    let binding = session_binding(&tls).expect("a binding after the handshake");
    Secure { tls, tcp, binding }
}

impl Secure {
    /// Reads until the server ends the session: whether it sent close_notify
    /// (a clean end) before the end of the stream.
    fn read_to_close(&mut self) -> bool {
        let mut buf = [0u8; 1024];
        loop {
            match self.tls.reader().read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return false,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("{e}"),
            }
            match self.tls.read_tls(&mut self.tcp) {
                // The end of the stream: the reader tells whether close_notify came.
                Ok(0) => {}
                Ok(_) => {
                    self.tls.process_new_packets().unwrap();
                }
                Err(e) => panic!("no end of the session: {e}"),
            }
        }
    }

    /// Sends close_notify and waits for the server's.
    fn close(mut self) -> bool {
        self.tls.send_close_notify();
        while self.tls.wants_write() {
            self.tls.write_tls(&mut self.tcp).unwrap();
        }
        self.read_to_close()
    }
}

/// Waits (at most ten seconds) until `app` has seen `n` secure connections close.
fn secure_closed(app: &MemoryApp, n: usize) {
    let until = Instant::now() + Duration::from_secs(10);
    while app.store().secure_closed < n && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(app.store().secure_closed, n);
}

pub fn a_tls_client_and_a_legacy_client_share_the_port<D: Driver>() {
    let (options, cert) = tls_options();
    let app = MemoryApp::new();
    let server = D::serve(Arc::new(app.clone()), options);
    let first = handshake(server.addr, &cert);
    let second = handshake(server.addr, &cert);
    // Two sessions, two bindings: a signature over one is worthless on the other.
    assert_ne!(first.binding, second.binding);
    // A legacy upload while both sessions are open.
    let (outcome, id, data) = upload::<D>(server.addr, 3, Duration::from_secs(30)).unwrap();
    assert_eq!(outcome, Outcome::Verified);
    check_stored(&app, id, &data);
    assert_eq!(app.store().secure_closed, 0);
    // The client ends the first session; the server answers with its close_notify
    // and its application saw the connection in secure mode.
    assert!(
        first.close(),
        "the server ends the session with close_notify"
    );
    secure_closed(&app, 1);
    // The server's shutdown ends the idle second one, cleanly too.
    let mut second = second;
    let reading = std::thread::spawn(move || second.read_to_close());
    server.stop().expect("a clean stop");
    assert!(reading.join().unwrap(), "close_notify at shutdown");
    secure_closed(&app, 2);
    // The legacy upload's connection was not secure.
    assert_eq!(app.store().secure_closed, 2);
}

/// The first flight of a client that offers TLS 1.3.
fn client_hello(cert: &CertificateDer<'static>) -> Vec<u8> {
    let mut tls = client_connection(cert);
    let mut hello = Vec::new();
    while tls.wants_write() {
        tls.write_tls(&mut hello).unwrap();
    }
    assert!(protocol_core::frame::begins_like_tls(&hello));
    hello
}

/// Everything the server sends on `tcp` until it closes (within twenty seconds),
/// and how long that took.
fn answer(mut tcp: TcpStream) -> (Vec<u8>, Duration) {
    let start = Instant::now();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut got = Vec::new();
    match tcp.read_to_end(&mut got) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("the server did not close: {e}"),
    }
    (got, start.elapsed())
}

pub fn without_tls_a_client_hello_is_answered_as_a_legacy_request<D: Driver>() {
    let (_, cert) = tls_options();
    let app = MemoryApp::new();
    let server = D::serve(Arc::new(app.clone()), ServerOptions::default());
    let mut tcp = TcpStream::connect(server.addr).unwrap();
    tcp.write_all(&client_hello(&cert)).unwrap();
    let (got, _) = answer(tcp);
    // A legacy response (version 3, code 1607 little-endian), never a TLS record.
    assert!(got.len() >= 7, "{got:?}");
    assert_eq!(got[0], 3);
    assert_eq!(u16::from_le_bytes([got[1], got[2]]), 1607);
    server.stop().expect("a clean stop");
    assert_eq!(app.store().secure_closed, 0);
}

fn stalling_options() -> (ServerOptions, CertificateDer<'static>) {
    let (mut options, cert) = tls_options();
    options.config = ServerConfig {
        limits: Limits {
            first_header_timeout: Duration::from_millis(700),
            ..Limits::default()
        },
        ..ServerConfig::default()
    };
    (options, cert)
}

pub fn a_client_that_stalls_its_handshake_is_closed_at_the_deadline<D: Driver>() {
    let (options, cert) = stalling_options();
    let app = MemoryApp::new();
    let server = D::serve(Arc::new(app.clone()), options);
    let hello = client_hello(&cert);
    // Stalled after the first byte (TLS or legacy cannot be told yet), after two
    // (a ClientHello begins), and after the whole ClientHello (the server's
    // flight goes out; the client's Finished never comes).
    for sent in [1, 2, hello.len()] {
        let mut tcp = TcpStream::connect(server.addr).unwrap();
        tcp.write_all(&hello[..sent]).unwrap();
        let (got, took) = answer(tcp);
        assert!(
            took >= Duration::from_millis(500),
            "{sent}: closed after {took:?}"
        );
        assert!(
            took < Duration::from_secs(15),
            "{sent}: closed after {took:?}"
        );
        if sent == hello.len() {
            // The ServerHello and the rest of its flight: records, nothing legacy.
            assert!(protocol_core::frame::begins_like_tls(&got), "{got:?}");
        } else if sent == 2 {
            assert!(got.is_empty(), "{sent}: {got:?}");
        }
    }
    server.stop().expect("a clean stop");
    assert_eq!(app.store().secure_closed, 0);
}

pub fn a_broken_client_hello_gets_an_alert_and_the_close<D: Driver>() {
    let (options, _) = tls_options();
    let app = MemoryApp::new();
    let server = D::serve(Arc::new(app.clone()), options);
    let mut tcp = TcpStream::connect(server.addr).unwrap();
    // A handshake record whose message is no ClientHello.
    tcp.write_all(&[0x16, 0x03, 0x01, 0x00, 0x04, 0x0f, 0x00, 0x00, 0x00])
        .unwrap();
    let (got, took) = answer(tcp);
    // An alert record (content type 21), well before any deadline.
    assert_eq!(got.first(), Some(&0x15), "{got:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    // The port still serves.
    let (outcome, ..) = upload::<D>(server.addr, 4, Duration::from_secs(30)).unwrap();
    assert_eq!(outcome, Outcome::Verified);
    server.stop().expect("a clean stop");
}

pub fn behind_a_balancer_the_client_hello_follows_the_proxy_header<D: Driver>() {
    let (mut options, cert) = tls_options();
    options.proxy_from = "127.0.0.1".parse().unwrap();
    let app = MemoryApp::new();
    let server = D::serve(Arc::new(app.clone()), options);
    let client: SocketAddr = "203.0.113.7:5000".parse().unwrap();
    let mut tls = client_connection(&cert);
    // One write: the ClientHello arrives with the header, in the bytes the PROXY
    // preface reads past it.
    let mut first = transport_interface::proxy::encode(client, server.addr);
    while tls.wants_write() {
        tls.write_tls(&mut first).unwrap();
    }
    let mut tcp = TcpStream::connect(server.addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    tcp.write_all(&first).unwrap();
    while tls.is_handshaking() {
        tls.complete_io(&mut tcp).unwrap();
    }
    let binding = session_binding(&tls).unwrap();
    assert!(Secure { tls, tcp, binding }.close());
    secure_closed(&app, 1);
    server.stop().expect("a clean stop");
}
