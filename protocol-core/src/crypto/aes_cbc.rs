//! AES-CBC with a zero IV and PKCS#7 padding, as streams.
//!
//! The encryptor takes plaintext in pieces of any size and emits whole blocks; the
//! decryptor takes ciphertext in pieces of any size (a packet boundary may fall
//! inside a block), carries the CBC chain across pieces and holds back the last
//! block until [`CbcDecryptor::finish`], because only the last block carries the
//! padding. Neither ever holds more than two blocks of its own.

use aes::cipher::array::Array;
use aes::cipher::consts::U16;
use aes::cipher::{BlockModeDecrypt, BlockModeEncrypt, IvState, KeyIvInit, SetIvState};
use bytes::{BufMut, BytesMut};
use rand_core::CryptoRngCore;
use thiserror::Error;
use zeroize::{Zeroize, ZeroizeOnDrop};

const BLOCK: usize = 16;
const ZERO_IV: [u8; BLOCK] = [0; BLOCK];
type Block = Array<u8, U16>;

/// AES key length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum AesKeySize {
    /// 128-bit keys (deployed variant 8 in `docs/PROTOCOL.md`).
    Aes128,
    /// 256-bit keys, the specification.
    #[default]
    Aes256,
}

impl AesKeySize {
    /// Key length in bytes.
    pub fn len(self) -> usize {
        match self {
            AesKeySize::Aes128 => 16,
            AesKeySize::Aes256 => 32,
        }
    }

    /// Never true; a key size is never zero bytes.
    pub fn is_empty(self) -> bool {
        false
    }
}

/// A symmetric key as the protocol exchanges it.
///
/// Overwritten with zeros when dropped. Not `Clone`: every copy of a key is made on
/// purpose with [`duplicate`](Self::duplicate), so that each one is visible in the code.
///
/// ```
/// use protocol_core::crypto::{AesKey, AesKeySize};
/// let k = AesKey::from_slice(&[1u8; 32]).unwrap();
/// assert_eq!(k.size(), AesKeySize::Aes256);
/// assert!(AesKey::from_slice(&[1u8; 20]).is_none());
/// ```
///
/// ```compile_fail
/// // Not Clone: copies are explicit.
/// let k = protocol_core::crypto::AesKey::from_slice(&[1u8; 32]).unwrap();
/// let copy = k.clone();
/// ```
#[derive(PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub enum AesKey {
    /// 16 bytes.
    Aes128([u8; 16]),
    /// 32 bytes.
    Aes256([u8; 32]),
}

impl std::fmt::Debug for AesKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keys never reach logs.
        write!(f, "AesKey({:?}, ..)", self.size())
    }
}

impl AesKey {
    /// A fresh key from the caller's CSPRNG.
    pub fn generate(size: AesKeySize, rng: &mut impl CryptoRngCore) -> AesKey {
        match size {
            AesKeySize::Aes128 => {
                let mut k = [0u8; 16];
                rng.fill_bytes(&mut k);
                AesKey::Aes128(k)
            }
            AesKeySize::Aes256 => {
                let mut k = [0u8; 32];
                rng.fill_bytes(&mut k);
                AesKey::Aes256(k)
            }
        }
    }

    /// A key from 16 or 32 bytes.
    pub fn from_slice(b: &[u8]) -> Option<AesKey> {
        match b.len() {
            16 => b.try_into().ok().map(AesKey::Aes128),
            32 => b.try_into().ok().map(AesKey::Aes256),
            _ => None,
        }
    }

    /// A second copy of the key, also zeroized on drop. Used where two owners need
    /// the key at once: the server keeps the key of its session and hands one to the
    /// application to store (1602/1605); an upload keeps one to tell per-packet
    /// encryption from one stream.
    pub fn duplicate(&self) -> AesKey {
        match self {
            AesKey::Aes128(k) => AesKey::Aes128(*k),
            AesKey::Aes256(k) => AesKey::Aes256(*k),
        }
    }

    /// The raw key bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            AesKey::Aes128(k) => k,
            AesKey::Aes256(k) => k,
        }
    }

    /// The key's size.
    pub fn size(&self) -> AesKeySize {
        match self {
            AesKey::Aes128(_) => AesKeySize::Aes128,
            AesKey::Aes256(_) => AesKeySize::Aes256,
        }
    }
}

