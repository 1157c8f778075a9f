//! AES-256-CBC with AES-NI (and VAES for decryption), for x86-64 processors that have them.
//!
//! Why this exists: CBC encryption is serial, so its speed is the latency of one block
//! through fourteen rounds. The RustCrypto `aes` crate reaches 0.81 GB/s here against
//! openssl's 1.01 GB/s (`openssl speed -evp aes-256-cbc`); this loop, which keeps the
//! round keys in registers and has one XOR per block on the chain, reaches 1.00 GB/s
//! (`cargo run --release -p server-app --bin bench`). Encryption is the upload's
//! bottleneck, so the difference is the upload's speed. Decryption is here for the
//! copies it saves and for VAES (see [`Aes256CbcDecNi`]). It is the only `unsafe` code in
//! the crate, and it is checked against the RustCrypto implementation and the openssl
//! vectors in the tests.
#![allow(unsafe_code)]

use std::arch::x86_64::{
    __m128i, _mm256_aesdec_epi128, _mm256_aesdeclast_epi128, _mm256_broadcastsi128_si256,
    _mm256_castsi256_si128, _mm256_extracti128_si256, _mm256_loadu_si256, _mm256_set_m128i,
    _mm256_setzero_si256, _mm256_storeu_si256, _mm256_xor_si256, _mm_aesdec_si128,
    _mm_aesdeclast_si128, _mm_aesenc_si128, _mm_aesenclast_si128, _mm_aesimc_si128,
    _mm_aeskeygenassist_si128, _mm_loadu_si128, _mm_setzero_si128, _mm_shuffle_epi32,
    _mm_slli_si128, _mm_storeu_si128, _mm_xor_si128,
};

use zeroize::{Zeroize, ZeroizeOnDrop};

/// An AES-256 key schedule for AES-NI, with the CBC chain value. Both are zeroized
/// on drop (so is every clone).
#[derive(Clone)]
pub(super) struct Aes256CbcNi {
    round_keys: [__m128i; 15],
    iv: [u8; 16],
}

impl Drop for Aes256CbcNi {
    fn drop(&mut self) {
        self.round_keys.zeroize();
        self.iv.zeroize();
    }
}

impl ZeroizeOnDrop for Aes256CbcNi {}

impl Aes256CbcNi {
    /// `None` where the processor lacks AES-NI.
    pub(super) fn new(key: &[u8; 32], iv: [u8; 16]) -> Option<Aes256CbcNi> {
        if !std::arch::is_x86_feature_detected!("aes")
            || !std::arch::is_x86_feature_detected!("sse2")
        {
            return None;
        }
        // SAFETY: the features `expand` is compiled for were detected just above.
        let round_keys = unsafe { expand(key) };
        Some(Aes256CbcNi { round_keys, iv })
    }

    pub(super) fn set_iv(&mut self, iv: [u8; 16]) {
        self.iv = iv;
    }

    /// Encrypts whole blocks in place; a trailing partial block is left alone (the
    /// caller only passes whole blocks).
    pub(super) fn encrypt(&mut self, data: &mut [u8]) {
        let len = data.len() / 16 * 16;
        let ptr = data.as_mut_ptr();
        // SAFETY: an `Aes256CbcNi` exists only where `new` detected AES-NI and SSE2;
        // source and destination are the same `len` initialised bytes of `data`.
        unsafe { cbc_encrypt(&self.round_keys, &mut self.iv, ptr, ptr, len) }
    }

