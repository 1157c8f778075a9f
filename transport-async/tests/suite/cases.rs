//! The cases, written once against [`Driver`]: uploads through the real socket
//! code with a synchronous and an asynchronous application, every way an
//! application or a peer could stall a connection ending at its deadline instead,
//! the connection cap, the shutdown, and the client's timeouts.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use protocol_core::*;
use rand_chacha::rand_core::SeedableRng;
use transport_interface::memory::MemoryApp;
use transport_interface::{
    AsyncConnectionHandler, AsyncHandlerFactory, ClientError, ClientOptions, Conn,
    ConnectionHandler, HandlerFactory, ServerOptions,
};

use crate::drivers::{AsyncDriver, Driver};
use crate::stalled;

/// Client `i`'s file.
fn file(i: usize) -> Vec<u8> {
    (0..100_000 + i * 777).map(|j| (j * 31 + i) as u8).collect()
}

fn session(
    name: &str,
    size: usize,
    seed: u64,
    dialect: Dialect,
) -> ClientSession<rand_chacha::ChaCha20Rng> {
    ClientSession::new(
        ClientConfig {
            name: FieldString::new(name).expect("a short name"),
            file_name: FieldString::new("f.bin").expect("a short name"),
            file_size: size as u64,
            identity: None,
            registration_key: None,
            dialect,
        },
        rand_chacha::ChaCha20Rng::seed_from_u64(seed),
    )
    .expect("a session")
}

fn small_packets() -> Dialect {
    Dialect {
        packet_size: 4096,
        ..Dialect::default()
    }
}

fn timeout(t: Duration) -> ClientOptions {
    ClientOptions {
        response_timeout: t,
        ..ClientOptions::default()
    }
}

/// Uploads client `i`'s file to `addr`: the outcome, the client's id and the file.
pub fn upload<D: Driver>(
    addr: SocketAddr,
    i: usize,
    t: Duration,
) -> Result<(Outcome, ClientId, Vec<u8>), ClientError> {
    let data = file(i);
    let mut s = session(
        &format!("client {i}"),
        data.len(),
        i as u64,
        small_packets(),
    );
    let outcome = D::run_client(&mut s, addr, data.clone(), &timeout(t))?;
    Ok((outcome, s.client_id(), data))
}

pub fn check_stored(app: &MemoryApp, id: ClientId, data: &[u8]) {
    let files = app.files();
    let (stored, verified) = &files[&(id, b"f.bin".to_vec())];
    assert!(verified);
    assert_eq!(stored, data);
}

/// Uploads `n` clients at once to `addr` and checks what `app` stored.
fn uploads_at_once<D: Driver>(addr: SocketAddr, n: usize, app: &MemoryApp) {
    let clients: Vec<_> = (0..n)
        .map(|i| std::thread::spawn(move || upload::<D>(addr, i, Duration::from_secs(30))))
        .collect();
    for c in clients {
        let (outcome, id, data) = c.join().expect("a client thread").expect("an upload");
        assert_eq!(outcome, Outcome::Verified);
        check_stored(app, id, &data);
    }
}

pub fn clients_upload_at_once_while_one_connection_stays_silent<D: Driver>() {
    let app = MemoryApp::new();
    let server = D::serve(Arc::new(app.clone()), ServerOptions::default());
    // A connection that says nothing must not hold anyone up.
    let _silent = TcpStream::connect(server.addr).expect("a connection");
    uploads_at_once::<D>(server.addr, 8, &app);
    server.stop().expect("a clean stop");
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

pub fn uploads_verify_with_an_application_that_awaits_before_answering<D: AsyncDriver>() {
    let app = MemoryApp::new();
    let server = D::serve_async(Arc::new(Remote(app.clone())), ServerOptions::default());
    uploads_at_once::<D>(server.addr, 4, &app);
    server.stop().expect("a clean stop");
}

/// An application that makes one mistake, and otherwise behaves.
#[derive(Clone, Copy, Debug)]
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

/// Uploads `size` bytes with a client timeout far beyond the server's answer
/// deadline.
fn forgotten<D: Driver>(addr: SocketAddr, size: usize) -> Result<Outcome, ClientError> {
    let data = vec![5u8; size];
    let mut s = session("forgotten", size, 1, small_packets());
    D::run_client(&mut s, addr, data, &timeout(Duration::from_secs(600)))
}

/// The client's run ends (with the server's 1607 and close), however the
/// application erred: nothing waits for the idle timeout or forever.
fn ended(mistake: Mistake, r: Result<Outcome, ClientError>) {
    match r {
        Err(ClientError::Failure(
            ClientFailure::Peer(PeerError::UnexpectedEof) | ClientFailure::ServerRefused { .. },
        ))
        | Err(ClientError::Io(_)) => {}
        other => panic!("{mistake:?}: {other:?}"),
    }
}

pub fn a_forgetful_application_ends_the_connection_at_the_answer_deadline<D: Driver>() {
    // A file smaller than `max_unwritten` never pauses reading: the connection
    // reaches the last packet with bytes the application never stored, and must
    // not send their checksum (1603) as though it had.
    for (mistake, size) in [
        (Mistake::NoAnswer, 200_000),
        (Mistake::NoDataWritten, 200_000),
        (Mistake::NoDataWritten, 1_000),
    ] {
        let server = D::serve(Arc::new(Faulty(MemoryApp::new(), mistake)), short_answers());
        ended(mistake, forgotten::<D>(server.addr, size));
        server.stop().expect("a clean stop");
    }
}

/// A file smaller than `max_unwritten` never pauses reading: the connection reaches
/// the last packet with bytes the application never stored, and must not send their
/// checksum (1603) as though it had: the server refuses instead.
pub fn no_checksum_is_sent_for_bytes_the_application_never_stored<D: Driver>() {
    let app = Faulty(MemoryApp::new(), Mistake::NoDataWritten);
    let server = D::serve(Arc::new(app), short_answers());
    match forgotten::<D>(server.addr, 1_000) {
        Err(ClientError::Failure(ClientFailure::ServerRefused { .. })) => {}
        other => panic!("{other:?}"),
    }
    server.stop().expect("a clean stop");
}

pub fn an_async_handler_that_never_returns_is_cut_off_at_the_deadline<D: AsyncDriver>() {
    for mistake in [Mistake::NoAnswer, Mistake::Hang] {
        let server = D::serve_async(Arc::new(Faulty(MemoryApp::new(), mistake)), short_answers());
        ended(mistake, forgotten::<D>(server.addr, 200_000));
        server.stop().expect("a clean stop");
    }
}

/// Runs `f` on a thread of its own: its result, or a panic after two minutes (a
/// guard so that a stuck client fails the case instead of hanging it; not a timing
/// assertion).
fn within_two_minutes<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (done, result) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(f());
    });
    result
        .recv_timeout(Duration::from_secs(120))
        .expect("the client is stuck")
}

