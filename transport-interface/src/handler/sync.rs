//! The synchronous form, the loop that feeds a connection and its handler, and the
//! [`Dispatch`] interface the async transports drive.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Instant;

use bytes::BytesMut;
use protocol_core::{PeerError, ServerEvent};

use crate::Conn;

/// Handles the events of one connection, synchronously: each question is answered
/// through `conn` before `on_event` returns (or is left to
/// [`Limits::answer_timeout`](protocol_core::Limits::answer_timeout)).
pub trait ConnectionHandler: Send {
    /// Acts on one event; questions are answered through `conn` before returning,
    /// and [`ServerEvent::UploadData`] is followed by `conn.data_written`.
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
    /// A connection from `peer` was refused at accept (over a connection cap); it
    /// is closed without a handler. For counting: the default does nothing.
    fn refused(&self, _peer: SocketAddr) {}
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

/// [`pump`], with the call of the handler for each event left to `dispatch`.
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
        let closed_before = conn.is_closed();
        if let Err(e) = conn.handle_input(input, now) {
            if !closed_before {
                error = Some(e);
            }
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

/// One connection as an async transport drives it: the connection and the
/// application's handler, whichever form that takes.
pub trait Dispatch: Send + 'static {
    /// Feeds `input` and hands every event to the application, until nothing moves.
    /// Returns the protocol violation that closed the connection during this call.
    fn pump(
        &mut self,
        input: &mut BytesMut,
        now: Instant,
    ) -> impl Future<Output = Option<PeerError>> + Send;
    /// The connection, for its getters and `handle_eof` / `handle_timeout` (call
    /// [`pump`](Self::pump) with an empty buffer afterwards to hand out the events).
    fn conn(&mut self) -> &mut Conn;
    /// The connection is over: [`ConnectionHandler::on_close`] or its async form.
    fn close(&mut self) -> impl Future<Output = ()> + Send;
    /// Whether a [`pump`](Self::pump) future may be dropped before it completes (at
    /// a question's deadline) without losing the connection.
    fn cancel_safe(&self) -> bool;
}

/// Runs blocking work off the async runtime's workers (tokio's `spawn_blocking`,
/// the `blocking` crate's `unblock` for smol and async-std).
pub trait Offload: Send + Sync + 'static {
    /// Runs `f` on a thread where blocking is allowed; resolves to its result (a
    /// panic in `f` is resumed in the caller).
    fn run<T: Send + 'static>(
        f: impl FnOnce() -> T + Send + 'static,
    ) -> impl Future<Output = T> + Send;
}

/// A synchronous handler driven by an async transport: each [`Dispatch::pump`]
/// moves the connection, the handler and the input to the blocking pool `O` and
/// back (a move of three pointers; nothing is copied).
pub struct BlockingDispatch<H, O> {
    state: Option<Box<(Conn, H)>>,
    _offload: std::marker::PhantomData<fn() -> O>,
}

impl<H: ConnectionHandler + 'static, O: Offload> BlockingDispatch<H, O> {
    /// The connection `conn`, served by `handler` on `O`'s blocking threads.
    pub fn new(conn: Conn, handler: H) -> Self {
        BlockingDispatch {
            state: Some(Box::new((conn, handler))),
            _offload: std::marker::PhantomData,
        }
    }

    fn state(&mut self) -> &mut (Conn, H) {
        // `state` is `None` only inside `pump` and `close`, which hold `&mut self`
        // until they put it back; a panic there is resumed and ends the connection.
        #[allow(clippy::expect_used)]
        self.state
            .as_mut()
            .expect("the connection is back from the blocking pool")
    }

    async fn offload<T: Send + 'static>(
        &mut self,
        f: impl FnOnce(&mut (Conn, H)) -> T + Send + 'static,
    ) -> T {
        #[allow(clippy::expect_used)]
        let mut st = self.state.take().expect("not offloaded twice at once");
        let (st, out) = O::run(move || {
            let out = f(&mut st);
            (st, out)
        })
        .await;
        self.state = Some(st);
        out
    }
}

impl<H: ConnectionHandler + 'static, O: Offload> Dispatch for BlockingDispatch<H, O> {
    async fn pump(&mut self, input: &mut BytesMut, now: Instant) -> Option<PeerError> {
        let mut buf = std::mem::take(input);
        let (buf, error) = self
            .offload(move |st| {
                let error = pump(&mut st.0, &mut st.1, &mut buf, now);
                (buf, error)
            })
            .await;
        *input = buf;
        error
    }

    fn conn(&mut self) -> &mut Conn {
        &mut self.state().0
    }

    async fn close(&mut self) {
        self.offload(|st| st.1.on_close(&st.0)).await
    }

    fn cancel_safe(&self) -> bool {
        false
    }
}
