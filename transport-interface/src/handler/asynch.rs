//! The asynchronous form: handlers whose answers may wait on a database or an
//! object store, polled on the connection's own task.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Instant;

use bytes::BytesMut;
use protocol_core::{PeerError, ServerEvent};

use crate::handler::sync::{ConnectionHandler, Dispatch};
use crate::Conn;

/// Handles the events of one connection, asynchronously: `on_event` may await
/// (a network database, an object store) before it answers the question through
/// `conn`. The transport polls the future on the connection's task; no worker
/// thread is blocked, and nothing else of this connection happens meanwhile.
///
/// Answer within the future: a handler that returns without answering leaves the
/// question pending, and the connection, which reads nothing meanwhile, closes at
/// [`Limits::answer_timeout`](protocol_core::Limits::answer_timeout) with a 1607.
/// A future still running that long after the transport started it is dropped,
/// with the same result.
///
/// ```
/// use transport_interface::{AsyncConnectionHandler, Conn};
/// use protocol_core::ServerEvent;
///
/// struct Remote; // say, a client of a network database
///
/// impl Remote {
///     async fn name_taken(&self, _name: &[u8]) -> bool { false }
/// }
///
/// impl AsyncConnectionHandler for Remote {
///     async fn on_event(&mut self, conn: &mut Conn, event: ServerEvent) {
///         match event {
///             ServerEvent::Register { ticket, name, .. } => {
///                 let _ = if self.name_taken(name.as_bytes()).await {
///                     conn.refuse_registration(ticket)
///                 } else {
///                     conn.accept_registration(ticket)
///                 };
///             }
///             // ... every other event, as in protocol-core's driver loop
///             _ => {}
///         }
///     }
/// }
/// ```
pub trait AsyncConnectionHandler: Send {
    /// Acts on one event; questions are answered through `conn`, and
    /// [`ServerEvent::UploadData`] is followed by `conn.data_written`.
    fn on_event(&mut self, conn: &mut Conn, event: ServerEvent) -> impl Future<Output = ()> + Send;
    /// The connection is over (after its last events were handled).
    fn on_close(&mut self, _conn: &Conn) -> impl Future<Output = ()> + Send {
        async {}
    }
}

/// Makes an async handler for each accepted connection.
pub trait AsyncHandlerFactory: Send + Sync + 'static {
    /// The per-connection handler.
    type Handler: AsyncConnectionHandler + 'static;
    /// A connection from `peer` was accepted.
    fn connect(&self, peer: SocketAddr) -> Self::Handler;
    /// A connection from `peer` was refused at accept (over a connection cap); it
    /// is closed without a handler. For counting: the default does nothing.
    fn refused(&self, _peer: SocketAddr) {}
}

/// A synchronous handler that never blocks (memory only) used as an async one:
/// called inline on the connection's task. A handler that touches a disk or a
/// database belongs on the blocking pool instead ([`crate::BlockingDispatch`]).
#[derive(Debug, Clone, Default)]
pub struct Inline<H>(pub H);

impl<H: ConnectionHandler> AsyncConnectionHandler for Inline<H> {
    async fn on_event(&mut self, conn: &mut Conn, event: ServerEvent) {
        self.0.on_event(conn, event)
    }
    async fn on_close(&mut self, conn: &Conn) {
        self.0.on_close(conn)
    }
}

impl<F: crate::HandlerFactory> AsyncHandlerFactory for Inline<F> {
    type Handler = Inline<F::Handler>;
    fn connect(&self, peer: SocketAddr) -> Inline<F::Handler> {
        Inline(self.0.connect(peer))
    }
    fn refused(&self, peer: SocketAddr) {
        self.0.refused(peer)
    }
}

/// An async handler driven by an async transport, on the connection's task.
pub struct AsyncDispatch<H> {
    conn: Conn,
    handler: H,
}

impl<H: AsyncConnectionHandler + 'static> AsyncDispatch<H> {
    /// The connection `conn`, served by `handler`.
    pub fn new(conn: Conn, handler: H) -> Self {
        AsyncDispatch { conn, handler }
    }
}

impl<H: AsyncConnectionHandler + 'static> Dispatch for AsyncDispatch<H> {
    async fn pump(&mut self, input: &mut BytesMut, now: Instant) -> Option<PeerError> {
        let mut error = None;
        loop {
            let before = input.len();
            let closed_before = self.conn.is_closed();
            if let Err(e) = self.conn.handle_input(input, now) {
                if !closed_before {
                    error = Some(e);
                }
            }
            let mut any = false;
            while let Some(ev) = self.conn.poll_event() {
                any = true;
                self.handler.on_event(&mut self.conn, ev).await;
            }
            if !any && input.len() == before {
                return error;
            }
        }
    }

    fn conn(&mut self) -> &mut Conn {
        &mut self.conn
    }

    async fn close(&mut self) {
        self.handler.on_close(&self.conn).await
    }

    fn cancel_safe(&self) -> bool {
        true
    }
}
