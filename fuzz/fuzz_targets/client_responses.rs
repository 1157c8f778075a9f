#![no_main]
//! A client session fed arbitrary server responses.
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use protocol_core::*;
use rand_chacha::rand_core::SeedableRng;

/// The key of the shared vectors: generating one per run would spend every run in RSA.
const KEY: &str = "MIICdAIBADANBgkqhkiG9w0BAQEFAASCAl4wggJaAgEAAoGBALwNGEZS9HtjBVqJld23/9dOWfiCLcvEy+gSUchU7xaHdp8EbNnqd0RhtecUOXQUts+b4wt0cnOoTZbwtptU3aRLC0DXhIeBOH5bJJTaMKPh7Cm4w2PHq3f0oYDExIxcmXCWzJHbOPNa0fkSUaNxIjjdVWoZWPVTZSCm/DmMx6l7AgERAoGALD9RAXzuOyZbnNUUNCtLQbgVK2nsqGqKVLkELyMLFFwb6S43us3BtbyjRW4roteyizO886LtwNxOfd5JFX1hU21E48Ed2dlawKDKVYbTirCxIb4NkqkUO8e6zFSp4rjmpXtWPBmYfDvZ0SdAW9JvmJwNGlE2PZkWYGD8cMMHtHECQQD6Xz8FCNW0mHcWZP4KQD7JrPJXJ56kc/JnAkjC2vK9K+h6RjaOoL6EHyeRMF0flkJcGS+CrHDebZveWEJwnyOxAkEAwEc53bzT8N5UmWOrUu1XqU5n+eIV1KGHfMVTmheWDZlI0Ffb39Ak2FUYmk/AEzGt6gSKvYX+qlhrLHMX30fG6wJBAM4wUgQlZLLX6Zn40TWeUdNDIe1r7A72EutrSvrSbYy6v3PBWhsa9z+hL6S+as63+mn2n5jKPtVLNRF13Fy/SpECQE8sYx8RhHI9biEK7DE0jYHzG8E++e4kZPckE12RPcldPBmNlsWR8Q3Ir8cRx49uzyQf/OSglgnoLCFckVvwYPcCQF9AZpHEELlNy3IvHZdDGMvW2h18qGSzrVsaetvDXNoP+z49aLJgPrh3LUKSQBXTW3gnOrE2WzL8T/auFNPrlL0=";

fuzz_target!(|data: &[u8]| {
    static PARSED: std::sync::OnceLock<Option<protocol_core::crypto::PrivateKey>> =
        std::sync::OnceLock::new();
    let key = PARSED
        .get_or_init(|| protocol_core::crypto::PrivateKey::from_base64(KEY).ok())
        .clone();
    let config = ClientConfig {
        name: FieldString::new("fuzz").unwrap(),
        file_name: FieldString::new("f").unwrap(),
        file_size: 100,
        identity: None,
        registration_key: key,
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
