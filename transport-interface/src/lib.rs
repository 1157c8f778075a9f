//! What every transport shares with the application, so that no transport depends
//! on another and an application depends on this crate alone:
//!
//! - [`handler`]: the application interface, in two forms.
//!   - [`ConnectionHandler`] / [`HandlerFactory`]: synchronous. The handler answers
//!     each question before it returns (a local SQLite database, files on disk).
//!     The blocking transport calls it on the connection's thread; the async
//!     transport calls it on its blocking pool ([`Offload`], [`BlockingDispatch`]),
//!     never on a worker thread of the runtime.
//!   - [`AsyncConnectionHandler`] / [`AsyncHandlerFactory`]: asynchronous. The
//!     handler's `on_event` is a future: it may await a network database or an
//!     object store before it answers, and the async transport polls it on the
//!     connection's task ([`AsyncDispatch`]).
//!
//!   Either way the transport drives [`Dispatch::pump`]: feed input, hand every
//!   event to the application, and again until nothing moves (an answer lets the
//!   connection read input that is already buffered). Questions have a deadline
//!   ([`Limits::answer_timeout`](protocol_core::Limits::answer_timeout)): a handler
//!   that returns without answering does not stall the connection.
//! - [`admission`]: the connection caps and rate buckets, which count an IPv4
//!   address whole and an IPv6 address by its /64 ([`address_group`]); with
//!   [`ServerOptions::proxy_from`] a listed balancer's connection must start with a
//!   PROXY protocol v2 header ([`proxy`], a sans-IO parser; [`Preface`]) whose
//!   client address the limits, the handler and the log then use. [`Gate`] applies
//!   them to each accepted socket.
//! - [`ServerOptions`] and [`Shutdown`] for the servers, [`ClientOptions`] and
//!   [`ClientError`] for the clients, and the [`StopRule`] every server
//!   connection follows when the server stops.
//! - [`tls`]: the crypto provider, server fingerprints and the session binding
//!   both TLS ends share.
//! - [`memory::MemoryApp`]: a small in-memory application for tests, demos and the
//!   transports' examples.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod admission;
mod client;
pub mod handler;
pub mod log;
pub mod memory;
mod options;
mod stopping;
pub mod tls;

pub use admission::{
    address_group, proxy, refusal_bytes, AcceptBackoff, AddressRates, AdmittedDispatch,
    AsyncRateLimited, Buckets, Cidr, ConnectionGuard, ConnectionLimiter, Entry, Gate, Preface,
    PrefaceError, PrefaceStep, ProxyFrom, ProxyFromError, RateLimit, RateLimited,
    RateLimitedHandler, RateLog, Settled, Slot, Working, SHED_AFTER_SILENCE,
};
pub use client::{end_of_stream, ClientError, ClientOptions};
pub use handler::{
    pump, pump_with, AsyncConnectionHandler, AsyncDispatch, AsyncHandlerFactory, BlockingDispatch,
    ConnectionHandler, Dispatch, HandlerFactory, Inline, Offload,
};
pub use options::{ServerOptions, Shutdown};
pub use stopping::{StopRule, LINGER, LINGER_BYTES};

use protocol_core::ServerConnection;
use rand_core::OsRng;

/// A server connection as the transports run it: keys and ids from the OS CSPRNG.
pub type Conn = ServerConnection<OsRng>;
