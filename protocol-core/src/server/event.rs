//! What the server connection tells the application, and what it is told back:
//! configuration, events, tickets, verdicts, client records.

use bytes::Bytes;

use super::question::{kind, Ticket};
use super::SuspendedUpload;
use crate::crypto::AesKey;
use crate::dialect::ServerDialect;
use crate::limits::Limits;
use crate::wire::{ClientId, FieldString, RequestCode};

/// Everything a server connection is configured with.
///
/// ```
/// use protocol_core::{ServerConfig, Limits};
/// let config = ServerConfig { limits: Limits { max_payload: 1 << 20, ..Limits::default() }, ..ServerConfig::default() };
/// # let _ = config;
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerConfig {
    /// Bounds on what a peer may make the server hold.
    pub limits: Limits,
    /// Answers and accepted variants.
    pub dialect: ServerDialect,
    /// The secure extension's bounds (connections inside TLS).
    pub secure: crate::secure::SecureLimits,
}

/// The client's decision after a 1603.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// 900: the checksums matched; the upload becomes the stored file.
    Verified,
    /// 902: the fourth mismatch; the upload is abandoned unverified.
    GaveUp,
}

/// What the application knows about a client, for a connection that has no key yet.
#[derive(Debug)]
pub struct ClientRecord {
    /// The AES key last issued to the client, if any.
    pub aes_key: Option<AesKey>,
    /// How long ago that key was issued (keys older than [`Limits::key_lifetime`]
    /// are refused).
    pub key_age: std::time::Duration,
    /// An upload the client left between packets on an earlier connection.
    pub suspended: Option<SuspendedUpload>,
}

