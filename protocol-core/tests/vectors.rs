//! The project checked against vectors made by independent tools (GNU cksum,
//! openssl, Python's cryptography), from `tests/vectors/`.
#![allow(clippy::unwrap_used, clippy::expect_used)]
// test harness: a failure is a panic

// Tests are the caller: they own the clock that the core is handed.
#![allow(clippy::disallowed_methods)]

mod common;

use bytes::BytesMut;
use common::*;
use protocol_core::crypto::{
    cksum, AesKey, CbcDecryptor, CbcEncryptor, Checksum, ChecksumAlgorithm, PrivateKey, PublicKey,
};
use rand_chacha::{rand_core::SeedableRng, ChaCha20Rng};

fn parse_input(spec: &str) -> Vec<u8> {
    if spec == "empty" {
        Vec::new()
    } else if let Some(t) = spec.strip_prefix("ascii:") {
        t.as_bytes().to_vec()
    } else {
        let inner = spec
            .strip_prefix("pattern(")
            .and_then(|s| s.strip_suffix(')'))
            .expect("pattern(n,s)");
        let (n, s) = inner.split_once(',').expect("n,s");
        pattern(n.trim().parse().unwrap(), s.trim().parse().unwrap())
    }
}

#[test]
fn cksum_matches_every_vector_whole_and_in_pieces() {
    let text = read_vector("cksum.txt");
    let mut count = 0;
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let mut parts = line.split_whitespace();
        let len: usize = parts.next().unwrap().parse().unwrap();
        let expected: u32 = parts.next().unwrap().parse().unwrap();
        let input = parse_input(parts.next().unwrap());
        assert_eq!(input.len(), len, "{line}");
        assert_eq!(cksum(&input), expected, "{line}");
        for piece in [1usize, 7, 64, 4096] {
            let mut c = Checksum::new(ChecksumAlgorithm::Cksum);
            for chunk in input.chunks(piece) {
                c.update(chunk);
            }
            assert_eq!(c.value(), expected, "{line} in pieces of {piece}");
        }
        count += 1;
    }
    assert!(count >= 13, "only {count} cksum vectors read");
}

#[test]
fn crc32_alternative_is_zlib_and_not_cksum() {
    let mut z = Checksum::new(ChecksumAlgorithm::Crc32);
    z.update(b"123456789");
    assert_eq!(z.value(), 0xcbf4_3926);
    assert_ne!(z.value(), cksum(b"123456789"));
}

#[test]
fn aes256cbc_matches_openssl_whole_and_at_every_split() {
    let text = read_vector("aes256cbc.txt");
    let key_hex = text
        .lines()
        .find_map(|l| l.strip_prefix("key "))
        .expect("key line");
    let key = AesKey::from_slice(&hex::decode(key_hex).unwrap()).unwrap();
    let mut count = 0;
    for line in text.lines().filter(|l| l.starts_with("len=")) {
        let mut pt = None;
        let mut ct = None;
        for field in line.split_whitespace() {
            if let Some(v) = field.strip_prefix("pt=") {
                pt = Some(hex::decode(v).unwrap());
            }
            if let Some(v) = field.strip_prefix("ct=") {
                ct = Some(hex::decode(v).unwrap());
            }
        }
        let (pt, ct) = (pt.unwrap(), ct.unwrap());

        let mut enc = CbcEncryptor::new(&key);
        let mut out = BytesMut::new();
        enc.update(&pt, &mut out);
        enc.finish(&mut out);
        assert_eq!(&out[..], &ct[..], "encrypt {line:.20}");

        let splits: Vec<usize> = if ct.len() <= 64 {
            (0..=ct.len()).collect()
        } else {
            vec![0, 1, 15, 16, 17, 500, ct.len() - 16, ct.len()]
        };
        for at in splits {
            let mut dec = CbcDecryptor::new(&key);
            let mut plain = BytesMut::new();
            dec.update(&ct[..at], &mut plain);
            dec.update(&ct[at..], &mut plain);
            dec.finish(&mut plain).unwrap();
            assert_eq!(&plain[..], &pt[..], "decrypt split at {at}");

            let mut enc = CbcEncryptor::new(&key);
            let mut out = BytesMut::new();
            let at = at.min(pt.len());
            enc.update(&pt[..at], &mut out);
            enc.update(&pt[at..], &mut out);
            enc.finish(&mut out);
            assert_eq!(&out[..], &ct[..], "encrypt split at {at}");
        }
        count += 1;
    }
    assert!(count >= 9);
}

