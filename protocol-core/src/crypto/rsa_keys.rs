//! RSA-1024 key pairs: generation with exponent 17, the 160-byte public key field,
//! OAEP-SHA1 key transport, and the base64 PKCS#8 private key format of `me.info`.
//!
//! Two libraries, each for what it does safely. The `rsa` crate generates, parses and
//! encodes keys and does the public-key operation (the server's OAEP encryption): none
//! of these is fed a ciphertext an attacker chose. The private-key operation, the
//! client's OAEP decryption of 1602/1605, runs in OpenSSL, whose RSA decryption and OAEP
//! padding check are constant time; the `rsa` crate's is not (RUSTSEC-2023-0071, the
//! Marvin attack), and aws-lc-rs refuses keys under 2048 bits. `docs/SECURITY.md` says
//! more.

use base64::Engine as _;
use openssl::md::Md;
use openssl::pkey::{PKey, Private};
use openssl::pkey_ctx::PkeyCtx;
use openssl::rsa::{Padding, Rsa};
use rand_core::CryptoRngCore;
use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey};
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use rsa::traits::PublicKeyParts;
use rsa::{BigUint, Oaep, RsaPrivateKey, RsaPublicKey};
use thiserror::Error;
use zeroize::{ZeroizeOnDrop, Zeroizing};

use super::aes_cbc::AesKey;
use crate::error::PeerError;
use crate::wire::PUBLIC_KEY_FIELD_LEN;

/// Modulus size of the keys this implementation generates.
pub const RSA_BITS: usize = 1024;
/// Smallest modulus a public key may have (826): smaller ones are refused.
pub const MIN_RSA_BITS: usize = 1024;
/// Public exponent of the keys this implementation generates: with a one-byte
/// exponent the SubjectPublicKeyInfo DER of a 1024-bit key is exactly 160 bytes.
pub const RSA_EXPONENT: u32 = 17;

/// What can go wrong with a key the local user supplied.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The text is not base64.
    #[error("the private key is not valid base64")]
    Base64,
    /// The bytes are neither PKCS#8 nor PKCS#1 DER of an RSA key.
    #[error("the private key is neither PKCS#8 nor PKCS#1 DER of an RSA key")]
    Der,
    /// Key generation failed.
    #[error("RSA key generation failed: {0}")]
    Generate(String),
    /// The public key does not fit the 160-byte field.
    #[error("the public key is {0} bytes as DER, more than the 160-byte field holds")]
    TooLarge(usize),
    /// Encoding failed.
    #[error("encoding the key failed: {0}")]
    Encode(String),
    /// OpenSSL did not take the key for decryption.
    #[error("OpenSSL did not accept the private key: {0}")]
    OpenSsl(String),
}

/// A client's RSA private key.
///
/// Cleared from memory when dropped ([`ZeroizeOnDrop`]): the `rsa` crate zeroizes its
/// private components, and OpenSSL frees its copy with `BN_clear_free`. It is `Clone`
/// because the client both keeps its key and hands one to the application to save in
/// `me.info`; each copy clears itself.
///
/// ```
/// use protocol_core::crypto::PrivateKey;
/// let b64 = "MIICdAIBADANBgkqhkiG9w0BAQEFAASCAl4wggJaAgEAAoGBALwNGEZS9HtjBVqJld23/9dOWfiCLcvEy+gSUchU7xaHdp8EbNnqd0RhtecUOXQUts+b4wt0cnOoTZbwtptU3aRLC0DXhIeBOH5bJJTaMKPh7Cm4w2PHq3f0oYDExIxcmXCWzJHbOPNa0fkSUaNxIjjdVWoZWPVTZSCm/DmMx6l7AgERAoGALD9RAXzuOyZbnNUUNCtLQbgVK2nsqGqKVLkELyMLFFwb6S43us3BtbyjRW4roteyizO886LtwNxOfd5JFX1hU21E48Ed2dlawKDKVYbTirCxIb4NkqkUO8e6zFSp4rjmpXtWPBmYfDvZ0SdAW9JvmJwNGlE2PZkWYGD8cMMHtHECQQD6Xz8FCNW0mHcWZP4KQD7JrPJXJ56kc/JnAkjC2vK9K+h6RjaOoL6EHyeRMF0flkJcGS+CrHDebZveWEJwnyOxAkEAwEc53bzT8N5UmWOrUu1XqU5n+eIV1KGHfMVTmheWDZlI0Ffb39Ak2FUYmk/AEzGt6gSKvYX+qlhrLHMX30fG6wJBAM4wUgQlZLLX6Zn40TWeUdNDIe1r7A72EutrSvrSbYy6v3PBWhsa9z+hL6S+as63+mn2n5jKPtVLNRF13Fy/SpECQE8sYx8RhHI9biEK7DE0jYHzG8E++e4kZPckE12RPcldPBmNlsWR8Q3Ir8cRx49uzyQf/OSglgnoLCFckVvwYPcCQF9AZpHEELlNy3IvHZdDGMvW2h18qGSzrVsaetvDXNoP+z49aLJgPrh3LUKSQBXTW3gnOrE2WzL8T/auFNPrlL0=";
/// let key = PrivateKey::from_base64(b64).unwrap();
/// assert_eq!(key.public_key().to_field().unwrap().len(), 160);
/// assert_eq!(PrivateKey::from_base64(&key.to_base64().unwrap()).unwrap(), key);
/// ```
#[derive(Clone)]
pub struct PrivateKey {
    /// Generation, parsing, encoding, the public half. No private-key operation.
    key: RsaPrivateKey,
    /// The same key inside OpenSSL, for the one private-key operation.
    decrypting: PKey<Private>,
}

