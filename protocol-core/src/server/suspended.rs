//! A suspended upload as bytes: what another process needs to continue it.
//!
//! Servers that share their state (several processes behind a balancer) keep an upload
//! left between two packets in a shared table; the next packet may arrive at any of
//! them. The encoding is versioned and self-checking; the AES key is not in it (the
//! application supplies the client's key on decoding, and a key check value tells
//! whether it is the key the upload was encrypted with).
//!
//! Layout, version 1 (integers little-endian):
//!
//! ```text
//! magic "SUSP" | version u8 = 1
//! client id [16] | name length u8 | name bytes
//! original size u32 | total u16 | next u16 | content size field u32
//! flags u8 (1 total-first, 2 per-packet size, 4 every packet answered, 8 resumed, 16 padded)
//! mode u8 (0 stream, 1 per packet, 2 probing)
//!   probing: padding u8 (0 = none yet, else 1..=16) | held count u8 | held: (u32 length, bytes)*
//! ciphertext length u64 | plaintext length u64
//! checksum u8 (0 cksum, 1 crc32) | register u64 | byte count u64
//! chain value [16] | partial length u8 | partial [partial length]
//! held block u8 (0/1) | held block [16] if 1
//! key check [4] (the first four bytes of AES(key, zero block))
//! ```
//!
//! It holds, besides sizes and counters, the chain value (the last ciphertext block),
//! up to 15 bytes of ciphertext of an incomplete block, at most one block (16 bytes) of
//! decrypted file content held back for the padding check, and, while the encryption
//! mode is still being detected, the ciphertext of at most two packets not yet
//! decrypted. No key material.

use bytes::{Bytes, BytesMut};
use thiserror::Error;

use super::upload::{Mode, Upload, PROBE_PACKETS};
use super::SuspendedUpload;
use crate::crypto::{padded_len, AesKey, CbcDecryptor, CbcEncryptor, Checksum, ChecksumAlgorithm};
use crate::wire::{ClientId, FieldString, PacketFieldOrder};

const MAGIC: &[u8; 4] = b"SUSP";
const VERSION: u8 = 1;
const BLOCK: usize = 16;

const TOTAL_FIRST: u8 = 1;
const PER_PACKET_SIZE: u8 = 2;
const ACK_EVERY: u8 = 4;
const RESUMED: u8 = 8;
const PADDED: u8 = 16;
const ALL_FLAGS: u8 = TOTAL_FIRST | PER_PACKET_SIZE | ACK_EVERY | RESUMED | PADDED;

/// Why bytes did not decode as a [`SuspendedUpload`]. Bytes from a shared table may be
/// damaged or written by a newer server; none of these is a panic.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Not a suspended upload at all (wrong magic).
    #[error("not a suspended upload")]
    NotAnUpload,
    /// Written by a newer version of this encoding.
    #[error("suspended upload encoding version {0} is not supported")]
    UnsupportedVersion(u8),
    /// The bytes end before the upload does.
    #[error("suspended upload truncated")]
    Truncated,
    /// Bytes after the end of the upload.
    #[error("bytes after the end of a suspended upload")]
    TrailingBytes,
    /// A field holds a value no upload can have.
    #[error("suspended upload invalid: {0}")]
    Invalid(&'static str),
    /// The key supplied is not the one the upload was encrypted with (the client was
    /// issued a new key since).
    #[error("suspended upload was encrypted with another AES key")]
    KeyMismatch,
}

/// The first four bytes of the key's encryption of a zero block: tells two keys apart
/// without revealing either.
fn key_check(key: &AesKey) -> [u8; 4] {
    let mut enc = CbcEncryptor::new(key);
    let mut out = BytesMut::with_capacity(2 * BLOCK);
    enc.update(&[0u8; BLOCK], &mut out);
    enc.finish(&mut out);
    let mut check = [0u8; 4];
    check.copy_from_slice(&out[..4]);
    check
}

