//! What a server connection tells its driver: whether to read, when to wake, whether
//! it is done, and what it has seen of its peer. Step 5 of the calling order in the
//! [module docs](super).

use std::time::Instant;

use rand_core::CryptoRngCore;

use super::session::KeySource;
use super::{QuestionKind, ServerConnection};
use crate::crypto::AesKey;
use crate::dialect::DetectedDialect;
use crate::error::PeerError;
use crate::wire::ClientId;

impl<R: CryptoRngCore> ServerConnection<R> {
    /// Whether the connection will take more input now: false while a question is
    /// outstanding, while too much decrypted data is unwritten, and once closed.
    pub fn wants_read(&self) -> bool {
        if let Some(s) = &self.secure {
            return !self.closed && s.wants_read();
        }
        !self.closed && self.pending.is_none() && self.unwritten < self.config.limits.max_unwritten
    }

    /// Whether the connection has closed (a violation, a timeout, the peer's end, a
    /// refused lookup). Events may still be queued and bytes still to send: a driver
    /// stops on [`is_finished`](Self::is_finished), not on this.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Whether the connection is closed **and** drained: no event left for
    /// [`poll_event`](Self::poll_event) and nothing left for
    /// [`poll_transmit`](Self::poll_transmit). The driver loop's exit condition: once
    /// true, close the socket and drop the connection.
    pub fn is_finished(&self) -> bool {
        self.closed
            && self.events.is_empty()
            && self.out.is_empty()
            && self.secure.as_ref().is_none_or(|s| s.is_drained())
    }

    /// Whether a secure download is ready for its next bytes: the connection has
    /// bytes to produce without any input, so the driver goes back to step 1 (events,
    /// then `poll_transmit`) after each write instead of waiting to read. False while
    /// the application owes an answer, so a driver never spins.
    pub fn is_sending(&self) -> bool {
        self.secure.as_ref().is_some_and(|s| s.is_sending())
    }

    /// The protocol violation (or timeout) that closed the connection, if one did.
    pub fn error(&self) -> Option<&PeerError> {
        self.error.as_ref()
    }

    /// The question the connection waits on, if any: it reads nothing more until
    /// the ticket of that question is answered, or
    /// [`Limits::answer_timeout`](crate::Limits::answer_timeout) passes.
    pub fn pending_question(&self) -> Option<QuestionKind> {
        self.pending.as_ref().map(|p| p.question.kind())
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called; `None` only
    /// once closed. Changes with every `handle_*` call, answer and `data_written`:
    /// the answer deadline while a question is pending or reading is paused for
    /// `data_written`, else the request deadline while a request is partly
    /// received, else the idle deadline.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.closed {
            return None;
        }
        let limits = &self.config.limits;
        if let Some(s) = &self.secure {
            return Some(
                s.answer_deadline(limits.answer_timeout)
                    .unwrap_or(self.last_progress + limits.idle_timeout),
            );
        }
        if let Some(p) = &self.pending {
            return Some(p.since + limits.answer_timeout);
        }
        if let Some(t) = self.paused_since {
            return Some(t + limits.answer_timeout);
        }
        let deadline = match self.partial_since {
            Some(t) => t + limits.request_timeout,
            None => self.last_progress + limits.idle_timeout,
        };
        if self.header_seen {
            return Some(deadline);
        }
        Some(deadline.min(self.accepted_at + limits.first_header_timeout))
    }

    /// What this connection's peer has shown of its dialect so far: byte order,
    /// packet fields, sizes, encryption, zero-padded packets, and the checksum sent.
    /// For the operator's log, once the connection ends
    /// ([`DetectedDialect`]'s `Display` is one line).
    ///
    /// ```
    /// use std::time::Instant;
    /// use protocol_core::{ServerConfig, ServerConnection};
    /// use rand_chacha::{ChaCha20Rng, rand_core::SeedableRng};
    /// let conn = ServerConnection::new(ServerConfig::default(), ChaCha20Rng::seed_from_u64(0), Instant::now());
    /// assert_eq!(conn.detected().to_string(), "nothing seen");
    /// ```
    pub fn detected(&self) -> &DetectedDialect {
        &self.detected
    }

    /// Whether an upload is between its first and last packet on this connection.
    pub fn is_uploading(&self) -> bool {
        self.upload.is_some()
    }

    /// Whether this connection sent a 1603 and waits for the client's 900 or 902: a
    /// graceful stop keeps the connection open until then (or its grace runs out).
    ///
    /// ```
    /// # use std::time::Instant;
    /// # use protocol_core::{ServerConfig, ServerConnection};
    /// # use rand_chacha::{ChaCha20Rng, rand_core::SeedableRng};
    /// let conn = ServerConnection::new(ServerConfig::default(), ChaCha20Rng::seed_from_u64(0), Instant::now());
    /// assert!(!conn.awaits_verdict());
    /// ```
    pub fn awaits_verdict(&self) -> bool {
        self.verdict_due && !self.closed
    }

    /// Whole requests this connection has received. A verdict (900-902) or an
    /// upload's last packet that is request 1 of its connection comes from a client
    /// that opens a connection per request (variant 7).
    ///
    /// ```
    /// # use std::time::Instant;
    /// # use protocol_core::{ServerConfig, ServerConnection};
    /// # use rand_chacha::{ChaCha20Rng, rand_core::SeedableRng};
    /// let conn = ServerConnection::new(ServerConfig::default(), ChaCha20Rng::seed_from_u64(0), Instant::now());
    /// assert_eq!(conn.requests_seen(), 0);
    /// ```
    pub fn requests_seen(&self) -> u64 {
        self.requests_seen
    }

    /// The AES key this connection decrypts uploads with, if it has one: issued on it
    /// (826, 827) or looked up ([`ServerEvent::LookupClient`](crate::ServerEvent::LookupClient)).
    pub fn session_key(&self) -> Option<&AesKey> {
        self.session.as_ref().map(|s| &s.key)
    }

    /// Whether this connection's key was issued on it (its own 826 or 827): only the
    /// holder of the client's private key can use such a connection. A key looked up
    /// by client id can be used by anyone who knows the id and captured traffic.
    ///
    /// ```
    /// # use std::time::Instant;
    /// # use protocol_core::{ServerConfig, ServerConnection};
    /// # use rand_chacha::{ChaCha20Rng, rand_core::SeedableRng};
    /// let conn = ServerConnection::new(ServerConfig::default(), ChaCha20Rng::seed_from_u64(0), Instant::now());
    /// assert!(!conn.key_issued_here());
    /// ```
    pub fn key_issued_here(&self) -> bool {
        self.session
            .as_ref()
            .is_some_and(|s| s.source == KeySource::IssuedHere)
    }

    /// The client this connection has identified, if any.
    pub fn client_id(&self) -> Option<ClientId> {
        if let Some(s) = &self.secure {
            return s.client_id();
        }
        self.session.as_ref().map(|s| s.client_id)
    }
}