/// Size of the ciphertext of `n` plaintext bytes: PKCS#7 always adds 1 to 16 bytes.
///
/// ```
/// assert_eq!(protocol_core::crypto::padded_len(0), 16);
/// assert_eq!(protocol_core::crypto::padded_len(3000), 3008);
/// ```
pub fn padded_len(n: u64) -> u64 {
    (n / BLOCK as u64 + 1) * BLOCK as u64
}

enum EncInner {
    A128(cbc::Encryptor<aes::Aes128>),
    A256(cbc::Encryptor<aes::Aes256>),
    #[cfg(target_arch = "x86_64")]
    A256Ni(super::aesni::Aes256CbcNi),
}

impl EncInner {
    fn new(key: &AesKey) -> EncInner {
        match key {
            AesKey::Aes128(k) => EncInner::A128(cbc::Encryptor::new(k.into(), &ZERO_IV.into())),
            AesKey::Aes256(k) => {
                #[cfg(target_arch = "x86_64")]
                if let Some(ni) = super::aesni::Aes256CbcNi::new(k, ZERO_IV) {
                    return EncInner::A256Ni(ni);
                }
                EncInner::A256(cbc::Encryptor::new(k.into(), &ZERO_IV.into()))
            }
        }
    }
    fn encrypt(&mut self, blocks: &mut [Block]) {
        match self {
            EncInner::A128(e) => e.encrypt_blocks(blocks),
            EncInner::A256(e) => e.encrypt_blocks(blocks),
            #[cfg(target_arch = "x86_64")]
            EncInner::A256Ni(e) => e.encrypt(Array::slice_as_flattened_mut(blocks)),
        }
    }
    /// Encrypts whole blocks of `plaintext` onto the end of `out`.
    fn encrypt_append(&mut self, plaintext: &[u8], out: &mut BytesMut) {
        #[cfg(target_arch = "x86_64")]
        if let EncInner::A256Ni(e) = self {
            e.encrypt_append(plaintext, out);
            return;
        }
        let start = out.len();
        out.put_slice(plaintext);
        let (blocks, _) = Block::slice_as_chunks_mut(&mut out[start..]);
        self.encrypt(blocks);
    }
}

/// Streaming AES-CBC encryption, zero IV, PKCS#7.
///
/// Its key schedule, chain value and held-back plaintext are zeroized on drop.
///
/// ```
/// use bytes::BytesMut;
/// use protocol_core::crypto::{AesKey, CbcEncryptor, CbcDecryptor};
/// let key = AesKey::from_slice(&[7u8; 32]).unwrap();
/// let mut enc = CbcEncryptor::new(&key);
/// let mut ct = BytesMut::new();
/// enc.update(b"hello, ", &mut ct);
/// enc.update(b"world", &mut ct);
/// enc.finish(&mut ct);
/// assert_eq!(ct.len(), 16);
/// let mut dec = CbcDecryptor::new(&key);
/// let mut pt = BytesMut::new();
/// dec.update(&ct, &mut pt);
/// dec.finish(&mut pt).unwrap();
/// assert_eq!(&pt[..], b"hello, world");
/// ```
pub struct CbcEncryptor {
    inner: EncInner,
    partial: [u8; BLOCK],
    partial_len: usize,
}

impl Drop for CbcEncryptor {
    fn drop(&mut self) {
        // The cipher state zeroizes itself (the `zeroize` features of `aes` and `cbc`,
        // and `Aes256CbcNi`'s own `Drop`); the plaintext held back is ours to clear.
        self.partial.zeroize();
    }
}

impl ZeroizeOnDrop for CbcEncryptor {}

impl CbcEncryptor {
    /// A fresh stream (IV of zeros).
    pub fn new(key: &AesKey) -> CbcEncryptor {
        CbcEncryptor {
            inner: EncInner::new(key),
            partial: [0; BLOCK],
            partial_len: 0,
        }
    }

    /// Bytes of plaintext held back because they do not yet fill a block.
    pub fn buffered(&self) -> usize {
        self.partial_len
    }

    /// Encrypts `plaintext`, appending every completed block to `out`.
    pub fn update(&mut self, mut plaintext: &[u8], out: &mut BytesMut) {
        if self.partial_len > 0 {
            let take = (BLOCK - self.partial_len).min(plaintext.len());
            self.partial[self.partial_len..self.partial_len + take]
                .copy_from_slice(&plaintext[..take]);
            self.partial_len += take;
            plaintext = &plaintext[take..];
            if self.partial_len < BLOCK {
                return;
            }
            let mut b = Block::from(self.partial);
            self.inner.encrypt(std::slice::from_mut(&mut b));
            out.put_slice(&b);
            self.partial_len = 0;
        }
        let whole = plaintext.len() / BLOCK * BLOCK;
        if whole > 0 {
            self.inner.encrypt_append(&plaintext[..whole], out);
        }
        let rest = &plaintext[whole..];
        self.partial[..rest.len()].copy_from_slice(rest);
        self.partial_len = rest.len();
    }

