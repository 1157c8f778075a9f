//! What the runtime tests share: a client run and an in-memory server, whatever
//! runtime drives them.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use async_io::Async;
use futures_lite::io::Cursor;
use protocol_core::*;
use rand_chacha::rand_core::SeedableRng;
use transport_futures::{run_client, ClientError, ClientOptions};
use transport_interface::memory::MemoryApp;

pub fn listener() -> (Async<TcpListener>, SocketAddr) {
    let l = Async::<TcpListener>::bind(([127, 0, 0, 1], 0)).unwrap();
    let addr = l.get_ref().local_addr().unwrap();
    (l, addr)
}

pub fn file(i: usize) -> Vec<u8> {
    (0..50_000 + i * 777).map(|j| (j * 31 + i) as u8).collect()
}

pub fn session(i: usize, size: usize) -> ClientSession<rand_chacha::ChaCha20Rng> {
    ClientSession::new(
        ClientConfig {
            name: FieldString::new(format!("client {i}")).unwrap(),
            file_name: FieldString::new("f.bin").unwrap(),
            file_size: size as u64,
            identity: None,
            registration_key: None,
            dialect: Dialect {
                packet_size: 4096,
                ..Dialect::default()
            },
        },
        rand_chacha::ChaCha20Rng::seed_from_u64(i as u64),
    )
    .unwrap()
}

/// Uploads client `i`'s file to `addr`; returns its id and the file.
pub async fn upload(
    addr: SocketAddr,
    i: usize,
    timeout: Duration,
) -> Result<(Outcome, ClientId, Vec<u8>), ClientError> {
    let data = file(i);
    let mut s = session(i, data.len());
    let stream = Async::<std::net::TcpStream>::connect(addr).await?;
    let options = ClientOptions {
        response_timeout: timeout,
        ..ClientOptions::default()
    };
    let outcome = run_client(
        &mut s,
        stream,
        &mut Cursor::new(data.clone()),
        &options,
        |_| {},
    )
    .await?;
    Ok((outcome, s.client_id(), data))
}

pub fn check_stored(app: &MemoryApp, id: ClientId, data: &[u8]) {
    let files = app.files();
    let (stored, verified) = &files[&(id, b"f.bin".to_vec())];
    assert!(verified);
    assert_eq!(stored, data);
}

pub fn app() -> Arc<MemoryApp> {
    Arc::new(MemoryApp::new())
}

/// Connects and sends a registration: whether the server answered it (false: the
/// connection was closed without an answer).
pub async fn upload_probe(addr: SocketAddr) -> (Vec<u8>, bool) {
    use futures_lite::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = Async::<std::net::TcpStream>::connect(addr).await.unwrap();
    let mut req = bytes::BytesMut::new();
    protocol_core::wire::encode_request(
        &mut req,
        ClientId::ZERO,
        &Request::Register {
            name: FieldString::new("probe").unwrap(),
        },
        Default::default(),
    );
    let _ = s.write_all(&req).await;
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got).await;
    let answered = !got.is_empty();
    (got, answered)
}
