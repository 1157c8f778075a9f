//! Drives `protocol-core` over tokio: a task per connection, caps on connections
//! overall and per address, the connection's timers, and a graceful shutdown.
//!
//! The application is `transport-interface`'s: an [`AsyncHandlerFactory`] ([`serve_async`]),
//! whose futures may await a database or an object store before answering and are
//! polled on the connection's task, or a synchronous [`HandlerFactory`] ([`serve`]),
//! whose handlers run on tokio's blocking pool (`spawn_blocking`), never on a worker
//! thread. Nothing here depends on `transport-std`.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod connection;
mod watched;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use protocol_core::{ClientEvent, ClientSession, Outcome};
use rand_core::{CryptoRngCore, OsRng};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncSeek, AsyncSeekExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, info, warn};
use transport_interface::{
    end_of_stream, refusal_bytes, AcceptBackoff, AddressRates, AsyncDispatch, AsyncRateLimited,
    BlockingDispatch, Dispatch, Entry, Gate, Offload, PrefaceStep, RateLimited, RateLog, Settled,
};
pub use transport_interface::{
    AsyncConnectionHandler, AsyncHandlerFactory, ClientError, ClientOptions, Conn,
    ConnectionHandler, ConnectionLimiter, HandlerFactory, ServerOptions,
};

pub use connection::{drive_connection, drive_connection_from};

/// Runs synchronous handlers on tokio's blocking pool (`spawn_blocking`).
#[derive(Debug, Clone, Copy, Default)]
pub struct SpawnBlocking;

impl Offload for SpawnBlocking {
    async fn run<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        match tokio::task::spawn_blocking(f).await {
            Ok(t) => t,
            Err(e) => match e.try_into_panic() {
                Ok(panic) => std::panic::resume_unwind(panic),
                // Cancelled: only when the runtime shuts down, which ends this task too.
                Err(_) => std::future::pending().await,
            },
        }
    }
}

/// Serves connections from `listener` with a synchronous application until
/// `shutdown` completes, then waits for open connections (uploads get
/// [`ServerOptions::shutdown_grace`] to finish). Handlers run on the blocking pool.
pub async fn serve<F: HandlerFactory>(
    listener: TcpListener,
    options: ServerOptions,
    factory: Arc<F>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let rates = AddressRates::from_options(&options);
    let inner = factory.clone();
    let factory = RateLimited::new(factory, rates.clone());
    serve_with(
        listener,
        options,
        rates,
        shutdown,
        move |conn, peer| BlockingDispatch::<_, SpawnBlocking>::new(conn, factory.connect(peer)),
        move |peer| inner.refused(peer),
    )
    .await
}

/// [`serve`] for an asynchronous application: each connection's handler is
/// polled on the connection's task.
pub async fn serve_async<F: AsyncHandlerFactory>(
    listener: TcpListener,
    options: ServerOptions,
    factory: Arc<F>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let rates = AddressRates::from_options(&options);
    let inner = factory.clone();
    let factory = AsyncRateLimited(RateLimited::new(factory, rates.clone()));
    serve_with(
        listener,
        options,
        rates,
        shutdown,
        move |conn, peer| AsyncDispatch::new(conn, factory.connect(peer)),
        move |peer| inner.refused(peer),
    )
    .await
}

