//! The futures-io transport on smol 2: uploads through the real socket code with a
//! synchronous and an asynchronous application, and every way an application or a
//! peer could stall a connection ending at its deadline instead.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test harness: a failure is a panic

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_io::Async;
use futures_lite::future;
use futures_lite::io::AsyncReadExt;
use protocol_core::{ClientFailure, Limits, Outcome, PeerError, ServerConfig, ServerEvent};
use transport_futures::{serve, serve_blocking, ClientError};
use transport_interface::memory::MemoryApp;
use transport_interface::{
    AsyncConnectionHandler, AsyncHandlerFactory, Conn, ConnectionHandler, HandlerFactory,
    ServerOptions,
};

fn spawn(task: transport_futures::Task) {
    smol::spawn(task).detach();
}

/// Starts a server with a sync application; returns its address and the stopper.
fn start_blocking<F: HandlerFactory>(
    factory: Arc<F>,
    options: ServerOptions,
) -> (
    SocketAddr,
    async_channel::Sender<()>,
    smol::Task<std::io::Result<()>>,
) {
    let (listener, addr) = common::listener();
    let (stop_tx, stop_rx) = async_channel::bounded::<()>(1);
    let server = smol::spawn(serve_blocking(
        listener,
        options,
        factory,
        async move {
            let _ = stop_rx.recv().await;
        },
        spawn,
    ));
    (addr, stop_tx, server)
}

fn start_async<F: AsyncHandlerFactory>(
    factory: Arc<F>,
    options: ServerOptions,
) -> (
    SocketAddr,
    async_channel::Sender<()>,
    smol::Task<std::io::Result<()>>,
) {
    let (listener, addr) = common::listener();
    let (stop_tx, stop_rx) = async_channel::bounded::<()>(1);
    let server = smol::spawn(serve(
        listener,
        options,
        factory,
        async move {
            let _ = stop_rx.recv().await;
        },
        spawn,
    ));
    (addr, stop_tx, server)
}

fn short_answers() -> ServerOptions {
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

#[test]
fn uploads_verify_with_a_synchronous_application_while_one_connection_stays_silent() {
    smol::block_on(async {
        let app = common::app();
        let (addr, stop, server) = start_blocking(app.clone(), ServerOptions::default());
        let _silent = async_io::Async::<std::net::TcpStream>::connect(addr)
            .await
            .unwrap();
        let clients: Vec<_> = (0..6)
            .map(|i| smol::spawn(common::upload(addr, i, Duration::from_secs(30))))
            .collect();
        for c in clients {
            let (outcome, id, data) = c.await.unwrap();
            assert_eq!(outcome, Outcome::Verified);
            common::check_stored(&app, id, &data);
        }
        stop.close();
        server.await.unwrap();
    });
}

/// Answers every question after awaiting a timer, as a handler awaiting a network
/// database would.
#[derive(Clone)]
struct Remote(MemoryApp);

impl AsyncConnectionHandler for Remote {
    async fn on_event(&mut self, conn: &mut Conn, event: ServerEvent) {
        if event.is_question() {
            async_io::Timer::after(Duration::from_millis(2)).await;
        }
        self.0.on_event(conn, event)
    }
}

impl AsyncHandlerFactory for Remote {
    type Handler = Remote;
    fn connect(&self, _peer: SocketAddr) -> Remote {
        self.clone()
    }
}

#[test]
fn uploads_verify_with_an_application_that_awaits_before_answering() {
    smol::block_on(async {
        let app = MemoryApp::new();
        let (addr, stop, server) =
            start_async(Arc::new(Remote(app.clone())), ServerOptions::default());
        let clients: Vec<_> = (0..4)
            .map(|i| smol::spawn(common::upload(addr, i, Duration::from_secs(30))))
            .collect();
        for c in clients {
            let (outcome, id, data) = c.await.unwrap();
            assert_eq!(outcome, Outcome::Verified);
            common::check_stored(&app, id, &data);
        }
        stop.close();
        server.await.unwrap();
    });
}

/// An application that makes one mistake, and otherwise behaves.
#[derive(Clone, Copy)]
enum Mistake {
    /// Returns from `Register` without answering (the ticket is dropped).
    NoAnswer,
    /// Never reports `data_written`.
    NoDataWritten,
    /// (async only) never returns from `Register`.
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
            future::pending::<()>().await;
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

/// The client's run ends (with the server's 1607 and close), however the
/// application erred: nothing waits for the idle timeout or forever.
fn assert_ends_with_the_server_closing(
    result: Result<(Outcome, protocol_core::ClientId, Vec<u8>), ClientError>,
) {
    match result {
        Err(ClientError::Failure(
            ClientFailure::Peer(PeerError::UnexpectedEof) | ClientFailure::ServerRefused { .. },
        ))
        | Err(ClientError::Io(_)) => {}
        other => panic!("{:?}", other.map(|r| r.0)),
    }
}

#[test]
fn a_question_left_unanswered_ends_the_connection_at_its_deadline() {
    smol::block_on(async {
        for mistake in [Mistake::NoAnswer, Mistake::NoDataWritten] {
            let app = Faulty(MemoryApp::new(), mistake);
            let (addr, stop, server) = start_blocking(Arc::new(app), short_answers());
            // The client's own timeout is far beyond the server's answer deadline.
            let r = common::upload(addr, 1, Duration::from_secs(600)).await;
            assert_ends_with_the_server_closing(r);
            stop.close();
            server.await.unwrap();
        }
    });
}

/// A file smaller than `max_unwritten` never pauses reading: the connection reaches
/// the last packet with bytes the application never stored, and must not send their
/// checksum (1603) as though it had.
#[test]
fn no_checksum_is_sent_for_bytes_the_application_never_stored() {
    smol::block_on(async {
        let app = Faulty(MemoryApp::new(), Mistake::NoDataWritten);
        let (addr, stop, server) = start_blocking(Arc::new(app), short_answers());
        let data = vec![5u8; 1_000];
        let mut s = common::session(1, data.len());
        let stream = Async::<std::net::TcpStream>::connect(addr).await.unwrap();
        let options = transport_futures::ClientOptions {
            response_timeout: Duration::from_secs(600),
            ..transport_futures::ClientOptions::default()
        };
        let r = transport_futures::run_client(
            &mut s,
            stream,
            &mut futures_lite::io::Cursor::new(data),
            &options,
            |_| {},
        )
        .await;
        match r {
            Err(ClientError::Failure(ClientFailure::ServerRefused { .. })) => {}
            other => panic!("{:?}", other.map(|_| ())),
        }
        stop.close();
        server.await.unwrap();
    });
}

#[test]
fn an_async_handler_that_never_returns_is_cut_off_at_the_deadline() {
    smol::block_on(async {
        for mistake in [Mistake::NoAnswer, Mistake::Hang] {
            let app = Faulty(MemoryApp::new(), mistake);
            let (addr, stop, server) = start_async(Arc::new(app), short_answers());
            let r = common::upload(addr, 1, Duration::from_secs(600)).await;
            assert_ends_with_the_server_closing(r);
            stop.close();
            server.await.unwrap();
        }
    });
}

#[test]
fn a_silent_server_fails_the_client_at_its_answer_deadline() {
    smol::block_on(async {
        let (listener, addr) = common::listener();
        let accept = smol::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            future::pending::<()>().await;
            drop(stream);
        });
        let r = common::upload(addr, 1, Duration::from_millis(200)).await;
        match r {
            Err(ClientError::Failure(ClientFailure::Peer(PeerError::Timeout(_)))) => {}
            other => panic!("{:?}", other.map(|r| r.0)),
        }
        drop(accept);
    });
}

