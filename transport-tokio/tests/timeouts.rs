//! The tokio client's timeout covers a blocked write as well as each answer (issue
//! case 4, as for the blocking client).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test harness: a failure is a panic

#[path = "../../transport-std/tests/peers/stalled.rs"]
mod stalled;

use std::io::Cursor;
use std::time::Duration;

use protocol_core::*;
use rand_chacha::rand_core::SeedableRng;
use transport_tokio::{run_client, ClientError, ClientOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_stops_reading_times_the_client_out() {
    let (addr, keep_open) = stalled::start();
    let size = 50 << 20;
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
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut file = Cursor::new(vec![7u8; size]);
    let options = ClientOptions {
        response_timeout: Duration::from_secs(1),
        ..ClientOptions::default()
    };
    // Not a timing assertion: a guard so that a stuck client fails the test.
    let r = tokio::time::timeout(
        Duration::from_secs(120),
        run_client(&mut session, stream, &mut file, &options, |_| {}),
    )
    .await
    .expect("the client is stuck writing to a server that stopped reading");
    assert!(
        matches!(r, Err(ClientError::Timeout(d)) if d == Duration::from_secs(1)),
        "{r:?}"
    );
    drop(keep_open);
}
