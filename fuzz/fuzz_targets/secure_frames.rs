#![no_main]
//! The secure extension on arbitrary bytes: its decoders, a secure server session
//! and a client session fed whatever a peer sends. No panic; nothing held past one
//! frame's limit.
use std::time::Instant;

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use protocol_core::secure::frame::{decode_request, decode_response, RequestLimits, MAX_DATA};
use protocol_core::secure::{SecureClient, SessionBinding};
use protocol_core::{ServerConfig, ServerConnection};
use rand_chacha::rand_core::SeedableRng;

fuzz_target!(|data: &[u8]| {
    let mut buf = BytesMut::from(data);
    while let Ok(Some(_)) = decode_request(&mut buf, &RequestLimits::default()) {}
    let mut buf = BytesMut::from(data);
    while let Ok(Some(_)) = decode_response(&mut buf) {}

    let now = Instant::now();
    let mut s = ServerConnection::new(ServerConfig::default(), rand_chacha::ChaCha20Rng::seed_from_u64(0), now);
    s.enter_secure(SessionBinding::new([1; 32]));
    let mut input = BytesMut::from(data);
    let _ = s.handle_input(&mut input, now);
    while s.poll_event().is_some() {}
    assert!(input.len() <= 23 + MAX_DATA || input.len() == data.len());
    let mut out = BytesMut::new();
    s.poll_transmit(&mut out);

    let mut c = SecureClient::new(SessionBinding::new([1; 32]));
    let _ = c.list();
    let mut input = BytesMut::from(data);
    let _ = c.handle_input(&mut input);
    while c.poll_event().is_some() {}
});
