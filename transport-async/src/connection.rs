//! One connection: the driver loop of protocol-core's docs over a [`Stream`].

use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use futures_lite::FutureExt;
use tracing::debug;
use transport_interface::tls::server::{Received, ServerTls};
use transport_interface::{Dispatch, ServerOptions, StopRule, LINGER, LINGER_BYTES};

use crate::runtime::{read_buf, until, write_all, Runtime, Stream, Timer};

/// What a connection that has filled a read is given to read into.
const READ_CHUNK: usize = 256 * 1024;
/// What a connection that has not yet filled a read is given to read into.
const SMALL_READ: usize = 4 * 1024;

/// Far enough to mean "no deadline" for the one timer that is reset, never recreated.
const NEVER: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// What ended a wait of the connection loop.
enum Wake {
    Read(io::Result<usize>),
    Timer,
    Stop,
}

/// Runs one connection to its end, starting with `input` (bytes already read past
/// a PROXY header): reads while the connection wants input, hands every event to
/// the application through `dispatch`, writes every answer, and wakes for the
/// connection's deadline (idle, slow request, unanswered question). When `stop`
/// closes, an idle connection ends at once and an upload gets
/// [`ServerOptions::shutdown_grace`] to finish. With [`ServerOptions::tls`], a
/// connection that begins with a ClientHello is served inside TLS
/// ([`ServerTls`]: the protocol sees plaintext, from the end of the handshake).
pub(crate) async fn drive_connection<R: Runtime, D: Dispatch, S: Stream>(
    stream: S,
    peer: SocketAddr,
    mut dispatch: D,
    options: &ServerOptions,
    stop: async_channel::Receiver<()>,
    mut input: BytesMut,
) -> io::Result<()> {
    // Reads are small until one fills what was reserved: a peer streaming a file
    // gets 256 KiB reads, while an idle or slow one costs a few KiB, not 256.
    let mut fast = false;
    let mut out = BytesMut::new();
    let mut stop_rule = StopRule::new(options.shutdown_grace);
    let mut timer = R::timer(Instant::now() + NEVER);
    let mut armed: Option<Instant> = None;
    let answer_timeout = options.config.limits.answer_timeout;
    // TLS, if served, is told apart by the first two bytes (and may already be in
    // `input`, read past a PROXY header).
    let mut tls = ServerTls::new(options.tls.as_ref());
    let mut ended = received(&mut tls, &mut input, dispatch.conn(), peer);
    let result = loop {
        if ended {
            // The end of the peer's stream with plaintext before it: the
            // connection reads that first, as it read everything before an EOF.
            ended = false;
            pump::<R, D>(&mut dispatch, &mut input, Instant::now(), answer_timeout).await;
            dispatch.conn().handle_eof();
        }
        // Steps 1-3: feed the input, answer every event, until nothing moves.
        let now = Instant::now();
        if let Some(e) = pump::<R, D>(&mut dispatch, &mut input, now, answer_timeout).await {
            transport_interface::log::closing(peer, dispatch.conn().client_id(), &e);
        }
        // Step 4: send.
        dispatch.conn().poll_transmit(&mut out);
        tls.seal(&mut out);
        if !out.is_empty() {
            if let Err(e) = write_all(&stream, &out).await {
                dispatch.conn().handle_eof();
                pump::<R, D>(&mut dispatch, &mut input, now, answer_timeout).await;
                break Err(e);
            }
            out.clear();
        }
        // Step 5: stop when closed and drained, else wait.
        if dispatch.conn().is_finished() {
            break Ok(());
        }
        if dispatch.conn().is_closed() {
            continue; // events left (a handler was cut off at its deadline): drain them
        }
        let now = Instant::now();
        let mut deadline = dispatch.conn().poll_timeout();
        if stop_rule.stopping() || stop.is_closed() {
            let Some(grace) = stop_rule.step(dispatch.conn(), now) else {
                dispatch.conn().handle_eof();
                continue;
            };
            deadline = Some(deadline.map_or(grace, |d| d.min(grace)));
        }
        if dispatch.conn().is_sending() {
            // A download: the next bytes come from the application, not the peer
            // (the write above waited for the socket).
            continue;
        }
        if armed != deadline {
            if let Some(at) = deadline {
                timer.reset(at);
            }
            armed = deadline;
        }
        let buf = tls.read_buffer(&mut input);
        buf.reserve(if fast { READ_CHUNK } else { SMALL_READ });
        let room = buf.capacity() - buf.len();
        let wants_read = dispatch.conn().wants_read();
        let mut stopped = pin!(stop.recv());
        let watch_stop = !stop_rule.stopping();
        let wake = poll_fn(|cx| {
            if wants_read {
                if let Poll::Ready(r) = stream.poll_read_buf(cx, buf) {
                    return Poll::Ready(Wake::Read(r));
                }
            }
            if armed.is_some() && Pin::new(&mut timer).poll(cx).is_ready() {
                return Poll::Ready(Wake::Timer);
            }
            if watch_stop && stopped.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Wake::Stop);
            }
            Poll::Pending
        })
        .await;
        match wake {
            Wake::Read(Ok(0)) | Wake::Read(Err(_)) => dispatch.conn().handle_eof(),
            Wake::Read(Ok(n)) => {
                fast = n >= room.min(READ_CHUNK);
                ended = received(&mut tls, &mut input, dispatch.conn(), peer);
            }
            Wake::Timer => {
                armed = None;
                dispatch.conn().handle_timeout(Instant::now());
            }
            Wake::Stop => {}
        }
    };
    dispatch.conn().poll_transmit(&mut out);
    tls.close(&mut out);
    if !out.is_empty() {
        let _ = write_all(&stream, &out).await;
    }
    let _ = stream.shutdown_write();
    if dispatch.conn().error().is_some() || !input.is_empty() {
        linger::<R>(&stream).await;
    }
    dispatch.close().await;
    result
}

/// [`ServerTls::received`] for the loop: whether the peer's stream has ended (its
/// close_notify, or a TLS failure, logged here, that ends the connection as the
/// end of its stream would).
fn received(
    tls: &mut ServerTls,
    input: &mut BytesMut,
    conn: &mut transport_interface::Conn,
    peer: SocketAddr,
) -> bool {
    match tls.received(input, conn) {
        Ok(Received::Open) => false,
        Ok(Received::Ended) => true,
        Err(e) => {
            debug!(%peer, "closing: {e}");
            true
        }
    }
}

/// After closing for an error (a 1607 sent, the peer possibly still sending):
/// reads and discards what the peer sends for a moment, so that the close is not
/// a reset, which would discard the 1607 before the peer reads it.
async fn linger<R: Runtime>(stream: &impl Stream) {
    let drain = async {
        let mut sink = BytesMut::with_capacity(8192);
        let mut total = 0;
        while total < LINGER_BYTES {
            sink.clear();
            match read_buf(stream, &mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    };
    until::<R, _>(Instant::now() + LINGER, drain).await;
}

/// [`Dispatch::pump`]; an async handler still running `answer_timeout` after the
/// pump began is dropped (its question then times out in the connection).
async fn pump<R: Runtime, D: Dispatch>(
    dispatch: &mut D,
    input: &mut BytesMut,
    now: Instant,
    answer_timeout: Duration,
) -> Option<protocol_core::PeerError> {
    if !dispatch.cancel_safe() {
        return dispatch.pump(input, now).await;
    }
    until::<R, _>(now + answer_timeout, dispatch.pump(input, now))
        .await
        .flatten()
}
