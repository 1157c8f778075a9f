//! Whether the server still knows this client, asked on a connection of its own.
//!
//! A server answers a confirmation (900) it cannot commit with a general error
//! (1607) whatever the reason: a failing store, which asking again may cure, or a
//! client its operator removed meanwhile, which it cannot. A reconnect (827) tells
//! the two apart: 1606 means the client is gone. Asked only after such a refusal;
//! when the client is still known, the server issues it a new key, which the run in
//! progress does not need again (its upload is already received).

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use protocol_core::wire::{decode_response, encode_request, Request, RequestEncoding, Response};
use protocol_core::{ClientId, Dialect, FieldString};

/// `Some(false)` when the server answers that it does not know the client (1606),
/// `Some(true)` when it reconnects it, `None` when it cannot be asked.
pub fn still_known(
    server: &str,
    id: ClientId,
    name: &FieldString,
    dialect: &Dialect,
    timeout: Duration,
) -> Option<bool> {
    let addr = server.to_socket_addrs().ok()?.next()?;
    let mut stream = TcpStream::connect_timeout(&addr, timeout).ok()?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    stream.set_write_timeout(Some(timeout)).ok()?;
    let mut out = BytesMut::new();
    let enc = RequestEncoding {
        byte_order: dialect.byte_order,
        packet_fields: dialect.packet_fields,
    };
    encode_request(
        &mut out,
        id,
        &Request::Reconnect { name: name.clone() },
        enc,
    );
    stream.write_all(&out).ok()?;
    let deadline = Instant::now() + timeout;
    let mut input = BytesMut::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        match decode_response(&mut input) {
            Ok(Some(Response::ReconnectRefused { .. })) => return Some(false),
            Ok(Some(Response::Reconnected { .. })) => return Some(true),
            Ok(Some(_)) | Err(_) => return None,
            Ok(None) => {}
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(n) => input.extend_from_slice(&buf[..n]),
        }
    }
    None
}
