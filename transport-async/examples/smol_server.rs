//! The smallest server on smol (futures-io): files kept in memory.
//!
//! `cargo run -p transport-async --example smol_server -- 127.0.0.1:1256`
#![allow(clippy::unwrap_used, clippy::expect_used)] // test harness: a failure is a panic

use std::net::TcpListener;
use std::sync::Arc;

use async_io::Async;
use transport_interface::memory::MemoryApp;
use transport_interface::ServerOptions;

fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or("127.0.0.1:1256".into());
    smol::block_on(async {
        let listener = Async::<TcpListener>::bind(
            addr.parse::<std::net::SocketAddr>()
                .map_err(std::io::Error::other)?,
        )?;
        println!("listening on {}", listener.get_ref().local_addr()?);
        // Runs until this future completes: a signal, a channel closing, ...
        let shutdown = std::future::pending::<()>();
        // A synchronous application runs on the `blocking` pool; an async one
        // (`AsyncHandlerFactory`) goes to `transport_async::serve_async`.
        transport_async::serve(
            transport_async::runtime::Smol::new(),
            listener,
            ServerOptions::default(),
            Arc::new(MemoryApp::new()),
            shutdown,
        )
        .await
    })
}
