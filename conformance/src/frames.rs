//! Raw frames: requests built field by field (so that any field can be wrong), and
//! responses read without judging them, so that a case sees exactly what came.

use protocol_core::wire::{FILE_PACKET_FIXED_LEN, NAME_FIELD_LEN, REQUEST_HEADER_LEN};
use protocol_core::ByteOrder;

/// Request codes by number.
pub mod code {
    /// Register.
    pub const REGISTER: u16 = 825;
    /// Send public key.
    pub const PUBLIC_KEY: u16 = 826;
    /// Reconnect.
    pub const RECONNECT: u16 = 827;
    /// Send file.
    pub const SEND_FILE: u16 = 828;
    /// Checksum ok.
    pub const CRC_OK: u16 = 900;
    /// Checksum wrong, resending.
    pub const CRC_RETRY: u16 = 901;
    /// Checksum wrong the fourth time.
    pub const CRC_ABORT: u16 = 902;
}

/// Response codes by number.
pub mod rcode {
    /// Registered.
    pub const REGISTERED: u16 = 1600;
    /// Registration failed.
    pub const REG_FAILED: u16 = 1601;
    /// AES key.
    pub const AES_KEY: u16 = 1602;
    /// File received.
    pub const FILE_RECEIVED: u16 = 1603;
    /// Ack.
    pub const ACK: u16 = 1604;
    /// Reconnected.
    pub const RECONNECTED: u16 = 1605;
    /// Reconnect refused.
    pub const RECONNECT_REFUSED: u16 = 1606;
    /// General error.
    pub const GENERAL_ERROR: u16 = 1607;
}

fn put_u16(out: &mut Vec<u8>, order: ByteOrder, v: u16) {
    match order {
        ByteOrder::Little => out.extend_from_slice(&v.to_le_bytes()),
        ByteOrder::Big => out.extend_from_slice(&v.to_be_bytes()),
    }
}

fn put_u32(out: &mut Vec<u8>, order: ByteOrder, v: u32) {
    match order {
        ByteOrder::Little => out.extend_from_slice(&v.to_le_bytes()),
        ByteOrder::Big => out.extend_from_slice(&v.to_be_bytes()),
    }
}

/// A request header with every field given.
pub fn header(id: [u8; 16], version: u8, code: u16, size: u32, order: ByteOrder) -> Vec<u8> {
    let mut out = Vec::with_capacity(REQUEST_HEADER_LEN);
    out.extend_from_slice(&id);
    out.push(version);
    put_u16(&mut out, order, code);
    put_u32(&mut out, order, size);
    out
}

/// A whole request: header (version 3, size of `payload`) and payload.
pub fn request(id: [u8; 16], code: u16, payload: &[u8], order: ByteOrder) -> Vec<u8> {
    let mut out = header(id, 3, code, payload.len() as u32, order);
    out.extend_from_slice(payload);
    out
}

/// A 255-byte name field: `name`, then zeros. Longer names are cut to 255 bytes
/// (no terminator: hostile cases want exactly that).
pub fn name_field(name: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; NAME_FIELD_LEN];
    let n = name.len().min(NAME_FIELD_LEN);
    f[..n].copy_from_slice(&name[..n]);
    f
}

/// The fields of one 828 packet, as a case wants them written.
#[derive(Debug, Clone)]
pub struct PacketFields {
    /// Content size field.
    pub content_size: u32,
    /// Original size field.
    pub original_size: u32,
    /// Packet number.
    pub number: u16,
    /// Total packets.
    pub total: u16,
    /// Total written before the number (variant 2).
    pub total_first: bool,
    /// File name.
    pub file_name: Vec<u8>,
}

/// The payload of an 828: fixed fields then content.
pub fn packet_payload(f: &PacketFields, content: &[u8], order: ByteOrder) -> Vec<u8> {
    let mut out = Vec::with_capacity(FILE_PACKET_FIXED_LEN + content.len());
    put_u32(&mut out, order, f.content_size);
    put_u32(&mut out, order, f.original_size);
    if f.total_first {
        put_u16(&mut out, order, f.total);
        put_u16(&mut out, order, f.number);
    } else {
        put_u16(&mut out, order, f.number);
        put_u16(&mut out, order, f.total);
    }
    out.extend_from_slice(&name_field(&f.file_name));
    out.extend_from_slice(content);
    out
}

