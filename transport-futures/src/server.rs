//! The accept loop: caps, a task per connection, and the graceful shutdown.

use std::future::Future;
use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_io::{Async, Timer};
use bytes::BytesMut;
use futures_lite::future;
use futures_lite::io::AsyncReadExt;
use rand_core::OsRng;
use tracing::{debug, info, warn};
use transport_interface::{
    refusal_bytes, AcceptBackoff, AddressRates, AsyncDispatch, AsyncHandlerFactory,
    AsyncRateLimited, BlockingDispatch, Conn, Dispatch, Entry, Gate, HandlerFactory, PrefaceStep,
    RateLimited, RateLog, ServerOptions, Settled,
};

use crate::connection::drive_connection_from;
use crate::{Spawn, Unblock};

/// Serves connections from `listener` with an async application until `shutdown`
/// completes, then waits for open connections (uploads get
/// [`ServerOptions::shutdown_grace`] to finish). Each connection is a task started
/// through `spawn`.
pub async fn serve<F: AsyncHandlerFactory>(
    listener: Async<TcpListener>,
    options: ServerOptions,
    factory: Arc<F>,
    shutdown: impl Future<Output = ()>,
    spawn: impl Spawn,
) -> io::Result<()> {
    let rates = AddressRates::from_options(&options);
    let inner = factory.clone();
    let factory = AsyncRateLimited(RateLimited::new(factory, rates.clone()));
    serve_with(
        listener,
        options,
        rates,
        shutdown,
        spawn,
        move |conn, peer| AsyncDispatch::new(conn, factory.connect(peer)),
        move |peer| inner.refused(peer),
    )
    .await
}

/// [`serve`] for a synchronous application: its handlers run on the `blocking`
/// crate's thread pool ([`Unblock`]), never on the runtime's threads.
pub async fn serve_blocking<F: HandlerFactory>(
    listener: Async<TcpListener>,
    options: ServerOptions,
    factory: Arc<F>,
    shutdown: impl Future<Output = ()>,
    spawn: impl Spawn,
) -> io::Result<()> {
    let rates = AddressRates::from_options(&options);
    let inner = factory.clone();
    let factory = RateLimited::new(factory, rates.clone());
    serve_with(
        listener,
        options,
        rates,
        shutdown,
        spawn,
        move |conn, peer| BlockingDispatch::<_, Unblock>::new(conn, factory.connect(peer)),
        move |peer| inner.refused(peer),
    )
    .await
}

/// What ended a wait for a connection's first bytes.
enum Woke {
    Read(io::Result<usize>),
    Late,
    Stop,
}

enum Accepted {
    Conn(io::Result<(Async<TcpStream>, SocketAddr)>),
    Shutdown,
}