/// Sends a 825 on a new connection and returns the code of the first answer
/// (or `None` if the connection closed without one).
async fn register_code(addr: SocketAddr) -> (Async<std::net::TcpStream>, Option<u16>) {
    use futures_lite::io::AsyncWriteExt;
    let mut s = Async::<std::net::TcpStream>::connect(addr).await.unwrap();
    let mut req = bytes::BytesMut::new();
    protocol_core::wire::encode_request(
        &mut req,
        protocol_core::ClientId::ZERO,
        &protocol_core::Request::Register {
            name: protocol_core::FieldString::new("probe").unwrap(),
        },
        Default::default(),
    );
    let _ = s.write_all(&req).await;
    let mut head = [0u8; 7];
    let code = match s.read_exact(&mut head).await {
        Ok(()) => Some(u16::from_le_bytes([head[1], head[2]])),
        Err(_) => None,
    };
    (s, code)
}

#[test]
fn at_the_cap_an_idle_connection_is_shed_and_if_none_is_idle_the_newcomer_gets_1607() {
    smol::block_on(async {
        let options = ServerOptions {
            max_connections: 1,
            ..ServerOptions::default()
        };
        let (addr, stop, server) = start_blocking(common::app(), options);
        let mut idle = Async::<std::net::TcpStream>::connect(addr).await.unwrap();
        let (busy, code) = register_code(addr).await;
        assert_eq!(code, Some(1600), "the newcomer is served");
        let mut buf = [0u8; 8];
        assert_eq!(
            idle.read(&mut buf).await.unwrap(),
            0,
            "the idle one was shed"
        );
        // `busy` has just sent a request: it is not shed, so the next one is refused.
        let (_s, code) = register_code(addr).await;
        assert_eq!(code, Some(1607), "a refused connection is told");
        drop(busy);
        stop.close();
        server.await.unwrap();
    });
}

#[test]
fn shutdown_closes_idle_connections_and_returns() {
    smol::block_on(async {
        let (addr, stop, server) = start_blocking(common::app(), ServerOptions::default());
        let mut idle = async_io::Async::<std::net::TcpStream>::connect(addr)
            .await
            .unwrap();
        // An upload first, so that the idle connection above has been accepted.
        let (outcome, ..) = common::upload(addr, 2, Duration::from_secs(30))
            .await
            .unwrap();
        assert_eq!(outcome, Outcome::Verified);
        stop.close();
        server.await.unwrap();
        let mut buf = [0u8; 1];
        assert_eq!(
            idle.read(&mut buf).await.unwrap(),
            0,
            "closed by the server"
        );
    });
}
