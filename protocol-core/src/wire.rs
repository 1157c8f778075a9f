//! The wire codec: request and response frames, encoded and decoded.
//!
//! Every integer is unsigned; the byte order is little-endian unless a peer of
//! [variant 1](crate::ByteOrder) uses big-endian headers. Strings are fixed-size
//! fields terminated by a NUL inside the field.
//!
//! Decoding is incremental: [`decode_request`] and [`decode_response`] look at the
//! front of a [`BytesMut`], check the declared payload size against the limit for
//! the frame's code *before* waiting for (and so buffering) the payload, and take a
//! whole frame off the front only when it has fully arrived. Payload fields are
//! zero-copy [`Bytes`] slices of the input.

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::PeerError;
use crate::limits::Limits;

pub use crate::frame::{
    CLIENT_ID_LEN, FILE_PACKET_FIXED_LEN, MAX_ENCRYPTED_KEY_LEN, NAME_FIELD_LEN,
    PUBLIC_KEY_FIELD_LEN, REQUEST_HEADER_LEN, RESPONSE_HEADER_LEN, VERSION,
};

/// Byte order of the integers in a header (and, for requests, of the whole frame).
///
/// ```
/// use protocol_core::ByteOrder;
/// assert_eq!(ByteOrder::default(), ByteOrder::Little);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum ByteOrder {
    /// The specification: little-endian.
    #[default]
    Little,
    /// Deployed variant 1 in `docs/PROTOCOL.md`: big-endian headers.
    Big,
}

impl ByteOrder {
    fn u16(self, b: [u8; 2]) -> u16 {
        match self {
            ByteOrder::Little => u16::from_le_bytes(b),
            ByteOrder::Big => u16::from_be_bytes(b),
        }
    }
    fn u32(self, b: [u8; 4]) -> u32 {
        match self {
            ByteOrder::Little => u32::from_le_bytes(b),
            ByteOrder::Big => u32::from_be_bytes(b),
        }
    }
    fn put_u16(self, out: &mut BytesMut, v: u16) {
        match self {
            ByteOrder::Little => out.put_u16_le(v),
            ByteOrder::Big => out.put_u16(v),
        }
    }
    fn put_u32(self, out: &mut BytesMut, v: u32) {
        match self {
            ByteOrder::Little => out.put_u32_le(v),
            ByteOrder::Big => out.put_u32(v),
        }
    }
}

/// The 16-byte client id the server issues (a version 4 UUID).
///
/// ```
/// use protocol_core::ClientId;
/// let id = ClientId([0xab; 16]);
/// assert_eq!(id.to_hex(), "ab".repeat(16));
/// assert_eq!(ClientId::from_hex(&id.to_hex()), Some(id));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct ClientId(pub [u8; CLIENT_ID_LEN]);

impl ClientId {
    /// The all-zero id that a 825 request carries.
    pub const ZERO: ClientId = ClientId([0; CLIENT_ID_LEN]);

    /// 32 lowercase hex digits, as `me.info` stores it.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Parses 32 hex digits (either case); `None` for anything else.
    pub fn from_hex(s: &str) -> Option<ClientId> {
        let s = s.trim();
        if s.len() != 32 || !s.is_ascii() {
            return None;
        }
        let mut id = [0u8; 16];
        for (i, byte) in id.iter_mut().enumerate() {
            *byte = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(ClientId(id))
    }
}

impl std::fmt::Debug for ClientId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ClientId({})", self.to_hex())
    }
}

impl std::fmt::Display for ClientId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// The contents of a fixed-size string field: the bytes before the first NUL.
///
/// The codec only guarantees the framing (a terminator inside the field, at most 254
/// bytes); what is an acceptable name is decided by [`crate::names`].
///
/// ```
/// use protocol_core::FieldString;
/// let name = FieldString::new("Michael Jackson").unwrap();
/// assert_eq!(name.as_bytes(), b"Michael Jackson");
/// assert!(FieldString::new("x".repeat(255)).is_none()); // no room for the NUL
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct FieldString(Bytes);

impl FieldString {
    /// A field value from text; `None` if it holds a NUL or is longer than 254 bytes.
    pub fn new(s: impl AsRef<[u8]>) -> Option<FieldString> {
        let b = s.as_ref();
        if b.len() >= NAME_FIELD_LEN || b.contains(&0) {
            return None;
        }
        Some(FieldString(Bytes::copy_from_slice(b)))
    }

