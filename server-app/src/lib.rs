//! The file-storage server as a library: the application that answers the protocol
//! core ([`app`]), the storage interfaces and their local backends ([`storage`]), the
//! table of uploads in progress ([`uploads`]), and what it counts for operators
//! ([`metrics`]). The `server` binary is a thin command line around it; tests drive it
//! with storage wrappers that fail on demand.
#![forbid(unsafe_code)]

pub mod admin;
pub mod app;
pub mod client_limits;
pub mod config;
pub mod config_file;
pub mod descriptors;
mod events;
pub mod identity;
pub mod metrics;
pub mod options;
pub mod storage;
mod throttle;
