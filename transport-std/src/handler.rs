//! What a transport needs from the application, and the loop that feeds a
//! connection and its handler until neither has anything more to do.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use protocol_core::{PeerError, ServerConfig, ServerConnection, ServerEvent};
use rand_core::OsRng;

/// A server connection as the transports run it: keys and ids from the OS CSPRNG.
pub type Conn = ServerConnection<OsRng>;

/// Handles the events of one connection.
pub trait ConnectionHandler: Send {
    /// Acts on one event; questions are answered through `conn` before returning.
    fn on_event(&mut self, conn: &mut Conn, event: ServerEvent);
    /// The connection is over (after its last events were handled).
    fn on_close(&mut self, _conn: &Conn) {}
}

/// Makes a handler for each accepted connection.
pub trait HandlerFactory: Send + Sync + 'static {
    /// The per-connection handler.
    type Handler: ConnectionHandler + 'static;
    /// A connection from `peer` was accepted.
    fn connect(&self, peer: SocketAddr) -> Self::Handler;
}

/// How a server runs its connections.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Protocol configuration and limits for every connection.
    pub config: ServerConfig,
    /// Connections served at once; more are closed at once.
    pub max_connections: usize,
    /// Connections from one IP address at once.
    pub max_connections_per_ip: usize,
    /// How long a shutdown waits for uploads in progress.
    pub shutdown_grace: Duration,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            config: ServerConfig::default(),
            max_connections: 1024,
            max_connections_per_ip: 64,
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// A flag that asks a running server to stop.
#[derive(Debug, Clone, Default)]
pub struct Shutdown(Arc<AtomicBool>);

impl Shutdown {
    /// A flag not yet raised.
    pub fn new() -> Shutdown {
        Shutdown::default()
    }
    /// Asks the server to stop: no new connections; idle ones close; uploads in
    /// progress get [`ServerOptions::shutdown_grace`] to finish.
    pub fn trigger(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    /// Whether [`trigger`](Self::trigger) was called.
    pub fn is_triggered(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Feeds `input` to the connection and its events to the handler until neither
/// makes progress. Returns the protocol violation that closed the connection, if any.
pub fn pump<H: ConnectionHandler + ?Sized>(
    conn: &mut Conn,
    handler: &mut H,
    input: &mut BytesMut,
    now: Instant,
) -> Option<PeerError> {
    pump_with(conn, handler, input, now, |h, c, ev| h.on_event(c, ev))
}

/// [`pump`], with the call of the handler for each event left to `dispatch` (the
/// async transport moves slow events off its reactor this way).
pub fn pump_with<H: ConnectionHandler + ?Sized>(
    conn: &mut Conn,
    handler: &mut H,
    input: &mut BytesMut,
    now: Instant,
    mut dispatch: impl FnMut(&mut H, &mut Conn, ServerEvent),
) -> Option<PeerError> {
    let mut error = None;
    loop {
        let before = input.len();
        if let Err(e) = conn.handle_input(input, now) {
            error = Some(e);
        }
        let mut any = false;
        while let Some(ev) = conn.poll_event() {
            any = true;
            dispatch(handler, conn, ev);
        }
        if !any && input.len() == before {
            return error;
        }
    }
}
