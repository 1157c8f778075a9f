//! A general error (1607) that reaches the client in the middle of a file packet: the
//! client finishes that packet before sending the file again, so the server (which
//! skips the rest of a failed upload) reads the new upload from a request boundary.
#![allow(clippy::unwrap_used, clippy::expect_used)]
// test harness: a failure is a panic
// A test may read the clock: the sessions are handed `now`, never read it.
#![allow(clippy::disallowed_methods)]

mod common;

use std::time::Instant;

use bytes::BytesMut;
use common::mem::MemStore;
use protocol_core::*;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

const FILE: usize = 100;

/// Client bytes to the server, the store's answers, the server's bytes back.
fn exchange(
    client: &mut ClientSession<ChaCha20Rng>,
    server: &mut ServerConnection<ChaCha20Rng>,
    store: &mut MemStore,
    fail_data: &mut bool,
    wire: &mut BytesMut,
    now: Instant,
) {
    // `wire` keeps what the server has not read yet: a part of a request.
    client.poll_transmit(wire);
    server
        .handle_input(wire, now)
        .expect("the server reads whole requests");
    while let Some(ev) = server.poll_event() {
        match ev {
            ServerEvent::UploadData { .. } if *fail_data => {
                // The disk is full: the server fails the upload (1607) at once.
                *fail_data = false;
                server.fail_upload().unwrap();
            }
            ev => store.handle(server, ev),
        }
    }
    let mut back = BytesMut::new();
    server.poll_transmit(&mut back);
    client.handle_input(&mut back).unwrap();
}

#[test]
fn a_general_error_in_the_middle_of_a_packet_restarts_the_file_on_a_request_boundary() {
    let now = Instant::now();
    let dialect = Dialect {
        packet_size: 32,
        ..Dialect::default()
    };
    let mut client = ClientSession::new(
        ClientConfig {
            name: FieldString::new("alice").unwrap(),
            file_name: FieldString::new("f.bin").unwrap(),
            file_size: FILE as u64,
            identity: None,
            registration_key: None,
            dialect,
        },
        ChaCha20Rng::seed_from_u64(1),
    )
    .unwrap();
    let mut server =
        ServerConnection::new(ServerConfig::default(), ChaCha20Rng::seed_from_u64(2), now);
    let mut store = MemStore::default();
    let mut fail_data = false;
    let mut wire = BytesMut::new();
    let data: Vec<u8> = (0..FILE as u8).collect();
    let mut sends = 0;
    while !client.wants_file_data() {
        exchange(
            &mut client,
            &mut server,
            &mut store,
            &mut fail_data,
            &mut wire,
            now,
        );
    }
    while client.poll_event().is_some() {}
    // The first packet whole, the second half written (in a packet of 32 bytes of
    // ciphertext the encryptor holds back what does not fill a block); the server
    // fails on the first packet's data.
    client.push_file_data(&data[..40]).unwrap();
    client.push_file_data(&data[40..50]).unwrap();
    fail_data = true;
    exchange(
        &mut client,
        &mut server,
        &mut store,
        &mut fail_data,
        &mut wire,
        now,
    );
    while let Some(ev) = client.poll_event() {
        if matches!(ev, ClientEvent::SendFile { .. }) {
            sends += 1;
        }
    }
    assert_eq!(sends, 1, "the client sends the file again");
    // The whole file this time, then the verdict.
    client.push_file_data(&data).unwrap();
    client.end_of_file().unwrap();
    for _ in 0..4 {
        exchange(
            &mut client,
            &mut server,
            &mut store,
            &mut fail_data,
            &mut wire,
            now,
        );
    }
    assert!(server.error().is_none(), "{:?}", server.error());
    assert!(client.is_finished());
    let stored: Vec<_> = store.files.values().collect();
    assert_eq!(stored.len(), 1);
    assert!(stored[0].verified);
    assert_eq!(stored[0].data, data);
}
