//! One file upload in progress: packet order, sizes, decryption and checksum.

use bytes::{Bytes, BytesMut};

use crate::crypto::{padded_len, AesKey, CbcDecryptor, Checksum, ChecksumAlgorithm};
use crate::dialect::{DetectedDialect, EncryptionMode};
use crate::error::PeerError;
use crate::limits::Limits;
use crate::wire::{ClientId, FieldString, FilePacket, PacketFieldOrder};

/// An upload between two packets. Handed to the application when a connection ends
/// mid-upload ([`crate::ServerEvent::UploadSuspended`]) and handed back when the same
/// client's next packet arrives on another connection, so that peers that open a
/// connection per request (variant 7) can upload at all.
#[derive(Debug)]
pub struct SuspendedUpload(pub(crate) Box<Upload>);

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
    /// Whether every packet of this upload is answered: its client opens a
    /// connection per request (variant 7). An upload started anew by a client of the
    /// other kind is not this client's restart (the id travels in clear: it may be a
    /// stranger's), so it must not replace this one.
    pub fn every_packet_answered(&self) -> bool {
        self.0.ack_every
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    Stream,
    PerPacket,
    /// Not yet known: the packets so far, kept (at most [`PROBE_PACKETS`]) until
    /// the evidence decides, and the padding length of the first.
    Probing {
        held: Vec<Bytes>,
        pad: Option<usize>,
    },
}

/// Packets whose last blocks all end in the same valid padding before an upload
/// whose sizes do not tell is taken to be encrypted per packet: a stream's blocks
/// look padded by chance about once in 256, so three in a row about once in 2^24.
pub(crate) const PROBE_PACKETS: usize = 3;

/// The PKCS#7 padding length of a packet's last block if the packet were encrypted
/// on its own (zero IV), or `None` if it would not decrypt.
fn own_padding(key: &AesKey, content: &[u8]) -> Option<usize> {
    if content.is_empty() || !content.len().is_multiple_of(16) {
        return None;
    }
    // The last block's plaintext depends only on itself and the block before it.
    let tail = &content[content.len().saturating_sub(32)..];
    let mut dec = CbcDecryptor::new(key);
    let mut scratch = BytesMut::with_capacity(32);
    dec.update(tail, &mut scratch);
    dec.finish(&mut scratch).ok()?;
    Some(tail.len() - scratch.len())
}

