//! One client against one server connection in memory: the helpers the server
//! tests share (tests/server.rs, tests/server_limits.rs).

// Tests are the caller: they own the clock that the core is handed.
#![allow(clippy::disallowed_methods)]

use std::time::Instant;

use bytes::BytesMut;
use protocol_core::crypto::PrivateKey;
use protocol_core::*;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

use super::mem::MemStore;

pub fn key() -> PrivateKey {
    PrivateKey::from_base64(&super::rsa_field("private_pkcs8_b64")).unwrap()
}

pub fn client(
    dialect: Dialect,
    file: &[u8],
    identity: Option<Identity>,
) -> ClientSession<ChaCha20Rng> {
    ClientSession::new(
        ClientConfig {
            name: FieldString::new("variant tester").unwrap(),
            file_name: FieldString::new("data.bin").unwrap(),
            file_size: file.len() as u64,
            identity,
            registration_key: Some(key()),
            dialect,
        },
        ChaCha20Rng::seed_from_u64(9),
    )
    .unwrap()
}

/// Runs a client against one server connection until it finishes.
pub fn exchange(
    dialect: Dialect,
    server_dialect: ServerDialect,
    file: &[u8],
    store: &mut MemStore,
) -> (Vec<ClientEvent>, Vec<u8>) {
    let now = Instant::now();
    let mut c = client(dialect, file, None);
    let mut s = ServerConnection::new(
        ServerConfig {
            dialect: server_dialect,
            ..ServerConfig::default()
        },
        ChaCha20Rng::seed_from_u64(4),
        now,
    );
    let (mut up, mut down, mut wire_down) = (BytesMut::new(), BytesMut::new(), Vec::new());
    let mut events = Vec::new();
    for _ in 0..10_000 {
        while let Some(ev) = c.poll_event() {
            if let ClientEvent::SendFile { .. } = ev {
                for chunk in file.chunks(333) {
                    super::push_all(&mut c, chunk, &mut up);
                }
                c.end_of_file().unwrap();
            }
            events.push(ev);
        }
        if c.is_finished() {
            break;
        }
        c.poll_transmit(&mut up);
        s.handle_input(&mut up, now).unwrap();
        store.serve(&mut s);
        s.poll_transmit(&mut down);
        wire_down.extend_from_slice(&down);
        c.handle_input(&mut down).unwrap();
    }
    assert!(c.is_finished(), "{events:?}");
    (events, wire_down)
}

pub fn stored(store: &MemStore) -> &super::mem::StoredFile {
    store.files.values().next().expect("a stored file")
}
