//! The policy over real sockets: rustls servers with certificates from rcgen, and
//! listeners that answer like a legacy server.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::thread::JoinHandle;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};

use super::*;
use crate::progress::Verbosity;

const TIMEOUT: Duration = Duration::from_secs(10);

fn quiet() -> Out {
    Out {
        verbosity: Verbosity::Quiet,
        json: false,
    }
}

/// A server's certificate and key, as rcgen makes them.
#[derive(Clone)]
struct Identity {
    cert: CertificateDer<'static>,
    key: Arc<PrivateKeyDer<'static>>,
}

impl Identity {
    fn new() -> Identity {
        let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        Identity {
            cert: made.cert.der().clone(),
            key: Arc::new(PrivatePkcs8KeyDer::from(made.signing_key.serialize_der()).into()),
        }
    }

    fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of_certificate(self.cert.as_ref())
    }

    fn config(&self) -> Arc<ServerConfig> {
        Arc::new(
            ServerConfig::builder_with_provider(Arc::new(
                rustls::crypto::aws_lc_rs::default_provider(),
            ))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![self.cert.clone()], self.key.clone_key())
            .unwrap(),
        )
    }
}

/// Shows one certificate and signs with one key, whether they match or not.
#[derive(Debug)]
struct Shows(Arc<rustls::sign::CertifiedKey>);

impl rustls::server::ResolvesServerCert for Shows {
    fn resolve(
        &self,
        _hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// A server that shows `shown`'s certificate but signs with `signer`'s key: a copy
/// of the certificate without its key.
fn impostor_config(shown: &Identity, signer: &Identity) -> Arc<ServerConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let signing = provider
        .key_provider
        .load_private_key(signer.key.clone_key())
        .unwrap();
    let certified = rustls::sign::CertifiedKey::new(vec![shown.cert.clone()], signing);
    Arc::new(
        ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(Shows(Arc::new(certified)))),
    )
}

/// What a server saw of one connection.
#[derive(Debug, PartialEq, Eq)]
enum Saw {
    /// The handshake failed: the client sent no application data.
    NoSession,
    /// A session, and the application data the client sent in it.
    Session(Vec<u8>),
}

/// A TLS server on one address that takes one connection per identity, in order,
/// showing that identity's certificate.
fn tls_server(identities: Vec<Identity>) -> (String, JoinHandle<Vec<Saw>>) {
    tls_server_with(identities.iter().map(Identity::config).collect())
}

/// [`tls_server`] with a configuration per connection.
fn tls_server_with(configs: Vec<Arc<ServerConfig>>) -> (String, JoinHandle<Vec<Saw>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let thread = std::thread::spawn(move || {
        let mut saw = Vec::new();
        for config in configs {
            let (socket, _) = listener.accept().unwrap();
            socket.set_read_timeout(Some(TIMEOUT)).unwrap();
            let conn = ServerConnection::new(config).unwrap();
            let mut tls = StreamOwned::new(conn, socket);
            let mut failed = false;
            while tls.conn.is_handshaking() && !failed {
                failed = tls.conn.complete_io(&mut tls.sock).is_err();
            }
            if failed {
                saw.push(Saw::NoSession);
                continue;
            }
            let mut data = Vec::new();
            let _ = tls.read_to_end(&mut data);
            saw.push(Saw::Session(data));
        }
        saw
    });
    (addr, thread)
}

/// A server of the legacy protocol for one connection: it reads a request header's
/// worth, answers `answer` (a 1607, or nothing) and closes.
fn legacy_server(answer: &'static [u8]) -> (String, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let thread = std::thread::spawn(move || {
        let (mut socket, _) = listener.accept().unwrap();
        let mut header = [0u8; 23];
        let _ = socket.read_exact(&mut header);
        let _ = socket.write_all(answer);
    });
    (addr, thread)
}

/// Version 3, code 1607, no payload.
const GENERAL_ERROR: &[u8] = &[3, 0x47, 0x06, 0, 0, 0, 0];

fn connect(dir: &Path, server: &str, policy: Policy) -> Result<Reached, Failure> {
    secure_connect(dir, server, policy, TIMEOUT, &quiet())
}

fn secure(reached: Result<Reached, Failure>) -> Secure {
    match reached {
        Ok(Reached::Secure(secure)) => *secure,
        other => panic!("expected a secure connection, got {other:?}"),
    }
}

fn failed(reached: Result<Reached, Failure>) -> Failure {
    match reached {
        Err(failure) => failure,
        Ok(other) => panic!("expected a failure, got {other:?}"),
    }
}