    /// Pads and encrypts the last block, appending it to `out`. The stream then
    /// starts again from a zero IV (as per-packet encryption, variant 4, needs).
    pub fn finish(&mut self, out: &mut BytesMut) {
        let pad = (BLOCK - self.partial_len) as u8;
        let mut b = Block::from(self.partial);
        for byte in &mut b[self.partial_len..] {
            *byte = pad;
        }
        self.inner.encrypt(std::slice::from_mut(&mut b));
        out.put_slice(&b);
        self.partial_len = 0;
        self.restart_chain();
    }

    fn restart_chain(&mut self) {
        match &mut self.inner {
            EncInner::A128(e) => e.set_iv(&ZERO_IV.into()),
            EncInner::A256(e) => e.set_iv(&ZERO_IV.into()),
            #[cfg(target_arch = "x86_64")]
            EncInner::A256Ni(e) => e.set_iv(ZERO_IV),
        }
    }
}

enum DecInner {
    A128(cbc::Decryptor<aes::Aes128>),
    A256(cbc::Decryptor<aes::Aes256>),
    #[cfg(target_arch = "x86_64")]
    A256Ni(super::aesni::Aes256CbcDecNi),
}

impl DecInner {
    fn new(key: &AesKey, iv: &[u8; BLOCK]) -> DecInner {
        match key {
            AesKey::Aes128(k) => DecInner::A128(cbc::Decryptor::new(k.into(), iv.into())),
            AesKey::Aes256(k) => {
                #[cfg(target_arch = "x86_64")]
                if let Some(ni) = super::aesni::Aes256CbcDecNi::new(k, *iv) {
                    return DecInner::A256Ni(ni);
                }
                DecInner::A256(cbc::Decryptor::new(k.into(), iv.into()))
            }
        }
    }
    fn decrypt(&mut self, blocks: &mut [Block]) {
        match self {
            DecInner::A128(d) => d.decrypt_blocks(blocks),
            DecInner::A256(d) => d.decrypt_blocks(blocks),
            #[cfg(target_arch = "x86_64")]
            DecInner::A256Ni(d) => {
                for b in blocks {
                    let mut one: [u8; BLOCK] = (*b).into();
                    d.decrypt_block(&mut one);
                    *b = one.into();
                }
            }
        }
    }
    /// Decrypts whole blocks of `ciphertext` onto the end of `out`.
    fn decrypt_append(&mut self, ciphertext: &[u8], out: &mut BytesMut) {
        #[cfg(target_arch = "x86_64")]
        if let DecInner::A256Ni(d) = self {
            d.decrypt_append(ciphertext, out);
            return;
        }
        let start = out.len();
        out.put_slice(ciphertext);
        let (blocks, _) = Block::slice_as_chunks_mut(&mut out[start..]);
        self.decrypt(blocks);
    }
    fn iv(&self) -> [u8; BLOCK] {
        match self {
            DecInner::A128(d) => d.iv_state().into(),
            DecInner::A256(d) => d.iv_state().into(),
            #[cfg(target_arch = "x86_64")]
            DecInner::A256Ni(d) => d.iv(),
        }
    }
    fn set_iv(&mut self, iv: &[u8; BLOCK]) {
        match self {
            DecInner::A128(d) => d.set_iv(&(*iv).into()),
            DecInner::A256(d) => d.set_iv(&(*iv).into()),
            #[cfg(target_arch = "x86_64")]
            DecInner::A256Ni(d) => d.set_iv(*iv),
        }
    }
}

/// Why a ciphertext did not decrypt. Deliberately without detail: the two causes
/// must look the same to a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("ciphertext did not decrypt (length or padding)")]
pub struct DecryptError;

/// Streaming AES-CBC decryption, zero IV, PKCS#7.
///
/// Its key, key schedule, chain value and held-back blocks are zeroized on drop.
pub struct CbcDecryptor {
    key: AesKey,
    inner: DecInner,
    /// Ciphertext bytes of an incomplete block.
    partial: [u8; BLOCK],
    partial_len: usize,
    /// The last decrypted block, held back because it may carry the padding.
    held: Option<[u8; BLOCK]>,
}

