//! The client a server connection speaks for, and where its key came from.

use std::time::Instant;

use crate::crypto::AesKey;
use crate::wire::ClientId;

/// Where a connection's key came from decides what its failures may do: only a key
/// this connection issued (its own 826 or 827) is revoked after a decryption
/// failure. A key the application looked up can be named by anyone who knows the
/// client id, so junk under it must not cost the client its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum KeySource {
    /// Issued on this connection (1602 or 1605 carried it).
    IssuedHere,
    /// Looked up by client id ([`ServerEvent::LookupClient`](super::ServerEvent::LookupClient)).
    LookedUp,
}

/// The client this connection speaks for, its current key, when that key was issued
/// (by the clock of `handle_input`), and where the connection got it.
#[derive(Debug)]
pub(super) struct Session {
    pub(super) client_id: ClientId,
    pub(super) key: AesKey,
    pub(super) issued: Instant,
    pub(super) source: KeySource,
}

impl Session {
    pub(super) fn is(&self, client_id: ClientId) -> bool {
        self.client_id == client_id
    }
}
