//! The two kinds of error: what the peer did wrong, and what the caller did wrong.

use thiserror::Error;

/// Something the peer sent that breaks the protocol. Fatal for the connection: the
/// state machine has queued the right error response (1607 on the server) and
/// reports itself closed once that is transmitted.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PeerError {
    /// A header carried a code that is not a request (or response) code in either byte order.
    #[error("unknown request code {0}")]
    UnknownRequestCode(u16),
    /// A response header carried an unknown code.
    #[error("unknown response code {0}")]
    UnknownResponseCode(u16),
    /// The payload size does not fit the code.
    #[error("payload size {size} is wrong for code {code}")]
    BadPayloadSize {
        /// The code.
        code: u16,
        /// The declared size.
        size: usize,
    },
    /// The declared payload size exceeds the configured limit.
    #[error("payload size {size} for code {code} exceeds the limit {limit}")]
    PayloadTooLarge {
        /// The code.
        code: u16,
        /// The declared size.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// A fixed-size string field has no NUL terminator.
    #[error("a string field has no NUL terminator")]
    UnterminatedString,
    /// A name that is empty or not printable ASCII.
    #[error("invalid name: {0}")]
    InvalidName(&'static str),
    /// A request that is not allowed in the current state.
    #[error("request {code} not expected here: {why}")]
    UnexpectedRequest {
        /// The code.
        code: u16,
        /// What was expected instead.
        why: &'static str,
    },
    /// A response that does not fit the client's state.
    #[error("response {code} not expected here: {why}")]
    UnexpectedResponse {
        /// The code.
        code: u16,
        /// What was expected instead.
        why: &'static str,
    },
    /// A 828 packet with bad numbering or sizes.
    #[error("bad file packet: {0}")]
    BadPacket(&'static str),
    /// The upload is larger than a configured limit.
    #[error("upload too large: {0}")]
    UploadTooLarge(&'static str),
    /// The ciphertext did not decrypt (length or padding). Deliberately one variant
    /// whatever the cause, so it cannot serve as a padding oracle.
    #[error("the file did not decrypt")]
    DecryptionFailed,
    /// The decrypted size does not match the declared original size.
    #[error("decrypted size {actual} differs from the declared original size {declared}")]
    SizeMismatch {
        /// Declared original size.
        declared: u64,
        /// Size after decryption.
        actual: u64,
    },
    /// The public key field does not hold an acceptable RSA key.
    #[error("invalid public key: {0}")]
    InvalidPublicKey(&'static str),
    /// The AES key is older than [`crate::Limits::key_lifetime`].
    #[error("the AES key has expired; reconnect for a new one")]
    KeyExpired,
    /// The encrypted AES key did not decrypt with our private key.
    #[error("the AES key did not decrypt: {0}")]
    BadAesKey(&'static str),
    /// The response carried a client id other than ours.
    #[error("response for another client id")]
    WrongClientId,
    /// The connection ended in the middle of a frame or an exchange.
    #[error("connection closed mid-exchange")]
    UnexpectedEof,
    /// Nothing arrived within the configured time. On the server this also closes a
    /// connection whose application did not answer within
    /// [`Limits::answer_timeout`](crate::Limits::answer_timeout) (the client gets a
    /// 1607 either way).
    #[error("timed out: {0}")]
    Timeout(&'static str),
    /// The server's [`InputBudget`](crate::InputBudget) for buffered input is spent:
    /// the connection is refused (1607) rather than let memory grow.
    #[error("the server is busy: its input budget is spent")]
    Busy,
    /// A secure-mode signature that does not verify with the key it claims.
    #[error("the signature does not verify")]
    BadSignature,
    /// The secure session was refused by the server (client side).
    #[error("refused by the server")]
    Refused,
    /// Input was given to a connection that had already closed: repeated on every
    /// call after the close (the error that closed it is in `error()`).
    #[error("the connection is closed")]
    Closed,
}

/// A call the embedding application made that does not fit the state machine's
/// state. Never closes the connection and never changes state.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum UsageError {
    /// The ticket does not name the question the connection is waiting on: it was
    /// already timed out ([`Limits::answer_timeout`](crate::Limits::answer_timeout)),
    /// the connection closed meanwhile, or it came from another connection.
    #[error("no pending question with ticket {0:#x}")]
    UnknownTicket(u64),
    /// [`data_written`](crate::ServerConnection::data_written) reported more bytes
    /// than were handed out and not yet reported.
    #[error("data_written({reported}) but only {outstanding} bytes are unwritten")]
    WrittenTooMuch {
        /// The count given.
        reported: usize,
        /// Bytes handed out in `UploadData` and not yet reported written.
        outstanding: usize,
    },
    /// [`succeed`](crate::ServerConnection::succeed) for
    /// [`UploadFinished`](crate::ServerEvent::UploadFinished) while bytes of the
    /// upload handed out in [`UploadData`](crate::ServerEvent::UploadData) were not
    /// reported written: the checksum (1603) would confirm bytes the application may
    /// never have stored. The connection answers 1607 instead and drops the upload.
    #[error("the upload was finished with {outstanding} bytes not reported written")]
    Unwritten {
        /// Bytes handed out in `UploadData` and not yet reported written.
        outstanding: usize,
    },
    /// [`fail_upload`](crate::ServerConnection::fail_upload) with no upload in progress.
    #[error("no upload in progress")]
    NoUpload,
    /// File data or end of file given while the client is not sending the file (before
    /// [`ClientEvent::SendFile`](crate::ClientEvent::SendFile), or after `end_of_file`).
    #[error("the session is not sending the file now")]
    NotSendingFile,
    /// More file data than the configured file size.
    #[error("file data beyond the declared size {size}")]
    FileLonger {
        /// The size in the configuration.
        size: u64,
    },
    /// `end_of_file` before the configured file size was fed.
    #[error("the file ended after {fed} of {size} bytes")]
    FileShorter {
        /// Bytes fed.
        fed: u64,
        /// The size in the configuration.
        size: u64,
    },
    /// [`push_file_data`](crate::ClientSession::push_file_data) while the session holds
    /// all the output it may queue: call `poll_transmit` (and send) first.
    #[error("the send buffer is full: transmit first")]
    SendBufferFull,
    /// The call is not allowed in the current state.
    #[error("not allowed now: {0}")]
    NotNow(&'static str),
    /// The configuration is not usable.
    #[error("invalid configuration: {0}")]
    BadConfig(&'static str),
}
