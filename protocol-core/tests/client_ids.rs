//! Issued client ids never begin like a TLS record (0x16 0x03), so that one port can
//! tell a TLS ClientHello from a legacy request by its first two bytes.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test harness: a failure is a panic
#![allow(clippy::disallowed_methods)] // a test may read the clock the core is given

use std::time::Instant;

use bytes::BytesMut;
use protocol_core::frame::begins_like_tls;
use protocol_core::*;
use rand_chacha::rand_core::{CryptoRng, Error, RngCore};

/// Draws `0x16 0x03` first, then bytes of 0x42: the server must not issue the first.
struct TlsFirst {
    calls: usize,
}

impl RngCore for TlsFirst {
    fn next_u32(&mut self) -> u32 {
        0x4242_4242
    }
    fn next_u64(&mut self) -> u64 {
        0x4242_4242_4242_4242
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        dest.fill(0x42);
        if self.calls == 0 && dest.len() >= 2 {
            dest[..2].copy_from_slice(&[0x16, 0x03]);
        }
        self.calls += 1;
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl CryptoRng for TlsFirst {}

#[test]
fn an_id_that_would_begin_like_a_tls_record_is_drawn_again() {
    let now = Instant::now();
    let mut server = ServerConnection::new(ServerConfig::default(), TlsFirst { calls: 0 }, now);
    let mut input = BytesMut::new();
    let name = FieldString::new("alice").unwrap();
    wire::encode_request(
        &mut input,
        ClientId::ZERO,
        &Request::Register { name },
        Default::default(),
    );
    server.handle_input(&mut input, now).unwrap();
    while let Some(ev) = server.poll_event() {
        if let ServerEvent::Register { ticket, .. } = ev {
            server.accept_registration(ticket).unwrap();
        }
    }
    let mut out = BytesMut::new();
    server.poll_transmit(&mut out);
    let Some(Response::Registered { client_id }) = wire::decode_response(&mut out).unwrap() else {
        panic!("no 1600");
    };
    assert!(!begins_like_tls(&client_id.0), "{}", client_id.to_hex());
    assert_eq!(client_id.0[0], 0x42, "the second draw is the id");
}
