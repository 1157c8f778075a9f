//! The smallest server on tokio: files kept in memory; Ctrl-C stops it gracefully.
//!
//! `cargo run -p transport-async --example tokio_server -- 127.0.0.1:1256`
#![allow(clippy::unwrap_used, clippy::expect_used)] // test harness: a failure is a panic

use std::sync::Arc;

use transport_async::runtime::Tokio;
use transport_async::{serve, ServerOptions};
use transport_interface::memory::MemoryApp;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or("127.0.0.1:1256".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on {}", listener.local_addr()?);
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    // A synchronous application runs on the blocking pool; an async one
    // (`AsyncHandlerFactory`) goes to `serve_async` and is polled on the connection's task.
    serve(
        Tokio,
        listener,
        ServerOptions::default(),
        Arc::new(MemoryApp::new()),
        ctrl_c,
    )
    .await
}