    /// Encrypts the whole blocks of `plaintext` and appends them to `out`, writing
    /// the ciphertext straight into `out`'s spare capacity: no copy of the plaintext
    /// first (on the client that copy cost about a tenth of the encryption time).
    pub(super) fn encrypt_append(&mut self, plaintext: &[u8], out: &mut bytes::BytesMut) {
        let len = plaintext.len() / 16 * 16;
        out.reserve(len);
        let spare = out.spare_capacity_mut();
        assert!(spare.len() >= len, "reserve gave the room it promised");
        // SAFETY: AES-NI and SSE2 were detected by `new`; `cbc_encrypt` reads `len`
        // bytes of `plaintext` and writes `len` bytes into `spare`, which has room for
        // them (checked above) and does not overlap `plaintext` (a `&mut` borrow).
        unsafe {
            cbc_encrypt(
                &self.round_keys,
                &mut self.iv,
                plaintext.as_ptr(),
                spare.as_mut_ptr().cast(),
                len,
            );
            // SAFETY: the `len` bytes after the current length were just written.
            out.set_len(out.len() + len);
        }
    }
}

/// AES-256-CBC decryption with VAES (sixteen blocks at a time) or AES-NI (eight),
/// straight from the ciphertext into the output buffer.
///
/// Why: the RustCrypto CBC decryptor (VAES) copies every block it decrypts to keep
/// the previous ciphertext, and its caller had to copy the ciphertext into place
/// first; `perf` put those two copies at a tenth of the server's samples in a 1 GiB upload.
///
/// The round keys and the chain value are zeroized on drop (so is every clone).
#[derive(Clone)]
pub(super) struct Aes256CbcDecNi {
    /// Decryption round keys: the encryption keys reversed, the middle thirteen
    /// through InvMixColumns (the "equivalent inverse cipher" AESDEC expects).
    round_keys: [__m128i; 15],
    iv: [u8; 16],
    /// VAES with 256-bit registers: two blocks per instruction.
    vaes: bool,
}

impl Drop for Aes256CbcDecNi {
    fn drop(&mut self) {
        self.round_keys.zeroize();
        self.iv.zeroize();
    }
}

impl ZeroizeOnDrop for Aes256CbcDecNi {}

impl Aes256CbcDecNi {
    /// `None` where the processor lacks AES-NI.
    pub(super) fn new(key: &[u8; 32], iv: [u8; 16]) -> Option<Aes256CbcDecNi> {
        if !std::arch::is_x86_feature_detected!("aes")
            || !std::arch::is_x86_feature_detected!("sse2")
        {
            return None;
        }
        // SAFETY: the features `expand` and `inverse` are compiled for were detected.
        let mut encryption_keys = unsafe { expand(key) };
        // SAFETY: as above.
        let round_keys = unsafe { inverse(&encryption_keys) };
        encryption_keys.zeroize();
        let vaes = std::arch::is_x86_feature_detected!("vaes")
            && std::arch::is_x86_feature_detected!("avx2");
        Some(Aes256CbcDecNi {
            round_keys,
            iv,
            vaes,
        })
    }

    pub(super) fn iv(&self) -> [u8; 16] {
        self.iv
    }

    pub(super) fn set_iv(&mut self, iv: [u8; 16]) {
        self.iv = iv;
    }

    /// Decrypts one block in place.
    pub(super) fn decrypt_block(&mut self, block: &mut [u8; 16]) {
        let ciphertext = *block;
        // SAFETY: AES-NI and SSE2 were detected by `new`; 16 bytes are read from the
        // local copy and written to `block`, distinct memory.
        unsafe {
            cbc_decrypt(
                &self.round_keys,
                &mut self.iv,
                ciphertext.as_ptr(),
                block.as_mut_ptr(),
                16,
            )
        }
    }

