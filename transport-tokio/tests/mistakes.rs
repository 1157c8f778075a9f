//! An application that forgets to answer a question or to report `data_written`,
//! or whose async handler never returns, does not stall a connection of the tokio
//! transport: it ends at the answer deadline, long before the client's timeout.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test harness: a failure is a panic

use std::io::Cursor;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use protocol_core::*;
use rand_chacha::rand_core::SeedableRng;
use transport_interface::memory::MemoryApp;
use transport_tokio::{
    run_client, serve, serve_async, AsyncConnectionHandler, AsyncHandlerFactory, ClientError,
    ClientOptions, Conn, ConnectionHandler, HandlerFactory, ServerOptions,
};

#[derive(Clone, Copy, Debug)]
enum Mistake {
    NoAnswer,
    NoDataWritten,
    Hang,
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

impl AsyncConnectionHandler for Faulty {
    async fn on_event(&mut self, conn: &mut Conn, event: ServerEvent) {
        if let (Mistake::Hang, ServerEvent::Register { .. }) = (self.1, &event) {
            std::future::pending::<()>().await;
        }
        ConnectionHandler::on_event(self, conn, event)
    }
}

impl AsyncHandlerFactory for Faulty {
    type Handler = Faulty;
    fn connect(&self, _peer: SocketAddr) -> Faulty {
        self.clone()
    }
}

fn options() -> ServerOptions {
    ServerOptions {
        config: ServerConfig {
            limits: Limits {
                answer_timeout: Duration::from_millis(300),
                max_unwritten: 16 * 1024,
                ..Limits::default()
            },
            ..ServerConfig::default()
        },
        ..ServerOptions::default()
    }
}

async fn upload(addr: SocketAddr, size: usize) -> Result<Outcome, ClientError> {
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
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let options = ClientOptions {
        response_timeout: Duration::from_secs(600),
        ..ClientOptions::default()
    };
    run_client(&mut s, stream, &mut Cursor::new(data), &options, |_| {}).await
}

fn ended(mistake: Mistake, r: Result<Outcome, ClientError>) {
    match r {
        Err(ClientError::Failure(_)) | Err(ClientError::Io(_)) => {}
        other => panic!("{mistake:?}: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forgetful_application_ends_the_connection_at_the_answer_deadline() {
    // A file smaller than `max_unwritten` never pauses reading: the connection
    // reaches the last packet with bytes the application never stored, and must
    // not send their checksum (1603) as though it had.
    for (mistake, size) in [
        (Mistake::NoAnswer, 200_000),
        (Mistake::NoDataWritten, 200_000),
        (Mistake::NoDataWritten, 1_000),
    ] {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let app = Arc::new(Faulty(MemoryApp::new(), mistake));
        let server = tokio::spawn(serve(listener, options(), app, async {
            let _ = rx.await;
        }));
        ended(mistake, upload(addr, size).await);
        let _ = tx.send(());
        server.await.unwrap().unwrap();
    }
}

#[tokio::test(flavor = "current_thread")]
async fn an_async_handler_that_never_returns_is_cut_off_at_the_deadline() {
    for mistake in [Mistake::NoAnswer, Mistake::Hang] {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let app = Arc::new(Faulty(MemoryApp::new(), mistake));
        let server = tokio::spawn(serve_async(listener, options(), app, async {
            let _ = rx.await;
        }));
        ended(mistake, upload(addr, 200_000).await);
        let _ = tx.send(());
        server.await.unwrap().unwrap();
    }
}