    /// The raw bytes before the terminator.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The value as text, with anything that is not printable ASCII escaped (for logs).
    pub fn display(&self) -> String {
        self.0.escape_ascii().to_string()
    }

    /// The value as `&str` if it is valid UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }

    fn decode(field: Bytes) -> Result<FieldString, PeerError> {
        match field.iter().position(|&b| b == 0) {
            Some(end) => Ok(FieldString(field.slice(..end))),
            None => Err(PeerError::UnterminatedString),
        }
    }

    fn encode(&self, out: &mut BytesMut) {
        out.put_slice(&self.0);
        out.put_bytes(0, NAME_FIELD_LEN - self.0.len());
    }
}

impl std::fmt::Debug for FieldString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.display())
    }
}

/// Request codes (client to server).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum RequestCode {
    /// 825: register a name.
    Register = 825,
    /// 826: send the public key.
    SendPublicKey = 826,
    /// 827: reconnect.
    Reconnect = 827,
    /// 828: one packet of a file.
    SendFile = 828,
    /// 900: checksum matched.
    CrcOk = 900,
    /// 901: checksum did not match; the file follows again.
    CrcRetry = 901,
    /// 902: checksum did not match for the 4th time; giving up.
    CrcAbort = 902,
}

impl RequestCode {
    /// The code for a number, if it is one.
    pub fn from_u16(v: u16) -> Option<RequestCode> {
        Some(match v {
            825 => RequestCode::Register,
            826 => RequestCode::SendPublicKey,
            827 => RequestCode::Reconnect,
            828 => RequestCode::SendFile,
            900 => RequestCode::CrcOk,
            901 => RequestCode::CrcRetry,
            902 => RequestCode::CrcAbort,
            _ => return None,
        })
    }
}

/// Response codes (server to client).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum ResponseCode {
    /// 1600: registered; here is the client id.
    Registered = 1600,
    /// 1601: registration failed.
    RegistrationFailed = 1601,
    /// 1602: public key received; here is the AES key.
    AesKey = 1602,
    /// 1603: file received; here is its checksum.
    FileReceived = 1603,
    /// 1604: acknowledged.
    Ack = 1604,
    /// 1605: reconnected; here is a fresh AES key.
    Reconnected = 1605,
    /// 1606: reconnect refused; register anew.
    ReconnectRefused = 1606,
    /// 1607: general error.
    GeneralError = 1607,
}

impl ResponseCode {
    /// The code for a number, if it is one.
    pub fn from_u16(v: u16) -> Option<ResponseCode> {
        Some(match v {
            1600 => ResponseCode::Registered,
            1601 => ResponseCode::RegistrationFailed,
            1602 => ResponseCode::AesKey,
            1603 => ResponseCode::FileReceived,
            1604 => ResponseCode::Ack,
            1605 => ResponseCode::Reconnected,
            1606 => ResponseCode::ReconnectRefused,
            1607 => ResponseCode::GeneralError,
            _ => return None,
        })
    }
}

/// One 828 packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilePacket {
    /// Size of the encrypted file (or, variant 3, of this packet's content).
    pub content_size: u32,
    /// Size of the file before encryption.
    pub original_size: u32,
    /// 1-based number of this packet.
    pub packet_number: u16,
    /// Number of packets in the upload.
    pub total_packets: u16,
    /// The file name as the client sent it.
    pub file_name: FieldString,
    /// Encrypted content.
    pub content: Bytes,
}

/// The order of the packet number and total packets fields of request 828.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum PacketFieldOrder {
    /// The specification: packet number, then total packets.
    #[default]
    NumberFirst,
    /// Variant 2: one little-endian 32-bit integer, so the total comes first.
    TotalFirst,
}

/// A decoded request payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// 825.
    Register {
        /// The name to register.
        name: FieldString,
    },
    /// 826.
    SendPublicKey {
        /// The client's name.
        name: FieldString,
        /// The 160-byte public key field.
        public_key: Bytes,
    },
    /// 827.
    Reconnect {
        /// The client's name.
        name: FieldString,
    },
    /// 828.
    SendFile(FilePacket),
    /// 900.
    CrcOk {
        /// The file name (informational).
        file_name: FieldString,
    },
    /// 901.
    CrcRetry {
        /// The file name (informational).
        file_name: FieldString,
    },
    /// 902.
    CrcAbort {
        /// The file name (informational).
        file_name: FieldString,
    },
}