pub fn a_silent_server_fails_the_client_at_its_answer_deadline<D: Driver>() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    let addr = listener.local_addr().expect("its address");
    let r = within_two_minutes(move || upload::<D>(addr, 1, Duration::from_millis(200)));
    match r {
        Err(ClientError::Timeout(d)) if d == Duration::from_millis(200) => {}
        Err(ClientError::Failure(ClientFailure::Peer(PeerError::Timeout(_)))) => {}
        other => panic!("{:?}", other.map(|r| r.0)),
    }
    drop(listener);
}

/// Issue case 4: the client's timeout covers every wait, a blocked write included.
/// A server that took the key exchange and then stopped reading left the client at
/// "sent 5242880 of 52428799" for ten minutes with a 30-second timeout.
pub fn a_server_that_stops_reading_times_the_client_out<D: Driver>() {
    let (addr, keep_open) = stalled::start();
    let size = 50 << 20;
    let r = within_two_minutes(move || {
        let mut s = session("stalled", size, 2, Dialect::default());
        let r = D::run_client(
            &mut s,
            addr,
            vec![7u8; size],
            &timeout(Duration::from_secs(1)),
        );
        r.map_err(|e| e.to_string()).err()
    });
    let expected = ClientError::Timeout(Duration::from_secs(1)).to_string();
    assert_eq!(r, Some(expected));
    drop(keep_open);
}

/// Sends a 825 on a new connection and returns the code of the first answer
/// (or `None` if the connection closed without one).
fn register_code(addr: SocketAddr) -> (TcpStream, Option<u16>) {
    let mut s = TcpStream::connect(addr).expect("a connection");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("a read timeout");
    let mut req = bytes::BytesMut::new();
    wire::encode_request(
        &mut req,
        ClientId::ZERO,
        &Request::Register {
            name: FieldString::new("probe").expect("a short name"),
        },
        Default::default(),
    );
    let _ = s.write_all(&req);
    let mut head = [0u8; 7];
    let code = match s.read_exact(&mut head) {
        Ok(()) => Some(u16::from_le_bytes([head[1], head[2]])),
        Err(_) => None,
    };
    (s, code)
}

/// Reads what `s` gets until its end: how many bytes (the end within ten seconds).
fn read_to_end(mut s: TcpStream) -> usize {
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("a read timeout");
    let mut got = Vec::new();
    s.read_to_end(&mut got).expect("the end of the stream");
    got.len()
}

pub fn at_the_cap_an_idle_connection_is_shed_and_if_none_is_idle_the_newcomer_gets_1607<
    D: Driver,
>() {
    let options = ServerOptions {
        max_connections: 1,
        ..ServerOptions::default()
    };
    let server = D::serve(Arc::new(MemoryApp::new()), options);
    let idle = TcpStream::connect(server.addr).expect("a connection");
    // Let the server take the idle one first.
    std::thread::sleep(Duration::from_millis(100));
    let (busy, code) = register_code(server.addr);
    assert_eq!(code, Some(1600), "the newcomer is served");
    assert_eq!(read_to_end(idle), 0, "the idle one was shed");
    // `busy` has just sent a request: it is not shed, so the next one is refused.
    let (_s, code) = register_code(server.addr);
    assert_eq!(code, Some(1607), "a refused connection is told");
    drop(busy);
    server.stop().expect("a clean stop");
}

pub fn shutdown_closes_idle_connections_and_returns<D: Driver>() {
    let app = MemoryApp::new();
    let server = D::serve(Arc::new(app.clone()), ServerOptions::default());
    let idle = TcpStream::connect(server.addr).expect("a connection");
    // An upload first, so that the idle connection above has been accepted.
    let (outcome, ..) = upload::<D>(server.addr, 2, Duration::from_secs(30)).expect("an upload");
    assert_eq!(outcome, Outcome::Verified);
    server.stop().expect("a clean stop");
    assert_eq!(read_to_end(idle), 0, "closed by the server");
}