async fn serve_with<D: Dispatch>(
    listener: TcpListener,
    options: ServerOptions,
    rates: Arc<AddressRates>,
    shutdown: impl Future<Output = ()>,
    make: impl Fn(Conn, SocketAddr) -> D + Send + Sync + 'static,
    refused: impl Fn(SocketAddr) + Send + Sync + 'static,
) -> io::Result<()> {
    let budget = options.new_input_budget();
    let accept_errors = RateLog::default();
    let mut backoff = AcceptBackoff::default();
    let options = Arc::new(options);
    let gate = Arc::new(Gate::new(options.clone(), rates));
    let (make, refused) = (Arc::new(make), Arc::new(refused));
    // `stop` tells every connection to stop; each connection holds a clone of
    // `done_tx`, so `done_rx` ends when the last one is gone.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (done_tx, mut done_rx) = tokio::sync::mpsc::channel::<()>(1);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving
                    // the open connections, log once a second.
                    if let Some(n) = accept_errors.note(Instant::now()) {
                        warn!("accept failed {n} time(s) in the last second: {e}");
                    }
                    tokio::time::sleep(backoff.failed()).await;
                    continue;
                }
            },
        };
        backoff.succeeded();
        let Some(entry) = gate.accept(peer) else {
            // A 1607 fits the new socket's send buffer: written without waiting.
            let _ = stream.try_write(&refusal_bytes());
            drop(stream);
            refused(peer);
            continue;
        };
        let (gate, make, refused) = (gate.clone(), make.clone(), refused.clone());
        let budget = budget.clone();
        let stop = stop_rx.clone();
        let done = done_tx.clone();
        tokio::spawn(async move {
            let _done = done;
            let mut stream = stream;
            let mut stop = stop;
            let (guard, peer, input) = match settle(&gate, entry, &mut stream, &mut stop).await {
                Settled::Serve {
                    guard,
                    client,
                    input,
                } => (guard, client, input),
                Settled::Busy { client } => {
                    let _ = stream.try_write(&refusal_bytes());
                    return refused(client);
                }
                Settled::Close { peer, count } => {
                    if count {
                        refused(peer);
                    }
                    return;
                }
            };
            let options = gate.options();
            let conn = Conn::new(options.config.clone(), OsRng, Instant::now()).with_budget(budget);
            // The limiter sees while the application answers: a client waiting for
            // a slow answer is not shed as idle.
            let dispatch =
                transport_interface::AdmittedDispatch::new(make(conn, peer), guard.slot().clone());
            let _ = stream.set_nodelay(true);
            let stream = watched::Watched {
                inner: stream,
                slot: guard.slot().clone(),
            };
            debug!(%peer, "connection accepted");
            match drive_connection_from(stream, peer, dispatch, options, stop, input).await {
                Ok(()) => debug!(%peer, "connection closed"),
                Err(e) => debug!(%peer, "connection closed: {e}"),
            }
            drop(guard);
        });
    }
    let _ = stop_tx.send(true);
    drop(done_tx);
    info!(
        "shutting down: waiting for {} connection(s)",
        gate.limiter().open()
    );
    let limit = options.shutdown_grace + Duration::from_secs(2);
    let _ = tokio::time::timeout(limit, done_rx.recv()).await;
    Ok(())
}

/// Reads what the PROXY protocol asks of the connection's first bytes (nothing
/// when it is off), for at most [`ServerOptions::proxy_header_timeout`]. A
/// connection shed meanwhile reads as closed, and so does every one once the
/// server stops.
async fn settle(
    gate: &Gate,
    entry: Entry,
    stream: &mut TcpStream,
    stop: &mut tokio::sync::watch::Receiver<bool>,
) -> Settled {
    let mut buf = BytesMut::new();
    let Some(preface) = entry.preface else {
        return gate.settle(entry, PrefaceStep::Read, buf);
    };
    let deadline = tokio::time::Instant::now() + gate.options().proxy_header_timeout;
    let mut stream = watched::Watched {
        inner: stream,
        slot: entry.guard.slot().clone(),
    };
    let step = loop {
        let step = preface.step(&buf);
        if step != PrefaceStep::Read {
            break step;
        }
        if *stop.borrow() {
            break preface.end(false);
        }
        buf.reserve(4096);
        tokio::select! {
            r = tokio::time::timeout_at(deadline, stream.read_buf(&mut buf)) => match r {
                Err(_) => break preface.end(true),
                Ok(Ok(0)) | Ok(Err(_)) => break preface.end(false),
                Ok(Ok(_)) => {}
            },
            changed = stop.changed() => {
                if changed.is_err() {
                    break preface.end(false);
                }
            }
        }
    };
    gate.settle(entry, step, buf)
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
                // The session takes a bounded amount at a time: send, then go on.
                let mut data = &chunk[..n];
                while !data.is_empty() {
                    match session.push_file_data(data) {
                        Ok(taken) => data = &data[taken..],
                        Err(protocol_core::UsageError::SendBufferFull) => {
                            session.poll_transmit(&mut out);
                            write_within(&mut wr, &out, options.response_timeout).await?;
                            out.clear();
                        }
                        Err(e) => return Err(ClientError::File(e)),
                    }
                }
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
            Some(0) => return end_of_stream(session, &mut input, &mut on_event),
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