impl Request {
    /// The code this request travels under.
    pub fn code(&self) -> RequestCode {
        match self {
            Request::Register { .. } => RequestCode::Register,
            Request::SendPublicKey { .. } => RequestCode::SendPublicKey,
            Request::Reconnect { .. } => RequestCode::Reconnect,
            Request::SendFile(_) => RequestCode::SendFile,
            Request::CrcOk { .. } => RequestCode::CrcOk,
            Request::CrcRetry { .. } => RequestCode::CrcRetry,
            Request::CrcAbort { .. } => RequestCode::CrcAbort,
        }
    }
}

/// A whole request frame: header fields and payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestFrame {
    /// Client id from the header.
    pub client_id: ClientId,
    /// Version byte from the header.
    pub version: u8,
    /// Byte order the header was written in.
    pub byte_order: ByteOrder,
    /// The request.
    pub request: Request,
}

/// A decoded response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// 1600.
    Registered {
        /// The new id.
        client_id: ClientId,
    },
    /// 1601.
    RegistrationFailed,
    /// 1602.
    AesKey {
        /// Echoed id.
        client_id: ClientId,
        /// The AES key encrypted with RSA-OAEP to the client's public key.
        encrypted_key: Bytes,
    },
    /// 1603.
    FileReceived {
        /// Echoed id.
        client_id: ClientId,
        /// Encrypted size the server received.
        content_size: u32,
        /// The file name.
        file_name: FieldString,
        /// Checksum of the decrypted file.
        checksum: u32,
    },
    /// 1604 (`client_id` is `None` for variant 6's empty payload).
    Ack {
        /// Echoed id, if the payload carried one.
        client_id: Option<ClientId>,
    },
    /// 1605.
    Reconnected {
        /// Echoed id.
        client_id: ClientId,
        /// A fresh AES key encrypted to the stored public key.
        encrypted_key: Bytes,
    },
    /// 1606.
    ReconnectRefused {
        /// Echoed id, if the payload carried one.
        client_id: Option<ClientId>,
    },
    /// 1607.
    GeneralError,
}

impl Response {
    /// The code this response travels under.
    pub fn code(&self) -> ResponseCode {
        match self {
            Response::Registered { .. } => ResponseCode::Registered,
            Response::RegistrationFailed => ResponseCode::RegistrationFailed,
            Response::AesKey { .. } => ResponseCode::AesKey,
            Response::FileReceived { .. } => ResponseCode::FileReceived,
            Response::Ack { .. } => ResponseCode::Ack,
            Response::Reconnected { .. } => ResponseCode::Reconnected,
            Response::ReconnectRefused { .. } => ResponseCode::ReconnectRefused,
            Response::GeneralError => ResponseCode::GeneralError,
        }
    }
}

/// Reads a request header at the front of `buf` without consuming it.
///
/// Returns the header's byte order (detected: the code is read little-endian first,
/// then big-endian; no valid code reads as a valid code in the other order), the code
/// and the declared payload size. `Ok(None)` means the header has not fully arrived.
pub fn peek_request_header(buf: &[u8]) -> Result<Option<(ByteOrder, RequestCode, u32)>, PeerError> {
    if buf.len() < REQUEST_HEADER_LEN {
        return Ok(None);
    }
    let code_bytes = [buf[17], buf[18]];
    let size_bytes = [buf[19], buf[20], buf[21], buf[22]];
    for order in [ByteOrder::Little, ByteOrder::Big] {
        if let Some(code) = RequestCode::from_u16(order.u16(code_bytes)) {
            return Ok(Some((order, code, order.u32(size_bytes))));
        }
    }
    Err(PeerError::UnknownRequestCode(u16::from_le_bytes(
        code_bytes,
    )))
}

