//! One file upload in progress: packet order, sizes, decryption and checksum.

use bytes::{Bytes, BytesMut};

use crate::crypto::{padded_len, AesKey, CbcDecryptor, Checksum, ChecksumAlgorithm};
use crate::dialect::EncryptionMode;
use crate::error::PeerError;
use crate::limits::Limits;
use crate::wire::{ClientId, FieldString, FilePacket, PacketFieldOrder};

/// An upload between two packets. Handed to the application when a connection ends
/// mid-upload ([`crate::ServerEvent::UploadSuspended`]) and handed back when the same
/// client's next packet arrives on another connection, so that peers that open a
/// connection per request (variant 7) can upload at all.
#[derive(Clone, Debug)]
pub struct SuspendedUpload(pub(crate) Upload);

impl SuspendedUpload {
    /// The client this upload belongs to.
    pub fn client_id(&self) -> ClientId {
        self.0.client_id
    }
    /// The file name of the upload.
    pub fn file_name(&self) -> &FieldString {
        &self.0.file_name
    }
    /// Decrypted bytes so far.
    pub fn bytes_so_far(&self) -> u64 {
        self.0.plaintext_len
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Stream,
    PerPacket,
}

#[derive(Clone, Debug)]
pub(crate) struct Upload {
    pub client_id: ClientId,
    pub file_name: FieldString,
    pub original_size: u32,
    pub total: u16,
    pub next: u16,
    content_size_field: u32,
    field_order: PacketFieldOrder,
    per_packet_size: bool,
    mode: Mode,
    pub ciphertext_len: u64,
    pub plaintext_len: u64,
    decryptor: CbcDecryptor,
    pub checksum: Checksum,
    /// Answer every packet with a 1603 (variant 7).
    pub ack_every: bool,
}

/// What a packet did to the upload.
pub(crate) struct PacketOutcome {
    /// Decrypted bytes released by this packet (may be empty).
    pub data: Bytes,
    /// The upload is complete: checksum and sizes checked.
    pub finished: bool,
}

/// Reads packet number and total from a first packet, detecting the field order:
/// the packet number of a first packet is 1, so whichever field is 1 is the number.
pub(crate) fn detect_field_order(p: &FilePacket) -> Option<PacketFieldOrder> {
    if p.packet_number == 1 {
        Some(PacketFieldOrder::NumberFirst)
    } else if p.total_packets == 1 {
        Some(PacketFieldOrder::TotalFirst)
    } else {
        None
    }
}

fn number_and_total(p: &FilePacket, order: PacketFieldOrder) -> (u16, u16) {
    match order {
        PacketFieldOrder::NumberFirst => (p.packet_number, p.total_packets),
        PacketFieldOrder::TotalFirst => (p.total_packets, p.packet_number),
    }
}

impl Upload {
    /// Starts an upload from its first packet (not yet decrypted; see [`Upload::accept`]).
    pub fn start(
        client_id: ClientId,
        key: &AesKey,
        p: &FilePacket,
        limits: &Limits,
        checksum: ChecksumAlgorithm,
        encryption: EncryptionMode,
    ) -> Result<Upload, PeerError> {
        let field_order =
            detect_field_order(p).ok_or(PeerError::BadPacket("first packet is not number 1"))?;
        let (_, total) = number_and_total(p, field_order);
        if total == 0 {
            return Err(PeerError::BadPacket("total packets is 0"));
        }
        if total > limits.max_packets {
            return Err(PeerError::UploadTooLarge("more packets than the limit"));
        }
        if p.original_size as u64 > limits.max_file_size {
            return Err(PeerError::UploadTooLarge("file larger than the limit"));
        }
        let per_packet_size = total > 1 && p.content_size as usize == p.content.len();
        let stream_len = padded_len(p.original_size as u64);
        let mode = match encryption {
            EncryptionMode::Stream => Mode::Stream,
            EncryptionMode::PerPacket => Mode::PerPacket,
            // One packet: both modes are the same bytes.
            EncryptionMode::Detect if total == 1 => Mode::Stream,
            // The total ciphertext size tells: one stream pads once.
            EncryptionMode::Detect if !per_packet_size => {
                if p.content_size as u64 == stream_len {
                    Mode::Stream
                } else {
                    Mode::PerPacket
                }
            }
            // Decided in `accept` from the first packet's padding.
            EncryptionMode::Detect => Mode::Stream,
        };
        Ok(Upload {
            client_id,
            file_name: p.file_name.clone(),
            original_size: p.original_size,
            total,
            next: 1,
            content_size_field: p.content_size,
            field_order,
            per_packet_size,
            mode,
            ciphertext_len: 0,
            plaintext_len: 0,
            decryptor: CbcDecryptor::new(key),
            checksum: Checksum::new(checksum),
            ack_every: false,
        })
    }

