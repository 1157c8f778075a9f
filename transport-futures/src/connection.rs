//! One connection: the driver loop of protocol-core's docs over a futures-io stream.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use async_io::Timer;
use bytes::BytesMut;
use futures_lite::future;
use futures_lite::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use transport_interface::{Dispatch, ServerOptions, StopRule, LINGER, LINGER_BYTES};

const READ_CHUNK: usize = 256 * 1024;

enum Wake {
    Read(io::Result<usize>),
    Timer,
    Stop,
}

/// Runs one connection to its end: reads while the connection wants input, hands
/// every event to the application through `dispatch`, writes every answer, and
/// wakes for the connection's deadline (idle, slow request, unanswered question).
/// When `stop` closes (every sender dropped), an idle connection ends at once and
/// an upload gets [`ServerOptions::shutdown_grace`] to finish.
pub async fn drive_connection<D, S>(
    stream: S,
    peer: SocketAddr,
    dispatch: D,
    options: &ServerOptions,
    stop: async_channel::Receiver<()>,
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
    stop: async_channel::Receiver<()>,
    mut input: BytesMut,
) -> io::Result<()>
where
    D: Dispatch,
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    input.reserve(16 * 1024);
    let mut out = BytesMut::new();
    let mut chunk = vec![0u8; READ_CHUNK];
    let mut stop_rule = StopRule::new(options.shutdown_grace);
    let mut timer = Timer::never();
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
        if stop_rule.stopping() || stop.is_closed() {
            let Some(grace) = stop_rule.step(dispatch.conn(), now) else {
                dispatch.conn().handle_eof();
                continue;
            };
            deadline = Some(deadline.map_or(grace, |d| d.min(grace)));
        }
        if armed != deadline {
            match deadline {
                Some(t) => timer.set_at(t),
                None => timer = Timer::never(),
            }
            armed = deadline;
        }
        let timer_fired = async {
            (&mut timer).await;
            Wake::Timer
        };
        let stopped = async {
            if stop_rule.stopping() {
                future::pending::<()>().await;
            }
            let _ = stop.recv().await;
            Wake::Stop
        };
        let wake = if dispatch.conn().wants_read() {
            let read = async { Wake::Read(stream.read(&mut chunk).await) };
            future::or(read, future::or(timer_fired, stopped)).await
        } else {
            future::or(timer_fired, stopped).await
        };
        match wake {
            Wake::Read(Ok(0)) | Wake::Read(Err(_)) => dispatch.conn().handle_eof(),
            Wake::Read(Ok(n)) => input.extend_from_slice(&chunk[..n]),
            Wake::Timer => {
                armed = None;
                dispatch.conn().handle_timeout(Instant::now());
            }
            Wake::Stop => {}
        }
    };
    dispatch.conn().poll_transmit(&mut out);
    if !out.is_empty() {
        let _ = stream.write_all(&out).await;
    }
    let _ = stream.close().await;
    if dispatch.conn().error().is_some() || !input.is_empty() {
        // After closing for an error (a 1607 sent, the peer possibly still
        // sending): read and discard for a moment, so that the close is not a
        // reset, which would discard the 1607 before the peer reads it.
        let drain = async {
            let mut total = 0;
            while total < LINGER_BYTES {
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => total += n,
                }
            }
        };
        future::or(drain, async {
            Timer::after(LINGER).await;
        })
        .await;
    }
    dispatch.close().await;
    result
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
    let pumped = async { Some(dispatch.pump(input, now).await) };
    let late = async {
        Timer::at(now + answer_timeout).await;
        None
    };
    future::or(pumped, late).await.flatten()
}
