//! Time of the client's private-key operation, OAEP-SHA1 decryption of a 1602/1605
//! AES key with an RSA-1024 e=17 key: before (the `rsa` crate, blinded) and now
//! (OpenSSL, through `PrivateKey::decrypt_aes_key`). Prints figures; asserts nothing.
//! Run: `cargo bench -p protocol-core --bench rsa_decrypt`.
#![allow(clippy::disallowed_methods)] // a benchmark is a caller: it owns the clock
#![allow(clippy::unwrap_used, clippy::expect_used)] // test harness: a failure is a panic

use std::time::{Duration, Instant};

use base64::Engine as _;
use protocol_core::crypto::{AesKey, AesKeySize, PrivateKey};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use rsa::pkcs8::DecodePrivateKey;
use rsa::{Oaep, RsaPrivateKey};

const ROUNDS: usize = 2000;

/// Median and best time of one call, in microseconds.
fn time(mut f: impl FnMut()) -> (f64, f64) {
    let mut samples: Vec<Duration> = (0..ROUNDS)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    samples.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    (us(samples[ROUNDS / 2]), us(samples[0]))
}

fn main() {
    let mut rng = ChaCha20Rng::seed_from_u64(15);
    let key = PrivateKey::generate(&mut rng).unwrap();
    let der = base64::engine::general_purpose::STANDARD
        .decode(key.to_base64().unwrap().as_bytes())
        .unwrap();
    let old = RsaPrivateKey::from_pkcs8_der(&der).unwrap();
    let aes = AesKey::generate(AesKeySize::Aes256, &mut rng);
    let valid = key.public_key().encrypt_aes_key(&mut rng, &aes).unwrap();
    // Not an OAEP encoding: the padding check fails after the RSA operation.
    let mut invalid = valid.clone();
    invalid[64] ^= 1;

    println!("OAEP-SHA1 decryption, RSA-1024 e=17, {ROUNDS} calls each: median / best (us)");
    for (what, ct) in [("valid", &valid), ("invalid", &invalid)] {
        let (m, b) = time(|| {
            let r = old.decrypt_blinded(&mut rng, Oaep::new::<sha1::Sha1>(), ct);
            std::hint::black_box(r.is_ok());
        });
        println!("  rsa crate 0.9 (before), {what:7} ciphertext: {m:7.1} / {b:7.1}");
        let (m, b) = time(|| {
            std::hint::black_box(key.decrypt_aes_key(ct).is_ok());
        });
        println!("  OpenSSL (now),          {what:7} ciphertext: {m:7.1} / {b:7.1}");
    }
    println!("  linked: {}", openssl::version::version());
}
