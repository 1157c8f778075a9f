//! An application that forgets to answer a question, or to report `data_written`,
//! does not stall a connection of the blocking transport: it ends at the answer
//! deadline, long before the client's own timeout.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test harness: a failure is a panic

use std::io::Cursor;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use protocol_core::*;
use rand_chacha::rand_core::SeedableRng;
use transport_interface::memory::MemoryApp;
use transport_interface::{Conn, ConnectionHandler, HandlerFactory, ServerOptions, Shutdown};
use transport_std::{run_client, serve, ClientError, ClientOptions};

#[derive(Clone, Copy, Debug)]
enum Mistake {
    NoAnswer,
    NoDataWritten,
}

#[derive(Clone)]
struct Faulty(MemoryApp, Mistake);

impl ConnectionHandler for Faulty {
    fn on_event(&mut self, conn: &mut Conn, event: ServerEvent) {
        match (self.1, &event) {
            (Mistake::NoAnswer, ServerEvent::Register { .. }) => {}
            (Mistake::NoDataWritten, ServerEvent::UploadData { .. }) => {}
            _ => self.0.on_event(conn, event),
        }
    }
}

impl HandlerFactory for Faulty {
    type Handler = Faulty;
    fn connect(&self, _peer: SocketAddr) -> Faulty {
        self.clone()
    }
}

#[test]
fn a_forgetful_application_ends_the_connection_at_the_answer_deadline() {
    // A file smaller than `max_unwritten` never pauses reading: the connection
    // reaches the last packet with bytes the application never stored, and must
    // not send their checksum (1603) as though it had.
    for (mistake, size) in [
        (Mistake::NoAnswer, 200_000),
        (Mistake::NoDataWritten, 200_000),
        (Mistake::NoDataWritten, 1_000),
    ] {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = Shutdown::new();
        let options = ServerOptions {
            config: ServerConfig {
                limits: Limits {
                    answer_timeout: Duration::from_millis(300),
                    max_unwritten: 16 * 1024,
                    ..Limits::default()
                },
                ..ServerConfig::default()
            },
            ..ServerOptions::default()
        };
        let app = Arc::new(Faulty(MemoryApp::new(), mistake));
        let server = {
            let shutdown = shutdown.clone();
            std::thread::spawn(move || serve(listener, options, app, shutdown))
        };
        let data = vec![5u8; size];
        let mut s = ClientSession::new(
            ClientConfig {
                name: FieldString::new("forgotten").unwrap(),
                file_name: FieldString::new("f.bin").unwrap(),
                file_size: data.len() as u64,
                identity: None,
                registration_key: None,
                dialect: Dialect {
                    packet_size: 4096,
                    ..Dialect::default()
                },
            },
            rand_chacha::ChaCha20Rng::seed_from_u64(1),
        )
        .unwrap();
        let mut stream = TcpStream::connect(addr).unwrap();
        let options = ClientOptions {
            response_timeout: Duration::from_secs(600),
            ..ClientOptions::default()
        };
        let r = run_client(
            &mut s,
            &mut stream,
            &mut Cursor::new(data),
            &options,
            |_| {},
        );
        match r {
            Err(ClientError::Failure(_)) | Err(ClientError::Io(_)) => {}
            other => panic!("{mistake:?} ({size} bytes): {other:?}"),
        }
        shutdown.trigger();
        server.join().unwrap().unwrap();
    }
}
