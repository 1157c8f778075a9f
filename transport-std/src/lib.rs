//! Drives `protocol-core` over blocking `std::net` sockets: a thread per connection,
//! capped overall and per peer address, with idle and per-request timeouts and a
//! graceful shutdown.
//!
//! The storage side is the application's: it implements [`HandlerFactory`] and
//! [`ConnectionHandler`], which see every [`ServerEvent`] and answer questions
//! through the connection. The traits live in `protocol-handler`, shared by every
//! transport, and are re-exported here.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod client;
mod handler;
mod read_ahead;
mod server;

pub use client::{end_of_stream, run_client, ClientError, ClientOptions};
pub use handler::{
    pump, pump_with, Conn, ConnectionHandler, HandlerFactory, ServerOptions, Shutdown,
};
pub use protocol_handler::{log, memory};
pub use protocol_handler::{ConnectionGuard, ConnectionLimiter, RateLimit};
pub use server::serve;