#[test]
fn aes_rejects_bad_padding_and_bad_length() {
    let key = AesKey::from_slice(&[9u8; 32]).unwrap();
    let mut enc = CbcEncryptor::new(&key);
    let mut ct = BytesMut::new();
    enc.update(b"some bytes", &mut ct);
    enc.finish(&mut ct);
    // A flipped byte in the last block's predecessor changes the padding byte.
    let mut bad = ct.to_vec();
    bad[15] ^= 0x01;
    let mut dec = CbcDecryptor::new(&key);
    let mut out = BytesMut::new();
    dec.update(&bad, &mut out);
    // One block only: the flip hits the block's own decryption, so padding is garbage.
    assert!(dec.finish(&mut out).is_err());
    // Not a whole number of blocks.
    let mut dec = CbcDecryptor::new(&key);
    dec.update(&ct[..15], &mut out);
    assert!(dec.finish(&mut out).is_err());
    // Nothing at all.
    let mut dec = CbcDecryptor::new(&key);
    assert!(dec.finish(&mut out).is_err());
}

#[test]
fn rsa_vector_key_parses_and_decrypts_openssl_oaep() {
    let key = PrivateKey::from_base64(&rsa_field("private_pkcs8_b64")).unwrap();
    let spki = hex::decode(rsa_field("public_spki_hex")).unwrap();
    assert_eq!(spki.len(), 160);
    assert_eq!(&key.public_key().to_field().unwrap()[..], &spki[..]);
    PublicKey::from_field(&spki).unwrap();
    let ct = hex::decode(rsa_field("oaep_sha1_ciphertext_hex")).unwrap();
    let aes = key.decrypt_aes_key(&ct).unwrap();
    assert_eq!(
        aes.as_bytes(),
        &hex::decode(rsa_field("aes_key_hex")).unwrap()[..]
    );
}

#[test]
fn rsa_private_key_reads_wrapped_base64_and_pkcs1() {
    let b64 = rsa_field("private_pkcs8_b64");
    let wrapped: String = b64
        .as_bytes()
        .chunks(64)
        .map(|c| format!("{}\n", std::str::from_utf8(c).unwrap()))
        .collect();
    let a = PrivateKey::from_base64(&b64).unwrap();
    assert_eq!(PrivateKey::from_base64(&wrapped).unwrap(), a);
    // PKCS#1 inside the PKCS#8 structure: the OCTET STRING after the algorithm id.
    use base64::Engine;
    let der = base64::engine::general_purpose::STANDARD
        .decode(&b64)
        .unwrap();
    let pkcs1 = &der[26..];
    assert_eq!(pkcs1[0], 0x30);
    let pkcs1_b64 = base64::engine::general_purpose::STANDARD.encode(pkcs1);
    assert_eq!(PrivateKey::from_base64(&pkcs1_b64).unwrap(), a);
    assert!(PrivateKey::from_base64("not base64!").is_err());
    assert!(PrivateKey::from_base64("AAAA").is_err());
}

#[test]
fn generated_keys_have_exponent_17_and_fit_the_field_and_round_trip_oaep() {
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let key = PrivateKey::generate(&mut rng).unwrap();
    let field = key.public_key().to_field().unwrap();
    assert_eq!(field.len(), 160);
    // SubjectPublicKeyInfo ends with INTEGER 17: 02 01 11.
    assert_eq!(&field[157..], &[0x02, 0x01, 0x11]);
    let public = PublicKey::from_field(&field).unwrap();
    let aes = AesKey::generate(Default::default(), &mut rng);
    let ct = public.encrypt_aes_key(&mut rng, &aes).unwrap();
    assert_eq!(ct.len(), 128);
    assert_eq!(key.decrypt_aes_key(&ct).unwrap(), aes);
}

#[test]
fn public_key_field_rejects_garbage_and_nonzero_padding() {
    let spki = hex::decode(rsa_field("public_spki_hex")).unwrap();
    assert!(PublicKey::from_field(&[0u8; 160]).is_err());
    assert!(PublicKey::from_field(&[0x30, 0x82, 0xff, 0xff]).is_err());
    // A shorter DER followed by zeros is accepted; a non-zero byte after it is not.
    let mut short = spki.clone();
    short.push(0);
    assert!(PublicKey::from_field(&short).is_ok());
    short.push(1);
    assert!(PublicKey::from_field(&short).is_err());
}

#[test]
fn cksum_agrees_with_the_cksum_command() {
    // An independent oracle on this machine, for sizes the vectors do not cover.
    let Ok(out) = std::process::Command::new("cksum")
        .arg("--version")
        .output()
    else {
        eprintln!("cksum not installed; skipped");
        return;
    };
    assert!(out.status.success());
    for (n, s) in [(3000usize, 42usize), (123_457, 3), (5_000_000, 11)] {
        let data = pattern(n, s);
        let dir = std::env::temp_dir().join(format!("pc-cksum-{}-{n}", std::process::id()));
        std::fs::write(&dir, &data).unwrap();
        let out = std::process::Command::new("cksum")
            .arg(&dir)
            .output()
            .unwrap();
        std::fs::remove_file(&dir).ok();
        let text = String::from_utf8(out.stdout).unwrap();
        let theirs: u32 = text.split_whitespace().next().unwrap().parse().unwrap();
        assert_eq!(cksum(&data), theirs, "pattern({n},{s})");
    }
}
