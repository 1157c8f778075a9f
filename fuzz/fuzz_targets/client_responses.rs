#![no_main]
//! A client session fed arbitrary server responses.
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use protocol_core::*;
use rand_chacha::rand_core::SeedableRng;

fuzz_target!(|data: &[u8]| {
    let config = ClientConfig {
        name: FieldString::new("fuzz").unwrap(),
        file_name: FieldString::new("f").unwrap(),
        file_size: 100,
        identity: None,
        registration_key: None,
        dialect: Dialect::default(),
    };
    let Ok(mut c) = ClientSession::new(config, rand_chacha::ChaCha20Rng::seed_from_u64(0)) else { return };
    let mut input = BytesMut::new();
    for piece in data.chunks(61) {
        input.extend_from_slice(piece);
        let _ = c.handle_input(&mut input);
        while let Some(ev) = c.poll_event() {
            if let ClientEvent::SendFile { .. } = ev {
                let _ = c.push_file_data(&[0u8; 100]);
                let _ = c.end_of_file();
            }
        }
    }
});
