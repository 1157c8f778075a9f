//! Single-core hash throughput in memory: SHA-256 through the `sha2` crate, through
//! protocol-core's `Sha256Stream` (what the server hashes uploads with), through
//! `sha2::compress256` called once per 64-byte block (how `Sha256Stream` drove it
//! before), and BLAKE3 (one thread).

use std::time::Instant;

use protocol_core::secure::digest::Sha256Stream;
use sha2::digest::generic_array::GenericArray;
use sha2::Digest;

/// (name, GB/s), best of three passes over `total` bytes fed 1 MiB at a time.
pub fn measure(total: usize) -> Vec<(String, f64)> {
    let buf: Vec<u8> = (0..64usize << 20)
        .map(|i| (i.wrapping_mul(131) ^ (i >> 9)) as u8)
        .collect();
    let rounds = (total / buf.len()).max(1);
    let bytes = (rounds * buf.len()) as f64;
    let best = |f: &mut dyn FnMut()| {
        (0..3)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64()
            })
            .fold(f64::INFINITY, f64::min)
    };
    let feed = |f: &mut dyn FnMut(&[u8])| {
        for _ in 0..rounds {
            for piece in buf.chunks(1 << 20) {
                f(piece);
            }
        }
    };
    let mut rows = Vec::new();
    let sha2 = best(&mut || {
        let mut h = sha2::Sha256::new();
        feed(&mut |p| h.update(p));
        std::hint::black_box(h.finalize());
    });
    rows.push(("SHA-256, sha2::Sha256".to_string(), bytes / sha2 / 1e9));
    let stream = best(&mut || {
        let mut h = Sha256Stream::new();
        feed(&mut |p| h.update(p));
        std::hint::black_box(h.finish());
    });
    rows.push((
        "SHA-256, protocol-core Sha256Stream".to_string(),
        bytes / stream / 1e9,
    ));
    let per_block = best(&mut || {
        let mut state = [0u32; 8];
        feed(&mut |p| {
            for block in p.chunks_exact(64) {
                sha2::compress256(
                    &mut state,
                    std::slice::from_ref(GenericArray::from_slice(block)),
                );
            }
        });
        std::hint::black_box(state);
    });
    rows.push((
        "SHA-256, compress256 per 64-byte block (Sha256Stream before)".to_string(),
        bytes / per_block / 1e9,
    ));
    let b3 = best(&mut || {
        let mut h = blake3::Hasher::new();
        feed(&mut |p| {
            h.update(p);
        });
        std::hint::black_box(h.finalize());
    });
    rows.push(("BLAKE3, one thread".to_string(), bytes / b3 / 1e9));
    rows
}
