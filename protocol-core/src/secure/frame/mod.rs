//! The secure extension's frames (docs/PROTOCOL.md, section 10.3): the legacy
//! header layout with a version byte of its own ([`SECURE_VERSION`]), codes of their
//! own, little-endian integers, and length-prefixed fields instead of fixed ones.
//!
//! ```
//! use bytes::BytesMut;
//! use protocol_core::ClientId;
//! use protocol_core::secure::frame::{decode_request, encode_request, SecureRequest, RequestLimits};
//! let mut buf = BytesMut::new();
//! let req = SecureRequest::PutBegin { name: "notes.txt".into(), size: 5 };
//! encode_request(&mut buf, ClientId::ZERO, &req);
//! let (id, decoded) = decode_request(&mut buf, &RequestLimits::default()).unwrap().unwrap();
//! assert_eq!((id, decoded), (ClientId::ZERO, req));
//! assert!(buf.is_empty());
//! ```

use bytes::Bytes;

use super::keys::KeyKind;
use crate::wire::ClientId;

mod decode;
mod encode;

pub use decode::{decode_request, decode_response, is_secure_request_header};
pub use encode::{encode_request, encode_response};

/// The version byte of every secure frame: 0x80 (the extension) | 3 (the protocol).
/// A legacy server that checks versions refuses it; one that does not meets codes it
/// does not know (1607, or a close).
pub const SECURE_VERSION: u8 = 0x83;

/// Largest content a [`SecureRequest::PutData`] or [`SecureResponse::GetData`] carries.
pub const MAX_DATA: usize = 1 << 20;

/// Largest payload of any other frame.
pub const MAX_CONTROL: usize = 64 * 1024;

/// Longest name (client or file), in bytes, as in the legacy protocol.
pub const MAX_NAME: usize = 254;

/// Longest public key or signature field.
pub const MAX_KEY_FIELD: usize = 1024;

/// What a server accepts in one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLimits {
    /// Largest [`SecureRequest::PutData`] content ([`MAX_DATA`] unless lowered).
    pub max_data: usize,
}

impl Default for RequestLimits {
    fn default() -> Self {
        RequestLimits { max_data: MAX_DATA }
    }
}

/// The request codes of the extension.
#[allow(missing_docs)]
pub mod code {
    pub const SIGN_IN: u16 = 1000;
    pub const REGISTER: u16 = 1001;
    pub const SET_KEY: u16 = 1002;
    pub const KEEP_LEGACY: u16 = 1003;
    pub const PUT_BEGIN: u16 = 1010;
    pub const PUT_DATA: u16 = 1011;
    pub const PUT_END: u16 = 1012;
    pub const LIST: u16 = 1020;
    pub const VERSIONS: u16 = 1021;
    pub const GET: u16 = 1022;
    pub const REMOVE: u16 = 1023;
    pub const RESTORE: u16 = 1024;

    pub const DONE: u16 = 2000;
    pub const SIGNED_IN: u16 = 2001;
    pub const REGISTERED: u16 = 2002;
    pub const PUT_OFFSET: u16 = 2010;
    pub const STORED: u16 = 2011;
    pub const FILE_ENTRY: u16 = 2020;
    pub const VERSION_ENTRY: u16 = 2021;
    pub const LIST_END: u16 = 2022;
    pub const GET_BEGIN: u16 = 2030;
    pub const GET_DATA: u16 = 2031;
    pub const GET_END: u16 = 2032;
    pub const REFUSED: u16 = 2099;
}

