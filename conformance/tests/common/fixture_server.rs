//! Fixture servers: protocol-core's `ServerConnection` with an in-memory store,
//! one thread per connection, configured with a `ServerDialect` and, for the
//! variants and bugs the core does not model, a change to the bytes on the wire.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use protocol_core::rand_core::OsRng;
use protocol_core::{ServerConfig, ServerConnection, ServerDialect};

use super::mem::MemStore;

/// A deliberate bug.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bug {
    /// Every whole-file 1603 carries a wrong checksum.
    WrongChecksum,
    /// A 1603 claiming the whole file after packet 1 of a multi-packet upload.
    EarlyFileReceived,
    /// The connection is closed after every 1602.
    CloseAfterKey,
}

/// What a fixture server does.
#[derive(Debug, Clone, Default)]
pub struct Fixture {
    /// The core's options.
    pub dialect: ServerDialect,
    /// Reads each request with one recv sized for it, of at most 2 KiB (9, 13).
    pub one_recv: bool,
    /// Closes after every answer (7).
    pub close_after_answer: bool,
    /// The plaintext size in the 1603 (11).
    pub plain_size: bool,
    /// Reads the two 16-bit packet fields the other way round (2).
    pub total_first: bool,
    /// Takes only 828s of exactly 1,291 payload bytes (12).
    pub padded_only: bool,
    /// Takes only multi-packet uploads whose content size field is the packet's (3).
    pub per_packet_size_only: bool,
    /// Refuses (1607) a 900/902 that names the file rather than the client (5).
    pub client_name_in_verdicts: bool,
    /// Closes on any request with a little-endian header (1, both directions).
    pub big_endian_only: bool,
    /// A bug.
    pub bug: Option<Bug>,
}

/// Starts the fixture on a free port; it serves until the test process ends.
pub fn start(f: Fixture) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let store = Arc::new(Mutex::new(MemStore::default()));
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let (f, store) = (f.clone(), store.clone());
            std::thread::spawn(move || serve(stream, &f, &store));
        }
    });
    addr
}

/// A whole frame's length at the front of `b`, if its header has arrived.
fn frame_len(b: &[u8]) -> Option<usize> {
    match protocol_core::wire::peek_request_header(b) {
        Ok(Some((_, _, size))) => Some(23 + size as usize),
        Ok(None) => None,
        // Junk: hand it to the core whole, which refuses it.
        Err(_) => Some(b.len()),
    }
}

fn u16_at(frame: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([frame[23 + at], frame[24 + at]])
}