    /// Decrypts the whole blocks of `ciphertext` and appends the plaintext to `out`.
    pub(super) fn decrypt_append(&mut self, ciphertext: &[u8], out: &mut bytes::BytesMut) {
        let len = ciphertext.len() / 16 * 16;
        out.reserve(len);
        let spare = out.spare_capacity_mut();
        assert!(spare.len() >= len, "reserve gave the room it promised");
        // SAFETY: AES-NI and SSE2 were detected by `new`; `cbc_decrypt` reads `len`
        // bytes of `ciphertext` and writes `len` bytes into `spare`, which has room
        // (checked above) and cannot overlap `ciphertext` (a `&mut` borrow).
        unsafe {
            let (src, dst) = (ciphertext.as_ptr(), spare.as_mut_ptr().cast::<u8>());
            // SAFETY (VAES): detected by `new` when `vaes` is set; same buffers.
            let done = if self.vaes {
                cbc_decrypt_vaes(&self.round_keys, &mut self.iv, src, dst, len)
            } else {
                0
            };
            cbc_decrypt(
                &self.round_keys,
                &mut self.iv,
                src.add(done),
                dst.add(done),
                len - done,
            );
            // SAFETY: the `len` bytes after the current length were just written.
            out.set_len(out.len() + len);
        }
    }
}

#[target_feature(enable = "aes,sse2")]
fn inverse(k: &[__m128i; 15]) -> [__m128i; 15] {
    let mut d = [_mm_setzero_si128(); 15];
    d[0] = k[14];
    for i in 1..14 {
        d[i] = _mm_aesimc_si128(k[14 - i]);
    }
    d[14] = k[0];
    d
}

/// CBC-decrypts whole 256-byte stretches of `len` bytes from `src` to `dst` with
/// VAES, sixteen blocks at a time in 256-bit registers, and returns how many bytes it
/// did (the rest is left to [`cbc_decrypt`]). About twice the speed of eight blocks
/// in 128-bit registers on this machine's processor.
///
/// # Safety
/// VAES and AVX2 must be available; `src` must be readable and `dst` writable for
/// `len` bytes, and the two must not overlap.
#[target_feature(enable = "vaes,avx2")]
unsafe fn cbc_decrypt_vaes(
    d: &[__m128i; 15],
    iv: &mut [u8; 16],
    src: *const u8,
    dst: *mut u8,
    len: usize,
) -> usize {
    let k = d.map(|rk| _mm256_broadcastsi128_si256(rk));
    // SAFETY (every load and store below): offsets stay below `len`, inside both
    // buffers by the caller's promise; `iv` is 16 bytes.
    // SAFETY: `iv` is 16 bytes, the width of this load or store.
    let mut prev = unsafe { _mm_loadu_si128(iv.as_ptr().cast()) };
    let mut at = 0;
    while at + 256 <= len {
        let mut c = [_mm256_setzero_si256(); 8];
        for (j, cj) in c.iter_mut().enumerate() {
            // SAFETY: the offset plus the load's width is at most `len`: readable in `src` by the caller's promise.
            *cj = unsafe { _mm256_loadu_si256(src.add(at + 32 * j).cast()) };
        }
        let mut x = c.map(|cj| _mm256_xor_si256(cj, k[0]));
        for rk in &k[1..14] {
            for xj in &mut x {
                *xj = _mm256_aesdec_epi128(*xj, *rk);
            }
        }
        for (j, xj) in x.iter().enumerate() {
            // The ciphertext blocks before blocks 2j and 2j+1: the one carried in
            // for the first pair, the stretch 16 bytes back for the others.
            let before = if j == 0 {
                _mm256_set_m128i(_mm256_castsi256_si128(c[0]), prev)
            } else {
                // SAFETY: the offset plus the load's width is at most `len`: readable in `src` by the caller's promise.
                unsafe { _mm256_loadu_si256(src.add(at + 32 * j - 16).cast()) }
            };
            let p = _mm256_xor_si256(_mm256_aesdeclast_epi128(*xj, k[14]), before);
            // SAFETY: the offset plus the store's width is at most `len`: writable in `dst` by the caller's promise.
            unsafe { _mm256_storeu_si256(dst.add(at + 32 * j).cast(), p) };
        }
        prev = _mm256_extracti128_si256::<1>(c[7]);
        at += 256;
    }
    // SAFETY: `iv` is 16 bytes, the width of this load or store.
    unsafe { _mm_storeu_si128(iv.as_mut_ptr().cast(), prev) };
    at
}

