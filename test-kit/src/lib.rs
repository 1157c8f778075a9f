//! The end-to-end harness every crate's tests and the benchmarks share, so that it
//! is written once: the real binaries ([`bins`]), a `server` process in a folder of
//! its own ([`server::Server`]), a proxy that cuts, stalls or flips a connection's
//! bytes ([`proxy`]), a real HAProxy in front of servers ([`haproxy`]), and
//! deterministic test data ([`data`]).
//!
//! Dev-only: a dev-dependency of the apps' tests and a dependency of the `bench`
//! programs, never of a shipped crate. Failures to start a process are errors the
//! caller sees (a benchmark reports them; a test unwraps them with the log in the
//! message).

#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![allow(clippy::unwrap_used, clippy::expect_used)] // test harness: a failure is a panic

pub mod bins;
pub mod data;
pub mod haproxy;
pub mod proxy;
pub mod server;

pub use data::{data, free_port};
pub use server::Server;
