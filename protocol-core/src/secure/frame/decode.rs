//! Decoding: bytes to requests and responses, every length checked before use.

use bytes::{Buf, Bytes, BytesMut};

use super::{
    code, Described, FileEntry, Refusal, RequestLimits, SecureRequest, SecureResponse,
    VersionEntry, MAX_CONTROL, MAX_DATA, MAX_KEY_FIELD, MAX_NAME, SECURE_VERSION,
};
use crate::error::PeerError;
use crate::frame::{CLIENT_ID_LEN, REQUEST_HEADER_LEN, RESPONSE_HEADER_LEN};
use crate::secure::keys::KeyKind;
use crate::wire::ClientId;
// ---- decoding ----

/// Reads fields from a payload, every length checked before it is used.
struct Fields<'a> {
    buf: &'a [u8],
    code: u16,
}

impl<'a> Fields<'a> {
    fn bad(&self, why: &'static str) -> PeerError {
        PeerError::UnexpectedRequest {
            code: self.code,
            why,
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], PeerError> {
        if self.buf.len() < n {
            return Err(self.bad("the payload ends inside a field"));
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8, PeerError> {
        Ok(self.take(1)?[0])
    }

    fn flag(&mut self) -> Result<bool, PeerError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(self.bad("a flag that is neither 0 nor 1")),
        }
    }

    fn u16(&mut self) -> Result<u16, PeerError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, PeerError> {
        let mut a = [0u8; 4];
        a.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(a))
    }

    fn u64(&mut self) -> Result<u64, PeerError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }

    fn sha(&mut self) -> Result<[u8; 32], PeerError> {
        let mut a = [0u8; 32];
        a.copy_from_slice(self.take(32)?);
        Ok(a)
    }

    fn bytes(&mut self, max: usize) -> Result<Bytes, PeerError> {
        let n = self.u16()? as usize;
        if n > max {
            return Err(self.bad("a field longer than its limit"));
        }
        Ok(Bytes::copy_from_slice(self.take(n)?))
    }

    fn string(&mut self, max: usize) -> Result<String, PeerError> {
        let b = self.bytes(max)?;
        String::from_utf8(b.to_vec()).map_err(|_| self.bad("a string that is not UTF-8"))
    }

    fn opt_sha(&mut self) -> Result<Option<[u8; 32]>, PeerError> {
        let has = self.flag()?;
        let sha = self.sha()?;
        Ok(has.then_some(sha))
    }

    fn described(&mut self) -> Result<Described, PeerError> {
        let size = self.u64()?;
        let verified = self.flag()?;
        let sha256 = self.opt_sha()?;
        let has_cksum = self.flag()?;
        let cksum = self.u32()?;
        let updated = self.string(64)?;
        Ok(Described {
            size,
            verified,
            sha256,
            cksum: has_cksum.then_some(cksum),
            updated,
        })
    }

    fn kind(&mut self) -> Result<KeyKind, PeerError> {
        KeyKind::from_code(self.u8()?).ok_or_else(|| self.bad("an unknown key kind"))
    }

    fn end(&self) -> Result<(), PeerError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(self.bad("bytes after the last field"))
        }
    }
}

/// Whether a request header (at least [`REQUEST_HEADER_LEN`] bytes) is a secure one:
/// the version byte is [`SECURE_VERSION`].
pub fn is_secure_request_header(header: &[u8]) -> bool {
    header.get(CLIENT_ID_LEN) == Some(&SECURE_VERSION)
}

