//! The scripted server the client cases play: it speaks the protocol with the
//! deviations a case asks for, and records every request the client sends.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use protocol_core::crypto::{AesKey, AesKeySize, CbcDecryptor, ChecksumAlgorithm, PublicKey};
use protocol_core::rand_core::{OsRng, RngCore};
use protocol_core::wire::{self, ResponseEncoding};
use protocol_core::{ByteOrder, ClientId, FieldString, Response};

use super::launch::Running;
use crate::evidence::Evidence;
use crate::session::checksum;

/// Misbehaviour instead of the first answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hostile {
    /// Close the connection as soon as it is accepted.
    CloseOnAccept,
    /// Read requests, answer nothing.
    Silent,
    /// Answer with response code 1700.
    UnknownCode,
    /// A 1600 header declaring 16 bytes, 5 of them, then close.
    Truncated,
    /// A 1600 header declaring 2^31 bytes.
    HugeSize,
    /// A 1600 with an 8-byte payload.
    ShortRegistered,
    /// 64 bytes of junk.
    Junk,
}

/// What the scripted server does differently from the specification.
#[derive(Debug, Clone, Default)]
pub struct Script {
    /// Answers to the first 825s (then 1600).
    pub register_answers: Vec<u16>,
    /// 1607 to this many 826s first.
    pub key_errors: u32,
    /// 1607 to this many last packets first.
    pub upload_errors: u32,
    /// 128-bit AES keys (variant 8).
    pub aes128: bool,
    /// Responses big-endian (variant 1).
    pub big_endian: bool,
    /// 1604 with an empty payload (variant 6).
    pub empty_ack: bool,
    /// The first this many whole-file 1603s carry a wrong checksum.
    pub wrong_checksums: u32,
    /// zlib CRC-32 in 1603 (variant 8).
    pub crc32: bool,
    /// The plaintext size in 1603 (variant 11).
    pub plain_size: bool,
    /// A 1603 (checksum 0) after every packet.
    pub ack_every: bool,
    /// Close after every answer (variant 7 servers).
    pub close_after_answer: bool,
    /// The 1602 carries 128 bytes that are no OAEP ciphertext.
    pub bad_key: bool,
    /// The client known from an earlier run: id, name, public key (827 gets 1605).
    pub known: Option<([u8; 16], String, PublicKey)>,
    /// Misbehave instead of the first answer.
    pub hostile: Option<Hostile>,
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Which connection (0-based).
    pub conn: usize,
    /// Byte order of the header.
    pub order: ByteOrder,
    /// Version byte.
    pub version: u8,
    /// Code.
    pub code: u16,
    /// Client id.
    pub id: [u8; 16],
    /// Payload.
    pub payload: Vec<u8>,
}

impl Seen {
    /// The string field at `at` (255 bytes): the bytes before the NUL, and whether
    /// the field has a NUL and zeros after it.
    pub fn field(&self, at: usize) -> Option<(Vec<u8>, bool)> {
        let f = self.payload.get(at..at + 255)?;
        let end = f.iter().position(|&b| b == 0)?;
        Some((f[..end].to_vec(), f[end..].iter().all(|&b| b == 0)))
    }
}

/// One 828 as received.
#[derive(Debug, Clone)]
pub struct Packet {
    /// Content size field.
    pub content_size: u32,
    /// Original size field.
    pub original_size: u32,
    /// The two 16-bit fields in wire order.
    pub fields: (u16, u16),
    /// The file name.
    pub file_name: Vec<u8>,
    /// The content.
    pub content: Vec<u8>,
}

/// One upload as received and decrypted.
#[derive(Debug, Clone, Default)]
pub struct UploadSeen {
    /// The packets in arrival order.
    pub packets: Vec<Packet>,
    /// The total came first (variant 2).
    pub total_first: bool,
    /// Content size per packet (variant 3).
    pub per_packet_size: bool,
    /// Each packet decrypted on its own (variant 4).
    pub per_packet_encryption: bool,
    /// Zero fill past the total (variant 12).
    pub padded: bool,
    /// The plaintext, when it decrypted.
    pub plaintext: Option<Vec<u8>>,
    /// Numbering problems seen.
    pub numbering: Vec<String>,
}

/// Everything the client sent in one case.
#[derive(Debug, Clone, Default)]
pub struct Transcript {
    /// Requests in order.
    pub requests: Vec<Seen>,
    /// Connections accepted.
    pub connections: usize,
    /// Finished uploads (their last packet arrived).
    pub uploads: Vec<UploadSeen>,
    /// Why an 826 key was refused, if one was.
    pub key_problem: Option<String>,
    /// Observations.
    pub notes: Vec<String>,
}

