//! RSA-1024 keys: the 160-byte public key field and the server's OAEP-SHA1 key
//! transport. The client's private key (generation with exponent 17, the base64
//! PKCS#8 format of `me.info`, the OAEP decryption) is in `private_key.rs`, built
//! with the `client` feature only.
//!
//! Two libraries, each for what it does safely. The `rsa` crate generates, parses and
//! encodes keys and does the public-key operation (the server's OAEP encryption): none
//! of these is fed a ciphertext an attacker chose. The private-key operation, the
//! client's OAEP decryption of 1602/1605, runs in OpenSSL, whose RSA decryption and OAEP
//! padding check are constant time; the `rsa` crate's is not (RUSTSEC-2023-0071, the
//! Marvin attack), and aws-lc-rs refuses keys under 2048 bits. `docs/SECURITY.md` says
//! more.

use rand_core::CryptoRngCore;
use rsa::pkcs8::{DecodePublicKey, EncodePublicKey};
use rsa::traits::PublicKeyParts;
use rsa::{Oaep, RsaPublicKey};
use thiserror::Error;

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

/// A client's RSA public key, as the server holds it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct PublicKey(pub(crate) RsaPublicKey);

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
    use rsa::{BigUint, RsaPrivateKey};

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