/// CBC-decrypts `len` bytes (a multiple of 16) from `src` to `dst`, eight blocks at
/// a time (decryption is parallel: each block needs only its own ciphertext and the
/// one before).
///
/// # Safety
/// AES-NI and SSE2 must be available; `src` must be readable and `dst` writable for
/// `len` bytes, and the two must not overlap.
#[target_feature(enable = "aes,sse2")]
unsafe fn cbc_decrypt(
    d: &[__m128i; 15],
    iv: &mut [u8; 16],
    src: *const u8,
    dst: *mut u8,
    len: usize,
) {
    // SAFETY (every load and store below): offsets stay below `len`, inside both
    // buffers by the caller's promise; `iv` is 16 bytes.
    // SAFETY: `iv` is 16 bytes, the width of this load or store.
    let mut prev = unsafe { _mm_loadu_si128(iv.as_ptr().cast()) };
    let mut at = 0;
    while at + 128 <= len {
        let mut c = [_mm_setzero_si128(); 8];
        for (j, cj) in c.iter_mut().enumerate() {
            // SAFETY: the offset plus the load's width is at most `len`: readable in `src` by the caller's promise.
            *cj = unsafe { _mm_loadu_si128(src.add(at + 16 * j).cast()) };
        }
        let mut x = c.map(|cj| _mm_xor_si128(cj, d[0]));
        for rk in &d[1..14] {
            for xj in &mut x {
                *xj = _mm_aesdec_si128(*xj, *rk);
            }
        }
        for (j, xj) in x.iter().enumerate() {
            let before = if j == 0 { prev } else { c[j - 1] };
            let p = _mm_xor_si128(_mm_aesdeclast_si128(*xj, d[14]), before);
            // SAFETY: the offset plus the store's width is at most `len`: writable in `dst` by the caller's promise.
            unsafe { _mm_storeu_si128(dst.add(at + 16 * j).cast(), p) };
        }
        prev = c[7];
        at += 128;
    }
    while at + 16 <= len {
        // SAFETY: the offset plus the load's width is at most `len`: readable in `src` by the caller's promise.
        let c = unsafe { _mm_loadu_si128(src.add(at).cast()) };
        let mut x = _mm_xor_si128(c, d[0]);
        for rk in &d[1..14] {
            x = _mm_aesdec_si128(x, *rk);
        }
        let p = _mm_xor_si128(_mm_aesdeclast_si128(x, d[14]), prev);
        // SAFETY: the offset plus the store's width is at most `len`: writable in `dst` by the caller's promise.
        unsafe { _mm_storeu_si128(dst.add(at).cast(), p) };
        prev = c;
        at += 16;
    }
    // SAFETY: `iv` is 16 bytes, the width of this load or store.
    unsafe { _mm_storeu_si128(iv.as_mut_ptr().cast(), prev) };
}

#[target_feature(enable = "aes,sse2")]
fn expand_step1(t1: __m128i, t2: __m128i) -> __m128i {
    let t2 = _mm_shuffle_epi32::<0xff>(t2);
    let mut t1 = t1;
    let mut t4 = _mm_slli_si128::<4>(t1);
    t1 = _mm_xor_si128(t1, t4);
    t4 = _mm_slli_si128::<4>(t4);
    t1 = _mm_xor_si128(t1, t4);
    t4 = _mm_slli_si128::<4>(t4);
    t1 = _mm_xor_si128(t1, t4);
    _mm_xor_si128(t1, t2)
}

#[target_feature(enable = "aes,sse2")]
fn expand_step2(t1: __m128i, t3: __m128i) -> __m128i {
    let t2 = _mm_shuffle_epi32::<0xaa>(_mm_aeskeygenassist_si128::<0>(t1));
    let mut t3 = t3;
    let mut t4 = _mm_slli_si128::<4>(t3);
    t3 = _mm_xor_si128(t3, t4);
    t4 = _mm_slli_si128::<4>(t4);
    t3 = _mm_xor_si128(t3, t4);
    t4 = _mm_slli_si128::<4>(t4);
    t3 = _mm_xor_si128(t3, t4);
    _mm_xor_si128(t3, t2)
}

