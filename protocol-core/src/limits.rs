//! Limits on every size and count a peer controls, and the connection's timers.

use std::time::Duration;

/// Bounds that a peer cannot talk the server past. Memory per connection is bounded
/// by `max_payload + max_unwritten` plus small constants, whatever a peer declares.
///
/// | field | default |
/// |---|---|
/// | [`max_payload`](Limits::max_payload) | 16 MiB + 267 (one 16 MiB packet with its fixed fields) |
/// | [`max_file_size`](Limits::max_file_size) | 4 GiB - 1 (`u32::MAX`) |
/// | [`max_packets`](Limits::max_packets) | 65,535 |
/// | [`max_unwritten`](Limits::max_unwritten) | 8 MiB |
/// | [`idle_timeout`](Limits::idle_timeout) | 120 s |
/// | [`first_header_timeout`](Limits::first_header_timeout) | 10 s |
/// | [`request_timeout`](Limits::request_timeout) | 60 s |
/// | [`answer_timeout`](Limits::answer_timeout) | 60 s |
/// | [`key_lifetime`](Limits::key_lifetime) | 24 h |
/// | [`seen_interval`](Limits::seen_interval) | 1 s |
///
/// ```
/// use std::time::Duration;
/// use protocol_core::Limits;
/// let limits = Limits { max_payload: 1 << 20, ..Limits::default() };
/// assert!(limits.max_file_size <= u32::MAX as u64);
/// assert_eq!(Limits::default().max_unwritten, 8 << 20);
/// assert_eq!(Limits::default().answer_timeout, Duration::from_secs(60));
/// assert_eq!(Limits::default().seen_interval, Duration::from_secs(1));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest payload of one request (in practice of one 828 packet, header fields
    /// included). Default 16 MiB + 267.
    pub max_payload: usize,
    /// Largest original (plaintext) file size accepted. Default `u32::MAX`.
    pub max_file_size: u64,
    /// Largest number of packets in one upload. Default 65,535.
    pub max_packets: u16,
    /// Decrypted bytes handed to the app and not yet reported written, before the
    /// server stops reading (backpressure). Default 8 MiB.
    pub max_unwritten: usize,
    /// A connection with no complete request for this long is closed. Default 120 s.
    pub idle_timeout: Duration,
    /// A new connection that has not sent a whole request header within this time
    /// is refused (1607) and closed: idle and slow peers cannot hold the server's
    /// connection slots for the idle timeout. Default 10 s.
    pub first_header_timeout: Duration,
    /// A request whose header or payload has started but not finished within this
    /// time is abandoned (slow senders). Default 60 s.
    pub request_timeout: Duration,
    /// How long the connection waits for the application: for the answer to a
    /// question, and for [`data_written`](crate::ServerConnection::data_written) while
    /// reading is paused by [`max_unwritten`](Limits::max_unwritten). When it passes,
    /// the client gets a 1607 and the connection closes (an application that forgot
    /// to answer cannot hold a connection open forever). Default 60 s.
    pub answer_timeout: Duration,
    /// An AES key older than this is not used for a new upload: the client must
    /// reconnect (827) for a fresh one. Default 24 h.
    pub key_lifetime: Duration,
    /// [`ServerEvent::Seen`](crate::ServerEvent::Seen) is reported at most once per
    /// this interval for the same client on one connection. Default 1 s: LastSeen
    /// stays accurate to a second without a database write per file packet.
    pub seen_interval: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_payload: 16 * 1024 * 1024 + crate::frame::FILE_PACKET_FIXED_LEN,
            max_file_size: u32::MAX as u64,
            max_packets: u16::MAX,
            max_unwritten: 8 * 1024 * 1024,
            idle_timeout: Duration::from_secs(120),
            first_header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            answer_timeout: Duration::from_secs(60),
            key_lifetime: Duration::from_secs(24 * 60 * 60),
            seen_interval: Duration::from_secs(1),
        }
    }
}