/// A response as it came: header fields and payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawResponse {
    /// Byte order the code was found in.
    pub order: ByteOrder,
    /// Version byte.
    pub version: u8,
    /// Code.
    pub code: u16,
    /// Payload.
    pub payload: Vec<u8>,
}

/// The byte order and code of a 7-byte response header, if the code is a response
/// code in either order.
pub fn response_code(head: &[u8; 7]) -> Option<(ByteOrder, u16)> {
    let le = u16::from_le_bytes([head[1], head[2]]);
    if (1600..=1607).contains(&le) {
        return Some((ByteOrder::Little, le));
    }
    let be = u16::from_be_bytes([head[1], head[2]]);
    if (1600..=1607).contains(&be) {
        return Some((ByteOrder::Big, be));
    }
    None
}

/// Reads a u32 in `order` from four bytes.
pub fn u32_in(order: ByteOrder, b: [u8; 4]) -> u32 {
    match order {
        ByteOrder::Little => u32::from_le_bytes(b),
        ByteOrder::Big => u32::from_be_bytes(b),
    }
}

/// The fields of a 1603.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileReceived {
    /// Echoed client id.
    pub id: [u8; 16],
    /// Content size field.
    pub size: u32,
    /// Checksum.
    pub checksum: u32,
}

impl RawResponse {
    /// The client id at the front of the payload, if it has 16 bytes or more.
    pub fn id(&self) -> Option<[u8; 16]> {
        self.payload.get(..16)?.try_into().ok()
    }

    /// The file name of a 1603 (bytes before the NUL).
    pub fn file_name(&self) -> Option<Vec<u8>> {
        let f = self.payload.get(20..20 + NAME_FIELD_LEN)?;
        let end = f.iter().position(|&b| b == 0)?;
        Some(f[..end].to_vec())
    }

    /// The fields of a 1603 of the right size.
    pub fn file_received(&self) -> Option<FileReceived> {
        if self.code != rcode::FILE_RECEIVED || self.payload.len() != 16 + 4 + NAME_FIELD_LEN + 4 {
            return None;
        }
        let b = &self.payload;
        let at = |i: usize| [b[i], b[i + 1], b[i + 2], b[i + 3]];
        Some(FileReceived {
            id: self.id()?,
            size: u32_in(self.order, at(16)),
            checksum: u32_in(self.order, at(16 + 4 + NAME_FIELD_LEN)),
        })
    }

    /// The encrypted key of a 1602/1605.
    pub fn encrypted_key(&self) -> Option<&[u8]> {
        if self.code != rcode::AES_KEY && self.code != rcode::RECONNECTED {
            return None;
        }
        self.payload.get(16..).filter(|k| !k.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_in_both_orders() {
        let h = header([0; 16], 3, 825, 255, ByteOrder::Little);
        assert_eq!(&h[16..], &[3, 0x39, 0x03, 0xff, 0, 0, 0]);
        let h = header([0; 16], 3, 825, 255, ByteOrder::Big);
        assert_eq!(&h[16..], &[3, 0x03, 0x39, 0, 0, 0, 0xff]);
        assert_eq!(
            response_code(&[3, 0x40, 0x06, 16, 0, 0, 0]),
            Some((ByteOrder::Little, 1600))
        );
        assert_eq!(
            response_code(&[3, 0x06, 0x40, 0, 0, 0, 16]),
            Some((ByteOrder::Big, 1600))
        );
        assert_eq!(response_code(&[3, 0, 0, 0, 0, 0, 0]), None);
    }
}

/// How an upload is laid out on the wire (the variants of section 8 that concern 828).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Layout {
    /// Byte order of header and fields (variant 1).
    pub order: ByteOrder,
    /// Total packets before the packet number (variant 2).
    pub total_first: bool,
    /// Content size field per packet (variant 3).
    pub per_packet_size: bool,
    /// Each packet encrypted on its own (variant 4).
    pub per_packet_encryption: bool,
    /// Every content field exactly `packet_size` bytes, zero-filled (variant 12).
    pub padded: bool,
}