/// Sends `data` in the session and ends it.
fn send(secure: Secure, data: &[u8]) {
    let mut connection = secure.connection;
    connection.stream.write_all(data).unwrap();
    connection.stream.flush().unwrap();
    connection.close().unwrap();
}

#[test]
fn first_use_pins_and_the_same_server_is_accepted_again() {
    let dir = tempfile::tempdir().unwrap();
    let id = Identity::new();
    let (server, thread) = tls_server(vec![id.clone(), id.clone()]);

    let first = secure(connect(dir.path(), &server, Policy::default()));
    assert_eq!(first.pinned_by, None);
    assert_eq!(first.connection.fingerprint, id.fingerprint());
    let pin = known_servers::lookup(dir.path(), &server).unwrap().unwrap();
    assert_eq!(pin.fingerprint, id.fingerprint());
    send(first, b"one");

    let second = secure(connect(dir.path(), &server, Policy::default()));
    assert_eq!(
        second.pinned_by,
        Some(PinSource::KnownServers { line: pin.line })
    );
    send(second, b"two");
    assert_eq!(
        thread.join().unwrap(),
        [Saw::Session(b"one".to_vec()), Saw::Session(b"two".to_vec())]
    );
    // Pinned once: the second run added nothing.
    let text = std::fs::read_to_string(known_servers::path(dir.path())).unwrap();
    assert_eq!(text.matches(&server).count(), 1, "{text}");
}

#[test]
fn another_key_on_the_pinned_address_is_refused_before_anything_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let id = Identity::new();
    let impostor = Identity::new();
    let (server, thread) = tls_server(vec![id.clone(), impostor.clone()]);
    send(
        secure(connect(dir.path(), &server, Policy::default())),
        b"mine",
    );
    let line = known_servers::lookup(dir.path(), &server)
        .unwrap()
        .unwrap()
        .line;

    let failure = failed(connect(dir.path(), &server, Policy::default()));
    assert_eq!(failure.exit, Exit::IdentityChanged);
    let shown = failure.to_string();
    assert!(shown.contains("IDENTITY HAS CHANGED"), "{shown}");
    assert!(shown.contains(&id.fingerprint().to_string()), "{shown}");
    assert!(
        shown.contains(&impostor.fingerprint().to_string()),
        "{shown}"
    );
    let file = known_servers::path(dir.path()).display().to_string();
    assert!(
        shown.contains(&format!("remove line {line} of {file}")),
        "{shown}"
    );
    assert_eq!(
        thread.join().unwrap(),
        [Saw::Session(b"mine".to_vec()), Saw::NoSession]
    );
    // The pin stays as it was.
    assert_eq!(
        known_servers::lookup(dir.path(), &server)
            .unwrap()
            .unwrap()
            .fingerprint,
        id.fingerprint()
    );
}

#[test]
fn a_copy_of_the_pinned_certificate_without_its_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let id = Identity::new();
    let impostor = Identity::new();
    let (server, thread) = tls_server_with(vec![id.config(), impostor_config(&id, &impostor)]);
    send(
        secure(connect(dir.path(), &server, Policy::default())),
        b"mine",
    );
    let failure = failed(connect(dir.path(), &server, Policy::default()));
    assert_eq!(failure.exit, Exit::IdentityChanged, "{failure}");
    let shown = failure.to_string();
    assert!(shown.contains("could not sign with its key"), "{shown}");
    assert!(shown.contains(&id.fingerprint().to_string()), "{shown}");
    assert_eq!(
        thread.join().unwrap(),
        [Saw::Session(b"mine".to_vec()), Saw::NoSession]
    );
    // Unpinned, the same impostor is refused too, and not spoken to in legacy.
    let fresh = tempfile::tempdir().unwrap();
    let (server, thread) = tls_server_with(vec![impostor_config(&id, &impostor)]);
    let failure = failed(connect(fresh.path(), &server, Policy::default()));
    assert_eq!(failure.exit, Exit::Unreachable, "{failure}");
    assert_eq!(thread.join().unwrap(), [Saw::NoSession]);
    assert!(!known_servers::path(fresh.path()).exists());
}