// Both fields clear their secrets when dropped (see the type's docs).
impl ZeroizeOnDrop for PrivateKey {}

impl PartialEq for PrivateKey {
    fn eq(&self, other: &PrivateKey) -> bool {
        self.key == other.key
    }
}

impl Eq for PrivateKey {}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PrivateKey({} bits, ..)", self.key.size() * 8)
    }
}

impl PrivateKey {
    fn new(key: RsaPrivateKey) -> Result<PrivateKey, KeyError> {
        // PKCS#1 DER is the plainest handover; the document zeroizes itself on drop.
        let der = key
            .to_pkcs1_der()
            .map_err(|e| KeyError::Encode(e.to_string()))?;
        let decrypting = Rsa::private_key_from_der(der.as_bytes())
            .and_then(PKey::from_rsa)
            .map_err(|e| KeyError::OpenSsl(e.to_string()))?;
        Ok(PrivateKey { key, decrypting })
    }

    /// A fresh RSA-1024 key with exponent 17 (6 to 40 ms).
    pub fn generate(rng: &mut impl CryptoRngCore) -> Result<PrivateKey, KeyError> {
        let key = RsaPrivateKey::new_with_exp(rng, RSA_BITS, &BigUint::from(RSA_EXPONENT))
            .map_err(|e| KeyError::Generate(e.to_string()))?;
        PrivateKey::new(key)
    }

    /// Reads base64 of PKCS#8 PrivateKeyInfo DER, or of PKCS#1 RSAPrivateKey DER.
    /// White space anywhere (a key wrapped over several lines) is ignored. The
    /// intermediate copies (the compacted text, the DER) are zeroized.
    pub fn from_base64(text: &str) -> Result<PrivateKey, KeyError> {
        // Sized once, so that growing it leaves no stray copy behind.
        let mut compact = Zeroizing::new(String::with_capacity(text.len()));
        compact.extend(text.chars().filter(|c| !c.is_whitespace()));
        let der = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(compact.as_bytes())
                .map_err(|_| KeyError::Base64)?,
        );
        let key = RsaPrivateKey::from_pkcs8_der(&der)
            .or_else(|_| RsaPrivateKey::from_pkcs1_der(&der))
            .map_err(|_| KeyError::Der)?;
        PrivateKey::new(key)
    }

    /// Base64 of the PKCS#8 PrivateKeyInfo DER, on one line; zeroized when dropped.
    pub fn to_base64(&self) -> Result<Zeroizing<String>, KeyError> {
        let doc = self
            .key
            .to_pkcs8_der()
            .map_err(|e| KeyError::Encode(e.to_string()))?;
        Ok(Zeroizing::new(
            base64::engine::general_purpose::STANDARD.encode(doc.as_bytes()),
        ))
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.key.to_public_key())
    }

    /// Decrypts an AES key sent in 1602/1605 (OAEP, SHA-1, MGF1-SHA-1, empty label).
    ///
    /// The private-key operation runs in OpenSSL: constant time in the ciphertext, with
    /// blinding from OpenSSL's own random generator (so, unlike the rest of the crate,
    /// this takes no caller RNG; the result does not depend on one). The recovered
    /// plaintext is zeroized once the key is copied out of it.
    pub fn decrypt_aes_key(&self, ciphertext: &[u8]) -> Result<AesKey, PeerError> {
        let mut plain = Zeroizing::new(vec![0u8; self.key.size()]);
        let len = oaep_sha1_decrypt(&self.decrypting, ciphertext, &mut plain)
            .map_err(|_| PeerError::BadAesKey("OAEP decryption failed"))?;
        AesKey::from_slice(&plain[..len]).ok_or(PeerError::BadAesKey("not 16 or 32 bytes"))
    }
}

