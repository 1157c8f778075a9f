//! The futures-io transport on async-std 1.13. async-std is discontinued upstream
//! (RUSTSEC-2025-0052); this is its only use in the repository: to show that the
//! transport is not tied to smol.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test harness: a failure is a panic

mod common;

use std::time::Duration;

use protocol_core::Outcome;
use transport_interface::ServerOptions;

#[test]
fn uploads_verify_on_async_std() {
    async_std::task::block_on(async {
        let (listener, addr) = common::listener();
        let app = common::app();
        let (stop_tx, stop_rx) = async_channel::bounded::<()>(1);
        let server = async_std::task::spawn(transport_futures::serve_blocking(
            listener,
            ServerOptions::default(),
            app.clone(),
            async move {
                let _ = stop_rx.recv().await;
            },
            |task| {
                async_std::task::spawn(task);
            },
        ));
        let mut clients = Vec::new();
        for i in 0..4 {
            clients.push(async_std::task::spawn(common::upload(
                addr,
                i,
                Duration::from_secs(30),
            )));
        }
        for c in clients {
            let (outcome, id, data) = c.await.unwrap();
            assert_eq!(outcome, Outcome::Verified);
            common::check_stored(&app, id, &data);
        }
        stop_tx.close();
        server.await.unwrap();
    });
}
