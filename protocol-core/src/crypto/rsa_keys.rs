//! RSA-1024 key pairs: generation with exponent 17, the 160-byte public key field,
//! OAEP-SHA1 key transport, and the base64 PKCS#8 private key format of `me.info`.

use base64::Engine as _;
use rand_core::CryptoRngCore;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use rsa::traits::PublicKeyParts;
use rsa::{BigUint, Oaep, RsaPrivateKey, RsaPublicKey};
use thiserror::Error;

use super::aes_cbc::AesKey;
use crate::error::PeerError;
use crate::wire::PUBLIC_KEY_FIELD_LEN;

/// Modulus size of the keys this implementation generates.
pub const RSA_BITS: usize = 1024;
/// Public exponent of the keys this implementation generates: with a one-byte
/// exponent the SubjectPublicKeyInfo DER of a 1024-bit key is exactly 160 bytes.
pub const RSA_EXPONENT: u32 = 17;

/// What can go wrong with a key the local user supplied.
#[derive(Debug, Error)]
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
}

/// A client's RSA private key.
///
/// ```
/// use protocol_core::crypto::PrivateKey;
/// let b64 = "MIICdAIBADANBgkqhkiG9w0BAQEFAASCAl4wggJaAgEAAoGBALwNGEZS9HtjBVqJld23/9dOWfiCLcvEy+gSUchU7xaHdp8EbNnqd0RhtecUOXQUts+b4wt0cnOoTZbwtptU3aRLC0DXhIeBOH5bJJTaMKPh7Cm4w2PHq3f0oYDExIxcmXCWzJHbOPNa0fkSUaNxIjjdVWoZWPVTZSCm/DmMx6l7AgERAoGALD9RAXzuOyZbnNUUNCtLQbgVK2nsqGqKVLkELyMLFFwb6S43us3BtbyjRW4roteyizO886LtwNxOfd5JFX1hU21E48Ed2dlawKDKVYbTirCxIb4NkqkUO8e6zFSp4rjmpXtWPBmYfDvZ0SdAW9JvmJwNGlE2PZkWYGD8cMMHtHECQQD6Xz8FCNW0mHcWZP4KQD7JrPJXJ56kc/JnAkjC2vK9K+h6RjaOoL6EHyeRMF0flkJcGS+CrHDebZveWEJwnyOxAkEAwEc53bzT8N5UmWOrUu1XqU5n+eIV1KGHfMVTmheWDZlI0Ffb39Ak2FUYmk/AEzGt6gSKvYX+qlhrLHMX30fG6wJBAM4wUgQlZLLX6Zn40TWeUdNDIe1r7A72EutrSvrSbYy6v3PBWhsa9z+hL6S+as63+mn2n5jKPtVLNRF13Fy/SpECQE8sYx8RhHI9biEK7DE0jYHzG8E++e4kZPckE12RPcldPBmNlsWR8Q3Ir8cRx49uzyQf/OSglgnoLCFckVvwYPcCQF9AZpHEELlNy3IvHZdDGMvW2h18qGSzrVsaetvDXNoP+z49aLJgPrh3LUKSQBXTW3gnOrE2WzL8T/auFNPrlL0=";
/// let key = PrivateKey::from_base64(b64).unwrap();
/// assert_eq!(key.public_key().to_field().unwrap().len(), 160);
/// assert_eq!(PrivateKey::from_base64(&key.to_base64().unwrap()).unwrap(), key);
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct PrivateKey(RsaPrivateKey);

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PrivateKey({} bits, ..)", self.0.size() * 8)
    }
}

impl PrivateKey {
    /// A fresh RSA-1024 key with exponent 17 (6 to 40 ms).
    pub fn generate(rng: &mut impl CryptoRngCore) -> Result<PrivateKey, KeyError> {
        RsaPrivateKey::new_with_exp(rng, RSA_BITS, &BigUint::from(RSA_EXPONENT))
            .map(PrivateKey)
            .map_err(|e| KeyError::Generate(e.to_string()))
    }

    /// Reads base64 of PKCS#8 PrivateKeyInfo DER, or of PKCS#1 RSAPrivateKey DER.
    /// White space anywhere (a key wrapped over several lines) is ignored.
    pub fn from_base64(text: &str) -> Result<PrivateKey, KeyError> {
        let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(compact.as_bytes())
            .map_err(|_| KeyError::Base64)?;
        RsaPrivateKey::from_pkcs8_der(&der)
            .or_else(|_| RsaPrivateKey::from_pkcs1_der(&der))
            .map(PrivateKey)
            .map_err(|_| KeyError::Der)
    }

    /// Base64 of the PKCS#8 PrivateKeyInfo DER, on one line.
    pub fn to_base64(&self) -> Result<String, KeyError> {
        let doc = self
            .0
            .to_pkcs8_der()
            .map_err(|e| KeyError::Encode(e.to_string()))?;
        Ok(base64::engine::general_purpose::STANDARD.encode(doc.as_bytes()))
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.0.to_public_key())
    }

    /// Decrypts an AES key sent in 1602/1605 (OAEP, SHA-1), with blinding.
    pub fn decrypt_aes_key(
        &self,
        rng: &mut impl CryptoRngCore,
        ciphertext: &[u8],
    ) -> Result<AesKey, PeerError> {
        let plain = self
            .0
            .decrypt_blinded(rng, Oaep::new::<sha1::Sha1>(), ciphertext)
            .map_err(|_| PeerError::BadAesKey("OAEP decryption failed"))?;
        AesKey::from_slice(&plain).ok_or(PeerError::BadAesKey("not 16 or 32 bytes"))
    }
}

/// A client's RSA public key, as the server holds it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct PublicKey(RsaPublicKey);

impl PublicKey {
    /// Parses the 826 public key field: X.509 SubjectPublicKeyInfo DER, followed by
    /// zero bytes if shorter than the field.
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
        // OAEP with SHA-1 needs 2*20+2 bytes of room beyond the 32-byte AES key.
        if key.size() < 2 * 20 + 2 + 32 {
            return Err(PeerError::InvalidPublicKey("modulus too small for OAEP"));
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
