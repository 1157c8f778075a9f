//! The client's RSA private key: generation with exponent 17, the base64 PKCS#8
//! format of `me.info`, and the OAEP-SHA1 decryption of 1602/1605 in OpenSSL (the
//! reason this file, and the `client` feature, exist: see `rsa_keys.rs`).

use base64::Engine as _;
use openssl::md::Md;
use openssl::pkey::{PKey, Private};
use openssl::pkey_ctx::PkeyCtx;
use openssl::rsa::{Padding, Rsa};
use rand_core::CryptoRngCore;
use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey};
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use rsa::traits::PublicKeyParts;
use rsa::{BigUint, RsaPrivateKey};
use zeroize::{ZeroizeOnDrop, Zeroizing};

use super::aes_cbc::AesKey;
use super::rsa_keys::{KeyError, PublicKey, RSA_BITS, RSA_EXPONENT};
use crate::error::PeerError;

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

impl crate::secure::Signer for PrivateKey {
    fn kind(&self) -> crate::secure::keys::KeyKind {
        crate::secure::keys::KeyKind::LegacyRsa
    }

    /// The 826 field: what the server has on file for a legacy client.
    fn public_key(&self) -> Vec<u8> {
        self.public_key()
            .to_field()
            .map(|f| f.to_vec())
            .unwrap_or_default()
    }

    /// PKCS#1 v1.5 over SHA-256, in OpenSSL (constant time, blinded).
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        let sign = || -> Result<Vec<u8>, openssl::error::ErrorStack> {
            let mut signer = openssl::sign::Signer::new(
                openssl::hash::MessageDigest::sha256(),
                &self.decrypting,
            )?;
            signer.set_rsa_padding(Padding::PKCS1)?;
            signer.update(message)?;
            signer.sign_to_vec()
        };
        sign().map_err(|e| KeyError::OpenSsl(e.to_string()))
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
