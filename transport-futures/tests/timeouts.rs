//! The futures-io client's timeout covers a blocked write as well as each answer, as
//! for the blocking and tokio clients: a server whose handler died with the socket
//! open (it stops reading, never answers, never closes) times the client out.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test harness: a failure is a panic

#[path = "../../transport-std/tests/peers/stalled.rs"]
mod stalled;

use std::time::Duration;

use futures_lite::future;
use futures_lite::io::Cursor;
use protocol_core::*;
use rand_chacha::rand_core::SeedableRng;
use transport_futures::{run_client, ClientError, ClientOptions};

#[test]
fn a_server_that_stops_reading_times_the_client_out() {
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
    let options = ClientOptions {
        response_timeout: Duration::from_secs(1),
        ..ClientOptions::default()
    };
    let r = smol::block_on(async {
        let stream = smol::net::TcpStream::connect(addr).await.unwrap();
        let mut file = Cursor::new(vec![7u8; size]);
        // Not a timing assertion: a guard so that a stuck client fails the test.
        future::or(
            async { Some(run_client(&mut session, stream, &mut file, &options, |_| {}).await) },
            async {
                smol::Timer::after(Duration::from_secs(120)).await;
                None
            },
        )
        .await
    })
    .expect("the client is stuck writing to a server that stopped reading");
    assert!(
        matches!(r, Err(ClientError::Timeout(d)) if d == Duration::from_secs(1)),
        "{r:?}"
    );
    drop(keep_open);
}
