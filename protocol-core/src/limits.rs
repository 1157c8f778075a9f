//! Limits on every size and count a peer controls.

use std::time::Duration;

/// Bounds that a peer cannot talk the server past. Memory per connection is bounded
/// by `max_payload + max_unwritten` plus small constants, whatever a peer declares.
///
/// ```
/// use protocol_core::Limits;
/// let limits = Limits { max_payload: 1 << 20, ..Limits::default() };
/// assert!(limits.max_file_size <= u32::MAX as u64);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest payload of one request (in practice of one 828 packet, header fields included).
    pub max_payload: usize,
    /// Largest original (plaintext) file size accepted.
    pub max_file_size: u64,
    /// Largest number of packets in one upload.
    pub max_packets: u16,
    /// Decrypted bytes handed to the app and not yet reported written, before the
    /// server stops reading (backpressure).
    pub max_unwritten: usize,
    /// A connection with no complete request for this long is closed.
    pub idle_timeout: Duration,
    /// A request whose header or payload has started but not finished within this
    /// time is abandoned (slow senders).
    pub request_timeout: Duration,
    /// An AES key older than this is not used for a new upload: the client must
    /// reconnect (827) for a fresh one.
    pub key_lifetime: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_payload: 16 * 1024 * 1024 + crate::wire::FILE_PACKET_FIXED_LEN,
            max_file_size: u32::MAX as u64,
            max_packets: u16::MAX,
            max_unwritten: 8 * 1024 * 1024,
            idle_timeout: Duration::from_secs(120),
            request_timeout: Duration::from_secs(60),
            key_lifetime: Duration::from_secs(24 * 60 * 60),
        }
    }
}
