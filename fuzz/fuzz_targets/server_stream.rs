#![no_main]
//! A server connection fed an arbitrary byte stream in arbitrary pieces, with every
//! question answered "yes" so that deep states are reachable.
use std::time::Instant;

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use protocol_core::*;
use rand_chacha::rand_core::SeedableRng;

fuzz_target!(|data: &[u8]| {
    let now = Instant::now();
    let config = ServerConfig {
        limits: Limits { max_payload: 8192, max_unwritten: 16384, ..Limits::default() },
        ..ServerConfig::default()
    };
    let mut s = ServerConnection::new(config, rand_chacha::ChaCha20Rng::seed_from_u64(0), now);
    let key = protocol_core::crypto::AesKey::from_slice(&[1u8; 32]);
    let mut input = BytesMut::new();
    let mut out = BytesMut::new();
    for piece in data.chunks(97) {
        input.extend_from_slice(piece);
        for _ in 0..4 {
            let _ = s.handle_input(&mut input, now);
            while let Some(ev) = s.poll_event() {
                match ev {
                    ServerEvent::Register { ticket, .. } => { let _ = s.accept_registration(ticket); }
                    ServerEvent::Reconnect { ticket, .. } => { let _ = s.reconnect_lookup(ticket, None); }
                    ServerEvent::LookupClient { ticket, .. } => {
                        let _ = s.client_lookup(ticket, Some(ClientRecord { aes_key: key.as_ref().map(protocol_core::crypto::AesKey::duplicate), key_age: std::time::Duration::ZERO, suspended: None }));
                    }
                    // Each ticket has its own type: one arm per question.
                    ServerEvent::StorePublicKey { ticket, .. } => { let _ = s.succeed(ticket); }
                    ServerEvent::StoreAesKey { ticket, .. } => { let _ = s.succeed(ticket); }
                    ServerEvent::UploadFinished { ticket, .. } => { let _ = s.succeed(ticket); }
                    ServerEvent::Confirm { ticket, .. } => { let _ = s.succeed(ticket); }
                    ServerEvent::UploadData { data, .. } => { let _ = s.data_written(data.len()); }
                    _ => {}
                }
            }
        }
        s.poll_transmit(&mut out);
        out.clear();
        assert!(!s.wants_read() || input.len() <= 23 + 8192 + 97);
    }
    s.handle_eof();
});