/// The AES-256 key expansion (FIPS-197), in the form Intel's AES-NI white paper gives.
#[target_feature(enable = "aes,sse2")]
unsafe fn expand(key: &[u8; 32]) -> [__m128i; 15] {
    let mut k = [_mm_setzero_si128(); 15];
    // SAFETY: both loads read 16 bytes inside the 32-byte key.
    let mut t1 = unsafe { _mm_loadu_si128(key.as_ptr().cast()) };
    // SAFETY: 16 bytes inside the 32-byte key.
    let mut t3 = unsafe { _mm_loadu_si128(key[16..].as_ptr().cast()) };
    k[0] = t1;
    k[1] = t3;
    // Even round keys come from the previous pair and a round constant, odd ones from
    // the new even key; AES-256 needs keys 0 to 14.
    macro_rules! even {
        ($i:expr, $rcon:expr) => {
            t1 = expand_step1(t1, _mm_aeskeygenassist_si128::<$rcon>(t3));
            k[$i] = t1;
        };
    }
    macro_rules! odd {
        ($i:expr) => {
            t3 = expand_step2(t1, t3);
            k[$i] = t3;
        };
    }
    even!(2, 0x01);
    odd!(3);
    even!(4, 0x02);
    odd!(5);
    even!(6, 0x04);
    odd!(7);
    even!(8, 0x08);
    odd!(9);
    even!(10, 0x10);
    odd!(11);
    even!(12, 0x20);
    odd!(13);
    even!(14, 0x40);
    k
}

/// CBC-encrypts `len` bytes (a multiple of 16) from `src` to `dst`.
///
/// # Safety
/// AES-NI and SSE2 must be available; `src` must be readable and `dst` writable for
/// `len` bytes; they are either the same pointer or do not overlap.
#[target_feature(enable = "aes,sse2")]
unsafe fn cbc_encrypt(
    k: &[__m128i; 15],
    iv: &mut [u8; 16],
    src: *const u8,
    dst: *mut u8,
    len: usize,
) {
    // The serial path per block is XOR, 13 AESENC, AESENCLAST. The first round key
    // is folded into the last one (AESENCLAST ends with an XOR of its key), so the
    // chain value carries `k0` with it and the plaintext needs one XOR, not two; the
    // ciphertext is recovered off the serial path for the store.
    let k0 = k[0];
    let last = _mm_xor_si128(k[14], k0);
    // SAFETY: `iv` is 16 bytes.
    let mut chain = _mm_xor_si128(unsafe { _mm_loadu_si128(iv.as_ptr().cast()) }, k0);
    let mut at = 0;
    while at + 16 <= len {
        // SAFETY: `at + 16 <= len`, inside both buffers (the caller's promise). A
        // block is read before it is written, so `src == dst` is fine.
        let p = unsafe { _mm_loadu_si128(src.add(at).cast()) };
        let mut x = _mm_xor_si128(p, chain);
        for rk in &k[1..14] {
            x = _mm_aesenc_si128(x, *rk);
        }
        chain = _mm_aesenclast_si128(x, last);
        // SAFETY: the offset plus the store's width is at most `len`: writable in `dst` by the caller's promise.
        unsafe { _mm_storeu_si128(dst.add(at).cast(), _mm_xor_si128(chain, k0)) };
        at += 16;
    }
    // SAFETY: `iv` is 16 bytes.
    unsafe { _mm_storeu_si128(iv.as_mut_ptr().cast(), _mm_xor_si128(chain, k0)) };
}

#[cfg(test)]
mod tests {
    use aes::cipher::array::Array;
    use aes::cipher::consts::U16;
    use aes::cipher::{BlockModeEncrypt, KeyIvInit};