#[derive(Debug)]
pub(crate) struct Upload {
    pub client_id: ClientId,
    pub file_name: FieldString,
    pub original_size: u32,
    pub total: u16,
    pub next: u16,
    pub content_size_field: u32,
    pub field_order: PacketFieldOrder,
    pub per_packet_size: bool,
    pub mode: Mode,
    pub ciphertext_len: u64,
    pub plaintext_len: u64,
    pub key: AesKey,
    pub decryptor: CbcDecryptor,
    pub checksum: Checksum,
    /// Answer every packet with a 1603 (variant 7).
    pub ack_every: bool,
    /// Carried over from an earlier connection: the client may start it again.
    pub resumed: bool,
    /// The last packet's content field ran past the declared total with zeros
    /// (variant 12).
    pub padded: bool,
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
            // Decided in `accept` from the packets' padding and, at the end, the sizes.
            EncryptionMode::Detect => Mode::Probing {
                held: Vec::new(),
                pad: None,
            },
        };
        // A stream's total is exactly the padded size; per-packet totals reach it only
        // with few packets (each adds at least one byte of padding), so look closer.
        let mode = match mode {
            Mode::Stream if encryption == EncryptionMode::Detect && total > 1 && total <= 16 => {
                Mode::Probing {
                    held: Vec::new(),
                    pad: None,
                }
            }
            m => m,
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
            key: key.duplicate(),
            decryptor: CbcDecryptor::new(key),
            checksum: Checksum::new(checksum),
            ack_every: false,
            resumed: false,
            padded: false,
        })
    }

    /// Checks and decrypts one packet (the next in order). `plain` is scratch space
    /// whose allocation is reused once the application drops earlier data.
    pub fn accept(
        &mut self,
        p: &FilePacket,
        plain: &mut BytesMut,
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
        if p.file_name != self.file_name {
            return Err(PeerError::BadPacket("file name changed mid-upload"));
        }
        if p.original_size != self.original_size {
            return Err(PeerError::BadPacket("original size changed mid-upload"));
        }
        if self.per_packet_size {
            if p.content_size as usize != p.content.len() {
                return Err(PeerError::BadPacket(
                    "content size differs from the content",
                ));
            }
        } else if p.content_size != self.content_size_field {
            return Err(PeerError::BadPacket("content size changed mid-upload"));
        }
        let content = self.without_zero_fill(p, number);
        // Per-packet padding adds at most a block per packet to the stream's size.
        let max_ciphertext = padded_len(self.original_size as u64) + 16 * (self.total as u64 - 1);
        self.ciphertext_len += content.len() as u64;
        if self.ciphertext_len > max_ciphertext
            || (!self.per_packet_size && self.ciphertext_len > self.content_size_field as u64)
        {
            return Err(PeerError::BadPacket("more content than the declared sizes"));
        }
        self.next += 1;
        let last = number == self.total;
        plain.clear();
        if let Mode::Probing { held, pad } = &mut self.mode {
            let own = own_padding(&self.key, &content);
            let decided = if last {
                // Per-packet encryption strips padding from every packet; a stream
                // only from the last. The declared original size tells which.
                let held_len: u64 = held.iter().map(|c| c.len() as u64).sum();
                let per_packet_size = pad.zip(own).map(|(first, own)| {
                    held_len - (held.len() * first) as u64 + (content.len() - own) as u64
                });
                Some(if per_packet_size == Some(self.original_size as u64) {
                    Mode::PerPacket
                } else {
                    Mode::Stream
                })
            } else if own.is_none() || (pad.is_some() && *pad != own) {
                Some(Mode::Stream)
            } else if held.len() + 1 >= PROBE_PACKETS {
                Some(Mode::PerPacket)
            } else {
                *pad = own;
                held.push(content.clone());
                None
            };
            let Some(mode) = decided else {
                return Ok(PacketOutcome {
                    data: Bytes::new(),
                    finished: false,
                });
            };
            if let Mode::Probing { held, .. } = std::mem::replace(&mut self.mode, mode) {
                for content in &held {
                    self.decrypt_packet(content, false, plain)?;
                }
            }
        }
        self.decrypt_packet(&content, last, plain)?;
        let data = plain.split().freeze();
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

    /// Decrypts one packet's content in the decided mode, appending to `plain` and
    /// feeding the checksum.
    fn decrypt_packet(
        &mut self,
        content: &[u8],
        last: bool,
        plain: &mut BytesMut,
    ) -> Result<(), PeerError> {
        let start = plain.len();
        self.decryptor.update(content, plain);
        if self.mode == Mode::PerPacket || last {
            self.decryptor
                .finish(plain)
                .map_err(|_| PeerError::DecryptionFailed)?;
        }
        self.plaintext_len += (plain.len() - start) as u64;
        if self.plaintext_len > self.original_size as u64 {
            return Err(PeerError::SizeMismatch {
                declared: self.original_size as u64,
                actual: self.plaintext_len,
            });
        }
        self.checksum.update(&plain[start..]);
        Ok(())
    }

    /// The content of packet `number`, less a zero fill past the declared total
    /// (variant 12: a fixed content field, the true total in the content size field).
    /// Only the last packet may run past the total, and only with zeros; anything
    /// else is left whole for the size checks to refuse.
    fn without_zero_fill(&mut self, p: &FilePacket, number: u16) -> Bytes {
        if self.per_packet_size || number != self.total {
            return p.content.clone();
        }
        let room = (self.content_size_field as u64).saturating_sub(self.ciphertext_len);
        let Ok(room) = usize::try_from(room) else {
            return p.content.clone();
        };
        if p.content.len() > room && p.content[room..].iter().all(|&b| b == 0) {
            self.padded = true;
            return p.content.slice(..room);
        }
        p.content.clone()
    }

    /// Writes what this upload shows of the peer's dialect into `d`.
    pub fn report(&self, d: &mut DetectedDialect) {
        d.packet_fields = Some(self.field_order);
        d.per_packet_content_size = Some(self.per_packet_size);
        d.encryption = Some(match self.mode {
            Mode::Stream => EncryptionMode::Stream,
            Mode::PerPacket => EncryptionMode::PerPacket,
            Mode::Probing { .. } => EncryptionMode::Detect,
        });
        d.every_packet_answered = Some(self.ack_every);
        d.padded_packets = Some(self.padded);
    }

    /// Packet number of a packet as this upload reads the fields.
    pub fn number_of(&self, p: &FilePacket) -> u16 {
        number_and_total(p, self.field_order).0
    }
}
