//! What the secure server session tells the application, and the typed tickets
//! ([`Ask`]) its answers consume.

use std::fmt;
use std::marker::PhantomData;

use bytes::Bytes;

use super::keys::{KeyKind, StoredKey};
use crate::wire::ClientId;

mod sealed {
    pub trait Sealed {}
}

/// A question type of the secure session: the `Q` of an [`Ask<Q>`].
pub trait AskKind: sealed::Sealed {
    /// For messages.
    const NAME: &'static str;
}

/// The question types, one per kind of answer.
pub mod kind {
    use super::{sealed::Sealed, AskKind};

    macro_rules! ask {
        ($(#[$doc:meta])* $name:ident) => {
            $(#[$doc])*
            #[derive(Debug)]
            pub enum $name {}
            impl Sealed for $name {}
            impl AskKind for $name {
                const NAME: &'static str = stringify!($name);
            }
        };
    }

    ask!(
        /// Answered by [`sign_in_keys`](crate::secure::SecureServer::sign_in_keys).
        SignIn);
    ask!(
        /// Answered by [`registered`](crate::secure::SecureServer::registered).
        Register);
    ask!(
        /// Answered by [`done`](crate::secure::SecureServer::done).
        Done);
    ask!(
        /// Answered by [`put_from`](crate::secure::SecureServer::put_from).
        PutBegin);
    ask!(
        /// Answered by [`listing`](crate::secure::SecureServer::listing).
        List);
    ask!(
        /// Answered by [`version_listing`](crate::secure::SecureServer::version_listing).
        Versions);
    ask!(
        /// Answered by [`get_begin`](crate::secure::SecureServer::get_begin).
        Get);
}

/// Names one question; the answer consumes it. Neither `Copy` nor `Clone`.
pub struct Ask<Q> {
    pub(crate) id: u64,
    _q: PhantomData<fn() -> Q>,
}

impl<Q: AskKind> Ask<Q> {
    pub(crate) fn new(id: u64) -> Self {
        Ask {
            id,
            _q: PhantomData,
        }
    }

    /// A number for logs, unique within the connection.
    pub fn get(&self) -> u64 {
        self.id
    }
}

impl<Q: AskKind> fmt::Debug for Ask<Q> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ask<{}>({})", Q::NAME, self.id)
    }
}

/// The keys on file for a client signing in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientKeys {
    /// The legacy public key field (826), if any.
    pub legacy: Option<Vec<u8>>,
    /// The key registered in the secure mode, if any: once there is one, the legacy
    /// key no longer signs in.
    pub strong: Option<StoredKey>,
    /// Whether the client asked to keep serving its legacy requests.
    pub keep_legacy: bool,
}

/// A cut upload's saved place: where the server continues it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutResume {
    /// Bytes already stored durably.
    pub offset: u64,
    /// The digests' state at `offset`, as a
    /// [`SecureEvent::PutCheckpoint`] gave it.
    pub state: Vec<u8>,
}

