//! Drives `protocol-core` on an async runtime: a task per connection, caps on
//! connections overall and per address, the connection's timers, and a graceful
//! shutdown; and the client.
//!
//! The driver is written once against [`Runtime`] (timers, tasks, blocking work,
//! accepting, a TCP [`Stream`](runtime::Stream)), with two adapters, each behind a
//! feature of the same name:
//!
//! - [`Tokio`](runtime::Tokio): tokio's tasks, timers and blocking pool.
//! - [`Smol`](runtime::Smol): async-io's reactor and timers, the `blocking` pool, and
//!   tasks on smol's executor or, through [`Smol::with_spawner`](runtime::Smol::with_spawner),
//!   any executor that runs on async-io. async-std is one: it is tested (a
//!   dev-dependency of the tests only: it is discontinued upstream,
//!   RUSTSEC-2025-0052; prefer smol for new code).
//!
//! The application is `transport-interface`'s: a synchronous [`HandlerFactory`]
//! ([`serve`]), whose handlers run on the runtime's blocking pool, never on a thread
//! that runs tasks, or an [`AsyncHandlerFactory`] ([`serve_async`]), whose futures
//! may await a database or an object store before answering and are polled on the
//! connection's task. Nothing here depends on `transport-std`.
//!
//! ```no_run
//! # #[cfg(feature = "tokio")]
//! # async fn run() -> std::io::Result<()> {
//! use std::sync::Arc;
//! use transport_async::runtime::Tokio;
//! use transport_interface::{memory::MemoryApp, ServerOptions};
//!
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:1256").await?;
//! let shutdown = async { let _ = tokio::signal::ctrl_c().await; };
//! transport_async::serve(Tokio, listener, ServerOptions::default(),
//!     Arc::new(MemoryApp::new()), shutdown).await
//! # }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod client;
mod connection;
pub mod runtime;
mod server;
mod settle;
mod watched;

pub use client::{run_client, Source};
pub use runtime::Runtime;
pub use server::{serve, serve_async};
pub use transport_interface::{
    AsyncConnectionHandler, AsyncHandlerFactory, ClientError, ClientOptions, Conn,
    ConnectionHandler, HandlerFactory, ServerOptions,
};
