//! A conformance suite for implementations of the file-storage protocol of
//! `docs/PROTOCOL.md`, in the manner of Autobahn|Testsuite and h2spec.
//!
//! - `conformance server HOST:PORT` plays numbered cases against a running server
//!   ([`runner::run_server`], the cases in [`cases`]);
//! - `conformance client --listen ADDR --run 'COMMAND'` plays the server for a
//!   client, one case per run of the client ([`client`]).
//!
//! Every case ends PASS, VARIANT(n) (a deviation of section 8, variant n), FAIL,
//! INFO, or ERROR/SKIPPED (it could not run: never a pass), with the bytes that show
//! it ([`evidence`]). From the outcomes, [`verdict`] names the implementation's
//! variants and the options of our programs that talk to it; [`report`] writes the
//! terminal table, the JSON report and a self-contained HTML page.
//! `docs/CONFORMANCE.md` shows a run.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cases;
pub mod client;
pub mod evidence;
pub mod frames;
pub mod model;
pub mod probe;
pub mod report;
pub mod runner;
pub mod session;
pub mod verdict;
