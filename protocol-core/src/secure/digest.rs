//! The running digests of a secure upload: SHA-256 (the strong hash both ends
//! compare) and POSIX cksum (kept for listings shared with the legacy protocol),
//! with a state that can be saved and restored.
//!
//! The state is what makes a resumed upload possible on another server of a fleet:
//! the server that continues an upload needs the hash of the bytes it did not see.
//! SHA-256's state is 32 bytes of chaining value and at most 63 buffered bytes
//! (driven here through `sha2`'s `compress256`, all the blocks of an update in one
//! call, which uses the CPU's SHA extensions when present); BLAKE3's hasher exposes no state to save, so a
//! resumed BLAKE3 upload would have to read its stored prefix back (docs/PROTOCOL.md,
//! section 10.5 has the measurements).

use crate::crypto::{Checksum, ChecksumAlgorithm};

const H0: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

/// SHA-256 fed in pieces, whose state can be saved at any byte.
///
/// ```
/// use protocol_core::secure::digest::Sha256Stream;
/// let mut a = Sha256Stream::new();
/// a.update(b"hello, ");
/// let saved = a.to_bytes();
/// let mut b = Sha256Stream::from_bytes(&saved).unwrap();
/// b.update(b"world");
/// // what `printf 'hello, world' | sha256sum` prints
/// assert_eq!(hex(&b.finish()), "09ca7e4eaa6e8ae9c7d261167129184883644d07dfba7cbfbc4c8a2e08360d5b");
/// # fn hex(b: &[u8]) -> String { b.iter().map(|x| format!("{x:02x}")).collect() }
/// ```
#[derive(Clone, Debug)]
pub struct Sha256Stream {
    state: [u32; 8],
    buf: [u8; 64],
    buf_len: usize,
    total: u64,
}

impl Default for Sha256Stream {
    fn default() -> Self {
        Sha256Stream::new()
    }
}

/// Bytes of [`Sha256Stream::to_bytes`].
pub const SHA256_STATE_LEN: usize = 32 + 8 + 1 + 64;

impl Sha256Stream {
    /// A hash over no bytes yet.
    pub fn new() -> Self {
        Sha256Stream {
            state: H0,
            buf: [0; 64],
            buf_len: 0,
            total: 0,
        }
    }

    /// Hashes `data`, whole 64-byte blocks, in one call of the compression function.
    /// Called once per block (as before) it ran 10% slower here than `sha2::Sha256`
    /// (SHA extensions: the state is loaded and stored and the CPU features checked
    /// per call); copying the blocks into a batch for sha2 0.10's GenericArray
    /// signature won back only a third of that.
    fn blocks(&mut self, data: &[u8]) {
        let (blocks, rest) = data.as_chunks::<64>();
        debug_assert!(rest.is_empty(), "whole blocks only");
        sha2_blocks::block_api::compress256(&mut self.state, blocks);
    }

    /// Feeds more bytes.
    pub fn update(&mut self, mut data: &[u8]) {
        self.total += data.len() as u64;
        if self.buf_len > 0 {
            let n = (64 - self.buf_len).min(data.len());
            self.buf[self.buf_len..self.buf_len + n].copy_from_slice(&data[..n]);
            self.buf_len += n;
            data = &data[n..];
            if self.buf_len < 64 {
                return;
            }
            let block = self.buf;
            self.blocks(&block);
            self.buf_len = 0;
        }
        let whole = data.len() / 64 * 64;
        self.blocks(&data[..whole]);
        let rest = &data[whole..];
        self.buf[..rest.len()].copy_from_slice(rest);
        self.buf_len = rest.len();
    }

    /// Bytes fed so far.
    pub fn len(&self) -> u64 {
        self.total
    }

    /// Whether nothing was fed.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// The hash of everything fed (feeding may not continue: it takes `self`).
    pub fn finish(mut self) -> [u8; 32] {
        let bits = self.total.wrapping_mul(8);
        let mut tail = [0u8; 128];
        tail[..self.buf_len].copy_from_slice(&self.buf[..self.buf_len]);
        tail[self.buf_len] = 0x80;
        let len = if self.buf_len < 56 { 64 } else { 128 };
        tail[len - 8..len].copy_from_slice(&bits.to_be_bytes());
        self.blocks(&tail[..len]);
        let mut out = [0u8; 32];
        for (o, w) in out.chunks_exact_mut(4).zip(self.state) {
            o.copy_from_slice(&w.to_be_bytes());
        }
        out
    }

