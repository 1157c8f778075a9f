//! Helpers for the conformance tests: our real binaries, and fixtures built from
//! protocol-core's dialect options.
#![allow(dead_code)]

pub mod fixture_client;
pub mod fixture_server;
pub mod mem;

use std::path::PathBuf;

pub fn conformance_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_conformance"))
}

pub fn server_bin() -> PathBuf {
    test_kit::bins::server()
}

pub fn client_bin() -> PathBuf {
    test_kit::bins::client()
}

#[allow(unused_imports)]
pub use test_kit::{free_port, Server};

/// One fixture's check: `Err` says what differs.
pub type FixtureCheck = Box<dyn Fn() -> Result<(), String> + Send + Sync>;

/// Runs every fixture check at once (they wait on sockets, not on the CPU) and
/// fails with every mismatch, by fixture name.
pub fn run_all(fixtures: Vec<(&str, FixtureCheck)>) {
    let failures: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = fixtures
            .iter()
            .map(|(name, f)| (name, s.spawn(f)))
            .collect();
        handles
            .into_iter()
            .filter_map(|(name, h)| match h.join() {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(format!("{name}: {e}")),
                Err(_) => Some(format!("{name}: panicked")),
            })
            .collect()
    });
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
