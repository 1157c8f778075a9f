//! What a client run is given and what it reports: configuration, identity,
//! events, outcome, failure.

use thiserror::Error;

use crate::crypto::PrivateKey;
use crate::dialect::Dialect;
use crate::error::PeerError;
use crate::wire::{ClientId, FieldString, RequestCode, ResponseCode};

/// A client's registered identity (what `me.info` holds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The id the server issued.
    pub client_id: ClientId,
    /// The client's RSA private key.
    pub private_key: PrivateKey,
}

/// What a client run is to do.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The client's name (at most 100 characters in `transfer.info`).
    pub name: FieldString,
    /// The file name sent to the server.
    pub file_name: FieldString,
    /// Size of the file, in bytes.
    pub file_size: u64,
    /// `Some`: reconnect (827) with this identity; `None`: register (825).
    pub identity: Option<Identity>,
    /// The key pair to register with; a fresh one is generated if `None`.
    pub registration_key: Option<PrivateKey>,
    /// How to speak.
    pub dialect: Dialect,
}

/// How a run ended without failing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The server confirmed the checksum (900, 1604).
    Verified,
    /// The checksum differed four times; 902 was sent and acknowledged.
    GaveUp,
}

/// What happened during a run, for the application to act on or show.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ClientEvent {
    /// The server issued an id. Write `me.info` and `priv.key` now.
    Registered {
        /// The new id.
        client_id: ClientId,
        /// The key registered with it.
        private_key: Box<PrivateKey>,
    },
    /// The server refused the reconnect (1606): registering anew.
    ReconnectRefused,
    /// An AES key was received (1602 or 1605).
    KeyExchanged {
        /// Reconnected (1605) rather than registered (1602).
        reconnected: bool,
    },
    /// Feed the file from its first byte (first send, or a re-send).
    SendFile {
        /// 1 for the first send.
        attempt: u32,
    },
    /// Plaintext bytes packed and queued so far in this send.
    Progress {
        /// Bytes so far.
        sent: u64,
        /// File size.
        total: u64,
    },
    /// The server answered with an error. The request is sent again, unless this was
    /// the last attempt or a refusal that asking again cannot change (1601); then
    /// the run fails with [`ClientFailure::ServerRefused`].
    ServerError {
        /// The response code.
        code: ResponseCode,
        /// The request that failed.
        request: RequestCode,
        /// The attempt that failed (1-based).
        attempt: u32,
    },
    /// The server's checksum differs from ours.
    ChecksumMismatch {
        /// Ours.
        ours: u32,
        /// The server's.
        theirs: u32,
        /// Re-sends left before giving up.
        resends_left: u32,
    },
    /// Variant 7 ([`Dialect::connection_per_request`]): the last request was answered
    /// (or, for 901, needs no answer). Close this connection, open a new one, then call
    /// [`ClientSession::connection_opened`](crate::ClientSession::connection_opened); nothing more is transmitted until then.
    NewConnection,
    /// The run is over.
    Finished(Outcome),
}

/// Why a run failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ClientFailure {
    /// The server broke the protocol.
    #[error("the server broke the protocol: {0}")]
    Peer(#[from] PeerError),
    /// Every attempt of a request was answered with an error.
    #[error("request {} failed {attempts} time(s); the server's last answer was {}{}", *request as u16, *last as u16, if *last == ResponseCode::RegistrationFailed { " (the name is taken or invalid)" } else { "" })]
    ServerRefused {
        /// The request.
        request: RequestCode,
        /// Its last answer.
        last: ResponseCode,
        /// How often it was sent.
        attempts: u32,
    },
    /// The server refused the reconnect (1606) and the session was told not to
    /// register anew ([`ClientSession::set_register_when_refused`](crate::ClientSession::set_register_when_refused)).
    #[error("the server refused the reconnect (1606) and registering anew was not allowed")]
    ReconnectRefused,
    /// The application's own key could not be used.
    #[error("key error: {0}")]
    Key(String),
}
