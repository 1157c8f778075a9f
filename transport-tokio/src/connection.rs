//! One connection: the driver loop of protocol-core's docs over a tokio stream.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant as TokioInstant;
use transport_interface::{Dispatch, ServerOptions, StopRule, LINGER, LINGER_BYTES};

const READ_CHUNK: usize = 256 * 1024;
/// What a connection that has not yet filled a read is given to read into.
const SMALL_READ: usize = 4 * 1024;

/// Far enough to mean "no deadline" for the one timer that is reset, never recreated.
const NEVER: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// Runs one connection to its end: reads while the connection wants input, hands
/// every event to the application through `dispatch`, writes every answer, and
/// wakes for the connection's deadline (idle, slow request, unanswered question).
/// When `stop` turns true, an idle connection ends at once and an upload gets
/// [`ServerOptions::shutdown_grace`] to finish.
pub async fn drive_connection<D, S>(
    stream: S,
    peer: SocketAddr,
    dispatch: D,
    options: &ServerOptions,
    stop: tokio::sync::watch::Receiver<bool>,
) -> io::Result<()>
where
    D: Dispatch,
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    drive_connection_from(stream, peer, dispatch, options, stop, BytesMut::new()).await
}

/// [`drive_connection`] for a connection of which `input` was already read (the
/// bytes after a PROXY header).
pub async fn drive_connection_from<D, S>(
    mut stream: S,
    peer: SocketAddr,
    mut dispatch: D,
    options: &ServerOptions,
    mut stop: tokio::sync::watch::Receiver<bool>,
    mut input: BytesMut,
) -> io::Result<()>
where
    D: Dispatch,
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    // Reads are small until one fills what was reserved: a peer streaming a file
    // gets 256 KiB reads, while an idle or slow one costs a few KiB, not 256.
    let mut fast = false;
    let mut out = BytesMut::new();
    let mut stop_rule = StopRule::new(options.shutdown_grace);
    let timer = tokio::time::sleep(NEVER);
    tokio::pin!(timer);
    let mut armed: Option<Instant> = None;
    let answer_timeout = options.config.limits.answer_timeout;
    let result = loop {
        // Steps 1-3: feed the input, answer every event, until nothing moves.
        let now = Instant::now();
        if let Some(e) = pump(&mut dispatch, &mut input, now, answer_timeout).await {
            transport_interface::log::closing(peer, dispatch.conn().client_id(), &e);
        }
        // Step 4: send.
        dispatch.conn().poll_transmit(&mut out);
        if !out.is_empty() {
            if let Err(e) = stream.write_all(&out).await {
                dispatch.conn().handle_eof();
                pump(&mut dispatch, &mut input, now, answer_timeout).await;
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
        if stop_rule.stopping() || *stop.borrow() {
            let Some(grace) = stop_rule.step(dispatch.conn(), now) else {
                dispatch.conn().handle_eof();
                continue;
            };
            deadline = Some(deadline.map_or(grace, |d| d.min(grace)));
        }
        if armed != deadline {
            let at = deadline.unwrap_or(now + NEVER);
            timer.as_mut().reset(TokioInstant::from_std(at));
            armed = deadline;
        }
        input.reserve(if fast { READ_CHUNK } else { SMALL_READ });
        let room = input.capacity() - input.len();
        let wants_read = dispatch.conn().wants_read();
        tokio::select! {
            r = stream.read_buf(&mut input), if wants_read => match r {
                Ok(0) | Err(_) => dispatch.conn().handle_eof(),
                Ok(n) => fast = n >= room.min(READ_CHUNK),
            },
            _ = timer.as_mut(), if armed.is_some() => {
                armed = None;
                timer.as_mut().reset(TokioInstant::from_std(Instant::now() + NEVER));
                dispatch.conn().handle_timeout(Instant::now());
            }
            _ = stop.changed(), if !stop_rule.stopping() => {}
        }
    };
    dispatch.conn().poll_transmit(&mut out);
    if !out.is_empty() {
        let _ = stream.write_all(&out).await;
    }
    let _ = stream.shutdown().await;
    if dispatch.conn().error().is_some() || !input.is_empty() {
        linger(&mut stream).await;
    }
    dispatch.close().await;
    result
}

/// After closing for an error (a 1607 sent, the peer possibly still sending):
/// reads and discards what the peer sends for a moment, so that the close is not
/// a reset, which would discard the 1607 before the peer reads it.
async fn linger<S: AsyncRead + Unpin>(stream: &mut S) {
    let drain = async {
        let mut sink = [0u8; 8192];
        let mut total = 0;
        while total < LINGER_BYTES {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
}

/// [`Dispatch::pump`]; an async handler still running `answer_timeout` after the
/// pump began is dropped (its question then times out in the connection).
async fn pump<D: Dispatch>(
    dispatch: &mut D,
    input: &mut BytesMut,
    now: Instant,
    answer_timeout: Duration,
) -> Option<protocol_core::PeerError> {
    if !dispatch.cancel_safe() {
        return dispatch.pump(input, now).await;
    }
    tokio::time::timeout(answer_timeout, dispatch.pump(input, now))
        .await
        .unwrap_or(None)
}
