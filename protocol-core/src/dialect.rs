//! Dialects: the ways deployed peers deviate from the specification
//! (the deployed variants of `docs/PROTOCOL.md`), as configuration. The defaults are the specification.

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
