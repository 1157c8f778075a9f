//! [`ServerTls`] between a rustls client and a real protocol connection, in
//! memory: the handshake, the binding both ends export, plaintext both ways,
//! close_notify; legacy bytes passing through; what a bad identity gives.

use std::io::Read;
use std::time::Instant;

use bytes::BytesMut;
use protocol_core::ServerConfig;
use rand_core::OsRng;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::ClientConnection;

use super::*;
use crate::Conn;

struct Identity {
    cert_pem: String,
    key_pem: String,
    cert: CertificateDer<'static>,
}

fn identity() -> Identity {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    Identity {
        cert_pem: made.cert.pem(),
        key_pem: made.signing_key.serialize_pem(),
        cert: made.cert.der().clone(),
    }
}

fn client(cert: &CertificateDer<'static>) -> ClientConnection {
    let config =
        crate::tls::client::PinnedConfig::new(Some(crate::tls::Fingerprint::of_certificate(cert)))
            .unwrap()
            .config();
    ClientConnection::new(config, ServerName::try_from("localhost").unwrap()).unwrap()
}

/// Both ends and the protocol connection, bytes moved by hand.
struct Pair {
    client: ClientConnection,
    server: ServerTls,
    conn: Conn,
    input: BytesMut,
}

impl Pair {
    fn new(id: &Identity) -> Pair {
        let config = server_config_from_pem(id.cert_pem.as_bytes(), id.key_pem.as_bytes()).unwrap();
        Pair {
            client: client(&id.cert),
            server: ServerTls::new(Some(&config)),
            conn: Conn::new(ServerConfig::default(), OsRng, Instant::now()),
            input: BytesMut::new(),
        }
    }

    /// Client to server: what the client has to send.
    fn client_sends(&mut self) -> Received {
        let mut wire = Vec::new();
        while self.client.wants_write() {
            self.client.write_tls(&mut wire).unwrap();
        }
        self.server
            .read_buffer(&mut self.input)
            .extend_from_slice(&wire);
        self.server
            .received(&mut self.input, &mut self.conn)
            .unwrap()
    }

    /// Server to client: `plain` sealed (with whatever rustls queued), and the
    /// plaintext the client then reads.
    fn server_sends(&mut self, plain: &[u8], close: bool) -> Vec<u8> {
        let mut out = BytesMut::from(plain);
        if close {
            self.server.close(&mut out);
        } else {
            self.server.seal(&mut out);
        }
        let mut wire = &out[..];
        while !wire.is_empty() {
            self.client.read_tls(&mut wire).unwrap();
            self.client.process_new_packets().unwrap();
        }
        let mut got = Vec::new();
        let _ = self.client.reader().read_to_end(&mut got);
        got
    }
}

#[test]
fn the_handshake_enters_secure_mode_with_the_binding_both_ends_export() {
    let id = identity();
    let mut p = Pair::new(&id);
    assert_eq!(p.client_sends(), Received::Open);
    assert!(p.server.is_tls() && !p.server.is_secure());
    assert!(!p.conn.is_secure());
    p.server_sends(b"", false);
    // The client's Finished, with its first plaintext in the same flight: the
    // protocol is in secure mode before that plaintext reaches its input.
    p.client.writer().write_all(b"first words").unwrap();
    assert_eq!(p.client_sends(), Received::Open);
    assert!(p.conn.is_secure());
    assert!(p.server.is_secure());
    let client_binding = session_binding(&p.client).unwrap();
    assert_eq!(p.server.binding(), Some(client_binding));
    assert_eq!(&p.input[..], b"first words");
    p.input.clear();
    // The protocol's output, sealed, reads as plaintext at the client.
    assert_eq!(p.server_sends(b"an answer", false), b"an answer");
    // The client's close_notify ends the stream; the server's ends the session.
    p.client.send_close_notify();
    assert_eq!(p.client_sends(), Received::Ended);
    assert_eq!(p.server_sends(b"last", true), b"last");
    let mut rest = [0u8; 8];
    assert_eq!(
        p.client.reader().read(&mut rest).unwrap(),
        0,
        "close_notify"
    );
}

#[test]
fn legacy_bytes_pass_through_untouched() {
    let id = identity();
    let config = server_config_from_pem(id.cert_pem.as_bytes(), id.key_pem.as_bytes()).unwrap();
    let mut conn = Conn::new(ServerConfig::default(), OsRng, Instant::now());
    for tls_served in [true, false] {
        let mut wire = ServerTls::new(tls_served.then_some(&config));
        let mut input = BytesMut::new();
        // One byte of 0x16: TLS or legacy cannot be told yet; it waits in the input.
        wire.read_buffer(&mut input).extend_from_slice(&[0x16]);
        assert_eq!(
            wire.received(&mut input, &mut conn).unwrap(),
            Received::Open
        );
        assert_eq!(&input[..], &[0x16]);
        wire.read_buffer(&mut input)
            .extend_from_slice(&[0x04, 1, 2]);
        assert_eq!(
            wire.received(&mut input, &mut conn).unwrap(),
            Received::Open
        );
        assert_eq!(&input[..], &[0x16, 0x04, 1, 2]);
        assert!(!wire.is_tls());
        let mut out = BytesMut::from(&b"legacy answer"[..]);
        wire.seal(&mut out);
        wire.close(&mut out);
        assert_eq!(&out[..], b"legacy answer");
    }
    assert!(!conn.is_secure());
}

#[test]
fn a_broken_handshake_fails_with_an_alert_to_send() {
    let id = identity();
    let config = server_config_from_pem(id.cert_pem.as_bytes(), id.key_pem.as_bytes()).unwrap();
    let mut conn = Conn::new(ServerConfig::default(), OsRng, Instant::now());
    let mut wire = ServerTls::new(Some(&config));
    let mut input = BytesMut::from(&[0x16, 0x03, 0x01, 0x00, 0x04, 0x0f, 0, 0, 0][..]);
    assert!(wire.received(&mut input, &mut conn).is_err());
    assert!(input.is_empty() && !conn.is_secure());
    let mut out = BytesMut::from(&b"1607 from the core"[..]);
    wire.close(&mut out);
    // An alert record (type 21), and nothing of the core's plaintext.
    assert_eq!(out.first(), Some(&0x15));
    assert!(!out.windows(4).any(|w| w == b"1607"));
}

#[test]
fn a_bad_identity_is_refused_clearly() {
    let a = identity();
    let b = identity();
    let mismatch = server_config_from_pem(a.cert_pem.as_bytes(), b.key_pem.as_bytes());
    assert!(
        matches!(mismatch, Err(ServerConfigError::KeyMismatch)),
        "{mismatch:?}"
    );
    let no_key = server_config_from_pem(a.cert_pem.as_bytes(), a.cert_pem.as_bytes());
    assert!(
        matches!(no_key, Err(ServerConfigError::KeyPem(_))),
        "{no_key:?}"
    );
    let no_cert = server_config_from_pem(b"", a.key_pem.as_bytes());
    assert!(
        matches!(no_cert, Err(ServerConfigError::NoCertificate)),
        "{no_cert:?}"
    );
    let err = server_config_from_pem(b"", a.key_pem.as_bytes()).unwrap_err();
    assert!(err.to_string().contains("BEGIN CERTIFICATE"), "{err}");
}