async fn serve_with<D: Dispatch>(
    listener: Async<TcpListener>,
    options: ServerOptions,
    rates: Arc<AddressRates>,
    shutdown: impl Future<Output = ()>,
    spawn: impl Spawn,
    make: impl Fn(Conn, SocketAddr) -> D + Send + Sync + 'static,
    refused: impl Fn(SocketAddr) + Send + Sync + 'static,
) -> io::Result<()> {
    let budget = options.new_input_budget();
    let accept_errors = RateLog::default();
    let mut backoff = AcceptBackoff::default();
    let options = Arc::new(options);
    let gate = Arc::new(Gate::new(options.clone(), rates));
    let (make, refused) = (Arc::new(make), Arc::new(refused));
    // Closing `stop_tx` tells every connection to stop; each connection holds a
    // clone of `done_tx`, so `done_rx` ends when the last one is gone.
    let (stop_tx, stop_rx) = async_channel::bounded::<()>(1);
    let (done_tx, done_rx) = async_channel::bounded::<()>(1);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = future::or(async { Accepted::Conn(listener.accept().await) }, async {
            (&mut shutdown).await;
            Accepted::Shutdown
        })
        .await;
        let (stream, peer) = match accepted {
            Accepted::Shutdown => break,
            Accepted::Conn(Ok(x)) => x,
            Accepted::Conn(Err(e)) => {
                // Out of file descriptors and the like: back off, keep serving the
                // open connections, log once a second.
                if let Some(n) = accept_errors.note(Instant::now()) {
                    warn!("accept failed {n} time(s) in the last second: {e}");
                }
                Timer::after(backoff.failed()).await;
                continue;
            }
        };
        backoff.succeeded();
        let Some(entry) = gate.accept(peer) else {
            // A 1607 fits the new socket's send buffer: written without waiting.
            let _ = stream.get_ref().write(&refusal_bytes());
            drop(stream);
            refused(peer);
            continue;
        };
        let (gate, make, refused) = (gate.clone(), make.clone(), refused.clone());
        let budget = budget.clone();
        let stop = stop_rx.clone();
        let done = done_tx.clone();
        spawn.spawn(Box::pin(async move {
            let _done = done;
            let mut stream = stream;
            let (guard, peer, input) = match settle(&gate, entry, &mut stream, &stop).await {
                Settled::Serve {
                    guard,
                    client,
                    input,
                } => (guard, client, input),
                Settled::Busy { client } => {
                    let _ = stream.get_ref().write(&refusal_bytes());
                    return refused(client);
                }
                Settled::Close { peer, count } => {
                    if count {
                        refused(peer);
                    }
                    return;
                }
            };
            let _ = stream.get_ref().set_nodelay(true);
            let options = gate.options();
            let conn = Conn::new(options.config.clone(), OsRng, Instant::now()).with_budget(budget);
            // The limiter sees while the application answers: a client waiting for
            // a slow answer is not shed as idle.
            let dispatch =
                transport_interface::AdmittedDispatch::new(make(conn, peer), guard.slot().clone());
            let stream = crate::watched::Watched {
                inner: stream,
                slot: guard.slot().clone(),
            };
            debug!(%peer, "connection accepted");
            match drive_connection_from(stream, peer, dispatch, options, stop, input).await {
                Ok(()) => debug!(%peer, "connection closed"),
                Err(e) => debug!(%peer, "connection closed: {e}"),
            }
            drop(guard);
        }));
    }
    stop_tx.close();
    drop(done_tx);
    info!(
        "shutting down: waiting for {} connection(s)",
        gate.limiter().open()
    );
    let limit = options.shutdown_grace + Duration::from_secs(2);
    future::or(
        async {
            let _ = done_rx.recv().await;
        },
        async {
            Timer::after(limit).await;
        },
    )
    .await;
    Ok(())
}

/// Reads what the PROXY protocol asks of the connection's first bytes (nothing
/// when it is off), for at most [`ServerOptions::proxy_header_timeout`]. A
/// connection shed meanwhile reads as closed, and so does every one once the
/// server stops (`stop` closed).
async fn settle(
    gate: &Gate,
    entry: Entry,
    stream: &mut Async<TcpStream>,
    stop: &async_channel::Receiver<()>,
) -> Settled {
    let mut buf = BytesMut::new();
    let Some(preface) = entry.preface else {
        return gate.settle(entry, PrefaceStep::Read, buf);
    };
    let deadline = Instant::now() + gate.options().proxy_header_timeout;
    let mut watched = crate::watched::Watched {
        inner: stream,
        slot: entry.guard.slot().clone(),
    };
    let mut chunk = [0u8; 4096];
    let step = loop {
        let step = preface.step(&buf);
        if step != PrefaceStep::Read {
            break step;
        }
        if stop.is_closed() {
            break preface.end(false);
        }
        let read = async { Woke::Read(watched.read(&mut chunk).await) };
        let late = async {
            Timer::at(deadline).await;
            Woke::Late
        };
        let stopped = async {
            let _ = stop.recv().await;
            Woke::Stop
        };
        let woke = future::or(read, future::or(late, stopped)).await;
        match woke {
            Woke::Late => break preface.end(true),
            Woke::Stop | Woke::Read(Ok(0)) | Woke::Read(Err(_)) => break preface.end(false),
            Woke::Read(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    gate.settle(entry, step, buf)
}
