//! The tokio transport on loopback: several clients at once through the real
//! socket code, and a silent connection that does not delay the others.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test harness: a failure is a panic

use std::io::Cursor;
use std::sync::Arc;
use std::time::Duration;

use protocol_core::*;
use rand_chacha::rand_core::SeedableRng;
use transport_interface::memory::MemoryApp;
use transport_tokio::{run_client, serve, ClientOptions, ServerOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_upload_at_once_while_one_connection_stays_silent() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = MemoryApp::new();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(
        listener,
        ServerOptions::default(),
        Arc::new(app.clone()),
        async {
            let _ = stop_rx.await;
        },
    ));
    let _silent = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..8usize {
        tasks.push(tokio::spawn(async move {
            let data: Vec<u8> = (0..100_000 + i * 777).map(|j| (j * 31 + i) as u8).collect();
            let mut s = ClientSession::new(
                ClientConfig {
                    name: FieldString::new(format!("client {i}")).unwrap(),
                    file_name: FieldString::new("f.bin").unwrap(),
                    file_size: data.len() as u64,
                    identity: None,
                    registration_key: None,
                    dialect: Dialect {
                        packet_size: 4096,
                        ..Dialect::default()
                    },
                },
                rand_chacha::ChaCha20Rng::seed_from_u64(i as u64),
            )
            .unwrap();
            let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            let options = ClientOptions {
                response_timeout: Duration::from_secs(20),
                ..ClientOptions::default()
            };
            let outcome = run_client(
                &mut s,
                stream,
                &mut Cursor::new(data.clone()),
                &options,
                |_| {},
            )
            .await
            .unwrap();
            (outcome, s.client_id(), data)
        }));
    }
    for t in tasks {
        let (outcome, id, data) = t.await.unwrap();
        assert_eq!(outcome, Outcome::Verified);
        let files = app.files();
        let (stored, verified) = &files[&(id, b"f.bin".to_vec())];
        assert!(verified);
        assert_eq!(stored, &data);
    }
    let _ = stop_tx.send(());
    server.await.unwrap().unwrap();
}
