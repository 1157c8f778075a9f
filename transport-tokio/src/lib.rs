//! Drives `protocol-core` over tokio: a task per connection, the same
//! [`HandlerFactory`] / [`ConnectionHandler`] as `transport-std`, caps on
//! connections overall and per address, timeouts and a graceful shutdown.
//!
//! Handlers are synchronous (SQLite and file writes); they run inside
//! [`tokio::task::block_in_place`], so the runtime must be multi-threaded.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use protocol_core::{ClientEvent, ClientSession, Outcome, ServerEvent};
use rand_core::{CryptoRngCore, OsRng};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncSeek, AsyncSeekExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, info, warn};
use transport_std::pump_with;
pub use transport_std::{
    ClientError, ClientOptions, Conn, ConnectionHandler, ConnectionLimiter, HandlerFactory,
    ServerOptions,
};

const READ_CHUNK: usize = 256 * 1024;

/// Serves connections from `listener` until `shutdown` completes, then waits for
/// open connections (uploads get [`ServerOptions::shutdown_grace`] to finish).
pub async fn serve<F: HandlerFactory>(
    listener: TcpListener,
    options: ServerOptions,
    factory: Arc<F>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let limiter = Arc::new(ConnectionLimiter::default());
    let options = Arc::new(options);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Some(guard) = limiter.try_acquire(
            peer.ip(),
            options.max_connections,
            options.max_connections_per_ip,
        ) else {
            warn!(%peer, "connection refused: too many connections");
            continue;
        };
        let handler = factory.connect(peer);
        let options = options.clone();
        let stop = stop_rx.clone();
        tokio::spawn(async move {
            let _guard = guard;
            debug!(%peer, "connection accepted");
            match run_connection(stream, peer, &options, handler, stop).await {
                Ok(()) => debug!(%peer, "connection closed"),
                Err(e) => debug!(%peer, "connection closed: {e}"),
            }
        });
    }
    let _ = stop_tx.send(true);
    info!(
        "shutting down: waiting for {} connection(s)",
        limiter.open()
    );
    let deadline = Instant::now() + options.shutdown_grace + Duration::from_secs(2);
    while limiter.open() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

fn handle<H: ConnectionHandler>(
    conn: &mut Conn,
    handler: &mut H,
    input: &mut BytesMut,
) -> Option<protocol_core::PeerError> {
    pump_with(conn, handler, input, Instant::now(), |h, c, ev| match ev {
        // File data goes to the page cache: quick, and by far the most frequent event.
        ServerEvent::UploadData { .. } => h.on_event(c, ev),
        // Questions may wait on SQLite or fsync: let the runtime move other tasks away.
        _ => tokio::task::block_in_place(|| h.on_event(c, ev)),
    })
}

fn drain<H: ConnectionHandler>(conn: &mut Conn, handler: &mut H) {
    tokio::task::block_in_place(|| {
        while let Some(ev) = conn.poll_event() {
            handler.on_event(conn, ev);
        }
    })
}

async fn run_connection<H: ConnectionHandler>(
    mut stream: TcpStream,
    peer: SocketAddr,
    options: &ServerOptions,
    mut handler: H,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut conn: Conn = Conn::new(options.config.clone(), OsRng, Instant::now());
    let mut input = BytesMut::with_capacity(16 * 1024);
    let mut out = BytesMut::new();
    let mut stopping_since: Option<Instant> = None;
    let result = loop {
        if let Some(e) = handle(&mut conn, &mut handler, &mut input) {
            transport_std::log::closing(peer, conn.client_id(), &e);
        }
        conn.poll_transmit(&mut out);
        if !out.is_empty() {
            if let Err(e) = stream.write_all(&out).await {
                conn.handle_eof();
                drain(&mut conn, &mut handler);
                break Err(e);
            }
            out.clear();
        }
        if conn.is_closed() {
            break Ok(());
        }
        let now = Instant::now();
        if *stop.borrow() {
            let since = *stopping_since.get_or_insert(now);
            // An upload runs to its client's verdict (900/902 answered), within the grace.
            let busy = conn.is_uploading() || conn.awaits_verdict();
            if !busy || now.duration_since(since) > options.shutdown_grace {
                conn.handle_eof();
                drain(&mut conn, &mut handler);
                break Ok(());
            }
        }
        if !conn.wants_read() {
            tokio::time::sleep(Duration::from_millis(1)).await;
            continue;
        }
        let wait = conn
            .poll_timeout()
            .map(|t| t.saturating_duration_since(now))
            .unwrap_or(Duration::from_secs(1))
            .clamp(Duration::from_millis(1), Duration::from_secs(1));
        input.reserve(READ_CHUNK);
        tokio::select! {
            r = stream.read_buf(&mut input) => match r {
                Ok(0) => {
                    handle(&mut conn, &mut handler, &mut input);
                    conn.handle_eof();
                    drain(&mut conn, &mut handler);
                    break Ok(());
                }
                Ok(_) => {}
                Err(e) => {
                    conn.handle_eof();
                    drain(&mut conn, &mut handler);
                    break Err(e);
                }
            },
            _ = tokio::time::sleep(wait) => conn.handle_timeout(Instant::now()),
            _ = stop.changed(), if !*stop.borrow() => {}
        }
    };
    conn.poll_transmit(&mut out);
    if !out.is_empty() {
        let _ = stream.write_all(&out).await;
    }
    let _ = stream.shutdown().await;
    tokio::task::block_in_place(|| handler.on_close(&conn));
    result
}

