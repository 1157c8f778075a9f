//! The blocking TLS client: connect, finish the TLS 1.3 handshake against a pinned
//! (or a first-seen) server certificate, and hand back a stream that reads and
//! writes plaintext, with the session's binding and the server's fingerprint.
//!
//! It tells a legacy server apart from a TLS server that failed: a TLS server's first
//! bytes are a TLS record (handshake or alert); a server of the legacy protocol
//! answers a ClientHello with a legacy response (a 1607, whose first byte is the
//! protocol version, 3) or closes. Which of the two it was decides whether a client
//! that has pinned nothing for this server may speak the legacy protocol instead;
//! a client that has pinned it never may, and treats [`TlsConnectError::NotTls`] as a
//! failure like any other.

use std::io::{self, Read};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use protocol_core::secure::SessionBinding;
use rustls::pki_types::ServerName;
use rustls::{CertificateError, ClientConnection, StreamOwned};
use transport_interface::tls::client::PinnedConfig;
use transport_interface::tls::{session_binding, Fingerprint};
use transport_interface::ClientOptions;

/// A TLS connection to the server: `Read` and `Write` carry the plaintext.
pub type TlsStream = StreamOwned<ClientConnection, TcpStream>;

/// A finished TLS handshake with a server that showed the expected certificate (or,
/// when none was expected, the certificate it showed).
#[derive(Debug)]
pub struct SecureConnection {
    /// The stream, its socket's read and write timeouts set to
    /// [`ClientOptions::response_timeout`].
    pub stream: TlsStream,
    /// What the client signs to sign in on this session.
    pub binding: SessionBinding,
    /// The fingerprint of the certificate the server showed.
    pub fingerprint: Fingerprint,
}

