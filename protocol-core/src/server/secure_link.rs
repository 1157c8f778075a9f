//! A connection inside TLS hands its input, timers and end to its secure session
//! ([`crate::secure::SecureServer`]); what the legacy state machine would do does not
//! apply there.

use std::time::Instant;

use bytes::BytesMut;
use rand_core::CryptoRngCore;

use super::ServerConnection;
use crate::error::PeerError;

impl<R: CryptoRngCore> ServerConnection<R> {
    /// The connection runs inside a TLS session whose exported value is `binding`:
    /// from now on it speaks the secure extension (docs/PROTOCOL.md, section 10)
    /// and no legacy request. Called by the transport once the handshake is done,
    /// before any input.
    pub fn enter_secure(&mut self, binding: crate::secure::SessionBinding) {
        let limits = &self.config.limits;
        self.secure = Some(Box::new(crate::secure::SecureServer::new(
            binding,
            self.config.secure,
            limits.max_file_size,
            limits.max_unwritten,
        )));
        self.header_seen = true;
    }

    /// Whether the connection speaks the secure extension (inside TLS).
    pub fn is_secure(&self) -> bool {
        self.secure.is_some()
    }

    /// The secure session, to answer its questions ([`ServerEvent::Secure`](crate::ServerEvent::Secure)); `None`
    /// for a legacy connection.
    pub fn secure(&mut self) -> Option<&mut crate::secure::SecureServer> {
        self.secure.as_deref_mut()
    }

    pub(super) fn take_secure(
        &mut self,
        input: &mut BytesMut,
        now: Instant,
    ) -> Result<(), PeerError> {
        let Some(s) = self.secure.as_mut() else {
            return Ok(());
        };
        let before = input.len();
        let result = s.take_requests(input, now, &mut self.rng);
        if input.len() != before {
            self.last_progress = now;
        }
        if let Err(e) = &result {
            self.error = Some(e.clone());
        }
        if s.is_closing() {
            self.closed = true;
        }
        result
    }

    pub(super) fn secure_timeout(&mut self) {
        let Some(s) = self.secure.as_mut() else {
            return;
        };
        if s.timed_out() {
            self.error = Some(PeerError::Timeout(
                "the application did not answer the question in time",
            ));
        } else if s.download_waits_on_app() {
            s.handle_eof();
            self.error = Some(PeerError::Timeout(
                "the application did not give a download's next bytes in time",
            ));
        } else if s.is_sending() {
            // A download waits on the socket, not on the peer's requests.
            self.last_progress = self.now;
            return;
        } else {
            s.handle_eof();
            self.error = Some(PeerError::Timeout("idle"));
        }
        self.closed = true;
    }
}