impl Clone for CbcDecryptor {
    fn clone(&self) -> Self {
        CbcDecryptor {
            key: self.key.duplicate(),
            inner: DecInner::new(&self.key, &self.inner.iv()),
            partial: self.partial,
            partial_len: self.partial_len,
            held: self.held,
        }
    }
}

impl std::fmt::Debug for CbcDecryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CbcDecryptor")
            .field("partial_len", &self.partial_len)
            .field("held", &self.held.is_some())
            .finish()
    }
}

impl Drop for CbcDecryptor {
    fn drop(&mut self) {
        // `key` and the cipher state zeroize themselves; the blocks are ours to clear.
        // Zeroizing the whole `Option` also clears what `take` left behind.
        self.partial.zeroize();
        self.held.zeroize();
    }
}

impl ZeroizeOnDrop for CbcDecryptor {}

impl CbcDecryptor {
    /// A fresh stream (IV of zeros).
    pub fn new(key: &AesKey) -> CbcDecryptor {
        CbcDecryptor {
            key: key.duplicate(),
            inner: DecInner::new(key, &ZERO_IV),
            partial: [0; BLOCK],
            partial_len: 0,
            held: None,
        }
    }

    /// Decrypts `ciphertext` (any length), appending plaintext to `out` except the
    /// last whole block, which is held back for [`finish`](Self::finish).
    pub fn update(&mut self, mut ciphertext: &[u8], out: &mut BytesMut) {
        if self.partial_len > 0 {
            let take = (BLOCK - self.partial_len).min(ciphertext.len());
            self.partial[self.partial_len..self.partial_len + take]
                .copy_from_slice(&ciphertext[..take]);
            self.partial_len += take;
            ciphertext = &ciphertext[take..];
            if self.partial_len < BLOCK {
                return;
            }
            let mut b = Block::from(self.partial);
            self.inner.decrypt(std::slice::from_mut(&mut b));
            self.partial_len = 0;
            self.hold(b.into(), out);
        }
        let whole = ciphertext.len() / BLOCK * BLOCK;
        if whole > 0 {
            if let Some(h) = self.held.take() {
                out.put_slice(&h);
            }
            self.inner.decrypt_append(&ciphertext[..whole], out);
            let last_at = out.len() - BLOCK;
            let mut last = [0u8; BLOCK];
            last.copy_from_slice(&out[last_at..]);
            out.truncate(last_at);
            self.held = Some(last);
        }
        let rest = &ciphertext[whole..];
        self.partial[..rest.len()].copy_from_slice(rest);
        self.partial_len = rest.len();
    }

    fn hold(&mut self, block: [u8; BLOCK], out: &mut BytesMut) {
        if let Some(h) = self.held.replace(block) {
            out.put_slice(&h);
        }
    }

    /// Checks and strips the padding of the held-back block, appending what remains
    /// of it to `out`, and restarts the chain from a zero IV.
    pub fn finish(&mut self, out: &mut BytesMut) -> Result<(), DecryptError> {
        let result = match (self.held.take(), self.partial_len) {
            (Some(last), 0) => {
                let pad = last[BLOCK - 1] as usize;
                if (1..=BLOCK).contains(&pad)
                    && last[BLOCK - pad..].iter().all(|&b| b as usize == pad)
                {
                    out.put_slice(&last[..BLOCK - pad]);
                    Ok(())
                } else {
                    Err(DecryptError)
                }
            }
            _ => Err(DecryptError),
        };
        self.partial_len = 0;
        self.inner.set_iv(&ZERO_IV);
        result
    }

    /// Whether the stream is at a block boundary with a held-back block, i.e.
    /// [`finish`](Self::finish) could succeed on length grounds.
    pub fn at_block_boundary(&self) -> bool {
        self.partial_len == 0
    }

    /// Whether the held-back block ends in well-formed PKCS#7 padding (used to tell
    /// per-packet encryption from one stream; see the server's upload detection).
    pub fn held_block_looks_padded(&self) -> bool {
        match self.held {
            Some(last) if self.partial_len == 0 => {
                let pad = last[BLOCK - 1] as usize;
                (1..=BLOCK).contains(&pad) && last[BLOCK - pad..].iter().all(|&b| b as usize == pad)
            }
            _ => false,
        }
    }
}
