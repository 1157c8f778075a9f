//! The client's pinned configuration against a real rustls server, in memory: which
//! certificates it accepts, what it records, and that a copy of the pinned
//! certificate without its key does not pass.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ClientConnection, ServerConfig, ServerConnection};
use transport_interface::tls::client::PinnedConfig;
use transport_interface::tls::{provider, session_binding, Fingerprint};

/// A self-signed certificate and its key, as the servers make them.
struct Identity {
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
}

impl Identity {
    fn new() -> Identity {
        let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        Identity {
            cert: made.cert.der().clone(),
            key: PrivatePkcs8KeyDer::from(made.signing_key.serialize_der()).into(),
        }
    }

    fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of_certificate(self.cert.as_ref())
    }
}

/// Always shows the same certificate with the same key, matching or not.
#[derive(Debug)]
struct Shows(Arc<CertifiedKey>);

impl ResolvesServerCert for Shows {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// A TLS 1.3 server that shows `cert` and signs with `key`, which need not match.
fn server(cert: &CertificateDer<'static>, key: &PrivateKeyDer<'static>) -> ServerConnection {
    let provider = provider();
    let signing = provider
        .key_provider
        .load_private_key(key.clone_key())
        .unwrap();
    let shown = Arc::new(CertifiedKey::new(vec![cert.clone()], signing));
    let config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(Shows(shown)));
    ServerConnection::new(Arc::new(config)).unwrap()
}

fn client(pinned: &PinnedConfig) -> ClientConnection {
    let name = ServerName::try_from("localhost").unwrap();
    ClientConnection::new(pinned.config(), name).unwrap()
}

/// Moves bytes both ways until both ends finished the handshake or one failed; the
/// client's error, if it failed (the server's otherwise).
fn handshake(client: &mut ClientConnection, server: &mut ServerConnection) -> Result<(), String> {
    for _ in 0..50 {
        let mut to_server = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut to_server).unwrap();
        }
        let mut rest = &to_server[..];
        while !rest.is_empty() {
            server.read_tls(&mut rest).unwrap();
        }
        let server_result = server.process_new_packets().map(|_| ());
        let mut to_client = Vec::new();
        while server.wants_write() {
            server.write_tls(&mut to_client).unwrap();
        }
        let mut rest = &to_client[..];
        while !rest.is_empty() {
            client.read_tls(&mut rest).unwrap();
        }
        client
            .process_new_packets()
            .map_err(|e| format!("client: {e}"))?;
        server_result.map_err(|e| format!("server: {e}"))?;
        if !client.is_handshaking() && !server.is_handshaking() {
            return Ok(());
        }
    }
    Err("the handshake did not finish".to_string())
}

#[test]
fn first_use_accepts_any_server_and_records_its_fingerprint() {
    let id = Identity::new();
    let pinned = PinnedConfig::new(None).unwrap();
    let mut c = client(&pinned);
    let mut s = server(&id.cert, &id.key);
    handshake(&mut c, &mut s).unwrap();
    assert_eq!(pinned.seen(), Some(id.fingerprint()));
    assert_eq!(pinned.identity_changed(), None);
    // Both ends export the same binding, which the client signs to sign in.
    assert_eq!(
        session_binding(&c).unwrap().as_bytes(),
        session_binding(&s).unwrap().as_bytes()
    );
    assert_eq!(c.protocol_version(), Some(rustls::ProtocolVersion::TLSv1_3));
}

#[test]
fn a_pinned_server_is_accepted_and_another_refused() {
    let id = Identity::new();
    let other = Identity::new();
    let pinned = PinnedConfig::new(Some(id.fingerprint())).unwrap();
    handshake(&mut client(&pinned), &mut server(&id.cert, &id.key)).unwrap();
    assert_eq!(pinned.seen(), Some(id.fingerprint()));

    let pinned = PinnedConfig::new(Some(id.fingerprint())).unwrap();
    let mut c = client(&pinned);
    let mut s = server(&other.cert, &other.key);
    let failed = handshake(&mut c, &mut s).unwrap_err();
    assert!(failed.starts_with("client:"), "{failed}");
    assert_eq!(
        pinned.identity_changed(),
        Some((id.fingerprint(), other.fingerprint()))
    );
    // The client never finished: nothing of its own can have been sent.
    assert!(c.is_handshaking());
    assert!(s.is_handshaking());
}

#[test]
fn a_copy_of_the_pinned_certificate_without_its_key_is_refused() {
    let id = Identity::new();
    let impostor = Identity::new();
    // The impostor shows the pinned certificate (public, anyone may hold a copy) but
    // can sign only with its own key.
    let pinned = PinnedConfig::new(Some(id.fingerprint())).unwrap();
    let mut c = client(&pinned);
    let mut s = server(&id.cert, &impostor.key);
    let failed = handshake(&mut c, &mut s).unwrap_err();
    assert!(failed.starts_with("client:"), "{failed}");
    // The certificate matched; the signature did not.
    assert_eq!(pinned.seen(), Some(id.fingerprint()));
    assert_eq!(pinned.identity_changed(), None);
    assert!(c.is_handshaking());

    // Nor does it pass on first use: a server has to hold its certificate's key.
    let unpinned = PinnedConfig::new(None).unwrap();
    let failed = handshake(&mut client(&unpinned), &mut server(&id.cert, &impostor.key));
    assert!(failed.unwrap_err().starts_with("client:"));
}

#[test]
fn each_connection_shows_its_certificate_again() {
    // No resumption: a second connection with the same configuration is verified
    // anew (a resumed session would show no certificate to compare).
    let id = Identity::new();
    let pinned = PinnedConfig::new(Some(id.fingerprint())).unwrap();
    let config = Arc::new(
        ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![id.cert.clone()], id.key.clone_key())
            .unwrap(),
    );
    for _ in 0..2 {
        let mut c = client(&pinned);
        let mut s = ServerConnection::new(config.clone()).unwrap();
        handshake(&mut c, &mut s).unwrap();
        assert_eq!(c.handshake_kind(), Some(rustls::HandshakeKind::Full));
        // Hand the client the tickets the server issues after the handshake, which
        // a client that resumes would use on the next connection.
        let mut tickets = Vec::new();
        while s.wants_write() {
            s.write_tls(&mut tickets).unwrap();
        }
        let mut rest = &tickets[..];
        while !rest.is_empty() {
            c.read_tls(&mut rest).unwrap();
        }
        c.process_new_packets().unwrap();
    }
}
