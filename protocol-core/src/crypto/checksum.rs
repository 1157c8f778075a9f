//! POSIX `cksum` (the default) and zlib CRC-32 (an explicit alternative).

/// Which checksum a peer uses to confirm an upload.
///
/// ```
/// use protocol_core::crypto::{Checksum, ChecksumAlgorithm};
/// let mut c = Checksum::new(ChecksumAlgorithm::Cksum);
/// c.update(b"1234");
/// c.update(b"56789");
/// assert_eq!(c.value(), 930766865); // what `printf 123456789 | cksum` prints
/// let mut z = Checksum::new(ChecksumAlgorithm::Crc32);
/// z.update(b"123456789");
/// assert_eq!(z.value(), 0xcbf43926);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum ChecksumAlgorithm {
    /// What the Unix `cksum` command prints (POSIX CRC with the length appended).
    #[default]
    Cksum,
    /// zlib's CRC-32 (deployed variant 8 in `docs/PROTOCOL.md`).
    Crc32,
}

/// A running checksum, fed in pieces.
#[derive(Clone, Debug)]
pub struct Checksum {
    state: State,
}

// One value per upload, updated per byte: an indirection would cost more than the space.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
enum State {
    // crc-fast's CRC-32/CKSUM (poly 0x04C11DB7, not reflected, init 0, inverted) plus
    // the byte count, which POSIX appends before the final inversion.
    Cksum { digest: crc_fast::Digest, len: u64 },
    Crc32(crc32fast::Hasher),
}

impl Checksum {
    /// A checksum over no bytes yet.
    pub fn new(algorithm: ChecksumAlgorithm) -> Checksum {
        let state = match algorithm {
            ChecksumAlgorithm::Cksum => State::Cksum {
                digest: crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc32Cksum),
                len: 0,
            },
            ChecksumAlgorithm::Crc32 => State::Crc32(crc32fast::Hasher::new()),
        };
        Checksum { state }
    }

    /// Feeds more bytes.
    pub fn update(&mut self, data: &[u8]) {
        match &mut self.state {
            State::Cksum { digest, len } => {
                digest.update(data);
                *len += data.len() as u64;
            }
            State::Crc32(h) => h.update(data),
        }
    }

    /// The checksum of everything fed so far (feeding may continue).
    pub fn value(&self) -> u32 {
        match &self.state {
            State::Cksum { digest, len } => {
                let mut d = *digest;
                let mut n = *len;
                let mut tail = [0u8; 8];
                let mut k = 0;
                while n > 0 {
                    tail[k] = n as u8;
                    n >>= 8;
                    k += 1;
                }
                d.update(&tail[..k]);
                d.finalize() as u32
            }
            State::Crc32(h) => h.clone().finalize(),
        }
    }

    /// Number of bytes fed so far (only tracked for `cksum`; 0 for CRC-32).
    pub fn len(&self) -> u64 {
        match &self.state {
            State::Cksum { len, .. } => *len,
            State::Crc32(_) => 0,
        }
    }

    /// Whether nothing has been fed (only tracked for `cksum`).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The `cksum` of a whole buffer.
///
/// ```
/// assert_eq!(protocol_core::crypto::cksum(b""), 4294967295);
/// ```
pub fn cksum(data: &[u8]) -> u32 {
    let mut c = Checksum::new(ChecksumAlgorithm::Cksum);
    c.update(data);
    c.value()
}
