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
//!
//! The client side: [`run_client`] drives the legacy protocol over a `TcpStream`;
//! [`connect_tls`] opens the secure mode's TLS 1.3 session to a server known by its
//! certificate's [`Fingerprint`] (or pins it on first use) and tells a server that
//! speaks only the legacy protocol apart ([`TlsConnectError::NotTls`]).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod client;
mod read_ahead;
mod server;
mod tls_client;

pub use client::{end_of_stream, run_client, ClientError, ClientOptions};
pub use server::serve;
pub use tls_client::{connect_tls, handshake_tls, SecureConnection, TlsConnectError, TlsStream};
/// What a client pins a server by, re-exported so that a client needs no other crate.
pub use transport_interface::tls::Fingerprint;
