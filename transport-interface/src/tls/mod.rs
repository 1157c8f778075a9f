//! TLS beside the core: what the server's and the client's transports share.
//!
//! rustls' connection objects are sans-IO already (`read_tls`,
//! `process_new_packets`, `reader`/`writer`, `write_tls`); the transports move bytes
//! between the socket, rustls and the protocol's state machine, and protocol-core
//! never learns about TLS beyond the [`SessionBinding`] a finished handshake exports.
//!
//! - [`provider`]: the one crypto provider of the tree (aws-lc-rs), always passed
//!   explicitly, so that two providers in one build never panic at first use.
//! - [`Fingerprint`]: a server identity as people compare it, the SHA-256 of its
//!   certificate (what `openssl x509 -noout -fingerprint -sha256` prints).
//! - [`session_binding`]: the exported value the client signs to sign in.
//! - [`client`]: the client's configuration, which accepts a server by its pinned
//!   [`Fingerprint`] rather than by a certificate authority.
//! - [`server`]: the server's configuration and [`server::ServerTls`], the sans-IO
//!   step between a server transport's socket and the protocol's connection.

pub mod client;

use std::fmt;
use std::sync::Arc;

use protocol_core::secure::{SessionBinding, EXPORTER_LABEL, SESSION_BINDING_LEN};
use rustls::crypto::CryptoProvider;
use sha2::{Digest, Sha256};

pub mod server;

/// The rustls the configurations are built with, for applications that name its
/// types (a `ServerConfig` in [`ServerOptions::tls`](crate::ServerOptions::tls)).
pub use rustls;

/// The crypto provider every TLS configuration of the project is built with.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The value both ends of a finished TLS session export under [`EXPORTER_LABEL`];
/// `None` before the handshake is done.
pub fn session_binding<D>(conn: &rustls::ConnectionCommon<D>) -> Option<SessionBinding> {
    let mut out = [0u8; SESSION_BINDING_LEN];
    conn.export_keying_material(&mut out[..], EXPORTER_LABEL, None)
        .ok()?;
    Some(SessionBinding::new(out))
}

/// A server identity: the SHA-256 of its certificate (DER).
///
/// Shown as `SHA256:` and 64 lowercase hex digits; read with or without the prefix,
/// in either case, with or without the colons OpenSSL puts between bytes.
///
/// ```
/// use transport_interface::tls::Fingerprint;
/// let f = Fingerprint::of_certificate(b"not really a certificate");
/// let shown = f.to_string();
/// assert!(shown.starts_with("SHA256:"));
/// assert_eq!(shown.parse::<Fingerprint>().unwrap(), f);
/// let openssl_style = shown[7..].as_bytes().chunks(2)
///     .map(|c| std::str::from_utf8(c).unwrap().to_uppercase())
///     .collect::<Vec<_>>().join(":");
/// assert_eq!(openssl_style.parse::<Fingerprint>().unwrap(), f);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// The fingerprint of a certificate given as DER.
    pub fn of_certificate(der: &[u8]) -> Fingerprint {
        Fingerprint(Sha256::digest(der).into())
    }

    /// The 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SHA256:")?;
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A fingerprint that is not `SHA256:` and 32 bytes in hex.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not a SHA-256 fingerprint (expected SHA256: and 64 hex digits): {0:?}")]
pub struct BadFingerprint(pub String);

impl std::str::FromStr for Fingerprint {
    type Err = BadFingerprint;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadFingerprint(s.to_string());
        let t = s.trim();
        let t = t
            .strip_prefix("SHA256:")
            .or_else(|| t.strip_prefix("sha256:"))
            .unwrap_or(t);
        let hex: Vec<u8> = t.bytes().filter(|&b| b != b':').collect();
        if hex.len() != 64 {
            return Err(bad());
        }
        let mut out = [0u8; 32];
        for (i, pair) in hex.chunks(2).enumerate() {
            let s = std::str::from_utf8(pair).map_err(|_| bad())?;
            out[i] = u8::from_str_radix(s, 16).map_err(|_| bad())?;
        }
        Ok(Fingerprint(out))
    }
}
