//! Test data and ports.

use std::net::TcpListener;

/// Deterministic bytes that do not look compressible: the same `n` and `seed`
/// give the same bytes in every crate's tests.
pub fn data(n: usize, seed: u8) -> Vec<u8> {
    let mut x: u32 = (seed as u32).wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// A loopback port free at the time of the call (another process may take it
/// before it is used: [`Server::start`](crate::Server::start) tries again then).
///
/// # Panics
/// If no port can be bound on 127.0.0.1 at all.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding a loopback port")
}