/// Takes one whole request frame off the front of `buf`.
///
/// `Ok(None)`: more bytes are needed; `buf` is untouched. The declared payload size
/// is checked against `limits` as soon as the header is complete, so a peer cannot
/// make the caller buffer more than [`Limits::max_payload`] for any code.
///
/// ```
/// use bytes::BytesMut;
/// use protocol_core::{wire, Limits, Request};
/// let mut out = BytesMut::new();
/// let name = protocol_core::FieldString::new("alice").unwrap();
/// wire::encode_request(&mut out, protocol_core::ClientId::ZERO, &Request::Register { name: name.clone() }, Default::default());
/// let frame = wire::decode_request(&mut out, &Limits::default()).unwrap().unwrap();
/// assert_eq!(frame.request, Request::Register { name });
/// assert!(out.is_empty());
/// ```
pub fn decode_request(
    buf: &mut BytesMut,
    limits: &Limits,
) -> Result<Option<RequestFrame>, PeerError> {
    let Some((order, code, size)) = peek_request_header(buf)? else {
        return Ok(None);
    };
    let size = size as usize;
    check_request_size(code, size, limits)?;
    if buf.len() < REQUEST_HEADER_LEN + size {
        return Ok(None);
    }
    let frame = buf.split_to(REQUEST_HEADER_LEN + size).freeze();
    let mut client_id = [0u8; CLIENT_ID_LEN];
    client_id.copy_from_slice(&frame[..CLIENT_ID_LEN]);
    let version = frame[16];
    let payload = frame.slice(REQUEST_HEADER_LEN..);
    let request = decode_request_payload(code, payload, order)?;
    Ok(Some(RequestFrame {
        client_id: ClientId(client_id),
        version,
        byte_order: order,
        request,
    }))
}

/// The payload size a request code must (or, for 828, may) have.
pub(crate) fn check_request_size(
    code: RequestCode,
    size: usize,
    limits: &Limits,
) -> Result<(), PeerError> {
    let ok = match code {
        RequestCode::Register
        | RequestCode::Reconnect
        | RequestCode::CrcOk
        | RequestCode::CrcRetry
        | RequestCode::CrcAbort => size == NAME_FIELD_LEN,
        RequestCode::SendPublicKey => size == NAME_FIELD_LEN + PUBLIC_KEY_FIELD_LEN,
        RequestCode::SendFile => {
            if size < FILE_PACKET_FIXED_LEN {
                false
            } else if size > limits.max_payload {
                return Err(PeerError::PayloadTooLarge {
                    code: code as u16,
                    size,
                    limit: limits.max_payload,
                });
            } else {
                true
            }
        }
    };
    if ok {
        Ok(())
    } else {
        Err(PeerError::BadPayloadSize {
            code: code as u16,
            size,
        })
    }
}

fn decode_request_payload(
    code: RequestCode,
    p: Bytes,
    order: ByteOrder,
) -> Result<Request, PeerError> {
    let name_at = |at: usize| FieldString::decode(p.slice(at..at + NAME_FIELD_LEN));
    Ok(match code {
        RequestCode::Register => Request::Register { name: name_at(0)? },
        RequestCode::Reconnect => Request::Reconnect { name: name_at(0)? },
        RequestCode::CrcOk => Request::CrcOk {
            file_name: name_at(0)?,
        },
        RequestCode::CrcRetry => Request::CrcRetry {
            file_name: name_at(0)?,
        },
        RequestCode::CrcAbort => Request::CrcAbort {
            file_name: name_at(0)?,
        },
        RequestCode::SendPublicKey => Request::SendPublicKey {
            name: name_at(0)?,
            public_key: p.slice(NAME_FIELD_LEN..NAME_FIELD_LEN + PUBLIC_KEY_FIELD_LEN),
        },
        RequestCode::SendFile => {
            let u32_at = |at: usize| order.u32([p[at], p[at + 1], p[at + 2], p[at + 3]]);
            let u16_at = |at: usize| order.u16([p[at], p[at + 1]]);
            Request::SendFile(FilePacket {
                content_size: u32_at(0),
                original_size: u32_at(4),
                packet_number: u16_at(8),
                total_packets: u16_at(10),
                file_name: FieldString::decode(p.slice(12..12 + NAME_FIELD_LEN))?,
                content: p.slice(FILE_PACKET_FIXED_LEN..),
            })
        }
    })
}

/// How a client writes its requests: header byte order and 828 field order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct RequestEncoding {
    /// Byte order of every integer in the frame.
    pub byte_order: ByteOrder,
    /// Order of the packet number and total fields in 828.
    pub packet_fields: PacketFieldOrder,
}