    /// Checks and decrypts one packet (the next in order). `plain` is scratch space
    /// whose allocation is reused once the application drops earlier data.
    pub fn accept(
        &mut self,
        p: &FilePacket,
        plain: &mut BytesMut,
        detect_mode: bool,
    ) -> Result<PacketOutcome, PeerError> {
        let (number, total) = number_and_total(p, self.field_order);
        if total != self.total {
            return Err(PeerError::BadPacket("total packets changed mid-upload"));
        }
        if number != self.next {
            return Err(PeerError::BadPacket(
                "packet out of order, repeated or beyond the total",
            ));
        }
        if p.original_size != self.original_size {
            return Err(PeerError::BadPacket("original size changed mid-upload"));
        }
        if self.per_packet_size {
            if p.content_size as usize != p.content.len() {
                return Err(PeerError::BadPacket("content size differs from the content"));
            }
        } else if p.content_size != self.content_size_field {
            return Err(PeerError::BadPacket("content size changed mid-upload"));
        }
        // Per-packet padding adds at most a block per packet to the stream's size.
        let max_ciphertext = padded_len(self.original_size as u64) + 16 * (self.total as u64 - 1);
        self.ciphertext_len += p.content.len() as u64;
        if self.ciphertext_len > max_ciphertext
            || (!self.per_packet_size && self.ciphertext_len > self.content_size_field as u64)
        {
            return Err(PeerError::BadPacket("more content than the declared sizes"));
        }
        self.next += 1;
        let last = number == self.total;

        plain.clear();
        self.decryptor.update(&p.content, plain);
        if number == 1 && detect_mode && self.per_packet_size && self.total > 1 {
            // Variant 3 hides the total size, so look at the first packet: if it was
            // encrypted on its own its last block carries PKCS#7 padding.
            if self.decryptor.held_block_looks_padded() {
                self.mode = Mode::PerPacket;
            }
        }
        if self.mode == Mode::PerPacket || last {
            self.decryptor
                .finish(plain)
                .map_err(|_| PeerError::DecryptionFailed)?;
        }
        let released = plain.len() as u64;
        self.plaintext_len += released;
        if self.plaintext_len > self.original_size as u64 {
            return Err(PeerError::SizeMismatch {
                declared: self.original_size as u64,
                actual: self.plaintext_len,
            });
        }
        let data = plain.split().freeze();
        self.checksum.update(&data);
        if last {
            if self.plaintext_len != self.original_size as u64 {
                return Err(PeerError::SizeMismatch {
                    declared: self.original_size as u64,
                    actual: self.plaintext_len,
                });
            }
            if !self.per_packet_size && self.ciphertext_len != self.content_size_field as u64 {
                return Err(PeerError::BadPacket("less content than the declared size"));
            }
        }
        Ok(PacketOutcome {
            data,
            finished: last,
        })
    }

    /// Packet number of a packet as this upload reads the fields.
    pub fn number_of(&self, p: &FilePacket) -> u16 {
        number_and_total(p, self.field_order).0
    }
}