impl SuspendedUpload {
    /// The upload as bytes (format version 1; see the module source for the layout),
    /// to keep in a table other processes read. The AES key is not included:
    /// [`from_bytes`](Self::from_bytes) takes it back from the application.
    ///
    /// ```
    /// use protocol_core::crypto::{AesKey, AesKeySize};
    /// use protocol_core::SuspendedUpload;
    /// let key = AesKey::from_slice(&[7u8; 32]).unwrap();
    /// // Anything but an encoded upload is refused, never a panic:
    /// assert!(SuspendedUpload::from_bytes(b"SUSP\x01", &key).is_err());
    /// assert_eq!(key.size(), AesKeySize::Aes256);
    /// ```
    pub fn to_bytes(&self) -> Vec<u8> {
        let u = &self.0;
        let mut out = Vec::with_capacity(128 + u.file_name.as_bytes().len());
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.extend_from_slice(&u.client_id.0);
        let name = u.file_name.as_bytes();
        out.push(name.len() as u8);
        out.extend_from_slice(name);
        out.extend_from_slice(&u.original_size.to_le_bytes());
        out.extend_from_slice(&u.total.to_le_bytes());
        out.extend_from_slice(&u.next.to_le_bytes());
        out.extend_from_slice(&u.content_size_field.to_le_bytes());
        let mut flags = 0;
        for (set, bit) in [
            (u.field_order == PacketFieldOrder::TotalFirst, TOTAL_FIRST),
            (u.per_packet_size, PER_PACKET_SIZE),
            (u.ack_every, ACK_EVERY),
            (u.resumed, RESUMED),
            (u.padded, PADDED),
        ] {
            if set {
                flags |= bit;
            }
        }
        out.push(flags);
        match &u.mode {
            Mode::Stream => out.push(0),
            Mode::PerPacket => out.push(1),
            Mode::Probing { held, pad } => {
                out.push(2);
                out.push(pad.map_or(0, |p| p as u8));
                out.push(held.len() as u8);
                for h in held {
                    out.extend_from_slice(&(h.len() as u32).to_le_bytes());
                    out.extend_from_slice(h);
                }
            }
        }
        out.extend_from_slice(&u.ciphertext_len.to_le_bytes());
        out.extend_from_slice(&u.plaintext_len.to_le_bytes());
        let (algorithm, register, count) = u.checksum.state();
        out.push(match algorithm {
            ChecksumAlgorithm::Cksum => 0,
            ChecksumAlgorithm::Crc32 => 1,
        });
        out.extend_from_slice(&register.to_le_bytes());
        out.extend_from_slice(&count.to_le_bytes());
        let (iv, partial, held) = u.decryptor.position();
        out.extend_from_slice(&iv);
        out.push(partial.len() as u8);
        out.extend_from_slice(partial);
        match held {
            Some(block) => {
                out.push(1);
                out.extend_from_slice(&block);
            }
            None => out.push(0),
        }
        out.extend_from_slice(&key_check(&u.key));
        out
    }