    use super::Aes256CbcNi;

    #[test]
    fn agrees_with_rustcrypto_for_many_keys_and_lengths() {
        for seed in 0u8..20 {
            let key: [u8; 32] = std::array::from_fn(|i| (i as u8).wrapping_mul(31) ^ seed);
            let Some(mut ni) = Aes256CbcNi::new(&key, [0; 16]) else {
                eprintln!("no AES-NI here; nothing to compare");
                return;
            };
            let mut a: Vec<u8> = (0..16 * (1 + seed as usize * 7))
                .map(|i| i as u8 ^ seed)
                .collect();
            let mut b = a.clone();
            // In two calls, so the chain carries across.
            let half = a.len() / 32 * 16;
            ni.encrypt(&mut a[..half]);
            ni.encrypt(&mut a[half..]);
            let mut rc = cbc::Encryptor::<aes::Aes256>::new(&key.into(), &[0u8; 16].into());
            let (blocks, _) = Array::<u8, U16>::slice_as_chunks_mut(&mut b);
            rc.encrypt_blocks(blocks);
            assert_eq!(a, b, "seed {seed}");
        }
    }

    #[test]
    fn decryption_agrees_with_rustcrypto_for_many_keys_lengths_and_splits() {
        use aes::cipher::BlockModeDecrypt;
        for seed in 0u8..20 {
            let key: [u8; 32] = std::array::from_fn(|i| (i as u8).wrapping_mul(13) ^ seed);
            let iv: [u8; 16] = std::array::from_fn(|i| i as u8 ^ seed);
            let Some(fastest) = super::Aes256CbcDecNi::new(&key, iv) else {
                return;
            };
            // With VAES where the processor has it, and with 128-bit AES-NI alone.
            let mut plain_ni = fastest.clone();
            plain_ni.vaes = false;
            for mut ni in [fastest, plain_ni] {
                let ct: Vec<u8> = (0..16 * (1 + seed as usize * 13))
                    .map(|i| (i as u8).wrapping_mul(seed | 1))
                    .collect();
                let mut expected = ct.clone();
                let mut rc = cbc::Decryptor::<aes::Aes256>::new(&key.into(), &iv.into());
                let (blocks, _) = Array::<u8, U16>::slice_as_chunks_mut(&mut expected);
                rc.decrypt_blocks(blocks);
                // Split at a point that is not a multiple of eight blocks, so both loops
                // run and the chain carries across calls.
                let split = ct.len() / 16 / 3 * 16;
                let mut out = bytes::BytesMut::from(&b"x"[..]);
                ni.decrypt_append(&ct[..split], &mut out);
                ni.decrypt_append(&ct[split..], &mut out);
                assert_eq!(&out[1..], &expected[..], "seed {seed}, vaes {}", ni.vaes);
                assert_eq!(ni.iv(), <[u8; 16]>::try_from(&ct[ct.len() - 16..]).unwrap());
            }
        }
    }

    #[test]
    fn appending_to_a_buffer_gives_the_same_ciphertext() {
        let key = [9u8; 32];
        let Some(mut in_place) = Aes256CbcNi::new(&key, [3; 16]) else {
            return;
        };
        let mut appending = in_place.clone();
        let plain: Vec<u8> = (0..16 * 1000 + 5).map(|i| (i * 7) as u8).collect();
        let mut expected = plain[..16 * 1000].to_vec();
        in_place.encrypt(&mut expected[..16 * 300]);
        in_place.encrypt(&mut expected[16 * 300..]);
        // Existing bytes stay in front; the partial block at the end is not taken.
        let mut out = bytes::BytesMut::from(&b"head"[..]);
        appending.encrypt_append(&plain[..16 * 300 + 9], &mut out);
        appending.encrypt_append(&plain[16 * 300..], &mut out);
        assert_eq!(&out[..4], b"head");
        assert_eq!(&out[4..], &expected[..]);
    }
}