impl Transcript {
    /// The codes of the requests, in order.
    pub fn codes(&self) -> Vec<u16> {
        self.requests.iter().map(|r| r.code).collect()
    }

    /// How many requests of `code`.
    pub fn count(&self, code: u16) -> usize {
        self.requests.iter().filter(|r| r.code == code).count()
    }
}

struct State<'s> {
    script: &'s Script,
    t: Transcript,
    id: [u8; 16],
    key: Option<AesKey>,
    reg_seen: usize,
    key_errors: u32,
    upload_errors: u32,
    wrong: u32,
    up: Option<UploadSeen>,
    hostile_done: bool,
}

/// Serves one case: accepts connections on `listener` until the client exits or
/// `deadline`; returns what it sent and its exit code (`None`: still running).
pub fn serve(
    listener: &TcpListener,
    script: &Script,
    run: &mut dyn Running,
    deadline: Instant,
    ev: &mut Evidence,
) -> (Transcript, Option<Option<i32>>) {
    let mut id = [0u8; 16];
    OsRng.fill_bytes(&mut id);
    id[6] = (id[6] & 0x0f) | 0x40;
    id[8] = (id[8] & 0x3f) | 0x80;
    let mut st = State {
        script,
        t: Transcript::default(),
        id,
        key: None,
        reg_seen: 0,
        key_errors: script.key_errors,
        upload_errors: script.upload_errors,
        wrong: script.wrong_checksums,
        up: None,
        hostile_done: false,
    };
    let _ = listener.set_nonblocking(true);
    let mut exited_at: Option<(Instant, Option<i32>)> = None;
    loop {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        match listener.accept() {
            Ok((stream, _)) => {
                let conn = st.t.connections;
                st.t.connections += 1;
                serve_conn(&mut st, stream, conn, deadline, ev);
                continue;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(_) => break,
        }
        match exited_at {
            None => {
                if let Some(code) = run.try_exit() {
                    exited_at = Some((now, code));
                }
            }
            // A connection made just before the exit is still taken.
            Some((at, _)) if now.duration_since(at) > Duration::from_millis(150) => break,
            Some(_) => {}
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let exit = exited_at.map(|(_, c)| c).or_else(|| run.try_exit());
    (st.t, exit)
}

/// Whether a buffer was filled, or the connection ended (closed, reset, the
/// case's deadline) first.
enum Filled {
    Got,
    End,
}

fn read_exact(s: &mut TcpStream, buf: &mut [u8], deadline: Instant) -> Filled {
    let mut n = 0;
    while n < buf.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || s.set_read_timeout(Some(left)).is_err() {
            return Filled::End;
        }
        match s.read(&mut buf[n..]) {
            Ok(0) => return Filled::End,
            Ok(k) => n += k,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return Filled::End,
        }
    }
    Filled::Got
}

fn serve_conn(
    st: &mut State<'_>,
    mut s: TcpStream,
    conn: usize,
    deadline: Instant,
    ev: &mut Evidence,
) {
    let _ = s.set_nonblocking(false);
    let _ = s.set_nodelay(true);
    let _ = s.set_write_timeout(Some(Duration::from_secs(5)));
    // Hostile scripts misbehave on every connection: a client that tries again
    // (another dialect, a new connection) meets the same server.
    st.hostile_done = false;
    if st.script.hostile == Some(Hostile::CloseOnAccept) {
        ev.note("closed the connection on accept");
        return;
    }
    let mut on_conn = 0usize;
    loop {
        let mut head = [0u8; 23];
        if let Filled::End = read_exact(&mut s, &mut head, deadline) {
            return;
        }
        let Ok(Some((order, code, size))) = wire::peek_request_header(&head) else {
            ev.received(&head);
            st.t.notes
                .push("a request header with no known code".into());
            return;
        };
        let size = size as usize;
        if size > 32 * 1024 * 1024 {
            ev.received(&head);
            st.t.notes.push(format!("a request declaring {size} bytes"));
            return;
        }
        let mut payload = vec![0u8; size];
        if let Filled::End = read_exact(&mut s, &mut payload, deadline) {
            ev.received(&head);
            st.t.notes.push("a request cut short".into());
            return;
        }
        let mut all = head.to_vec();
        all.extend_from_slice(&payload);
        ev.received(&all);
        on_conn += 1;
        let mut id = [0u8; 16];
        id.copy_from_slice(&head[..16]);
        let seen = Seen {
            conn,
            order,
            version: head[16],
            code: code as u16,
            id,
            payload,
        };
        st.t.requests.push(seen.clone());
        let out = if st.script.hostile.is_some() && !st.hostile_done {
            st.hostile_done = true;
            hostile_bytes(st.script.hostile)
        } else {
            answer(st, &seen, on_conn)
        };
        if st.script.hostile == Some(Hostile::Silent) {
            continue;
        }
        if !out.is_empty() {
            ev.sent(&out);
            if s.write_all(&out).is_err() {
                return;
            }
            if st.script.close_after_answer
                || matches!(st.script.hostile, Some(Hostile::Truncated | Hostile::Junk))
                    && st.t.requests.len() == 1
            {
                return;
            }
        }
    }
}

fn hostile_bytes(h: Option<Hostile>) -> Vec<u8> {
    match h {
        Some(Hostile::UnknownCode) => vec![3, 0xa4, 0x06, 0, 0, 0, 0],
        Some(Hostile::Truncated) => vec![3, 0x40, 0x06, 16, 0, 0, 0, 1, 2, 3, 4, 5],
        Some(Hostile::HugeSize) => vec![3, 0x40, 0x06, 0, 0, 0, 0x80],
        Some(Hostile::ShortRegistered) => vec![3, 0x40, 0x06, 8, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8],
        Some(Hostile::Junk) => crate::session::data(64, 99),
        _ => Vec::new(),
    }
}

fn encode(st: &State<'_>, r: &Response) -> Vec<u8> {
    let mut out = BytesMut::new();
    wire::encode_response(
        &mut out,
        r,
        ResponseEncoding {
            byte_order: if st.script.big_endian {
                ByteOrder::Big
            } else {
                ByteOrder::Little
            },
            empty_ack: st.script.empty_ack,
        },
    );
    out.to_vec()
}

fn fresh_key(st: &mut State<'_>, public: &PublicKey) -> Option<Vec<u8>> {
    let size = if st.script.aes128 {
        AesKeySize::Aes128
    } else {
        AesKeySize::Aes256
    };
    let key = AesKey::generate(size, &mut OsRng);
    let enc = public.encrypt_aes_key(&mut OsRng, &key).ok()?;
    st.key = Some(key);
    Some(enc)
}

fn answer(st: &mut State<'_>, r: &Seen, on_conn: usize) -> Vec<u8> {
    let cid = ClientId(st.id);
    match r.code {
        825 => {
            let i = st.reg_seen;
            st.reg_seen += 1;
            match st.script.register_answers.get(i) {
                Some(1601) => encode(st, &Response::RegistrationFailed),
                Some(_) => encode(st, &Response::GeneralError),
                None => encode(st, &Response::Registered { client_id: cid }),
            }
        }
        826 => {
            let field = r.payload.get(255..415).unwrap_or(&[]);
            let public = match PublicKey::from_field(field) {
                Ok(p) => p,
                Err(e) => {
                    st.t.key_problem = Some(e.to_string());
                    return encode(st, &Response::GeneralError);
                }
            };
            if st.key_errors > 0 {
                st.key_errors -= 1;
                return encode(st, &Response::GeneralError);
            }
            let enc = if st.script.bad_key {
                crate::session::data(128, 5)
            } else {
                match fresh_key(st, &public) {
                    Some(e) => e,
                    None => return encode(st, &Response::GeneralError),
                }
            };
            encode(
                st,
                &Response::AesKey {
                    client_id: ClientId(r.id),
                    encrypted_key: Bytes::from(enc),
                },
            )
        }
        827 => {
            let name = r.field(0).map(|f| f.0).unwrap_or_default();
            let known = st.script.known.clone();
            match known {
                Some((id, n, public)) if id == r.id && n.as_bytes() == &name[..] => {
                    st.id = id;
                    match fresh_key(st, &public) {
                        Some(enc) => encode(
                            st,
                            &Response::Reconnected {
                                client_id: ClientId(id),
                                encrypted_key: Bytes::from(enc),
                            },
                        ),
                        None => encode(st, &Response::GeneralError),
                    }
                }
                _ => encode(
                    st,
                    &Response::ReconnectRefused {
                        client_id: Some(ClientId(r.id)),
                    },
                ),
            }
        }
        828 => packet(st, r, on_conn),
        900 | 902 => {
            st.up = None;
            encode(
                st,
                &Response::Ack {
                    client_id: Some(ClientId(r.id)),
                },
            )
        }
        _ => {
            // 901: the file follows again; no answer.
            st.up = None;
            Vec::new()
        }
    }
}

fn u32_at(order: ByteOrder, p: &[u8], at: usize) -> u32 {
    let b = [p[at], p[at + 1], p[at + 2], p[at + 3]];
    match order {
        ByteOrder::Little => u32::from_le_bytes(b),
        ByteOrder::Big => u32::from_be_bytes(b),
    }
}

fn u16_at(order: ByteOrder, p: &[u8], at: usize) -> u16 {
    let b = [p[at], p[at + 1]];
    match order {
        ByteOrder::Little => u16::from_le_bytes(b),
        ByteOrder::Big => u16::from_be_bytes(b),
    }
}

fn packet(st: &mut State<'_>, r: &Seen, on_conn: usize) -> Vec<u8> {
    let p = &r.payload;
    if p.len() < 267 {
        return encode(st, &Response::GeneralError);
    }
    let pk = Packet {
        content_size: u32_at(r.order, p, 0),
        original_size: u32_at(r.order, p, 4),
        fields: (u16_at(r.order, p, 8), u16_at(r.order, p, 10)),
        file_name: r.field(12).map(|f| f.0).unwrap_or_default(),
        content: p[267..].to_vec(),
    };
    let mut up = st.up.take().unwrap_or_default();
    if up.packets.is_empty() {
        up.total_first = pk.fields.0 != 1 && pk.fields.1 == 1;
    }
    let (number, total) = if up.total_first {
        (pk.fields.1, pk.fields.0)
    } else {
        pk.fields
    };
    let expected = up.packets.len() as u16 + 1;
    if number != expected {
        up.numbering
            .push(format!("packet {number} arrived as packet {expected}"));
    }
    let name = FieldString::new(&pk.file_name).unwrap_or_default();
    up.packets.push(pk);
    let received: usize = up.packets.iter().map(|p| p.content.len()).sum();
    if (up.packets.len() as u16) < total.max(1) {
        let every = st.script.ack_every || on_conn == 1;
        st.up = Some(up);
        if every {
            return encode(
                st,
                &Response::FileReceived {
                    client_id: ClientId(r.id),
                    content_size: received as u32,
                    file_name: name,
                    checksum: 0,
                },
            );
        }
        return Vec::new();
    }
    finish_upload(st, &mut up);
    let plain = up.plaintext.clone();
    let cipher_len: usize = up.packets.iter().map(|p| p.content.len()).sum::<usize>();
    let cipher_len = if up.padded {
        up.packets.first().map_or(0, |p| p.content_size as usize)
    } else {
        cipher_len
    };
    st.t.uploads.push(up);
    if st.upload_errors > 0 {
        st.upload_errors -= 1;
        return encode(st, &Response::GeneralError);
    }
    let Some(plain) = plain else {
        return encode(st, &Response::GeneralError);
    };
    let alg = if st.script.crc32 {
        ChecksumAlgorithm::Crc32
    } else {
        ChecksumAlgorithm::Cksum
    };
    let mut sum = checksum(alg, &plain);
    if st.wrong > 0 {
        st.wrong -= 1;
        sum ^= 0x5a5a_5a5a;
    }
    let size = if st.script.plain_size {
        plain.len()
    } else {
        cipher_len
    };
    encode(
        st,
        &Response::FileReceived {
            client_id: ClientId(r.id),
            content_size: size as u32,
            file_name: name,
            checksum: sum,
        },
    )
}

fn decrypt(key: &AesKey, c: &[u8]) -> Option<Vec<u8>> {
    let mut d = CbcDecryptor::new(key);
    let mut out = BytesMut::new();
    d.update(c, &mut out);
    d.finish(&mut out).ok()?;
    Some(out.to_vec())
}

fn finish_upload(st: &State<'_>, up: &mut UploadSeen) {
    let Some(key) = st.key.as_ref() else {
        up.numbering.push("no key was issued".into());
        return;
    };
    let n = up.packets.len();
    let declared = up.packets.first().map_or(0, |p| p.content_size as usize);
    let mut stream: Vec<u8> = up
        .packets
        .iter()
        .flat_map(|p| p.content.iter().copied())
        .collect();
    up.per_packet_size = n > 1
        && up
            .packets
            .iter()
            .all(|p| p.content_size as usize == p.content.len());
    let sizes_equal = up
        .packets
        .windows(2)
        .all(|w| w[0].content.len() == w[1].content.len());
    if !up.per_packet_size
        && declared < stream.len()
        && sizes_equal
        && stream[declared..].iter().all(|&b| b == 0)
    {
        up.padded = true;
        stream.truncate(declared);
    }
    if let Some(p) = decrypt(key, &stream) {
        up.plaintext = Some(p);
        return;
    }
    if n > 1 {
        let mut all = Vec::new();
        for p in &up.packets {
            match decrypt(key, &p.content) {
                Some(x) => all.extend(x),
                None => return,
            }
        }
        up.per_packet_encryption = true;
        up.plaintext = Some(all);
    }
}
