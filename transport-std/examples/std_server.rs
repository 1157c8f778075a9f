//! The smallest server on the blocking transport: files kept in memory.
//!
//! `cargo run -p transport-std --example std_server -- 127.0.0.1:1256`
#![allow(clippy::unwrap_used, clippy::expect_used)] // test harness: a failure is a panic

use std::net::TcpListener;
use std::sync::Arc;

use transport_interface::memory::MemoryApp;
use transport_interface::{ServerOptions, Shutdown};
use transport_std::serve;

fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or("127.0.0.1:1256".into());
    let listener = TcpListener::bind(&addr)?;
    println!("listening on {}", listener.local_addr()?);
    // `Shutdown::trigger` from another thread (a signal handler) stops it gracefully.
    serve(
        listener,
        ServerOptions::default(),
        Arc::new(MemoryApp::new()),
        Shutdown::new(),
    )
}