fn serve(mut s: TcpStream, f: &Fixture, store: &Mutex<MemStore>) {
    let _ = s.set_nodelay(true);
    let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
    let config = ServerConfig {
        dialect: f.dialect.clone(),
        ..ServerConfig::default()
    };
    let mut conn = ServerConnection::new(config, OsRng, Instant::now());
    let (mut raw, mut input, mut out) = (Vec::new(), BytesMut::new(), BytesMut::new());
    let mut original_size = 0u32;
    let mut last_file_name: Option<Vec<u8>> = None;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        // Read: one recv per request for one-recv servers, else whatever came.
        let got = if f.one_recv {
            let mut head = [0u8; 23];
            match s.peek(&mut head) {
                Ok(0) => None,
                Ok(n) if n < 23 => return, // a header cut short: this server fails
                Ok(_) => {
                    let Some(len) = frame_len(&head) else { return };
                    if len > 2048 {
                        return; // more than its buffer: the request is lost
                    }
                    match s.read(&mut buf[..len]) {
                        Ok(n) if n == len => Some(n),
                        _ => return, // the rest did not come with it
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    conn.handle_timeout(Instant::now());
                    Some(0)
                }
                Err(_) => None,
            }
        } else {
            match s.read(&mut buf) {
                Ok(0) => None,
                Ok(n) => Some(n),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    conn.handle_timeout(Instant::now());
                    Some(0)
                }
                Err(_) => None,
            }
        };
        let Some(n) = got else {
            conn.handle_eof();
            store.lock().unwrap().serve(&mut conn);
            return;
        };
        raw.extend_from_slice(&buf[..n]);
        // Whole frames, changed as the fixture's variant or bug wants.
        while let Some(len) = frame_len(&raw).filter(|&l| l <= raw.len()) {
            let mut frame: Vec<u8> = raw.drain(..len).collect();
            if f.big_endian_only
                && matches!(
                    protocol_core::wire::peek_request_header(&frame),
                    Ok(Some((protocol_core::ByteOrder::Little, _, _)))
                )
            {
                return;
            }
            let is_828 = frame.len() >= 23 + 267 && frame[17..19] == 828u16.to_le_bytes();
            let is_verdict = frame.len() == 23 + 255
                && (frame[17..19] == 900u16.to_le_bytes() || frame[17..19] == 902u16.to_le_bytes());
            if f.client_name_in_verdicts
                && is_verdict
                && last_file_name.as_deref() == Some(&frame[23..23 + 255])
            {
                let _ = s.write_all(&[3, 0x47, 0x06, 0, 0, 0, 0]);
                continue;
            }
            if is_828 {
                original_size = u32::from_le_bytes([frame[27], frame[28], frame[29], frame[30]]);
                if f.total_first {
                    let (a, b) = (u16_at(&frame, 8), u16_at(&frame, 10));
                    frame[31..33].copy_from_slice(&b.to_le_bytes());
                    frame[33..35].copy_from_slice(&a.to_le_bytes());
                }
                last_file_name = Some(frame[35..35 + 255].to_vec());
                let content_size = u32::from_le_bytes([frame[23], frame[24], frame[25], frame[26]]);
                let many = u16_at(&frame, 8) > 1 || u16_at(&frame, 10) > 1;
                if f.per_packet_size_only && many && content_size as usize != frame.len() - 23 - 267
                {
                    let _ = s.write_all(&[3, 0x47, 0x06, 0, 0, 0, 0]);
                    return;
                }
                if f.padded_only && frame.len() != 23 + 1291 {
                    let _ = s.write_all(&[3, 0x47, 0x06, 0, 0, 0, 0]);
                    return;
                }
                let (a, b) = (u16_at(&frame, 8), u16_at(&frame, 10));
                let first_of_many = (a == 1 && b > 1) || (b == 1 && a > 1);
                if f.bug == Some(Bug::EarlyFileReceived) && first_of_many {
                    let mut fake = vec![3, 0x43, 0x06, 23, 1, 0, 0];
                    fake.extend_from_slice(&frame[..16]);
                    fake.extend_from_slice(&frame[23..27]);
                    fake.extend_from_slice(&frame[35..35 + 255]);
                    fake.extend_from_slice(&0x1234_5678u32.to_le_bytes());
                    let _ = s.write_all(&fake);
                }
            }
            input.extend_from_slice(&frame);
        }
        // The driver loop of protocol-core's docs: input, then every event
        // answered, then input again until nothing more happens.
        loop {
            if conn.handle_input(&mut input, Instant::now()).is_err() {
                break;
            }
            let mut store = store.lock().unwrap();
            let mut any = false;
            while let Some(ev) = conn.poll_event() {
                any = true;
                store.handle(&mut conn, ev);
            }
            if !any {
                break;
            }
        }
        out.clear();
        conn.poll_transmit(&mut out);
        if !out.is_empty() {
            let bytes = rewrite(f, &out, original_size);
            if s.write_all(&bytes).is_err() {
                return;
            }
            let key_sent = bytes.len() >= 3 && bytes[1..3] == 1602u16.to_le_bytes();
            if f.close_after_answer || (f.bug == Some(Bug::CloseAfterKey) && key_sent) {
                conn.handle_eof();
                store.lock().unwrap().serve(&mut conn);
                return;
            }
        }
        if conn.is_finished() {
            return;
        }
    }
}

/// The fixture's changes to what the core sends: 1603 fields.
fn rewrite(f: &Fixture, out: &[u8], original_size: u32) -> Vec<u8> {
    let mut v = out.to_vec();
    let mut at = 0;
    while at + 7 <= v.len() {
        let code = u16::from_le_bytes([v[at + 1], v[at + 2]]);
        let size = u32::from_le_bytes([v[at + 3], v[at + 4], v[at + 5], v[at + 6]]) as usize;
        if code == 1603 && size == 279 && at + 7 + size <= v.len() {
            let p = at + 7;
            let sum_at = p + 16 + 4 + 255;
            let sum = u32::from_le_bytes([v[sum_at], v[sum_at + 1], v[sum_at + 2], v[sum_at + 3]]);
            if sum != 0 {
                if f.plain_size {
                    v[p + 16..p + 20].copy_from_slice(&original_size.to_le_bytes());
                }
                if f.bug == Some(Bug::WrongChecksum) {
                    v[sum_at..sum_at + 4].copy_from_slice(&(sum ^ 1).to_le_bytes());
                }
            }
        }
        if !(1600..=1607).contains(&code) {
            break; // big-endian responses: nothing here to change
        }
        at += 7 + size;
    }
    v
}
