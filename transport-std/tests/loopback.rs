//! The blocking transport on loopback: several clients at once through the real
//! socket code, and a silent connection that does not delay the others.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test harness: a failure is a panic

use std::io::Cursor;
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use protocol_core::*;
use rand_chacha::rand_core::SeedableRng;
use transport_interface::memory::MemoryApp;
use transport_interface::{ServerOptions, Shutdown};
use transport_std::{run_client, serve, ClientOptions};

fn session(name: &str, size: usize, seed: u64) -> ClientSession<rand_chacha::ChaCha20Rng> {
    ClientSession::new(
        ClientConfig {
            name: FieldString::new(name).unwrap(),
            file_name: FieldString::new("f.bin").unwrap(),
            file_size: size as u64,
            identity: None,
            registration_key: None,
            dialect: Dialect {
                packet_size: 4096,
                ..Dialect::default()
            },
        },
        rand_chacha::ChaCha20Rng::seed_from_u64(seed),
    )
    .unwrap()
}

#[test]
fn clients_upload_at_once_while_one_connection_stays_silent() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let app = MemoryApp::new();
    let shutdown = Shutdown::new();
    let server = {
        let (app, shutdown) = (app.clone(), shutdown.clone());
        std::thread::spawn(move || {
            serve(listener, ServerOptions::default(), Arc::new(app), shutdown)
        })
    };
    // A connection that says nothing must not hold anyone up.
    let _silent = TcpStream::connect(addr).unwrap();
    let clients: Vec<_> = (0..8)
        .map(|i| {
            std::thread::spawn(move || {
                let data: Vec<u8> = (0..100_000 + i * 777).map(|j| (j * 31 + i) as u8).collect();
                let mut s = session(&format!("client {i}"), data.len(), i as u64);
                let mut stream = TcpStream::connect(addr).unwrap();
                let options = ClientOptions {
                    response_timeout: Duration::from_secs(20),
                    ..ClientOptions::default()
                };
                let outcome = run_client(
                    &mut s,
                    &mut stream,
                    &mut Cursor::new(data.clone()),
                    &options,
                    |_| {},
                )
                .unwrap();
                (outcome, s.client_id(), data)
            })
        })
        .collect();
    for c in clients {
        let (outcome, id, data) = c.join().unwrap();
        assert_eq!(outcome, Outcome::Verified);
        let files = app.files();
        let (stored, verified) = &files[&(id, b"f.bin".to_vec())];
        assert!(verified);
        assert_eq!(stored, &data);
    }
    shutdown.trigger();
    server.join().unwrap().unwrap();
}