/// What happened in a secure session, and what it needs from the application.
///
/// Questions carry an [`Ask`]; the session reads nothing more until it is answered
/// (or [`Limits::answer_timeout`](crate::Limits::answer_timeout) passes). Notices
/// need no answer, except [`PutData`](SecureEvent::PutData), which is followed by
/// [`data_written`](crate::secure::SecureServer::data_written), and
/// [`GetWants`](SecureEvent::GetWants), answered by
/// [`get_data`](crate::secure::SecureServer::get_data).
#[derive(Debug)]
#[non_exhaustive]
pub enum SecureEvent {
    /// 1000: the keys on file for `client_id` (`None`: no such client); the session
    /// checks the signature itself.
    SignIn {
        /// The question.
        ask: Ask<kind::SignIn>,
        /// Who signs in.
        client_id: ClientId,
    },
    /// The signature verified: the session speaks for `client_id`. Record that the
    /// client has gone secure (its legacy requests are refused from now on, unless
    /// it keeps them open).
    SignedIn {
        /// Who.
        client_id: ClientId,
        /// The key it signed with.
        key: KeyKind,
    },
    /// 1001: store a new client `name` with `key` under this fresh id, unless the
    /// name is taken. The key's signature has been checked.
    Register {
        /// The question.
        ask: Ask<kind::Register>,
        /// A fresh id that does not begin like a TLS record.
        client_id: ClientId,
        /// The requested name (printable ASCII).
        name: String,
        /// Its key.
        key: StoredKey,
    },
    /// 1002: make `key` the key `client_id` signs in with (its signature checked).
    SetKey {
        /// The question.
        ask: Ask<kind::Done>,
        /// Who.
        client_id: ClientId,
        /// The new key (Ed25519, or RSA of 3072 bits or more).
        key: StoredKey,
    },
    /// 1003: keep (or stop) serving legacy requests with this client's id.
    KeepLegacy {
        /// The question.
        ask: Ask<kind::Done>,
        /// Who.
        client_id: ClientId,
        /// Keep them.
        keep: bool,
    },
    /// 1010: an upload of `size` bytes as `name` begins: say where it continues
    /// (a saved [`PutResume`] of the same file and size, or none).
    PutBegin {
        /// The question.
        ask: Ask<kind::PutBegin>,
        /// Who.
        client_id: ClientId,
        /// The file name (printable ASCII).
        name: String,
        /// The whole file's size.
        size: u64,
    },
    /// The next bytes of the upload, at `offset`: append them, then call
    /// [`data_written`](crate::secure::SecureServer::data_written).
    PutData {
        /// Where they go.
        offset: u64,
        /// The bytes.
        data: Bytes,
    },
    /// Make what was written durable and save this place (the offset and the
    /// digests' state) where any server can find it: the client continues from
    /// here after a cut. Comes every
    /// [`SecureLimits::checkpoint_every`](crate::secure::SecureLimits::checkpoint_every)
    /// bytes and when the connection ends mid-upload.
    PutCheckpoint {
        /// Who.
        client_id: ClientId,
        /// The file name.
        name: String,
        /// The whole file's size.
        size: u64,
        /// Bytes written so far.
        offset: u64,
        /// The digests' state at `offset` (for [`PutResume::state`]).
        state: Vec<u8>,
    },
    /// Every byte arrived and both hashes agree: make the upload the file's current
    /// content (verified), then [`done`](crate::secure::SecureServer::done).
    PutComplete {
        /// The question.
        ask: Ask<kind::Done>,
        /// Who.
        client_id: ClientId,
        /// The file name.
        name: String,
        /// Its size.
        size: u64,
        /// Its SHA-256, which the client's matches.
        sha256: [u8; 32],
        /// Its POSIX cksum.
        cksum: u32,
    },
    /// The upload cannot end well (the client's hash differs): discard it and its
    /// saved place.
    PutFailed {
        /// Who.
        client_id: ClientId,
        /// The file name.
        name: String,
    },
    /// 1020: the client's files.
    List {
        /// The question.
        ask: Ask<kind::List>,
        /// Who.
        client_id: ClientId,
    },
    /// 1021: the kept versions of one of the client's files.
    Versions {
        /// The question.
        ask: Ask<kind::Versions>,
        /// Who.
        client_id: ClientId,
        /// The file name.
        name: String,
    },
    /// 1022: a download: open the content and describe it.
    Get {
        /// The question.
        ask: Ask<kind::Get>,
        /// Who.
        client_id: ClientId,
        /// The file name.
        name: String,
        /// A version id (`None`: the current content).
        version: Option<u64>,
        /// The first byte wanted.
        offset: u64,
        /// Whether unverified content may be sent.
        unverified_ok: bool,
    },
    /// The download's send buffer has room: give up to `max` next bytes with
    /// [`get_data`](crate::secure::SecureServer::get_data).
    GetWants {
        /// Most bytes taken.
        max: usize,
    },
    /// 1023: the file's current content becomes a version.
    Remove {
        /// The question.
        ask: Ask<kind::Done>,
        /// Who.
        client_id: ClientId,
        /// The file name.
        name: String,
    },
    /// 1024: a kept version becomes the current content.
    Restore {
        /// The question.
        ask: Ask<kind::Done>,
        /// Who.
        client_id: ClientId,
        /// The file name.
        name: String,
        /// The version id.
        version: u64,
    },
}

impl SecureEvent {
    /// Whether this event is a question (carries an [`Ask`]).
    pub fn is_question(&self) -> bool {
        !matches!(
            self,
            SecureEvent::SignedIn { .. }
                | SecureEvent::PutData { .. }
                | SecureEvent::PutCheckpoint { .. }
                | SecureEvent::PutFailed { .. }
                | SecureEvent::GetWants { .. }
        )
    }
}