/// A request of the secure extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecureRequest {
    /// 1000: prove the key of the client id in the header, over this session.
    SignIn {
        /// Which key signed.
        kind: KeyKind,
        /// The signature of [`sign_in_message`](super::keys::sign_in_message).
        signature: Bytes,
    },
    /// 1001: a new client with a key of its own (no legacy registration).
    Register {
        /// The client name.
        name: String,
        /// The key's kind.
        kind: KeyKind,
        /// The public key.
        key: Bytes,
        /// The signature of [`register_message`](super::keys::register_message).
        signature: Bytes,
    },
    /// 1002: replace the key the client signs in with by a stronger one.
    SetKey {
        /// The new key's kind (Ed25519 or RSA of 3072 bits or more).
        kind: KeyKind,
        /// The new public key.
        key: Bytes,
        /// The new key's signature of [`set_key_message`](super::keys::set_key_message).
        signature: Bytes,
    },
    /// 1003: whether legacy requests with this client's id are still served.
    KeepLegacy {
        /// Keep them (a folder still shared with a legacy tool) or not.
        keep: bool,
    },
    /// 1010: upload `size` bytes as `name`, from the offset the server answers.
    PutBegin {
        /// The file name.
        name: String,
        /// The whole file's size.
        size: u64,
    },
    /// 1011: the next bytes of the upload.
    PutData {
        /// Content.
        data: Bytes,
    },
    /// 1012: every byte was sent; the client's SHA-256 of the whole file.
    PutEnd {
        /// SHA-256 of the whole file.
        sha256: [u8; 32],
    },
    /// 1020: the client's files.
    List,
    /// 1021: the kept versions of one file.
    Versions {
        /// The file name.
        name: String,
    },
    /// 1022: download a file's content from `offset`.
    Get {
        /// The file name.
        name: String,
        /// A version id, or `None` for the current content.
        version: Option<u64>,
        /// The first byte to send.
        offset: u64,
        /// Whether an unverified file may be sent.
        unverified_ok: bool,
    },
    /// 1023: the current content becomes a version; the file is no longer listed.
    Remove {
        /// The file name.
        name: String,
    },
    /// 1024: a version becomes the current content again.
    Restore {
        /// The file name.
        name: String,
        /// The version id.
        version: u64,
    },
}

impl SecureRequest {
    /// The request's code.
    pub fn code(&self) -> u16 {
        match self {
            SecureRequest::SignIn { .. } => code::SIGN_IN,
            SecureRequest::Register { .. } => code::REGISTER,
            SecureRequest::SetKey { .. } => code::SET_KEY,
            SecureRequest::KeepLegacy { .. } => code::KEEP_LEGACY,
            SecureRequest::PutBegin { .. } => code::PUT_BEGIN,
            SecureRequest::PutData { .. } => code::PUT_DATA,
            SecureRequest::PutEnd { .. } => code::PUT_END,
            SecureRequest::List => code::LIST,
            SecureRequest::Versions { .. } => code::VERSIONS,
            SecureRequest::Get { .. } => code::GET,
            SecureRequest::Remove { .. } => code::REMOVE,
            SecureRequest::Restore { .. } => code::RESTORE,
        }
    }
}

/// What a stored file or version holds, as listings and downloads describe it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Described {
    /// Size in bytes.
    pub size: u64,
    /// The client confirmed it (legacy 900) or the server checked its hash.
    pub verified: bool,
    /// SHA-256 of the content, when it was uploaded in the secure mode.
    pub sha256: Option<[u8; 32]>,
    /// POSIX cksum of the content, when known.
    pub cksum: Option<u32>,
    /// When it was written, UTC, as the server stores it.
    pub updated: String,
}

/// One file of a listing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FileEntry {
    /// The file name.
    pub name: String,
    /// The current content.
    pub content: Described,
    /// Kept versions besides the current content.
    pub versions: u32,
}

/// One kept version of a file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VersionEntry {
    /// The version id ([`SecureRequest::Get`] and [`SecureRequest::Restore`] take it).
    pub id: u64,
    /// The version's content.
    pub content: Described,
    /// When it stopped being current, UTC.
    pub superseded: String,
}

