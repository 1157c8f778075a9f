//! Encoding: requests and responses to bytes.

use bytes::{BufMut, BytesMut};

use super::{code, Described, SecureRequest, SecureResponse, SECURE_VERSION};
use crate::wire::ClientId;
// ---- encoding ----

fn put_str(out: &mut BytesMut, s: &str) {
    put_bytes(out, s.as_bytes());
}

fn put_bytes(out: &mut BytesMut, b: &[u8]) {
    let n = b.len().min(u16::MAX as usize);
    out.put_u16_le(n as u16);
    out.put_slice(&b[..n]);
}

fn put_opt_sha(out: &mut BytesMut, sha: &Option<[u8; 32]>) {
    match sha {
        Some(s) => {
            out.put_u8(1);
            out.put_slice(s);
        }
        None => {
            out.put_u8(0);
            out.put_slice(&[0; 32]);
        }
    }
}

fn put_described(out: &mut BytesMut, d: &Described) {
    out.put_u64_le(d.size);
    out.put_u8(d.verified as u8);
    put_opt_sha(out, &d.sha256);
    out.put_u8(d.cksum.is_some() as u8);
    out.put_u32_le(d.cksum.unwrap_or(0));
    put_str(out, &d.updated);
}

fn frame(
    out: &mut BytesMut,
    header: impl FnOnce(&mut BytesMut, u32),
    body: impl FnOnce(&mut BytesMut),
) {
    let mut payload = BytesMut::new();
    body(&mut payload);
    header(out, payload.len() as u32);
    out.put_slice(&payload);
}

/// Appends `request` with `client_id` in its header.
pub fn encode_request(out: &mut BytesMut, client_id: ClientId, request: &SecureRequest) {
    let header = |out: &mut BytesMut, size: u32| {
        out.put_slice(&client_id.0);
        out.put_u8(SECURE_VERSION);
        out.put_u16_le(request.code());
        out.put_u32_le(size);
    };
    if let SecureRequest::PutData { data } = request {
        // Content is copied once, straight after its header.
        header(out, data.len() as u32);
        out.put_slice(data);
        return;
    }
    frame(out, header, |p| match request {
        SecureRequest::SignIn { kind, signature } => {
            p.put_u8(kind.code());
            put_bytes(p, signature);
        }
        SecureRequest::Register {
            name,
            kind,
            key,
            signature,
        } => {
            put_str(p, name);
            p.put_u8(kind.code());
            put_bytes(p, key);
            put_bytes(p, signature);
        }
        SecureRequest::SetKey {
            kind,
            key,
            signature,
        } => {
            p.put_u8(kind.code());
            put_bytes(p, key);
            put_bytes(p, signature);
        }
        SecureRequest::KeepLegacy { keep } => p.put_u8(*keep as u8),
        SecureRequest::PutBegin { name, size } => {
            put_str(p, name);
            p.put_u64_le(*size);
        }
        SecureRequest::PutData { .. } | SecureRequest::List => {}
        SecureRequest::PutEnd { sha256 } => p.put_slice(sha256),
        SecureRequest::Versions { name } | SecureRequest::Remove { name } => put_str(p, name),
        SecureRequest::Get {
            name,
            version,
            offset,
            unverified_ok,
        } => {
            put_str(p, name);
            p.put_u64_le(version.unwrap_or(0));
            p.put_u64_le(*offset);
            p.put_u8(*unverified_ok as u8);
        }
        SecureRequest::Restore { name, version } => {
            put_str(p, name);
            p.put_u64_le(*version);
        }
    });
}

/// The code of a response.
pub(super) fn response_code(r: &SecureResponse) -> u16 {
    match r {
        SecureResponse::Done => code::DONE,
        SecureResponse::SignedIn { .. } => code::SIGNED_IN,
        SecureResponse::Registered { .. } => code::REGISTERED,
        SecureResponse::PutOffset { .. } => code::PUT_OFFSET,
        SecureResponse::Stored { .. } => code::STORED,
        SecureResponse::FileEntry(_) => code::FILE_ENTRY,
        SecureResponse::VersionEntry(_) => code::VERSION_ENTRY,
        SecureResponse::ListEnd { .. } => code::LIST_END,
        SecureResponse::GetBegin { .. } => code::GET_BEGIN,
        SecureResponse::GetData { .. } => code::GET_DATA,
        SecureResponse::GetEnd => code::GET_END,
        SecureResponse::Refused { .. } => code::REFUSED,
    }
}

/// Appends `response`.
pub fn encode_response(out: &mut BytesMut, response: &SecureResponse) {
    let header = |out: &mut BytesMut, size: u32| {
        out.put_u8(SECURE_VERSION);
        out.put_u16_le(response_code(response));
        out.put_u32_le(size);
    };
    if let SecureResponse::GetData { data } = response {
        header(out, data.len() as u32);
        out.put_slice(data);
        return;
    }
    frame(out, header, |p| match response {
        SecureResponse::Done | SecureResponse::GetEnd | SecureResponse::GetData { .. } => {}
        SecureResponse::SignedIn { legacy_open } => p.put_u8(*legacy_open as u8),
        SecureResponse::Registered { client_id } => p.put_slice(&client_id.0),
        SecureResponse::PutOffset { offset } => p.put_u64_le(*offset),
        SecureResponse::Stored {
            size,
            cksum,
            sha256,
        } => {
            p.put_u64_le(*size);
            p.put_u32_le(*cksum);
            p.put_slice(sha256);
        }
        SecureResponse::FileEntry(e) => {
            put_str(p, &e.name);
            put_described(p, &e.content);
            p.put_u32_le(e.versions);
        }
        SecureResponse::VersionEntry(v) => {
            p.put_u64_le(v.id);
            put_described(p, &v.content);
            put_str(p, &v.superseded);
        }
        SecureResponse::ListEnd { count } => p.put_u32_le(*count),
        SecureResponse::GetBegin {
            version,
            offset,
            content,
        } => {
            p.put_u64_le(version.unwrap_or(0));
            p.put_u64_le(*offset);
            put_described(p, content);
        }
        SecureResponse::Refused { reason, message } => {
            p.put_u16_le(reason.code());
            put_str(p, message);
        }
    });
}
