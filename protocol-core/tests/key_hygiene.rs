//! Key material: cleared on drop, never copied implicitly, and the private-key
//! operation done by the constant-time implementation.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test harness: a failure is a panic

mod common;

use protocol_core::crypto::{AesKey, AesKeySize, CbcDecryptor, CbcEncryptor, PrivateKey};
use protocol_core::PeerError;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use rsa::pkcs8::DecodePublicKey;
use zeroize::ZeroizeOnDrop;

fn zeroized_on_drop<T: ZeroizeOnDrop>() {}

#[test]
fn key_types_are_zeroized_on_drop() {
    // A compile-time check: removing the impl (or the field clearing it stands for)
    // fails the build here. `AesKey` not being Clone is a compile_fail doctest.
    zeroized_on_drop::<AesKey>();
    zeroized_on_drop::<CbcEncryptor>();
    zeroized_on_drop::<CbcDecryptor>();
    zeroized_on_drop::<PrivateKey>();
    zeroized_on_drop::<zeroize::Zeroizing<String>>();
}

#[test]
fn duplicate_is_an_equal_independent_copy() {
    let k = AesKey::from_slice(&[9u8; 16]).unwrap();
    let d = k.duplicate();
    drop(k);
    assert_eq!(d.as_bytes(), &[9u8; 16]);
}

#[test]
fn linked_openssl_has_the_fix_for_the_marvin_timing_oracle() {
    // CVE-2022-4304 (the timing oracle in RSA decryption that the Marvin work found
    // in OpenSSL) is fixed in 1.1.1t and 3.0.8; OPENSSL_VERSION_NUMBER is 0xMNN00PPS.
    let v = openssl::version::number();
    let fixed = if v >= 0x3000_0000 {
        0x3000_0080
    } else {
        0x1010_114f
    };
    assert!(
        v >= fixed,
        "linked {} lacks the CVE-2022-4304 fix",
        openssl::version::version()
    );
}

/// OAEP-SHA1 with the `rsa` crate's public-key operation, for any plaintext length.
fn encrypt_raw(key: &PrivateKey, plain: &[u8], rng: &mut ChaCha20Rng) -> Vec<u8> {
    // The 160-byte field is exactly the DER for a 1024-bit key with e = 17.
    let field = key.public_key().to_field().unwrap();
    let public = rsa::RsaPublicKey::from_public_key_der(&field).unwrap();
    public
        .encrypt(rng, rsa::Oaep::new::<sha1::Sha1>(), plain)
        .unwrap()
}

#[test]
fn openssl_decryption_agrees_with_encryption_and_refuses_what_is_not_oaep() {
    let key = PrivateKey::from_base64(&common::rsa_field("private_pkcs8_b64")).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(71);
    for size in [AesKeySize::Aes128, AesKeySize::Aes256] {
        for _ in 0..20 {
            let aes = AesKey::generate(size, &mut rng);
            let ct = key.public_key().encrypt_aes_key(&mut rng, &aes).unwrap();
            assert_eq!(key.decrypt_aes_key(&ct).unwrap(), aes);
        }
    }
    let bad_aes_key = |r: Result<AesKey, PeerError>| matches!(r, Err(PeerError::BadAesKey(_)));
    let aes = AesKey::generate(AesKeySize::Aes256, &mut rng);
    let ct = key.public_key().encrypt_aes_key(&mut rng, &aes).unwrap();
    for i in [0, 1, 64, 127] {
        let mut t = ct.clone();
        t[i] ^= 0x40;
        assert!(bad_aes_key(key.decrypt_aes_key(&t)), "byte {i} flipped");
    }
    assert!(bad_aes_key(key.decrypt_aes_key(&ct[..127])));
    assert!(bad_aes_key(
        key.decrypt_aes_key(&[ct.clone(), vec![0]].concat())
    ));
    assert!(bad_aes_key(key.decrypt_aes_key(&[])));
    assert!(bad_aes_key(key.decrypt_aes_key(&[0xff; 128])));
    let mut random = [0u8; 128];
    rng.fill_bytes(&mut random);
    assert!(bad_aes_key(key.decrypt_aes_key(&random)));
    // A valid OAEP message of the wrong length is refused too.
    let twenty = encrypt_raw(&key, &[5u8; 20], &mut rng);
    assert_eq!(
        key.decrypt_aes_key(&twenty),
        Err(PeerError::BadAesKey("not 16 or 32 bytes"))
    );
}
