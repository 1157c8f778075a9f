//! One behaviour suite per storage interface, written once and run against every
//! backend (and through the fault wrappers the tests put around them): object_store's
//! `integration.rs` is the model. Compiled for this crate's unit tests and, for the
//! integration tests and other crates, behind the `testing` feature; never in a
//! release build.
//!
//! - [`metadata`]: every [`Metadata`](super::Metadata) backend: memory, SQLite,
//!   PostgreSQL.
//! - [`contents`]: every [`Contents`](super::Contents) backend: the local folder,
//!   S3 (a real server, and the in-memory store).
//!   Each runs its secure-mode cases too (`metadata::secure`, `contents::secure`).
//! - [`uploads`]: every [`UploadTable`](super::uploads::UploadTable): memory,
//!   PostgreSQL.
//!
//! A suite's cases panic on the first broken promise, with what was expected: they
//! are test code.

#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod contents;
pub mod metadata;
pub mod uploads;

use std::panic::{catch_unwind, AssertUnwindSafe};

/// Runs each of `cases` through `run` on its own (a panic fails that case, not the
/// others), printing each name, then panics naming every case that failed.
pub fn run_cases<F: Copy>(cases: &[(&str, F)], run: impl Fn(F)) {
    let mut failed = Vec::new();
    for (name, case) in cases {
        eprintln!("case {name}");
        if catch_unwind(AssertUnwindSafe(|| run(*case))).is_err() {
            failed.push(*name);
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} cases failed: {}",
        failed.len(),
        cases.len(),
        failed.join(", ")
    );
}
