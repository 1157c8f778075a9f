//! The application's side of a `protocol-core` server connection, shared by every
//! transport (`transport-std`, `transport-tokio`, `transport-futures`), so that no
//! transport depends on another.
//!
//! Two forms:
//!
//! - [`ConnectionHandler`] / [`HandlerFactory`]: synchronous. The handler answers
//!   each question before it returns (a local SQLite database, files on disk). The
//!   blocking transport calls it on the connection's thread; the async transports
//!   call it on their blocking pool ([`Offload`], [`BlockingDispatch`]), never on a
//!   worker thread of the runtime.
//! - [`AsyncConnectionHandler`] / [`AsyncHandlerFactory`]: asynchronous. The
//!   handler's `on_event` is a future: it may await a network database or an object
//!   store before it answers, and the async transports poll it on the connection's
//!   task ([`AsyncDispatch`]).
//!
//! Either way the transport drives [`Dispatch::pump`]: feed input, hand every event
//! to the application, and again until nothing moves (an answer lets the connection
//! read input that is already buffered). Questions have a deadline
//! ([`Limits::answer_timeout`](protocol_core::Limits::answer_timeout)): a handler
//! that returns without answering does not stall the connection.
//!
//! Admission is shared too ([`Gate`]): the connection caps and rate buckets count an
//! IPv4 address whole and an IPv6 address by its /64 ([`address_group`]), and with
//! [`ServerOptions::proxy_from`] a listed balancer's connection must start with a
//! PROXY protocol v2 header ([`proxy`], a sans-IO parser; [`Preface`]) whose client
//! address the limits, the handler and the log then use.
//!
//! [`memory::MemoryApp`] is a small in-memory application for tests, demos and the
//! transports' examples.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod admitted;
mod asynch;
mod client;
mod gate;
mod limiter;
pub mod log;
pub mod memory;
mod options;
mod preface;
pub mod proxy;
mod rate;
mod sync;

pub use admitted::AdmittedDispatch;
pub use asynch::{AsyncConnectionHandler, AsyncDispatch, AsyncHandlerFactory, Inline};
pub use client::{end_of_stream, ClientError, ClientOptions};
pub use gate::{Entry, Gate, Settled};
pub use limiter::{
    refusal_bytes, AcceptBackoff, ConnectionGuard, ConnectionLimiter, RateLog, Slot, Working,
    SHED_AFTER_SILENCE,
};
pub use options::{ServerOptions, Shutdown};
pub use preface::{
    address_group, Cidr, Preface, PrefaceError, PrefaceStep, ProxyFrom, ProxyFromError,
};
pub use rate::{
    AddressRates, AsyncRateLimited, Buckets, RateLimit, RateLimited, RateLimitedHandler,
};
pub use sync::{
    pump, pump_with, BlockingDispatch, ConnectionHandler, Dispatch, HandlerFactory, Offload,
};

use protocol_core::ServerConnection;
use rand_core::OsRng;

/// A server connection as the transports run it: keys and ids from the OS CSPRNG.
pub type Conn = ServerConnection<OsRng>;