/// OAEP-SHA1 decryption into `out` (at least the modulus size), giving the length.
fn oaep_sha1_decrypt(
    key: &PKey<Private>,
    ciphertext: &[u8],
    out: &mut [u8],
) -> Result<usize, openssl::error::ErrorStack> {
    let mut ctx = PkeyCtx::new(key)?;
    ctx.decrypt_init()?;
    ctx.set_rsa_padding(Padding::PKCS1_OAEP)?;
    ctx.set_rsa_oaep_md(Md::sha1())?;
    ctx.set_rsa_mgf1_md(Md::sha1())?;
    ctx.decrypt(ciphertext, Some(out))
}

/// A client's RSA public key, as the server holds it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct PublicKey(RsaPublicKey);

impl PublicKey {
    /// Parses the 826 public key field: X.509 SubjectPublicKeyInfo DER, followed by
    /// zero bytes if shorter than the field. A modulus below [`MIN_RSA_BITS`] is refused.
    ///
    /// ```
    /// use protocol_core::crypto::PublicKey;
    /// assert!(PublicKey::from_field(&[0u8; 160]).is_err());
    /// ```
    pub fn from_field(field: &[u8]) -> Result<PublicKey, PeerError> {
        let der_len = der_sequence_len(field).ok_or(PeerError::InvalidPublicKey("not DER"))?;
        if der_len > field.len() {
            return Err(PeerError::InvalidPublicKey("DER longer than the field"));
        }
        if field[der_len..].iter().any(|&b| b != 0) {
            return Err(PeerError::InvalidPublicKey("trailing bytes are not zero"));
        }
        let key = RsaPublicKey::from_public_key_der(&field[..der_len])
            .map_err(|_| PeerError::InvalidPublicKey("not an RSA SubjectPublicKeyInfo"))?;
        // A modulus below 1024 bits is factored cheaply (and OAEP with SHA-1 needs at
        // least 74 bytes anyway): whoever factors it reads every AES key sent under it.
        if key.n().bits() < MIN_RSA_BITS {
            return Err(PeerError::InvalidPublicKey("modulus below 1024 bits"));
        }
        Ok(PublicKey(key))
    }

    /// The key as the 160-byte field (DER, zero-padded).
    pub fn to_field(&self) -> Result<[u8; PUBLIC_KEY_FIELD_LEN], KeyError> {
        let doc = self
            .0
            .to_public_key_der()
            .map_err(|e| KeyError::Encode(e.to_string()))?;
        let der = doc.as_bytes();
        if der.len() > PUBLIC_KEY_FIELD_LEN {
            return Err(KeyError::TooLarge(der.len()));
        }
        let mut field = [0u8; PUBLIC_KEY_FIELD_LEN];
        field[..der.len()].copy_from_slice(der);
        Ok(field)
    }

    /// Encrypts an AES key for 1602/1605 (OAEP, SHA-1, MGF1-SHA-1, empty label).
    pub fn encrypt_aes_key(
        &self,
        rng: &mut impl CryptoRngCore,
        key: &AesKey,
    ) -> Result<Vec<u8>, PeerError> {
        self.0
            .encrypt(rng, Oaep::new::<sha1::Sha1>(), key.as_bytes())
            .map_err(|_| PeerError::InvalidPublicKey("OAEP encryption failed"))
    }
}

/// Length of the DER SEQUENCE at the front of `b`, header included.
fn der_sequence_len(b: &[u8]) -> Option<usize> {
    if *b.first()? != 0x30 {
        return None;
    }
    let first = *b.get(1)? as usize;
    if first < 0x80 {
        return Some(2 + first);
    }
    let n = first & 0x7f;
    if n == 0 || n > 2 {
        return None;
    }
    let mut len = 0usize;
    for i in 0..n {
        len = (len << 8) | *b.get(2 + i)? as usize;
    }
    Some(2 + n + len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::rand_core::SeedableRng;

    /// The 826 field of a fresh key of `bits` bits, exponent 17.
    fn field_of(bits: usize) -> Vec<u8> {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(bits as u64);
        let key = RsaPrivateKey::new_with_exp(&mut rng, bits, &BigUint::from(RSA_EXPONENT))
            .expect("key generation");
        let der = key
            .to_public_key()
            .to_public_key_der()
            .expect("encoding")
            .into_vec();
        let mut field = vec![0u8; PUBLIC_KEY_FIELD_LEN];
        field[..der.len()].copy_from_slice(&der);
        field
    }

    #[test]
    fn keys_below_1024_bits_are_refused() {
        for bits in [592, 768, 1016] {
            assert_eq!(
                PublicKey::from_field(&field_of(bits)),
                Err(PeerError::InvalidPublicKey("modulus below 1024 bits")),
                "{bits} bits"
            );
        }
        assert!(PublicKey::from_field(&field_of(1024)).is_ok());
    }
}
