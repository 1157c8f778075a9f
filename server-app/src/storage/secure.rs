//! What the metadata keeps for secure mode (docs/STORAGE.md, "Secure mode"): a
//! client's secure-mode key, whether its legacy requests are still served, and the
//! state of uploads that a cut connection left to be resumed.

use protocol_core::ClientId;

use super::MetaError;

/// A client's secure-mode key, apart from the legacy RSA-1024 key of 826.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecureKey {
    /// [`SecureKey::ED25519`] or [`SecureKey::RSA`].
    pub kind: u8,
    /// The key: 32 bytes for Ed25519, the DER of an RSA public key of at least
    /// 3072 bits.
    pub key: Vec<u8>,
}

impl SecureKey {
    /// An Ed25519 public key (32 bytes).
    pub const ED25519: u8 = 2;
    /// An RSA public key of at least 3072 bits, DER.
    pub const RSA: u8 = 3;
    /// The shortest DER an RSA key of 3072 bits has (its modulus alone is 384 bytes).
    pub const RSA_MIN_DER: usize = 384;
    /// The longest key stored (an RSA key of 16384 bits in DER is about 2 KiB).
    pub const MAX_LEN: usize = 4096;

    /// Whether the key can be what its kind says, by its length (the backends store
    /// nothing else; the server checks signatures with it).
    pub fn check(&self) -> Result<(), MetaError> {
        let ok = match self.kind {
            SecureKey::ED25519 => self.key.len() == 32,
            SecureKey::RSA => {
                (SecureKey::RSA_MIN_DER..=SecureKey::MAX_LEN).contains(&self.key.len())
            }
            _ => false,
        };
        if ok {
            Ok(())
        } else {
            Err(MetaError::backend(
                "storing a secure key",
                format!("a key of kind {} and {} bytes", self.kind, self.key.len()),
            ))
        }
    }
}

/// Whether a client's legacy requests are served.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SecureStatus {
    /// The client had a secure session (or registered in secure mode).
    pub went_secure: bool,
    /// It asked, in a secure session, to keep its legacy requests open.
    pub keep_legacy: bool,
}

impl SecureStatus {
    /// Whether its legacy requests are refused.
    pub fn legacy_refused(&self) -> bool {
        self.went_secure && !self.keep_legacy
    }
}

/// A resumable upload: where a cut upload stands, so that any server of a fleet
/// continues it from `offset` (tus semantics: the server is the authority on the
/// offset, which advances only once those bytes are durable in the upload).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartialUpload {
    /// Owner.
    pub client: ClientId,
    /// Name as the client sent it; one resumable upload per file.
    pub file_name: String,
    /// The whole file's size, as the client announced it.
    pub size: u64,
    /// Bytes durable in the upload.
    pub offset: u64,
    /// The [`Contents`](super::Contents) upload key holding them.
    pub upload: String,
    /// Opaque to storage: what the server needs to continue (hash midstates).
    pub state: Vec<u8>,
    /// When it was last saved, UTC, as the store's clock says (set by the store).
    pub updated: String,
}