/// Why the server refused a request (the reason of a [`SecureResponse::Refused`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// A frame that breaks the extension; the connection closes.
    Malformed,
    /// A request other than sign-in or registration before signing in.
    NotSignedIn,
    /// The signature does not verify; the connection closes.
    BadSignature,
    /// No client has this id, or it has no key to sign in with.
    UnknownClient,
    /// The client registered a stronger key; its legacy key no longer signs in.
    KeyRetired,
    /// A key too weak for the request (RSA below 3072 bits for a new key).
    WeakKey,
    /// The client name is taken.
    NameTaken,
    /// A name that is empty, too long or not printable ASCII.
    InvalidName,
    /// No such file or version.
    NotFound,
    /// The file is unverified and the request did not allow that.
    Unverified,
    /// The server's SHA-256 of the upload differs from the client's; the partial
    /// upload is discarded.
    HashMismatch,
    /// The file is larger than the server accepts.
    TooLarge,
    /// The server could not store or read (its log says why).
    Storage,
    /// Any other reason (a code this implementation does not know).
    Other(u16),
}

impl Refusal {
    /// The reason's number on the wire.
    pub fn code(self) -> u16 {
        match self {
            Refusal::Malformed => 1,
            Refusal::NotSignedIn => 2,
            Refusal::BadSignature => 3,
            Refusal::UnknownClient => 4,
            Refusal::KeyRetired => 5,
            Refusal::WeakKey => 6,
            Refusal::NameTaken => 7,
            Refusal::InvalidName => 8,
            Refusal::NotFound => 9,
            Refusal::Unverified => 10,
            Refusal::HashMismatch => 11,
            Refusal::TooLarge => 12,
            Refusal::Storage => 13,
            Refusal::Other(c) => c,
        }
    }

    /// The reason a number stands for.
    pub fn from_code(c: u16) -> Refusal {
        match c {
            1 => Refusal::Malformed,
            2 => Refusal::NotSignedIn,
            3 => Refusal::BadSignature,
            4 => Refusal::UnknownClient,
            5 => Refusal::KeyRetired,
            6 => Refusal::WeakKey,
            7 => Refusal::NameTaken,
            8 => Refusal::InvalidName,
            9 => Refusal::NotFound,
            10 => Refusal::Unverified,
            11 => Refusal::HashMismatch,
            12 => Refusal::TooLarge,
            13 => Refusal::Storage,
            c => Refusal::Other(c),
        }
    }
}

/// A response of the secure extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecureResponse {
    /// 2000: the request was carried out.
    Done,
    /// 2001: signed in.
    SignedIn {
        /// Legacy requests with this client's id are still served.
        legacy_open: bool,
    },
    /// 2002: registered and signed in.
    Registered {
        /// The new client's id.
        client_id: ClientId,
    },
    /// 2010: send the upload's content from this offset.
    PutOffset {
        /// Bytes the server already holds durably (0 for a new upload).
        offset: u64,
    },
    /// 2011: the upload is stored, size and hash checked.
    Stored {
        /// Its size.
        size: u64,
        /// Its POSIX cksum (for listings shared with the legacy protocol).
        cksum: u32,
        /// Its SHA-256.
        sha256: [u8; 32],
    },
    /// 2020: one file of a listing.
    FileEntry(FileEntry),
    /// 2021: one version of a file.
    VersionEntry(VersionEntry),
    /// 2022: the end of a listing.
    ListEnd {
        /// Entries sent.
        count: u32,
    },
    /// 2030: a download starts.
    GetBegin {
        /// The version sent (`None`: the current content).
        version: Option<u64>,
        /// The first byte sent.
        offset: u64,
        /// What is sent: its whole size and hashes.
        content: Described,
    },
    /// 2031: the next bytes of a download.
    GetData {
        /// Content.
        data: Bytes,
    },
    /// 2032: every byte of the download was sent.
    GetEnd,
    /// 2099: the request was refused.
    Refused {
        /// Why.
        reason: Refusal,
        /// For people: what the server's log says too.
        message: String,
    },
}

impl SecureResponse {
    /// The response's code.
    pub fn code(&self) -> u16 {
        encode::response_code(self)
    }
}