/// Appends one request frame to `out`.
///
/// A payload is written exactly as the specification lays it out; a 826 public key
/// shorter than 160 bytes is padded with zeros (longer is cut, which the caller
/// prevents by checking with [`crate::crypto::PublicKey::to_field`]).
pub fn encode_request(
    out: &mut BytesMut,
    client_id: ClientId,
    request: &Request,
    enc: RequestEncoding,
) {
    let order = enc.byte_order;
    let payload_len = match request {
        Request::SendPublicKey { .. } => NAME_FIELD_LEN + PUBLIC_KEY_FIELD_LEN,
        Request::SendFile(p) => FILE_PACKET_FIXED_LEN + p.content.len(),
        _ => NAME_FIELD_LEN,
    };
    out.reserve(REQUEST_HEADER_LEN + payload_len);
    out.put_slice(&client_id.0);
    out.put_u8(VERSION);
    order.put_u16(out, request.code() as u16);
    order.put_u32(out, payload_len as u32);
    match request {
        Request::Register { name } | Request::Reconnect { name } => name.encode(out),
        Request::CrcOk { file_name }
        | Request::CrcRetry { file_name }
        | Request::CrcAbort { file_name } => file_name.encode(out),
        Request::SendPublicKey { name, public_key } => {
            name.encode(out);
            let n = public_key.len().min(PUBLIC_KEY_FIELD_LEN);
            out.put_slice(&public_key[..n]);
            out.put_bytes(0, PUBLIC_KEY_FIELD_LEN - n);
        }
        Request::SendFile(p) => {
            encode_packet_header(out, p, enc);
            out.put_slice(&p.content);
        }
    }
}

/// Appends a 828 frame's header and fixed fields, leaving the content to the caller
/// (who encrypts straight into `out`, avoiding a copy of the packet).
#[cfg(feature = "client")]
pub(crate) fn encode_packet_frame_head(
    out: &mut BytesMut,
    client_id: ClientId,
    p: &FilePacket,
    content_len: usize,
    enc: RequestEncoding,
) {
    out.reserve(REQUEST_HEADER_LEN + FILE_PACKET_FIXED_LEN + content_len);
    out.put_slice(&client_id.0);
    out.put_u8(VERSION);
    enc.byte_order.put_u16(out, RequestCode::SendFile as u16);
    enc.byte_order
        .put_u32(out, (FILE_PACKET_FIXED_LEN + content_len) as u32);
    encode_packet_header(out, p, enc);
}

fn encode_packet_header(out: &mut BytesMut, p: &FilePacket, enc: RequestEncoding) {
    let order = enc.byte_order;
    order.put_u32(out, p.content_size);
    order.put_u32(out, p.original_size);
    match enc.packet_fields {
        PacketFieldOrder::NumberFirst => {
            order.put_u16(out, p.packet_number);
            order.put_u16(out, p.total_packets);
        }
        PacketFieldOrder::TotalFirst => {
            order.put_u16(out, p.total_packets);
            order.put_u16(out, p.packet_number);
        }
    }
    p.file_name.encode(out);
}

/// How a server writes its responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct ResponseEncoding {
    /// Byte order of the header and integer fields.
    pub byte_order: ByteOrder,
    /// Variant 6: send 1604 with an empty payload.
    pub empty_ack: bool,
}

/// Appends one response frame to `out`.
///
/// ```
/// use bytes::BytesMut;
/// use protocol_core::{wire, ClientId, Response};
/// let mut out = BytesMut::new();
/// let r = Response::Registered { client_id: ClientId([7; 16]) };
/// wire::encode_response(&mut out, &r, Default::default());
/// assert_eq!(&out[..7], &[3, 0x40, 0x06, 16, 0, 0, 0]);
/// assert_eq!(wire::decode_response(&mut out).unwrap(), Some(r));
/// ```
pub fn encode_response(out: &mut BytesMut, response: &Response, enc: ResponseEncoding) {
    let order = enc.byte_order;
    let id_len = |id: &Option<ClientId>| if id.is_some() { CLIENT_ID_LEN } else { 0 };
    let payload_len = match response {
        Response::Registered { .. } => CLIENT_ID_LEN,
        Response::RegistrationFailed | Response::GeneralError => 0,
        Response::AesKey { encrypted_key, .. } | Response::Reconnected { encrypted_key, .. } => {
            CLIENT_ID_LEN + encrypted_key.len()
        }
        Response::FileReceived { .. } => CLIENT_ID_LEN + 4 + NAME_FIELD_LEN + 4,
        Response::Ack { client_id } => {
            if enc.empty_ack {
                0
            } else {
                id_len(client_id)
            }
        }
        Response::ReconnectRefused { client_id } => id_len(client_id),
    };
    out.reserve(RESPONSE_HEADER_LEN + payload_len);
    out.put_u8(VERSION);
    order.put_u16(out, response.code() as u16);
    order.put_u32(out, payload_len as u32);
    match response {
        Response::Registered { client_id } => out.put_slice(&client_id.0),
        Response::RegistrationFailed | Response::GeneralError => {}
        Response::AesKey {
            client_id,
            encrypted_key,
        }
        | Response::Reconnected {
            client_id,
            encrypted_key,
        } => {
            out.put_slice(&client_id.0);
            out.put_slice(encrypted_key);
        }
        Response::FileReceived {
            client_id,
            content_size,
            file_name,
            checksum,
        } => {
            out.put_slice(&client_id.0);
            order.put_u32(out, *content_size);
            file_name.encode(out);
            order.put_u32(out, *checksum);
        }
        Response::Ack { client_id } => {
            if let (Some(id), false) = (client_id, enc.empty_ack) {
                out.put_slice(&id.0);
            }
        }
        Response::ReconnectRefused { client_id } => {
            if let Some(id) = client_id {
                out.put_slice(&id.0);
            }
        }
    }
}

