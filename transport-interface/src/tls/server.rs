//! The server's side of TLS: its configuration ([`server_config`],
//! [`server_config_from_pem`]) and [`ServerTls`], the one sans-IO step every
//! server transport puts between its socket and the protocol's connection.
//!
//! A transport that serves TLS keeps a [`ServerTls`] per connection and, in the
//! loop it already runs:
//!
//! 1. reads the socket into [`ServerTls::read_buffer`] (the protocol's input
//!    buffer itself unless the connection turned out to be TLS);
//! 2. calls [`ServerTls::received`]: while fewer than two bytes have arrived it
//!    waits; then it tells a ClientHello from a legacy request header
//!    ([`begins_like_tls`]); on TLS, it decrypts into the protocol's input, and
//!    when the handshake finishes it calls
//!    [`ServerConnection::enter_secure`](protocol_core::ServerConnection::enter_secure)
//!    with the session's binding before any plaintext reaches the protocol;
//! 3. passes what `poll_transmit` gave through [`ServerTls::seal`] before writing
//!    (handshake records and alerts rustls queued come out there too);
//! 4. at the end, [`ServerTls::close`] adds the close_notify.
//!
//! While the handshake runs the protocol sees no input, so the connection's
//! first-header deadline ([`Limits::first_header_timeout`](
//! protocol_core::Limits::first_header_timeout)) bounds the sniffing and the
//! handshake together: a peer that stalls either is closed by the transport's
//! loop as a silent legacy peer is. Legacy connections (no TLS configured, or
//! first bytes that are not a ClientHello) pass through untouched.

use std::io::{self, BufRead, Write};
use std::sync::Arc;

use bytes::{Buf, BufMut, BytesMut};
use protocol_core::frame::begins_like_tls;
use protocol_core::rand_core::CryptoRngCore;
use protocol_core::secure::SessionBinding;
use protocol_core::ServerConnection;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::{provider, session_binding};

/// A certificate chain and key a TLS configuration could not be built from.
#[derive(Debug, thiserror::Error)]
pub enum ServerConfigError {
    /// The chain holds no certificate.
    #[error("no certificate: expected PEM blocks `-----BEGIN CERTIFICATE-----`")]
    NoCertificate,
    /// The certificate file is not PEM.
    #[error("the certificate is not readable PEM: {0}")]
    CertificatePem(rustls::pki_types::pem::Error),
    /// No private key in the key file.
    #[error("no private key: expected one PEM block of PKCS#8, SEC1 or PKCS#1 ({0})")]
    KeyPem(rustls::pki_types::pem::Error),
    /// The key is not the certificate's.
    #[error("the private key does not belong to the certificate (the first of the chain)")]
    KeyMismatch,
    /// rustls refused the key or the chain (an unsupported key type, say).
    #[error("the key or the certificate is not usable: {0}")]
    Rejected(rustls::Error),
}

/// A server configuration: TLS 1.3 only, the project's [`provider`], no client
/// certificates, `chain` (end-entity first) and its `key`.
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<rustls::ServerConfig>, ServerConfigError> {
    if chain.is_empty() {
        return Err(ServerConfigError::NoCertificate);
    }
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(ServerConfigError::Rejected)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| match e {
            rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
                ServerConfigError::KeyMismatch
            }
            e => ServerConfigError::Rejected(e),
        })?;
    Ok(Arc::new(config))
}

