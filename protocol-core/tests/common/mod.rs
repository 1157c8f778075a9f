//! Helpers shared by the integration tests: the vectors in `tests/vectors/`.
#![allow(dead_code)]

pub mod mem;
pub mod serving;

use std::path::PathBuf;

/// `pattern(n, s)` from the vectors README: x[i] = (i*131 + s*7 + (i>>8)) mod 256.
pub fn pattern(n: usize, s: usize) -> Vec<u8> {
    (0..n)
        .map(|i| ((i * 131 + s * 7 + (i >> 8)) % 256) as u8)
        .collect()
}

/// The repository's own copy of the vectors: never a folder outside the checkout.
pub fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

pub fn read_vector(name: &str) -> String {
    let p = vectors_dir().join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
}

/// The `key value` lines of rsa1024.txt.
pub fn rsa_field(name: &str) -> String {
    read_vector("rsa1024.txt")
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")).map(str::to_string))
        .unwrap_or_else(|| panic!("{name} not in rsa1024.txt"))
}

/// One frame of a session transcript.
#[derive(Debug, Clone)]
pub enum Frame {
    C(Vec<u8>),
    S(Vec<u8>),
}

pub fn session(name: &str) -> Vec<Frame> {
    read_vector(name)
        .lines()
        .filter_map(|l| {
            if let Some(h) = l.strip_prefix("C> ") {
                Some(Frame::C(hex::decode(h.trim()).expect("hex")))
            } else {
                l.strip_prefix("S> ")
                    .map(|h| Frame::S(hex::decode(h.trim()).expect("hex")))
            }
        })
        .collect()
}

/// Feeds all of `data` to the client, moving its output to `out` whenever its send
/// buffer is full (`push_file_data` takes a bounded amount at a time).
pub fn push_all<R: rand_chacha::rand_core::CryptoRngCore>(
    c: &mut protocol_core::ClientSession<R>,
    mut data: &[u8],
    out: &mut bytes::BytesMut,
) {
    while !data.is_empty() {
        match c.push_file_data(data) {
            Ok(n) => data = &data[n..],
            Err(protocol_core::UsageError::SendBufferFull) => c.poll_transmit(out),
            Err(e) => panic!("{e}"),
        }
    }
}
