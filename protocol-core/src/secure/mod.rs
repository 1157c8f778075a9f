//! The secure extension (docs/PROTOCOL.md, section 10): the requests a client sends
//! inside TLS 1.3 once the transport has finished the handshake.
//!
//! TLS itself stays in the transports (rustls' connection objects are sans-IO and sit
//! beside the core); what the core needs from the TLS session is its
//! [`SessionBinding`]: 32 bytes exported from the session's keys (RFC 8446, section
//! 7.5) under [`EXPORTER_LABEL`]. A client signs it to sign in, so a signature
//! captured on one connection proves nothing on another.

mod client;
pub mod digest;
mod event;
pub mod frame;
pub mod keys;
mod server;

pub use client::{SecureClient, SecureClientEvent, Signer};
pub use event::{kind, Ask, AskKind, ClientKeys, PutResume, SecureEvent};
pub use server::{SecureLimits, SecureServer};

/// The exporter label both ends give `export_keying_material` (no context).
pub const EXPORTER_LABEL: &[u8] = b"EXPORTER-fileserver-secure-v1";

/// Bytes of a [`SessionBinding`].
pub const SESSION_BINDING_LEN: usize = 32;

/// The value both ends of one TLS session export under [`EXPORTER_LABEL`]: unique to
/// the session, so a signature over it cannot be replayed on another connection.
///
/// ```
/// use protocol_core::secure::SessionBinding;
/// let binding = SessionBinding::new([7u8; 32]);
/// assert_eq!(binding.as_bytes(), &[7u8; 32]);
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SessionBinding([u8; SESSION_BINDING_LEN]);

impl SessionBinding {
    /// The exported bytes.
    pub fn new(bytes: [u8; SESSION_BINDING_LEN]) -> Self {
        SessionBinding(bytes)
    }

    /// The exported bytes.
    pub fn as_bytes(&self) -> &[u8; SESSION_BINDING_LEN] {
        &self.0
    }
}

impl std::fmt::Debug for SessionBinding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not secret, but long and useless in logs.
        f.write_str("SessionBinding(..)")
    }
}
