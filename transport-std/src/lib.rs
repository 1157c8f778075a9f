//! Drives `protocol-core` over blocking `std::net` sockets: a thread per connection,
//! capped overall and per peer address, with idle and per-request timeouts and a
//! graceful shutdown.
//!
//! The storage side is the application's: it implements
//! [`HandlerFactory`](transport_interface::HandlerFactory) and
//! [`ConnectionHandler`](transport_interface::ConnectionHandler) from
//! `transport-interface` (shared by every transport), which see every
//! [`ServerEvent`](protocol_core::ServerEvent) and answer questions through the
//! connection.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod client;
mod read_ahead;
mod server;

pub use client::{end_of_stream, run_client, ClientError, ClientOptions};
pub use server::serve;