/// What happened, and what the connection needs from the application.
///
/// Two sorts, told apart by type: **questions** carry a [`Ticket`] typed by the
/// question (`Register`, `StorePublicKey`, `Reconnect`, `StoreAesKey`, `LookupClient`,
/// `UploadFinished`, `Confirm`); the connection reads nothing more until the ticket is
/// handed back to one of the answer methods its type allows, or until
/// [`Limits::answer_timeout`] passes. **Notices** (the other variants) need no answer,
/// except that [`UploadData`](ServerEvent::UploadData) must be followed by
/// [`data_written`](crate::ServerConnection::data_written).
/// [`is_question`](ServerEvent::is_question) tells them apart at run time.
#[derive(Debug)]
#[non_exhaustive]
pub enum ServerEvent {
    /// A request carried this (non-zero) client id: update LastSeen if it is known.
    /// Reported at most once per [`Limits::seen_interval`] for the same client on a
    /// connection (an upload of many packets does not write LastSeen per packet).
    Seen {
        /// The id from the header.
        client_id: ClientId,
        /// The request's code.
        code: RequestCode,
    },
    /// Request 825: Store a new client under `name` with this fresh id, unless the name is
    /// taken. Answer [`accept_registration`](crate::ServerConnection::accept_registration)
    /// or [`refuse_registration`](crate::ServerConnection::refuse_registration) (1601), or
    /// [`fail`](crate::ServerConnection::fail) (1607).
    Register {
        /// The question.
        ticket: Ticket<kind::Register>,
        /// A fresh version 4 UUID.
        client_id: ClientId,
        /// The requested name (checked printable).
        name: FieldString,
    },
    /// Request 826: Store this public key and AES key for the client, if `client_id` is
    /// registered under `name`. Answer [`succeed`](crate::ServerConnection::succeed) (1602)
    /// or [`fail`](crate::ServerConnection::fail) (1607).
    StorePublicKey {
        /// The question.
        ticket: Ticket<kind::StorePublicKey>,
        /// The client.
        client_id: ClientId,
        /// The name the client gave.
        name: FieldString,
        /// The 160-byte field as received (parsed and valid).
        public_key: Bytes,
        /// The fresh AES key to store.
        aes_key: AesKey,
    },
    /// Request 827: Look up the client by id and name. Answer
    /// [`reconnect_lookup`](crate::ServerConnection::reconnect_lookup) with its stored
    /// public key field, or `None` if unknown or the name differs (1606).
    Reconnect {
        /// The question.
        ticket: Ticket<kind::Reconnect>,
        /// The client.
        client_id: ClientId,
        /// The name the client gave.
        name: FieldString,
    },
    /// After a successful reconnect lookup: store this fresh AES key. Answer
    /// [`succeed`](crate::ServerConnection::succeed) (1605) or [`fail`](crate::ServerConnection::fail).
    StoreAesKey {
        /// The question.
        ticket: Ticket<kind::StoreAesKey>,
        /// The client.
        client_id: ClientId,
        /// The fresh AES key.
        aes_key: AesKey,
    },
    /// A 828 arrived on a connection that has no key for this client. Answer
    /// [`client_lookup`](crate::ServerConnection::client_lookup).
    LookupClient {
        /// The question.
        ticket: Ticket<kind::LookupClient>,
        /// The client.
        client_id: ClientId,
    },
    /// The first packet of an upload arrived; any unfinished upload of this client is
    /// replaced. Open a temporary file.
    UploadStarted {
        /// The client.
        client_id: ClientId,
        /// The file name as sent.
        file_name: FieldString,
        /// Declared plaintext size.
        original_size: u32,
        /// Number of packets.
        total_packets: u16,
    },
    /// Decrypted file bytes, in order. Write them, then report
    /// [`data_written`](crate::ServerConnection::data_written).
    UploadData {
        /// The client.
        client_id: ClientId,
        /// The bytes.
        data: Bytes,
    },
    /// The last packet arrived and decrypted. Make the temporary file durable, then
    /// [`succeed`](crate::ServerConnection::succeed) (1603 with this checksum) or
    /// [`fail`](crate::ServerConnection::fail).
    UploadFinished {
        /// The question.
        ticket: Ticket<kind::UploadFinished>,
        /// The client.
        client_id: ClientId,
        /// The file name as sent.
        file_name: FieldString,
        /// Plaintext size.
        size: u64,
        /// Checksum of the plaintext.
        checksum: u32,
    },
    /// The upload ended without completing (bad input, or the application failed it);
    /// discard its temporary file.
    UploadAborted {
        /// The client.
        client_id: ClientId,
        /// Why.
        reason: String,
    },
    /// The connection ended between packets of an upload. Keep `upload` (and the
    /// temporary file) if the client may continue on another connection, and give it
    /// back through [`ClientRecord::suspended`].
    UploadSuspended {
        /// The client.
        client_id: ClientId,
        /// The upload's state.
        upload: SuspendedUpload,
    },
    /// Requests 900 and 902: mark the client's finished upload verified (moving it into place)
    /// or unverified. Answer [`succeed`](crate::ServerConnection::succeed) (1604) or
    /// [`fail`](crate::ServerConnection::fail).
    Confirm {
        /// The question.
        ticket: Ticket<kind::Confirm>,
        /// The client.
        client_id: ClientId,
        /// The name in the request (informational: a file name or, variant 5, the client name).
        file_name: FieldString,
        /// Verified or given up.
        verdict: Verdict,
    },
    /// An upload under a key **issued on this connection** (its 826 or 827) failed to
    /// decrypt (bad padding or a length that does not add up). Forget the key: a
    /// captured upload replayed with changes must not get a second try at the same
    /// key (a padding oracle). The client gets a fresh key by reconnecting.
    RevokeKey {
        /// The client.
        client_id: ClientId,
    },
    /// An upload under the key the application looked up for the client
    /// ([`ClientRecord`], not issued on this connection) failed to decrypt. The key
    /// stays: the client id travels in clear, so anyone can send junk under it, and
    /// a stranger's junk must not cost the client its key. Count it against the
    /// client id instead (and refuse further lookups for a while past a limit): each
    /// failure is one guess at the key's padding.
    DecryptionFailed {
        /// The client whose id the request carried.
        client_id: ClientId,
    },
    /// Request 901: the checksum did not match; the client sends the file again.
    RetryAnnounced {
        /// The client.
        client_id: ClientId,
        /// The name in the request (informational).
        file_name: FieldString,
    },
    /// An event of the secure session of a connection inside TLS
    /// ([`enter_secure`](crate::ServerConnection::enter_secure)); its questions are
    /// answered through [`secure`](crate::ServerConnection::secure).
    Secure(crate::secure::SecureEvent),
}

impl ServerEvent {
    /// Whether this event is a question (carries a ticket the connection waits on).
    pub fn is_question(&self) -> bool {
        matches!(
            self,
            ServerEvent::Register { .. }
                | ServerEvent::StorePublicKey { .. }
                | ServerEvent::Reconnect { .. }
                | ServerEvent::StoreAesKey { .. }
                | ServerEvent::LookupClient { .. }
                | ServerEvent::UploadFinished { .. }
                | ServerEvent::Confirm { .. }
        ) || matches!(self, ServerEvent::Secure(e) if e.is_question())
    }
}