/// [`server_config`] from PEM: the chain's certificates (end-entity first) and
/// one private key.
pub fn server_config_from_pem(
    chain_pem: &[u8],
    key_pem: &[u8],
) -> Result<Arc<rustls::ServerConfig>, ServerConfigError> {
    let chain = CertificateDer::pem_slice_iter(chain_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(ServerConfigError::CertificatePem)?;
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(ServerConfigError::KeyPem)?;
    server_config(chain, key)
}

/// Why a TLS connection could not go on: logged by the transport, which then
/// closes the connection as at the end of the stream.
#[derive(Debug, thiserror::Error)]
pub enum TlsFailure {
    /// The peer broke TLS (a bad handshake, a record that does not decrypt); the
    /// alert rustls queued comes out of the next [`ServerTls::seal`].
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
    /// rustls would not take more input (a record beyond its limits).
    #[error("TLS input: {0}")]
    Input(#[from] io::Error),
}

/// What a connection's bytes just did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// The connection goes on.
    Open,
    /// The peer ended the TLS session (close_notify): the end of its stream,
    /// once the plaintext before it is read.
    Ended,
}

/// What a server connection's bytes go through: nothing (legacy), or a TLS
/// session beside the protocol. See the [module](self) for the order of calls.
#[derive(Debug)]
pub struct ServerTls {
    state: State,
}

#[derive(Debug)]
enum State {
    /// TLS is served; fewer than two bytes have arrived (they wait in the input).
    Sniffing(Arc<rustls::ServerConfig>),
    /// Legacy: bytes pass through.
    Plain,
    Tls(Box<Session>),
}

#[derive(Debug)]
struct Session {
    tls: rustls::ServerConnection,
    /// Ciphertext read and not yet given to rustls.
    cipher: BytesMut,
    /// The handshake finished and the protocol was told (`enter_secure`).
    entered: bool,
    /// rustls failed: nothing but its alert goes out any more.
    failed: bool,
    closing: bool,
}

impl ServerTls {
    /// A connection's wire: TLS is told apart from legacy requests when `config`
    /// is given, else everything is legacy.
    pub fn new(config: Option<&Arc<rustls::ServerConfig>>) -> ServerTls {
        let state = match config {
            Some(c) => State::Sniffing(c.clone()),
            None => State::Plain,
        };
        ServerTls { state }
    }

    /// Whether the connection turned out to be TLS.
    pub fn is_tls(&self) -> bool {
        matches!(self.state, State::Tls(_))
    }

    /// Whether the handshake has finished (and the protocol entered secure mode).
    pub fn is_secure(&self) -> bool {
        matches!(&self.state, State::Tls(s) if s.entered)
    }

    /// The binding given to `enter_secure`, once the handshake has finished.
    pub fn binding(&self) -> Option<SessionBinding> {
        match &self.state {
            State::Tls(s) if s.entered => session_binding(&s.tls),
            _ => None,
        }
    }

    /// Where the transport appends what it reads from the socket: `input` (the
    /// protocol's buffer) unless the connection is TLS.
    pub fn read_buffer<'a>(&'a mut self, input: &'a mut BytesMut) -> &'a mut BytesMut {
        match &mut self.state {
            State::Tls(s) => &mut s.cipher,
            _ => input,
        }
    }

    /// Takes what the last read appended to [`read_buffer`](Self::read_buffer):
    /// decides TLS or legacy once two bytes are in, decrypts ciphertext into
    /// `input`, and calls `conn.enter_secure` as the handshake finishes, before
    /// the session's first plaintext is appended.
    pub fn received<R: CryptoRngCore>(
        &mut self,
        input: &mut BytesMut,
        conn: &mut ServerConnection<R>,
    ) -> Result<Received, TlsFailure> {
        if let State::Sniffing(config) = &self.state {
            if input.len() < 2 {
                return Ok(Received::Open);
            }
            if !begins_like_tls(input) {
                self.state = State::Plain;
                return Ok(Received::Open);
            }
            let mut tls = rustls::ServerConnection::new(config.clone())?;
            // The transport writes whatever `seal` gives at once: rustls need not
            // hold back plaintext for want of room.
            tls.set_buffer_limit(None);
            self.state = State::Tls(Box::new(Session {
                tls,
                cipher: input.split(),
                entered: false,
                failed: false,
                closing: false,
            }));
        }
        match &mut self.state {
            State::Tls(s) => s.decrypt(input, conn),
            _ => Ok(Received::Open),
        }
    }

    /// Replaces the protocol's output in `out` with the records to write, with
    /// whatever rustls has queued besides (handshake messages, tickets, alerts).
    /// Legacy output is left as it is. Before the handshake finishes the
    /// protocol's output is dropped: it can only be a legacy refusal (a 1607 at
    /// the first-header deadline), which a TLS client could not read.
    pub fn seal(&mut self, out: &mut BytesMut) {
        let State::Tls(s) = &mut self.state else {
            return;
        };
        let plain = out.split();
        if s.entered && !s.failed && !s.closing && !plain.is_empty() {
            // Infallible with no buffer limit: rustls takes it all.
            let _ = s.tls.writer().write_all(&plain);
        }
        let mut writer = out.writer();
        while s.tls.wants_write() {
            match s.tls.write_tls(&mut writer) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }

    /// Appends, after the protocol's last output (`out`, sealed here), the
    /// close_notify of a session whose handshake finished. Nothing for legacy.
    pub fn close(&mut self, out: &mut BytesMut) {
        if let State::Tls(s) = &mut self.state {
            if s.entered && !s.failed && !s.closing {
                // Seal the last output first: after close_notify rustls sends no data.
                let plain = out.split();
                let _ = s.tls.writer().write_all(&plain);
                s.tls.send_close_notify();
                s.closing = true;
            }
        }
        self.seal(out);
    }
}

impl Session {
    fn decrypt<R: CryptoRngCore>(
        &mut self,
        input: &mut BytesMut,
        conn: &mut ServerConnection<R>,
    ) -> Result<Received, TlsFailure> {
        while !self.cipher.is_empty() && !self.failed {
            let n = self.tls.read_tls(&mut &self.cipher[..])?;
            if n == 0 {
                // After the peer's close_notify rustls reads nothing more.
                self.cipher.clear();
                break;
            }
            self.cipher.advance(n);
            let state = self.tls.process_new_packets().inspect_err(|_| {
                self.failed = true;
            })?;
            if !self.entered && !self.tls.is_handshaking() {
                if let Some(binding) = session_binding(&self.tls) {
                    conn.enter_secure(binding);
                    self.entered = true;
                }
            }
            self.read_plaintext(input, state.plaintext_bytes_to_read())?;
            if state.peer_has_closed() {
                return Ok(Received::Ended);
            }
        }
        Ok(Received::Open)
    }

    /// Appends the plaintext rustls holds to `input`: one copy, straight from
    /// rustls' buffer (reading through `Read` needed zeroed room in `input` first,
    /// a memset of every byte received).
    fn read_plaintext(&mut self, input: &mut BytesMut, mut want: usize) -> io::Result<()> {
        input.reserve(want);
        while want > 0 {
            let mut reader = self.tls.reader();
            let chunk = match reader.fill_buf() {
                Ok(chunk) => chunk,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            };
            let got = chunk.len();
            if got == 0 {
                break;
            }
            input.extend_from_slice(chunk);
            reader.consume(got);
            want -= got.min(want);
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "server_tests.rs"]
mod tests;