/// Runs `session` over `stream` to its end, feeding it `file` whenever it asks.
///
/// Each buffer [`ClientSession::poll_transmit`] fills goes out as one write (a request
/// is never split; with [`protocol_core::Dialect::one_request_per_write`] never
/// joined to another), and [`ClientOptions::response_timeout`] bounds every wait:
/// each write as well as each answer.
pub async fn run_client<R: CryptoRngCore, F: AsyncRead + AsyncSeek + Unpin>(
    session: &mut ClientSession<R>,
    stream: TcpStream,
    file: &mut F,
    options: &ClientOptions,
    mut on_event: impl FnMut(&ClientEvent),
) -> Result<Outcome, ClientError> {
    stream.set_nodelay(true)?;
    let (mut rd, mut wr) = stream.into_split();
    let mut input = BytesMut::with_capacity(4096);
    let mut out = BytesMut::new();
    let mut chunk = vec![0u8; options.read_chunk.max(4096)];
    let mut sending = false;
    loop {
        while let Some(ev) = session.poll_event() {
            on_event(&ev);
            match ev {
                ClientEvent::SendFile { .. } => {
                    file.seek(io::SeekFrom::Start(0)).await?;
                    sending = true;
                }
                ClientEvent::Finished(outcome) => loop {
                    session.poll_transmit(&mut out);
                    if out.is_empty() {
                        return Ok(outcome);
                    }
                    write_within(&mut wr, &out, options.response_timeout).await?;
                    out.clear();
                },
                ClientEvent::NewConnection => {
                    return Err(ClientError::Io(io::Error::new(
                        io::ErrorKind::Unsupported,
                        "a connection per request (variant 7) needs transport_std::run_client",
                    )));
                }
                _ => {}
            }
        }
        if sending && session.wants_file_data() {
            let n = read_full(file, &mut chunk).await?;
            if n == 0 {
                session.end_of_file().map_err(ClientError::File)?;
                sending = false;
            } else {
                session
                    .push_file_data(&chunk[..n])
                    .map_err(ClientError::File)?;
            }
        }
        if let Some(f) = session.failure() {
            return Err(ClientError::Failure(f.clone()));
        }
        let mut got = None;
        // Every request the session lets go, each call's output as a write of its own.
        while got.is_none() {
            session.poll_transmit(&mut out);
            if out.is_empty() {
                break;
            }
            // Write, but read whatever the server says meanwhile.
            let write = tokio::time::timeout(options.response_timeout, wr.write_all(&out));
            tokio::pin!(write);
            got = loop {
                tokio::select! {
                    r = &mut write => {
                        r.map_err(|_| ClientError::Timeout(options.response_timeout))??;
                        break None;
                    }
                    r = rd.read_buf(&mut input) => {
                        let n = r?;
                        if n == 0 { break Some(0) }
                        session.handle_input(&mut input).map_err(ClientError::Failure)?;
                    }
                }
            };
            out.clear();
        }
        let got = if got.is_some() || sending {
            got
        } else {
            match tokio::time::timeout(options.response_timeout, rd.read_buf(&mut input)).await {
                Ok(r) => Some(r?),
                Err(_) => return Err(ClientError::Timeout(options.response_timeout)),
            }
        };
        out.clear();
        match got {
            Some(0) => return transport_std::end_of_stream(session, &mut input, &mut on_event),
            Some(_) => session
                .handle_input(&mut input)
                .map_err(ClientError::Failure)?,
            None => {}
        }
    }
}

/// Writes `bytes` in one `write_all`, failing with [`ClientError::Timeout`] if the
/// server does not take them within `timeout`.
async fn write_within<W: AsyncWrite + Unpin>(
    wr: &mut W,
    bytes: &[u8],
    timeout: Duration,
) -> Result<(), ClientError> {
    tokio::time::timeout(timeout, wr.write_all(bytes))
        .await
        .map_err(|_| ClientError::Timeout(timeout))??;
    Ok(())
}

async fn read_full<F: AsyncRead + Unpin>(file: &mut F, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]).await? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}
