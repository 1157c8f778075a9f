//! A scripted server whose handler "died" with the socket open: it registers the
//! client and hands it a key, then never reads again, never answers, never closes.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc::{channel, Sender};

use bytes::BytesMut;
use protocol_core::crypto::{AesKey, AesKeySize, PublicKey};
use protocol_core::*;
use rand_chacha::rand_core::SeedableRng;

fn read_request(socket: &mut TcpStream, buf: &mut BytesMut) -> Request {
    loop {
        if let Some(frame) = wire::decode_request(buf, &Limits::default()).unwrap() {
            return frame.request;
        }
        let mut chunk = [0u8; 4096];
        let n = socket.read(&mut chunk).unwrap();
        assert!(n > 0, "the client closed before its key exchange");
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn answer(socket: &mut TcpStream, response: Response) {
    let mut out = BytesMut::new();
    wire::encode_response(&mut out, &response, Default::default());
    socket.write_all(&out).unwrap();
}

/// Starts the server; the socket stays open until the returned sender is dropped.
pub fn start() -> (SocketAddr, Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (keep_open, until) = channel::<()>();
    std::thread::spawn(move || {
        let (mut socket, _) = listener.accept().unwrap();
        let mut buf = BytesMut::new();
        let client_id = ClientId([9; 16]);
        assert!(matches!(
            read_request(&mut socket, &mut buf),
            Request::Register { .. }
        ));
        answer(&mut socket, Response::Registered { client_id });
        let Request::SendPublicKey { public_key, .. } = read_request(&mut socket, &mut buf) else {
            panic!("826 expected");
        };
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
        let key = AesKey::generate(AesKeySize::Aes256, &mut rng);
        let encrypted = PublicKey::from_field(&public_key)
            .unwrap()
            .encrypt_aes_key(&mut rng, &key)
            .unwrap();
        answer(
            &mut socket,
            Response::AesKey {
                client_id,
                encrypted_key: encrypted.into(),
            },
        );
        // The handler is gone; the socket is not.
        let _ = until.recv();
        drop(socket);
    });
    (addr, keep_open)
}