#[test]
fn a_pinned_server_that_answers_like_a_legacy_server_is_refused_never_legacy() {
    for answer in [GENERAL_ERROR, b""] {
        let dir = tempfile::tempdir().unwrap();
        let (server, thread) = legacy_server(answer);
        let pinned = Identity::new().fingerprint();
        known_servers::add(dir.path(), &server, pinned).unwrap();
        let failure = failed(connect(dir.path(), &server, Policy::default()));
        assert_eq!(failure.exit, Exit::Unreachable, "{failure}");
        let shown = failure.to_string();
        assert!(shown.contains("does not fall back"), "{shown}");
        assert!(shown.contains(&pinned.to_string()), "{shown}");
        thread.join().unwrap();
    }
    // The same with the pin on the command line.
    let dir = tempfile::tempdir().unwrap();
    let (server, thread) = legacy_server(GENERAL_ERROR);
    let policy = Policy {
        legacy: false,
        fingerprint: Some(Identity::new().fingerprint()),
    };
    let failure = failed(connect(dir.path(), &server, policy));
    assert_eq!(failure.exit, Exit::Unreachable, "{failure}");
    assert!(failure.to_string().contains("--server-fingerprint"));
    thread.join().unwrap();
}

#[test]
fn an_unpinned_legacy_server_gets_the_legacy_protocol_and_nothing_is_pinned() {
    for answer in [GENERAL_ERROR, b""] {
        let dir = tempfile::tempdir().unwrap();
        let (server, thread) = legacy_server(answer);
        let reached = connect(dir.path(), &server, Policy::default());
        assert!(matches!(reached, Ok(Reached::Legacy)), "{reached:?}");
        assert!(!known_servers::path(dir.path()).exists());
        thread.join().unwrap();
    }
}

#[test]
fn a_wrong_fingerprint_on_the_command_line_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let id = Identity::new();
    let given = Identity::new().fingerprint();
    let (server, thread) = tls_server(vec![id.clone()]);
    let policy = Policy {
        legacy: false,
        fingerprint: Some(given),
    };
    let failure = failed(connect(dir.path(), &server, policy));
    assert_eq!(failure.exit, Exit::IdentityChanged);
    let shown = failure.to_string();
    assert!(shown.contains(&given.to_string()), "{shown}");
    assert!(shown.contains(&id.fingerprint().to_string()), "{shown}");
    assert!(shown.contains("--server-fingerprint"), "{shown}");
    assert_eq!(thread.join().unwrap(), [Saw::NoSession]);
    assert!(!known_servers::path(dir.path()).exists());
}

#[test]
fn the_command_line_pin_takes_precedence_over_known_servers() {
    let dir = tempfile::tempdir().unwrap();
    let id = Identity::new();
    let (server, thread) = tls_server(vec![id.clone()]);
    known_servers::add(dir.path(), &server, Identity::new().fingerprint()).unwrap();
    let before = std::fs::read_to_string(known_servers::path(dir.path())).unwrap();
    let policy = Policy {
        legacy: false,
        fingerprint: Some(id.fingerprint()),
    };
    let reached = secure(connect(dir.path(), &server, policy));
    assert_eq!(reached.pinned_by, Some(PinSource::CommandLine));
    send(reached, b"x");
    thread.join().unwrap();
    // Nothing is written: the given pin is the user's, not a first use.
    let after = std::fs::read_to_string(known_servers::path(dir.path())).unwrap();
    assert_eq!(before, after);
}

#[test]
fn legacy_skips_tls_even_for_a_pinned_server() {
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let server: SocketAddr = listener.local_addr().unwrap();
    let server = server.to_string();
    known_servers::add(dir.path(), &server, Identity::new().fingerprint()).unwrap();
    let policy = Policy {
        legacy: true,
        fingerprint: None,
    };
    let reached = connect(dir.path(), &server, policy);
    assert!(matches!(reached, Ok(Reached::Legacy)), "{reached:?}");
    // No connection was made: no ClientHello went out.
    let accepted = listener.accept();
    assert!(
        matches!(&accepted, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "{accepted:?}"
    );
}

#[test]
fn a_damaged_known_servers_stops_the_run() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(known_servers::path(dir.path()), "127.0.0.1:1 SHA256:12\n").unwrap();
    let failure = failed(connect(dir.path(), "127.0.0.1:1", Policy::default()));
    assert_eq!(failure.exit, Exit::Usage);
    assert!(failure.to_string().contains("line 1"), "{failure}");
}

#[test]
fn nothing_listening_is_unreachable() {
    let dir = tempfile::tempdir().unwrap();
    let free = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let failure = failed(connect(dir.path(), &free.to_string(), Policy::default()));
    assert_eq!(failure.exit, Exit::Unreachable);
    assert!(failure.to_string().contains("cannot connect"), "{failure}");
}
