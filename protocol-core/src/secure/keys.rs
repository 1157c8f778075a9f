//! The keys a client signs in with, and the messages it signs (docs/PROTOCOL.md,
//! section 10.4). Every message ends with the session's [`SessionBinding`], so a
//! signature proves possession of the key on this TLS session only.

use ed25519_dalek::{Signature, VerifyingKey};
use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::pkcs8::DecodePublicKey;
use rsa::traits::PublicKeyParts;
use rsa::{Pkcs1v15Sign, RsaPublicKey};
use sha2::{Digest, Sha256};

use super::SessionBinding;
use crate::crypto::PublicKey;
use crate::wire::ClientId;

/// Smallest RSA modulus accepted as a new key in the secure mode.
pub const MIN_STRONG_RSA_BITS: usize = 3072;

/// Which kind of key signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyKind {
    /// 1: the RSA-1024 key the client registered in the legacy protocol (its 160-byte
    /// 826 field); PKCS#1 v1.5 signatures over SHA-256.
    LegacyRsa,
    /// 2: an Ed25519 key (32 bytes); 64-byte signatures.
    Ed25519,
    /// 3: an RSA key of 3072 bits or more (PKCS#1 or SubjectPublicKeyInfo DER);
    /// PKCS#1 v1.5 signatures over SHA-256.
    Rsa,
}

impl KeyKind {
    /// The kind's number on the wire.
    pub fn code(self) -> u8 {
        match self {
            KeyKind::LegacyRsa => 1,
            KeyKind::Ed25519 => 2,
            KeyKind::Rsa => 3,
        }
    }

    /// The kind a number stands for.
    pub fn from_code(c: u8) -> Option<KeyKind> {
        match c {
            1 => Some(KeyKind::LegacyRsa),
            2 => Some(KeyKind::Ed25519),
            3 => Some(KeyKind::Rsa),
            _ => None,
        }
    }
}

/// A public key as the server stores it for the secure mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKey {
    /// Its kind.
    pub kind: KeyKind,
    /// Its bytes: the 826 field, the 32 Ed25519 bytes, or RSA DER.
    pub key: Vec<u8>,
}

/// Why a key or a signature was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyProblem {
    /// The key's bytes do not parse as its kind.
    #[error("the key does not parse: {0}")]
    Malformed(&'static str),
    /// An RSA key below [`MIN_STRONG_RSA_BITS`] offered as a new key.
    #[error("the key is too weak: RSA keys need {MIN_STRONG_RSA_BITS} bits or more")]
    Weak,
    /// The signature does not verify.
    #[error("the signature does not verify")]
    BadSignature,
}

const SIGN_IN: &[u8] = b"fileserver sign-in v1\0";
const REGISTER: &[u8] = b"fileserver register v1\0";
const SET_KEY: &[u8] = b"fileserver set-key v1\0";

/// What a client signs to sign in as `client_id` on the session `binding`.
pub fn sign_in_message(client_id: &ClientId, binding: &SessionBinding) -> Vec<u8> {
    [SIGN_IN, &client_id.0, binding.as_bytes()].concat()
}

/// What a new client signs with its key to register as `name`.
pub fn register_message(
    name: &str,
    kind: KeyKind,
    key: &[u8],
    binding: &SessionBinding,
) -> Vec<u8> {
    let name_len = (name.len() as u16).to_le_bytes();
    let key_len = (key.len() as u16).to_le_bytes();
    [
        REGISTER,
        &name_len,
        name.as_bytes(),
        &[kind.code()],
        &key_len,
        key,
        binding.as_bytes(),
    ]
    .concat()
}

/// What a signed-in client signs with its new key to make it the key it signs in with.
pub fn set_key_message(
    client_id: &ClientId,
    kind: KeyKind,
    key: &[u8],
    binding: &SessionBinding,
) -> Vec<u8> {
    let key_len = (key.len() as u16).to_le_bytes();
    [
        SET_KEY,
        &client_id.0,
        &[kind.code()],
        &key_len,
        key,
        binding.as_bytes(),
    ]
    .concat()
}

fn rsa_from_der(der: &[u8]) -> Result<RsaPublicKey, KeyProblem> {
    RsaPublicKey::from_pkcs1_der(der)
        .or_else(|_| RsaPublicKey::from_public_key_der(der))
        .map_err(|_| KeyProblem::Malformed("not RSA public key DER"))
}

/// Checks that `key` is acceptable as a new key of `kind` (Ed25519, or RSA of
/// [`MIN_STRONG_RSA_BITS`] or more; never the legacy kind).
pub fn check_new_key(kind: KeyKind, key: &[u8]) -> Result<(), KeyProblem> {
    match kind {
        KeyKind::LegacyRsa => Err(KeyProblem::Weak),
        KeyKind::Ed25519 => ed25519_key(key).map(drop),
        KeyKind::Rsa => {
            let k = rsa_from_der(key)?;
            if k.size() * 8 < MIN_STRONG_RSA_BITS {
                return Err(KeyProblem::Weak);
            }
            Ok(())
        }
    }
}

fn ed25519_key(key: &[u8]) -> Result<VerifyingKey, KeyProblem> {
    let bytes: [u8; 32] = key
        .try_into()
        .map_err(|_| KeyProblem::Malformed("an Ed25519 key is 32 bytes"))?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| KeyProblem::Malformed("not an Ed25519 point"))
}

/// Verifies `signature` of `message` by `key`.
///
/// ```
/// use ed25519_dalek::{Signer, SigningKey};
/// use protocol_core::secure::keys::{verify, KeyKind, StoredKey};
/// let sk = SigningKey::from_bytes(&[9u8; 32]);
/// let key = StoredKey { kind: KeyKind::Ed25519, key: sk.verifying_key().to_bytes().to_vec() };
/// let sig = sk.sign(b"hello").to_bytes();
/// assert!(verify(&key, b"hello", &sig).is_ok());
/// assert!(verify(&key, b"hullo", &sig).is_err());
/// ```
pub fn verify(key: &StoredKey, message: &[u8], signature: &[u8]) -> Result<(), KeyProblem> {
    match key.kind {
        KeyKind::Ed25519 => {
            let k = ed25519_key(&key.key)?;
            let sig = Signature::from_slice(signature).map_err(|_| KeyProblem::BadSignature)?;
            k.verify_strict(message, &sig)
                .map_err(|_| KeyProblem::BadSignature)
        }
        KeyKind::LegacyRsa => {
            let k = PublicKey::from_field(&key.key)
                .map_err(|_| KeyProblem::Malformed("not a legacy public key field"))?;
            verify_rsa(&k.0, message, signature)
        }
        KeyKind::Rsa => verify_rsa(&rsa_from_der(&key.key)?, message, signature),
    }
}

fn verify_rsa(key: &RsaPublicKey, message: &[u8], signature: &[u8]) -> Result<(), KeyProblem> {
    let digest = Sha256::digest(message);
    key.verify(Pkcs1v15Sign::new::<Sha256>(), &digest, signature)
        .map_err(|_| KeyProblem::BadSignature)
}