/// Why no TLS session was established.
#[derive(Debug, thiserror::Error)]
pub enum TlsConnectError {
    /// The server answered the ClientHello with bytes that are not TLS, or closed the
    /// connection before sending any: it speaks only the legacy protocol.
    #[error("the server does not speak TLS (it answered in another protocol, or closed)")]
    NotTls,
    /// The server showed a certificate other than the expected one. The handshake
    /// stopped there: the client sent nothing but its ClientHello and an alert.
    #[error("the server's identity changed: expected {expected}, it showed {seen}")]
    IdentityChanged {
        /// The fingerprint the client expected.
        expected: Fingerprint,
        /// The fingerprint of the certificate the server showed.
        seen: Fingerprint,
    },
    /// The server showed a certificate (the expected one, or any on first use) but
    /// did not sign the handshake with its key: whoever answered holds a copy of the
    /// certificate, not the server's key.
    #[error("the server showed the certificate {seen} but does not hold its key")]
    KeyNotHeld {
        /// The fingerprint of the certificate it showed.
        seen: Fingerprint,
    },
    /// No connection, or no answer, within [`ClientOptions::response_timeout`].
    #[error("no answer within {} s", .0.as_secs_f64())]
    Timeout(Duration),
    /// The address does not resolve, or nothing accepts connections there.
    #[error("cannot connect: {0}")]
    Unreachable(#[source] io::Error),
    /// The server speaks TLS but the handshake failed (no algorithm in common, an
    /// alert from the server, a malformed message).
    #[error("the TLS handshake failed: {0}")]
    Tls(#[source] rustls::Error),
    /// The connection broke during the handshake, after the server had answered in TLS.
    #[error("the connection failed during the TLS handshake: {0}")]
    Io(#[source] io::Error),
}

/// Connects to `server` (`host:port`) within [`ClientOptions::response_timeout`] and
/// finishes a TLS 1.3 handshake that accepts only `expected`, or any certificate
/// when `expected` is `None` (the caller pins [`SecureConnection::fingerprint`]).
///
/// Every wait (the connection, each read and write of the handshake, and the
/// handshake as a whole) is bounded by the timeout.
pub fn connect_tls(
    server: &str,
    expected: Option<Fingerprint>,
    options: &ClientOptions,
) -> Result<SecureConnection, TlsConnectError> {
    let timeout = options.response_timeout.max(Duration::from_millis(1));
    let socket = connect(server, timeout)?;
    let host = host_of(server);
    handshake_tls(socket, host, expected, timeout)
}

/// Finishes a TLS 1.3 handshake on a connected socket, as [`connect_tls`] does;
/// `host` is sent as the server name when it is a DNS name.
pub fn handshake_tls(
    mut socket: TcpStream,
    host: &str,
    expected: Option<Fingerprint>,
    timeout: Duration,
) -> Result<SecureConnection, TlsConnectError> {
    let timeout = timeout.max(Duration::from_millis(1));
    let pinned = PinnedConfig::new(expected).map_err(TlsConnectError::Tls)?;
    let name = match ServerName::try_from(host.to_string()) {
        Ok(name) => name,
        // Not a name TLS can carry: the certificate is pinned, not matched against a
        // name, so the address serves (and no name is sent).
        Err(_) => ServerName::IpAddress(socket.peer_addr().map_err(io_error)?.ip().into()),
    };
    let mut conn = ClientConnection::new(pinned.config(), name).map_err(TlsConnectError::Tls)?;
    socket.set_nodelay(true).map_err(io_error)?;
    socket.set_write_timeout(Some(timeout)).map_err(io_error)?;
    let deadline = Instant::now() + timeout;
    let mut answered = Answered::Nothing;
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        while conn.wants_write() {
            if let Err(e) = conn.write_tls(&mut socket) {
                return Err(broken(e, answered, timeout));
            }
        }
        if !conn.is_handshaking() {
            break;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(TlsConnectError::Timeout(timeout));
        }
        socket.set_read_timeout(Some(left)).map_err(io_error)?;
        let n = match socket.read(&mut buf) {
            Ok(0) => {
                return Err(broken(
                    io::ErrorKind::UnexpectedEof.into(),
                    answered,
                    timeout,
                ))
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(broken(e, answered, timeout)),
        };
        if answered == Answered::Nothing {
            answered = if is_tls_record_start(buf[0]) {
                Answered::Tls
            } else {
                return Err(TlsConnectError::NotTls);
            };
        }
        let mut rest = &buf[..n];
        while !rest.is_empty() {
            if let Err(e) = conn.read_tls(&mut rest) {
                return Err(TlsConnectError::Io(e));
            }
            if let Err(e) = conn.process_new_packets() {
                // The alert rustls queued tells the server why; best effort.
                let _ = conn.write_tls(&mut socket);
                return Err(match (pinned.identity_changed(), pinned.seen(), e) {
                    (Some((expected, seen)), _, _) => {
                        TlsConnectError::IdentityChanged { expected, seen }
                    }
                    // The certificate passed; only its signature over the handshake
                    // can have been refused as bad.
                    (
                        None,
                        Some(seen),
                        rustls::Error::InvalidCertificate(CertificateError::BadSignature),
                    ) => TlsConnectError::KeyNotHeld { seen },
                    (_, _, e) => TlsConnectError::Tls(e),
                });
            }
        }
    }
    let binding =
        session_binding(&conn).ok_or(TlsConnectError::Tls(rustls::Error::HandshakeNotComplete))?;
    let fingerprint = conn
        .peer_certificates()
        .and_then(|certs| certs.first())
        .map(|cert| Fingerprint::of_certificate(cert.as_ref()))
        .ok_or(TlsConnectError::Tls(rustls::Error::NoCertificatesPresented))?;
    // From here on each read waits as long as each answer may take.
    socket.set_read_timeout(Some(timeout)).map_err(io_error)?;
    Ok(SecureConnection {
        stream: StreamOwned::new(conn, socket),
        binding,
        fingerprint,
    })
}

/// What the server has sent so far.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Answered {
    Nothing,
    Tls,
}

/// The first byte of a TLS record a server sends first: a handshake (its
/// ServerHello) or an alert (it refuses). A legacy response starts with the
/// protocol version (3), never one of these.
fn is_tls_record_start(byte: u8) -> bool {
    const ALERT: u8 = 21;
    const HANDSHAKE: u8 = 22;
    byte == HANDSHAKE || byte == ALERT
}

/// A read or write of the handshake failed: before the server sent anything, a close
/// or a reset is how a legacy server refuses a ClientHello it cannot parse.
fn broken(e: io::Error, answered: Answered, timeout: Duration) -> TlsConnectError {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => TlsConnectError::Timeout(timeout),
        io::ErrorKind::UnexpectedEof
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe
            if answered == Answered::Nothing =>
        {
            TlsConnectError::NotTls
        }
        _ => TlsConnectError::Io(e),
    }
}

fn io_error(e: io::Error) -> TlsConnectError {
    TlsConnectError::Io(e)
}

/// Connects to the first of the server's addresses that accepts, each tried within
/// `timeout`.
fn connect(server: &str, timeout: Duration) -> Result<TcpStream, TlsConnectError> {
    let addrs: Vec<SocketAddr> = server
        .to_socket_addrs()
        .map_err(TlsConnectError::Unreachable)?
        .collect();
    let mut last = io::Error::new(
        io::ErrorKind::NotFound,
        format!("{server} resolves to no address"),
    );
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(socket) => return Ok(socket),
            Err(e) => last = e,
        }
    }
    Err(match last.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => TlsConnectError::Timeout(timeout),
        _ => TlsConnectError::Unreachable(last),
    })
}

/// The host part of `host:port` (an IPv6 address without its brackets).
fn host_of(server: &str) -> &str {
    let host = server.rsplit_once(':').map_or(server, |(host, _)| host);
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

impl SecureConnection {
    /// Sends TLS's close_notify and flushes it: the server then knows the session
    /// ended on purpose.
    pub fn close(mut self) -> io::Result<()> {
        self.stream.conn.send_close_notify();
        while self.stream.conn.wants_write() {
            self.stream.conn.write_tls(&mut self.stream.sock)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_taken_from_host_port() {
        assert_eq!(host_of("example.org:1256"), "example.org");
        assert_eq!(host_of("127.0.0.1:1"), "127.0.0.1");
        assert_eq!(host_of("[::1]:1256"), "::1");
    }

    #[test]
    fn legacy_answers_do_not_look_like_tls() {
        // A 1607 starts with the version byte, 3.
        assert!(!is_tls_record_start(3));
        assert!(is_tls_record_start(22));
        assert!(is_tls_record_start(21));
    }
}
