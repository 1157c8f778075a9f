//! How a file is cut into packets: packet size, count, total ciphertext.

use crate::crypto::padded_len;
use crate::dialect::Dialect;
use crate::error::UsageError;

/// How a file is cut into packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Layout {
    pub total_packets: u16,
    /// Stream mode: ciphertext bytes per packet; per-packet mode: plaintext bytes per packet.
    pub unit: u64,
    /// Total ciphertext.
    pub content_size: u64,
}

fn round_up16(n: u64) -> u64 {
    n.div_ceil(16) * 16
}

impl Layout {
    pub fn new(file_size: u64, dialect: &Dialect) -> Result<Layout, UsageError> {
        if dialect.pad_packets && (dialect.per_packet_encryption || dialect.per_packet_content_size)
        {
            return Err(UsageError::BadConfig(
                "zero-padded packets need stream encryption and the total content size",
            ));
        }
        let want = (dialect.packet_size.max(16)) as u64;
        let (unit, total, content) = if dialect.per_packet_encryption {
            let mut unit = want;
            let mut n = file_size.div_ceil(unit).max(1);
            if n > u16::MAX as u64 {
                unit = round_up16(file_size.div_ceil(u16::MAX as u64));
                n = file_size.div_ceil(unit).max(1);
            }
            let last = file_size - (n - 1) * unit;
            (unit, n, (n - 1) * padded_len(unit) + padded_len(last))
        } else {
            let content = padded_len(file_size);
            let mut unit = round_up16(want);
            if content.div_ceil(unit) > u16::MAX as u64 {
                unit = round_up16(content.div_ceil(u16::MAX as u64));
            }
            (unit, content.div_ceil(unit), content)
        };
        if content > u32::MAX as u64 {
            return Err(UsageError::BadConfig(
                "the encrypted file would exceed 4 GiB - 1, the protocol's limit",
            ));
        }
        Ok(Layout {
            total_packets: total as u16,
            unit,
            content_size: content,
        })
    }
}
