//! The cryptography of the protocol: checksums, AES-CBC streams, RSA keys.
//!
//! Every function that needs randomness takes a [`rand_core::CryptoRngCore`] from the
//! caller; nothing here touches a global RNG.

mod aes_cbc;
#[cfg(target_arch = "x86_64")]
mod aesni;
mod checksum;
#[cfg(feature = "client")]
mod private_key;
mod rsa_keys;

pub use aes_cbc::{padded_len, AesKey, AesKeySize, CbcDecryptor, CbcEncryptor, DecryptError};
pub use checksum::{cksum, Checksum, ChecksumAlgorithm};
#[cfg(feature = "client")]
pub use private_key::PrivateKey;
pub use rsa_keys::{KeyError, PublicKey, MIN_RSA_BITS, RSA_BITS, RSA_EXPONENT};