    /// Decodes bytes from [`to_bytes`](Self::to_bytes), with the client's AES key
    /// (which the bytes do not hold). Damaged, truncated or hostile bytes, or a key
    /// other than the upload's, give an error. The decoded upload is handed to the core
    /// in [`crate::ClientRecord::suspended`] like one that never left the process.
    ///
    /// ```
    /// use protocol_core::crypto::AesKey;
    /// use protocol_core::{DecodeError, SuspendedUpload};
    /// let key = AesKey::from_slice(&[1u8; 16]).unwrap();
    /// assert_eq!(
    ///     SuspendedUpload::from_bytes(b"not an upload", &key).unwrap_err(),
    ///     DecodeError::NotAnUpload
    /// );
    /// assert_eq!(
    ///     SuspendedUpload::from_bytes(b"SUSP\x09", &key).unwrap_err(),
    ///     DecodeError::UnsupportedVersion(9)
    /// );
    /// ```
    pub fn from_bytes(bytes: &[u8], key: &AesKey) -> Result<SuspendedUpload, DecodeError> {
        let mut r = Reader(bytes);
        if r.take(MAGIC.len()).ok() != Some(&MAGIC[..]) {
            return Err(DecodeError::NotAnUpload);
        }
        let version = r.u8()?;
        if version != VERSION {
            return Err(DecodeError::UnsupportedVersion(version));
        }
        let client_id = ClientId(r.array()?);
        let name_len = r.u8()? as usize;
        let file_name =
            FieldString::new(r.take(name_len)?).ok_or(DecodeError::Invalid("file name"))?;
        if file_name.as_bytes().is_empty() {
            return Err(DecodeError::Invalid("file name"));
        }
        let original_size = r.u32()?;
        let total = r.u16()?;
        let next = r.u16()?;
        let content_size_field = r.u32()?;
        // Suspended between packets: the first is in, the last is not.
        if next < 2 || next > total {
            return Err(DecodeError::Invalid("packet counters"));
        }
        let flags = r.u8()?;
        if flags & !ALL_FLAGS != 0 {
            return Err(DecodeError::Invalid("flags"));
        }
        let mode = match r.u8()? {
            0 => Mode::Stream,
            1 => Mode::PerPacket,
            2 => {
                let pad = match r.u8()? {
                    0 => None,
                    p if p as usize <= BLOCK => Some(p as usize),
                    _ => return Err(DecodeError::Invalid("padding length")),
                };
                let count = r.u8()? as usize;
                if count >= PROBE_PACKETS {
                    return Err(DecodeError::Invalid("held packets"));
                }
                let mut held = Vec::with_capacity(count);
                for _ in 0..count {
                    let len = r.u32()? as usize;
                    held.push(Bytes::copy_from_slice(r.take(len)?));
                }
                Mode::Probing { held, pad }
            }
            _ => return Err(DecodeError::Invalid("encryption mode")),
        };
        let ciphertext_len = r.u64()?;
        let plaintext_len = r.u64()?;
        let max_ciphertext = padded_len(original_size as u64) + 16 * (total as u64 - 1);
        if plaintext_len > original_size as u64 || ciphertext_len > max_ciphertext {
            return Err(DecodeError::Invalid("sizes"));
        }
        if let Mode::Probing { held, .. } = &mode {
            if held.iter().map(|h| h.len() as u64).sum::<u64>() > ciphertext_len {
                return Err(DecodeError::Invalid("held packets"));
            }
        }
        let algorithm = match r.u8()? {
            0 => ChecksumAlgorithm::Cksum,
            1 => ChecksumAlgorithm::Crc32,
            _ => return Err(DecodeError::Invalid("checksum algorithm")),
        };
        let register = r.u64()?;
        let count = r.u64()?;
        let checksum = Checksum::from_state(algorithm, register, count)
            .ok_or(DecodeError::Invalid("checksum state"))?;
        let iv: [u8; BLOCK] = r.array()?;
        let partial_len = r.u8()? as usize;
        if partial_len >= BLOCK {
            return Err(DecodeError::Invalid("partial block"));
        }
        let partial = r.take(partial_len)?;
        let held = match r.u8()? {
            0 => None,
            1 => Some(r.array()?),
            _ => return Err(DecodeError::Invalid("held block")),
        };
        let check: [u8; 4] = r.array()?;
        if !r.0.is_empty() {
            return Err(DecodeError::TrailingBytes);
        }
        if check != key_check(key) {
            return Err(DecodeError::KeyMismatch);
        }
        let decryptor = CbcDecryptor::at_position(key, &iv, partial, held)
            .ok_or(DecodeError::Invalid("partial block"))?;
        Ok(SuspendedUpload(Box::new(Upload {
            client_id,
            file_name,
            original_size,
            total,
            next,
            content_size_field,
            field_order: if flags & TOTAL_FIRST != 0 {
                PacketFieldOrder::TotalFirst
            } else {
                PacketFieldOrder::NumberFirst
            },
            per_packet_size: flags & PER_PACKET_SIZE != 0,
            mode,
            ciphertext_len,
            plaintext_len,
            key: key.duplicate(),
            decryptor,
            checksum,
            ack_every: flags & ACK_EVERY != 0,
            resumed: flags & RESUMED != 0,
            padded: flags & PADDED != 0,
        })))
    }
}

/// Reads fields off the front of a byte slice; running out is [`DecodeError::Truncated`].
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.0.len() < n {
            return Err(DecodeError::Truncated);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }
    fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
}
