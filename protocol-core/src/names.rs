//! What the server accepts as a client name or a file name.
//!
//! The codec guarantees a terminator and at most 254 bytes; this module decides
//! content. Both kinds of name must be non-empty printable ASCII. File names are
//! kept as the client sent them (the database records them verbatim); turning one
//! into a safe path on disk is the storage layer's job.

use crate::error::PeerError;
use crate::wire::FieldString;

/// Longest client name the client's `transfer.info` allows.
pub const MAX_CLIENT_NAME_LEN: usize = 100;

/// Checks a client name: 1 to 254 bytes of printable ASCII, not only spaces.
///
/// ```
/// use protocol_core::{names, FieldString};
/// assert!(names::check_client_name(&FieldString::new("Michael Jackson").unwrap()).is_ok());
/// assert!(names::check_client_name(&FieldString::new("").unwrap()).is_err());
/// assert!(names::check_client_name(&FieldString::new("tab\there").unwrap()).is_err());
/// ```
pub fn check_client_name(name: &FieldString) -> Result<(), PeerError> {
    check_printable(name)
}

/// Checks a file name: 1 to 254 bytes of printable ASCII, not only spaces.
pub fn check_file_name(name: &FieldString) -> Result<(), PeerError> {
    check_printable(name)
}

fn check_printable(name: &FieldString) -> Result<(), PeerError> {
    let b = name.as_bytes();
    if b.is_empty() {
        return Err(PeerError::InvalidName("empty"));
    }
    if !b.iter().all(|c| (0x20..0x7f).contains(c)) {
        return Err(PeerError::InvalidName("not printable ASCII"));
    }
    if b.iter().all(|&c| c == b' ') {
        return Err(PeerError::InvalidName("only spaces"));
    }
    Ok(())
}