/// Takes one whole request from the front of `buf`, or `None` (nothing consumed)
/// while it is incomplete. A declared size over the limits is an error before
/// anything is buffered.
pub fn decode_request(
    buf: &mut BytesMut,
    limits: &RequestLimits,
) -> Result<Option<(ClientId, SecureRequest)>, PeerError> {
    if buf.len() < REQUEST_HEADER_LEN {
        return Ok(None);
    }
    if !is_secure_request_header(buf) {
        return Err(PeerError::UnexpectedRequest {
            code: u16::from_le_bytes([buf[17], buf[18]]),
            why: "a legacy request inside TLS (the secure extension's version byte is 0x83)",
        });
    }
    let code = u16::from_le_bytes([buf[17], buf[18]]);
    let size = u32::from_le_bytes([buf[19], buf[20], buf[21], buf[22]]) as usize;
    let limit = if code == code::PUT_DATA {
        limits.max_data
    } else {
        MAX_CONTROL
    };
    if size > limit {
        return Err(PeerError::PayloadTooLarge { code, size, limit });
    }
    if buf.len() < REQUEST_HEADER_LEN + size {
        return Ok(None);
    }
    let mut id = [0u8; CLIENT_ID_LEN];
    id.copy_from_slice(&buf[..CLIENT_ID_LEN]);
    buf.advance(REQUEST_HEADER_LEN);
    let payload = buf.split_to(size).freeze();
    if code == code::PUT_DATA {
        return Ok(Some((
            ClientId(id),
            SecureRequest::PutData { data: payload },
        )));
    }
    let mut f = Fields {
        buf: &payload,
        code,
    };
    let req = match code {
        code::SIGN_IN => SecureRequest::SignIn {
            kind: f.kind()?,
            signature: f.bytes(MAX_KEY_FIELD)?,
        },
        code::REGISTER => SecureRequest::Register {
            name: f.string(MAX_NAME)?,
            kind: f.kind()?,
            key: f.bytes(MAX_KEY_FIELD)?,
            signature: f.bytes(MAX_KEY_FIELD)?,
        },
        code::SET_KEY => SecureRequest::SetKey {
            kind: f.kind()?,
            key: f.bytes(MAX_KEY_FIELD)?,
            signature: f.bytes(MAX_KEY_FIELD)?,
        },
        code::KEEP_LEGACY => SecureRequest::KeepLegacy { keep: f.flag()? },
        code::PUT_BEGIN => SecureRequest::PutBegin {
            name: f.string(MAX_NAME)?,
            size: f.u64()?,
        },
        code::PUT_END => SecureRequest::PutEnd { sha256: f.sha()? },
        code::LIST => SecureRequest::List,
        code::VERSIONS => SecureRequest::Versions {
            name: f.string(MAX_NAME)?,
        },
        code::GET => {
            let name = f.string(MAX_NAME)?;
            let version = f.u64()?;
            SecureRequest::Get {
                name,
                version: (version != 0).then_some(version),
                offset: f.u64()?,
                unverified_ok: f.flag()?,
            }
        }
        code::REMOVE => SecureRequest::Remove {
            name: f.string(MAX_NAME)?,
        },
        code::RESTORE => SecureRequest::Restore {
            name: f.string(MAX_NAME)?,
            version: f.u64()?,
        },
        other => return Err(PeerError::UnknownRequestCode(other)),
    };
    f.end()?;
    Ok(Some((ClientId(id), req)))
}

/// Takes one whole response from the front of `buf`, or `None` while it is
/// incomplete.
pub fn decode_response(buf: &mut BytesMut) -> Result<Option<SecureResponse>, PeerError> {
    if buf.len() < RESPONSE_HEADER_LEN {
        return Ok(None);
    }
    let code = u16::from_le_bytes([buf[1], buf[2]]);
    if buf[0] != SECURE_VERSION {
        return Err(PeerError::UnexpectedResponse {
            code,
            why: "not a secure extension response (version byte)",
        });
    }
    let size = u32::from_le_bytes([buf[3], buf[4], buf[5], buf[6]]) as usize;
    let limit = if code == code::GET_DATA {
        MAX_DATA
    } else {
        MAX_CONTROL
    };
    if size > limit {
        return Err(PeerError::PayloadTooLarge { code, size, limit });
    }
    if buf.len() < RESPONSE_HEADER_LEN + size {
        return Ok(None);
    }
    buf.advance(RESPONSE_HEADER_LEN);
    let payload = buf.split_to(size).freeze();
    if code == code::GET_DATA {
        return Ok(Some(SecureResponse::GetData { data: payload }));
    }
    let mut f = Fields {
        buf: &payload,
        code,
    };
    let bad_response = |why| PeerError::UnexpectedResponse { code, why };
    let resp = match code {
        code::DONE => SecureResponse::Done,
        code::SIGNED_IN => SecureResponse::SignedIn {
            legacy_open: f.flag()?,
        },
        code::REGISTERED => {
            let mut id = [0u8; CLIENT_ID_LEN];
            id.copy_from_slice(f.take(CLIENT_ID_LEN)?);
            SecureResponse::Registered {
                client_id: ClientId(id),
            }
        }
        code::PUT_OFFSET => SecureResponse::PutOffset { offset: f.u64()? },
        code::STORED => SecureResponse::Stored {
            size: f.u64()?,
            cksum: f.u32()?,
            sha256: f.sha()?,
        },
        code::FILE_ENTRY => SecureResponse::FileEntry(FileEntry {
            name: f.string(MAX_NAME)?,
            content: f.described()?,
            versions: f.u32()?,
        }),
        code::VERSION_ENTRY => SecureResponse::VersionEntry(VersionEntry {
            id: f.u64()?,
            content: f.described()?,
            superseded: f.string(64)?,
        }),
        code::LIST_END => SecureResponse::ListEnd { count: f.u32()? },
        code::GET_BEGIN => {
            let version = f.u64()?;
            SecureResponse::GetBegin {
                version: (version != 0).then_some(version),
                offset: f.u64()?,
                content: f.described()?,
            }
        }
        code::GET_END => SecureResponse::GetEnd,
        code::REFUSED => SecureResponse::Refused {
            reason: Refusal::from_code(f.u16()?),
            message: f.string(4096)?,
        },
        other => return Err(PeerError::UnknownResponseCode(other)),
    };
    f.end()
        .map_err(|_| bad_response("bytes after the last field"))?;
    Ok(Some(resp))
}
