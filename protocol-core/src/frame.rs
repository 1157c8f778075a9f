//! The sizes of the frame format (docs/PROTOCOL.md, section 2): headers and fixed
//! fields. Kept apart from the codec ([`crate::wire`], which re-exports them) so
//! that the limits ([`crate::limits`]) and the codec both build on them without
//! importing each other.

/// Version byte this implementation sends in every header.
pub const VERSION: u8 = 3;
/// Size of a request header: client id (16), version (1), code (2), payload size (4).
pub const REQUEST_HEADER_LEN: usize = 23;
/// Size of a response header: version (1), code (2), payload size (4).
pub const RESPONSE_HEADER_LEN: usize = 7;
/// Size of every fixed string field (name, file name).
pub const NAME_FIELD_LEN: usize = 255;
/// Size of the public key field of request 826.
pub const PUBLIC_KEY_FIELD_LEN: usize = 160;
/// Size of the fixed part of request 828 before the content.
pub const FILE_PACKET_FIXED_LEN: usize = 4 + 4 + 2 + 2 + NAME_FIELD_LEN;
/// Size of a client id.
pub const CLIENT_ID_LEN: usize = 16;
/// Largest encrypted AES key a response may carry (an RSA-4096 ciphertext).
pub const MAX_ENCRYPTED_KEY_LEN: usize = 512;

/// The first two bytes of a TLS handshake record (content type 22, major version 3):
/// how a ClientHello begins.
pub const TLS_HANDSHAKE_START: [u8; 2] = [0x16, 0x03];

/// Whether `bytes` begin as a TLS handshake record does. A request header begins
/// with its client id, so the server never issues an id that does: a listener can
/// then tell a TLS ClientHello from a legacy request by its first two bytes.
///
/// ```
/// use protocol_core::frame::begins_like_tls;
/// assert!(begins_like_tls(&[0x16, 0x03, 0x01, 0x02, 0x00]));
/// assert!(!begins_like_tls(&[0x16, 0x04]));
/// assert!(!begins_like_tls(&[0x16]));
/// ```
pub fn begins_like_tls(bytes: &[u8]) -> bool {
    bytes.starts_with(&TLS_HANDSHAKE_START)
}