/// Takes one whole response frame off the front of `buf` (client side).
///
/// The byte order is detected per frame, as for requests. Payload sizes are checked
/// per code before the payload is buffered: no response is larger than
/// 16 + [`MAX_ENCRYPTED_KEY_LEN`] bytes.
pub fn decode_response(buf: &mut BytesMut) -> Result<Option<Response>, PeerError> {
    if buf.len() < RESPONSE_HEADER_LEN {
        return Ok(None);
    }
    let code_bytes = [buf[1], buf[2]];
    let size_bytes = [buf[3], buf[4], buf[5], buf[6]];
    let mut found = None;
    for order in [ByteOrder::Little, ByteOrder::Big] {
        if let Some(code) = ResponseCode::from_u16(order.u16(code_bytes)) {
            found = Some((order, code, order.u32(size_bytes) as usize));
            break;
        }
    }
    let Some((order, code, size)) = found else {
        return Err(PeerError::UnknownResponseCode(u16::from_le_bytes(
            code_bytes,
        )));
    };
    let ok = match code {
        ResponseCode::Registered => size == CLIENT_ID_LEN,
        ResponseCode::RegistrationFailed | ResponseCode::GeneralError => size <= CLIENT_ID_LEN,
        ResponseCode::AesKey | ResponseCode::Reconnected => {
            size > CLIENT_ID_LEN && size <= CLIENT_ID_LEN + MAX_ENCRYPTED_KEY_LEN
        }
        ResponseCode::FileReceived => size == CLIENT_ID_LEN + 4 + NAME_FIELD_LEN + 4,
        ResponseCode::Ack | ResponseCode::ReconnectRefused => size == 0 || size == CLIENT_ID_LEN,
    };
    if !ok {
        return Err(PeerError::BadPayloadSize {
            code: code as u16,
            size,
        });
    }
    if buf.len() < RESPONSE_HEADER_LEN + size {
        return Ok(None);
    }
    let frame = buf.split_to(RESPONSE_HEADER_LEN + size).freeze();
    let p = frame.slice(RESPONSE_HEADER_LEN..);
    let id = |p: &Bytes| {
        let mut id = [0u8; CLIENT_ID_LEN];
        id.copy_from_slice(&p[..CLIENT_ID_LEN]);
        ClientId(id)
    };
    let opt_id = |p: &Bytes| (p.len() == CLIENT_ID_LEN).then(|| id(p));
    Ok(Some(match code {
        ResponseCode::Registered => Response::Registered { client_id: id(&p) },
        ResponseCode::RegistrationFailed => Response::RegistrationFailed,
        ResponseCode::GeneralError => Response::GeneralError,
        ResponseCode::AesKey => Response::AesKey {
            client_id: id(&p),
            encrypted_key: p.slice(CLIENT_ID_LEN..),
        },
        ResponseCode::Reconnected => Response::Reconnected {
            client_id: id(&p),
            encrypted_key: p.slice(CLIENT_ID_LEN..),
        },
        ResponseCode::FileReceived => {
            let at = CLIENT_ID_LEN;
            let content_size = order.u32([p[at], p[at + 1], p[at + 2], p[at + 3]]);
            let name_at = at + 4;
            let file_name = FieldString::decode(p.slice(name_at..name_at + NAME_FIELD_LEN))?;
            let c = name_at + NAME_FIELD_LEN;
            let checksum = order.u32([p[c], p[c + 1], p[c + 2], p[c + 3]]);
            Response::FileReceived {
                client_id: id(&p),
                content_size,
                file_name,
                checksum,
            }
        }
        ResponseCode::Ack => Response::Ack {
            client_id: opt_id(&p),
        },
        ResponseCode::ReconnectRefused => Response::ReconnectRefused {
            client_id: opt_id(&p),
        },
    }))
}