    /// The state, to continue elsewhere ([`SHA256_STATE_LEN`] bytes).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(SHA256_STATE_LEN);
        for w in self.state {
            v.extend_from_slice(&w.to_le_bytes());
        }
        v.extend_from_slice(&self.total.to_le_bytes());
        v.push(self.buf_len as u8);
        v.extend_from_slice(&self.buf);
        v
    }

    /// A hash continuing from [`to_bytes`](Self::to_bytes); `None` for bytes that are
    /// not such a state.
    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        if b.len() != SHA256_STATE_LEN {
            return None;
        }
        let mut state = [0u32; 8];
        for (i, w) in state.iter_mut().enumerate() {
            *w = u32::from_le_bytes(b[i * 4..i * 4 + 4].try_into().ok()?);
        }
        let total = u64::from_le_bytes(b[32..40].try_into().ok()?);
        let buf_len = b[40] as usize;
        if buf_len >= 64 || total % 64 != buf_len as u64 {
            return None;
        }
        let mut buf = [0u8; 64];
        buf.copy_from_slice(&b[41..]);
        Some(Sha256Stream {
            state,
            buf,
            buf_len,
            total,
        })
    }
}

/// Both digests of an upload, and how many bytes they cover.
///
/// ```
/// use protocol_core::secure::digest::UploadDigest;
/// let mut d = UploadDigest::new();
/// d.update(b"1234");
/// let mut d = UploadDigest::from_bytes(&d.to_bytes()).unwrap();
/// d.update(b"56789");
/// assert_eq!(d.len(), 9);
/// assert_eq!(d.cksum(), 930766865); // `printf 123456789 | cksum`
/// ```
#[derive(Clone, Debug)]
pub struct UploadDigest {
    sha: Sha256Stream,
    cksum: Checksum,
}

impl Default for UploadDigest {
    fn default() -> Self {
        UploadDigest::new()
    }
}

impl UploadDigest {
    /// Over no bytes yet.
    pub fn new() -> Self {
        UploadDigest {
            sha: Sha256Stream::new(),
            cksum: Checksum::new(ChecksumAlgorithm::Cksum),
        }
    }

    /// Feeds more bytes to both.
    pub fn update(&mut self, data: &[u8]) {
        self.sha.update(data);
        self.cksum.update(data);
    }

    /// Bytes fed so far.
    pub fn len(&self) -> u64 {
        self.sha.len()
    }

    /// Whether nothing was fed.
    pub fn is_empty(&self) -> bool {
        self.sha.is_empty()
    }

    /// The POSIX cksum so far.
    pub fn cksum(&self) -> u32 {
        self.cksum.value()
    }

    /// The SHA-256 of everything fed.
    pub fn sha256(&self) -> [u8; 32] {
        self.sha.clone().finish()
    }

    /// The state of both, to continue elsewhere (opaque bytes; a version byte first).
    pub fn to_bytes(&self) -> Vec<u8> {
        let (_, register, len) = self.cksum.state();
        let mut v = vec![1u8];
        v.extend_from_slice(&self.sha.to_bytes());
        v.extend_from_slice(&register.to_le_bytes());
        v.extend_from_slice(&len.to_le_bytes());
        v
    }

    /// Both digests continuing from [`to_bytes`](Self::to_bytes); `None` for bytes
    /// that are not such a state, or whose two digests disagree on the length.
    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        if b.len() != 1 + SHA256_STATE_LEN + 16 || b[0] != 1 {
            return None;
        }
        let sha = Sha256Stream::from_bytes(&b[1..1 + SHA256_STATE_LEN])?;
        let rest = &b[1 + SHA256_STATE_LEN..];
        let register = u64::from_le_bytes(rest[..8].try_into().ok()?);
        let len = u64::from_le_bytes(rest[8..16].try_into().ok()?);
        if len != sha.len() {
            return None;
        }
        let cksum = Checksum::from_state(ChecksumAlgorithm::Cksum, register, len)?;
        Some(UploadDigest { sha, cksum })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest;

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 131 + (i >> 7)) as u8).collect()
    }

    #[test]
    fn agrees_with_sha2_for_every_length_and_split() {
        for n in (0..300).chain([4095, 4096, 4097, (1 << 20) + 7]) {
            let d = data(n);
            let expected: [u8; 32] = sha2::Sha256::digest(&d).into();
            for piece in [1, 7, 63, 64, 65, 1000, 1 << 20] {
                let mut h = Sha256Stream::new();
                for (i, chunk) in d.chunks(piece).enumerate() {
                    if i == 2 {
                        // Saved and restored mid-way, as a resumed upload is.
                        h = Sha256Stream::from_bytes(&h.to_bytes()).unwrap();
                    }
                    h.update(chunk);
                }
                assert_eq!(h.len(), n as u64);
                assert_eq!(h.finish(), expected, "{n} bytes in pieces of {piece}");
            }
        }
    }
}
