//! Issue case 4: the client's timeout covers every wait, a blocked write included.
//! A server that took the key exchange and then stopped reading left the client at
//! "sent 5242880 of 52428799" for ten minutes with a 30-second timeout.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test harness: a failure is a panic

#[path = "peers/stalled.rs"]
mod stalled;

use std::io::Cursor;
use std::net::TcpStream;
use std::sync::mpsc::channel;
use std::time::Duration;

use protocol_core::*;
use rand_chacha::rand_core::SeedableRng;
use transport_std::{run_client, ClientError, ClientOptions};

#[test]
fn a_server_that_stops_reading_times_the_client_out() {
    let (addr, keep_open) = stalled::start();
    let size = 50 << 20;
    let (done, result) = channel();
    std::thread::spawn(move || {
        let mut session = ClientSession::new(
            ClientConfig {
                name: FieldString::new("stalled").unwrap(),
                file_name: FieldString::new("big.bin").unwrap(),
                file_size: size as u64,
                identity: None,
                registration_key: None,
                dialect: Dialect::default(),
            },
            rand_chacha::ChaCha20Rng::seed_from_u64(2),
        )
        .unwrap();
        let mut stream = TcpStream::connect(addr).unwrap();
        let mut file = Cursor::new(vec![7u8; size]);
        let options = ClientOptions {
            response_timeout: Duration::from_secs(1),
            ..ClientOptions::default()
        };
        let r = run_client(&mut session, &mut stream, &mut file, &options, |_| {});
        let _ = done.send(r.map_err(|e| e.to_string()).err());
    });
    // Not a timing assertion: a guard so that a client stuck for good fails the
    // test instead of hanging it.
    let err = result
        .recv_timeout(Duration::from_secs(120))
        .expect("the client is stuck writing to a server that stopped reading");
    let expected = ClientError::Timeout(Duration::from_secs(1)).to_string();
    assert_eq!(err, Some(expected));
    drop(keep_open);
}
