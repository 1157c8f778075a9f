//! Drives `protocol-core` over [`futures_io`](futures_lite::io) streams
//! (`AsyncRead` + `AsyncWrite`), on any runtime: a task per connection, caps on
//! connections overall and per address, the connection's timers, and a graceful
//! shutdown, as `transport-tokio` does.
//!
//! The runtime is injected, not chosen: tasks are started through a [`Spawn`]
//! (for smol, `|f| smol::spawn(f).detach()`), timers come from `async-io` (which
//! smol and async-std both run on), and synchronous handlers run on the `blocking`
//! crate's thread pool ([`Unblock`]), never on a runtime worker.
//!
//! The application is a `transport-interface` [`AsyncHandlerFactory`] ([`serve`]: its
//! futures may await a database or an object store before answering) or a
//! synchronous [`HandlerFactory`] ([`serve_blocking`]).
//!
//! Tested on smol 2 and on async-std 1.13. async-std is discontinued upstream
//! (RUSTSEC-2025-0052): it is a dev-dependency of one test (`tests/async_std.rs`)
//! only, to show that nothing here is tied to smol; prefer smol for new code.
//!
//! ```no_run
//! use std::sync::Arc;
//! use transport_interface::{memory::MemoryApp, ServerOptions};
//!
//! smol::block_on(async {
//!     let listener = async_io::Async::<std::net::TcpListener>::bind(([127, 0, 0, 1], 1256))?;
//!     let shutdown = async { let _ = smol::Timer::after(std::time::Duration::from_secs(60)).await; };
//!     transport_futures::serve_blocking(listener, ServerOptions::default(), Arc::new(MemoryApp::new()),
//!         shutdown, |f| smol::spawn(f).detach()).await
//! })?;
//! # Ok::<(), std::io::Error>(())
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod client;
mod connection;
mod server;
mod watched;

use std::future::Future;
use std::pin::Pin;

pub use client::run_client;
pub use connection::{drive_connection, drive_connection_from};
pub use server::{serve, serve_blocking};
pub use transport_interface::{
    AsyncConnectionHandler, AsyncHandlerFactory, ClientError, ClientOptions, Conn,
    ConnectionHandler, HandlerFactory, ServerOptions,
};

/// A task to start: what [`Spawn`] is given.
pub type Task = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Starts a task on the embedder's runtime and lets it run on its own (detached).
pub trait Spawn: Send + Sync + 'static {
    /// Starts `task`.
    fn spawn(&self, task: Task);
}

impl<F: Fn(Task) + Send + Sync + 'static> Spawn for F {
    fn spawn(&self, task: Task) {
        self(task)
    }
}

/// Runs synchronous handlers on the `blocking` crate's thread pool.
#[derive(Debug, Clone, Copy, Default)]
pub struct Unblock;

impl transport_interface::Offload for Unblock {
    fn run<T: Send + 'static>(
        f: impl FnOnce() -> T + Send + 'static,
    ) -> impl Future<Output = T> + Send {
        blocking::unblock(f)
    }
}
