//! The smallest server on smol (futures-io): files kept in memory.
//!
//! `cargo run -p transport-futures --example smol_server -- 127.0.0.1:1256`
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
        // (`AsyncHandlerFactory`) goes to `transport_futures::serve`.
        transport_futures::serve_blocking(
            listener,
            ServerOptions::default(),
            Arc::new(MemoryApp::new()),
            shutdown,
            |task| smol::spawn(task).detach(),
        )
        .await
    })
}
