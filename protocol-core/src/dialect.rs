//! Dialects: the ways deployed peers deviate from the specification
//! (`docs/PROTOCOL.md`, "Variants seen in the wild"), as configuration. The defaults
//! are the specification. [`DetectedDialect`] is the other direction: what a server
//! connection found its peer to speak.

use std::fmt;

use crate::crypto::{AesKeySize, ChecksumAlgorithm};
use crate::wire::{ByteOrder, PacketFieldOrder};

/// How a client speaks. `Dialect::default()` is the specification.
///
/// ```
/// use protocol_core::{Dialect, ByteOrder};
/// let legacy = Dialect { byte_order: ByteOrder::Big, per_packet_encryption: true, ..Dialect::default() };
/// assert_eq!(Dialect::default().packet_size, 64 * 1024);
/// # let _ = legacy;
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Dialect {
    /// Checksum compared with the server's 1603 (variant 8: zlib CRC-32).
    pub checksum: ChecksumAlgorithm,
    /// Byte order of request headers and fields (variant 1).
    pub byte_order: ByteOrder,
    /// Order of the packet number and total fields (variant 2).
    pub packet_fields: PacketFieldOrder,
    /// Content size per packet instead of the total (variant 3).
    pub per_packet_content_size: bool,
    /// Each packet encrypted on its own (variant 4).
    pub per_packet_encryption: bool,
    /// 900/901/902 carry the client name instead of the file name (variant 5).
    pub crc_carries_client_name: bool,
    /// A new TCP connection for every request, waiting for each packet's 1603
    /// (variant 7): the session emits [`crate::ClientEvent::NewConnection`] between
    /// requests.
    pub connection_per_request: bool,
    /// Content bytes per 828 packet (variant 9 servers need about 1 KiB). Grown,
    /// in steps of 16 bytes, when a file would otherwise need more than 65,535 packets.
    pub packet_size: usize,
    /// Hand out one request per [`poll_transmit`](crate::ClientSession::poll_transmit)
    /// call, for the driver to write each with a write of its own (variant 13: servers
    /// that read a request with one `recv`). Without it whole requests are still never
    /// split, but several may leave together.
    pub one_request_per_write: bool,
    /// Every 828 carries a content field of exactly `packet_size` bytes, the last
    /// packet's zero-filled past the declared total (variant 12). Needs the stream
    /// encryption and the total in the content size field.
    pub pad_packets: bool,
}

impl Default for Dialect {
    fn default() -> Self {
        Dialect {
            checksum: ChecksumAlgorithm::Cksum,
            byte_order: ByteOrder::Little,
            packet_fields: PacketFieldOrder::NumberFirst,
            per_packet_content_size: false,
            per_packet_encryption: false,
            crc_carries_client_name: false,
            connection_per_request: false,
            packet_size: 64 * 1024,
            one_request_per_write: false,
            pad_packets: false,
        }
    }
}

/// How the server answers, and which detectable variants it accepts.
/// `ServerDialect::default()` is the specification, accepting every detectable variant.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServerDialect {
    /// Checksum sent in 1603 (variant 8: zlib CRC-32).
    pub checksum: ChecksumAlgorithm,
    /// Size of the AES keys issued in 1602/1605 (variant 8: 128-bit).
    pub aes_key_size: AesKeySize,
    /// Byte order of responses.
    pub response_order: ResponseOrder,
    /// Send 1604 with an empty payload (variant 6).
    pub empty_ack: bool,
    /// How uploads are decrypted.
    pub encryption: EncryptionMode,
    /// When to answer a non-final 828 packet with a 1603 (variant 7).
    pub ack_every_packet: PacketAck,
}

impl Default for ServerDialect {
    fn default() -> Self {
        ServerDialect {
            checksum: ChecksumAlgorithm::Cksum,
            aes_key_size: AesKeySize::Aes256,
            response_order: ResponseOrder::Fixed(ByteOrder::Little),
            empty_ack: false,
            encryption: EncryptionMode::Detect,
            ack_every_packet: PacketAck::Detect,
        }
    }
}

/// The byte order of the server's responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResponseOrder {
    /// Always this order.
    Fixed(ByteOrder),
    /// The order of the request being answered.
    MirrorRequest,
}

/// How the server decrypts uploads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EncryptionMode {
    /// One CBC stream over the whole file (the specification).
    Stream,
    /// Each packet encrypted on its own (variant 4).
    PerPacket,
    /// Decide per upload (see [`crate::server`]'s module docs).
    Detect,
}

/// When the server answers a packet that is not the last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketAck {
    /// Only the last packet is answered (the specification).
    LastOnly,
    /// Every packet is answered with a 1603 (running checksum).
    Every,
    /// Answer every packet of uploads that arrive a packet per connection (variant 7).
    Detect,
}

/// What a server connection has found its peer to speak, for the operator's log
/// ([`ServerConnection::detected`](crate::ServerConnection::detected)). Each field is
/// `None` until a request showed it. `Display` gives one line, e.g.
/// `requests little-endian, packet number first, total size, stream encryption, cksum`.
///
/// ```
/// use protocol_core::{ByteOrder, DetectedDialect};
/// let d = DetectedDialect { byte_order: Some(ByteOrder::Big), ..DetectedDialect::default() };
/// assert_eq!(d.to_string(), "requests big-endian");
/// assert_eq!(DetectedDialect::default().to_string(), "nothing seen");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct DetectedDialect {
    /// Byte order of the request headers (variant 1).
    pub byte_order: Option<ByteOrder>,
    /// Order of the packet number and total fields (variant 2).
    pub packet_fields: Option<PacketFieldOrder>,
    /// Content size per packet (variant 3) rather than the total.
    pub per_packet_content_size: Option<bool>,
    /// How the upload was encrypted: one stream or per packet (variant 4).
    pub encryption: Option<EncryptionMode>,
    /// Every 828 answered (a connection per request, variant 7).
    pub every_packet_answered: Option<bool>,
    /// The last packet's content field zero-padded past the declared total (variant 12).
    pub padded_packets: Option<bool>,
    /// Checksum this server sends in 1603 (configured, not detected; variant 8).
    pub checksum: Option<ChecksumAlgorithm>,
}

impl fmt::Display for DetectedDialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<&str> = Vec::new();
        if let Some(o) = self.byte_order {
            parts.push(match o {
                ByteOrder::Little => "requests little-endian",
                ByteOrder::Big => "requests big-endian",
            });
        }
        if let Some(o) = self.packet_fields {
            parts.push(match o {
                PacketFieldOrder::NumberFirst => "packet number first",
                PacketFieldOrder::TotalFirst => "total packets first",
            });
        }
        if let Some(p) = self.per_packet_content_size {
            parts.push(if p { "size per packet" } else { "total size" });
        }
        if let Some(e) = self.encryption {
            parts.push(match e {
                EncryptionMode::Stream => "stream encryption",
                EncryptionMode::PerPacket => "per-packet encryption",
                EncryptionMode::Detect => "encryption undecided",
            });
        }
        if self.every_packet_answered == Some(true) {
            parts.push("every packet answered");
        }
        if self.padded_packets == Some(true) {
            parts.push("zero-padded packets");
        }
        if let Some(c) = self.checksum {
            parts.push(match c {
                ChecksumAlgorithm::Cksum => "cksum",
                ChecksumAlgorithm::Crc32 => "crc32",
            });
        }
        if parts.is_empty() {
            return f.write_str("nothing seen");
        }
        f.write_str(&parts.join(", "))
    }
}
