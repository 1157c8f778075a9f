//! Throughput of the per-byte work: checksums and AES-CBC. Prints figures; asserts
//! nothing (these machines are shared and noisy). Run: `cargo bench -p protocol-core`.
#![allow(clippy::disallowed_methods)] // a benchmark is a caller: it owns the clock
#![allow(clippy::unwrap_used, clippy::expect_used)] // test harness: a failure is a panic

use std::time::{Duration, Instant};

use bytes::BytesMut;
use protocol_core::crypto::{AesKey, CbcDecryptor, CbcEncryptor, Checksum, ChecksumAlgorithm};

const MIB: usize = 1 << 20;

/// Best of several rounds, in GB/s (10^9 bytes per second).
fn measure(bytes: usize, mut f: impl FnMut()) -> f64 {
    let mut best = Duration::MAX;
    for _ in 0..7 {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed());
    }
    bytes as f64 / best.as_secs_f64() / 1e9
}

fn main() {
    let data: Vec<u8> = (0..256 * MIB).map(|i| (i * 131 + (i >> 8)) as u8).collect();
    let key = AesKey::from_slice(&[7u8; 32]).unwrap();
    let mut rows = Vec::new();

    for (name, algo) in [
        ("cksum (POSIX, crc-fast)", ChecksumAlgorithm::Cksum),
        ("CRC-32 (zlib, crc32fast)", ChecksumAlgorithm::Crc32),
    ] {
        let gbs = measure(data.len(), || {
            let mut c = Checksum::new(algo);
            for chunk in data.chunks(MIB) {
                c.update(chunk);
            }
            std::hint::black_box(c.value());
        });
        rows.push((name, gbs));
    }

    let slice = &data[..64 * MIB];
    let mut ct = BytesMut::with_capacity(slice.len() + 16);
    let enc = measure(slice.len(), || {
        ct.clear();
        let mut e = CbcEncryptor::new(&key);
        for chunk in slice.chunks(MIB) {
            e.update(chunk, &mut ct);
        }
        e.finish(&mut ct);
    });
    rows.push(("AES-256-CBC encrypt", enc));
    let mut pt = BytesMut::with_capacity(ct.len());
    let dec = measure(ct.len(), || {
        pt.clear();
        let mut d = CbcDecryptor::new(&key);
        for chunk in ct.chunks(MIB) {
            d.update(chunk, &mut pt);
        }
        d.finish(&mut pt).unwrap();
    });
    assert_eq!(&pt[..], slice);
    rows.push(("AES-256-CBC decrypt", dec));

    println!("{:<28} {:>10}", "operation", "GB/s");
    for (name, gbs) in rows {
        println!("{name:<28} {gbs:>10.2}");
    }
}
