//! The accept loop: admission through the [`Gate`], a task per connection, and the
//! graceful shutdown.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_lite::future;
use tracing::debug;
use transport_interface::{
    refusal_bytes, AddressRates, AdmittedDispatch, AsyncDispatch, AsyncHandlerFactory,
    AsyncRateLimited, BlockingDispatch, Conn, Dispatch, Gate, HandlerFactory, RateLimited,
    ServerOptions, Settled,
};

use crate::connection::drive_connection;
use crate::runtime::{until, Runtime, Stream};
use crate::settle::settle;
use crate::watched::Watched;

/// Serves connections from `listener` with a synchronous application until
/// `shutdown` completes, then waits for open connections (uploads get
/// [`ServerOptions::shutdown_grace`] to finish). Each connection is a task on
/// `runtime`; the handlers run on its blocking pool ([`Offload`](
/// transport_interface::Offload)), never on a thread that runs tasks.
pub async fn serve<R: Runtime, F: HandlerFactory>(
    runtime: R,
    listener: R::Listener,
    options: ServerOptions,
    factory: Arc<F>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let rates = AddressRates::from_options(&options);
    let inner = factory.clone();
    let factory = RateLimited::new(factory, rates.clone());
    let make = move |conn, peer| BlockingDispatch::<_, R>::new(conn, factory.connect(peer));
    let refused = move |peer| inner.refused(peer);
    serve_with(runtime, listener, options, rates, shutdown, make, refused).await
}

/// [`serve`] for an asynchronous application: each connection's handler is polled
/// on the connection's task (it may await a database or an object store).
pub async fn serve_async<R: Runtime, F: AsyncHandlerFactory>(
    runtime: R,
    listener: R::Listener,
    options: ServerOptions,
    factory: Arc<F>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let rates = AddressRates::from_options(&options);
    let inner = factory.clone();
    let factory = AsyncRateLimited(RateLimited::new(factory, rates.clone()));
    let make = move |conn, peer| AsyncDispatch::new(conn, factory.connect(peer));
    let refused = move |peer| inner.refused(peer);
    serve_with(runtime, listener, options, rates, shutdown, make, refused).await
}

/// What ended a wait for the next connection.
enum Accepted<S> {
    Conn(io::Result<(S, SocketAddr)>),
    Shutdown,
}

async fn serve_with<R: Runtime, D: Dispatch>(
    runtime: R,
    listener: R::Listener,
    options: ServerOptions,
    rates: Arc<AddressRates>,
    shutdown: impl Future<Output = ()>,
    make: impl Fn(Conn, SocketAddr) -> D + Send + Sync + 'static,
    refused: impl Fn(SocketAddr) + Send + Sync + 'static,
) -> io::Result<()> {
    let options = Arc::new(options);
    let gate = Arc::new(Gate::new(options.clone(), rates));
    let (make, refused) = (Arc::new(make), Arc::new(refused));
    // Closing `stop_tx` tells every connection to stop; each connection holds a
    // clone of `done_tx`, so `done_rx` ends when the last one is gone.
    let (stop_tx, stop_rx) = async_channel::bounded::<()>(1);
    let (done_tx, done_rx) = async_channel::bounded::<()>(1);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accept = async { Accepted::Conn(R::accept(&listener).await) };
        let stopped = async {
            (&mut shutdown).await;
            Accepted::Shutdown
        };
        let (stream, peer) = match future::or(accept, stopped).await {
            Accepted::Shutdown => break,
            Accepted::Conn(Ok(x)) => x,
            Accepted::Conn(Err(e)) => {
                R::timer(Instant::now() + gate.accept_failed(&e)).await;
                continue;
            }
        };
        let Some(entry) = gate.accept(peer) else {
            // A 1607 fits the new socket's send buffer: written without waiting.
            let _ = stream.try_write(&refusal_bytes());
            drop(stream);
            refused(peer);
            continue;
        };
        let (gate, make, refused) = (gate.clone(), make.clone(), refused.clone());
        let stop = stop_rx.clone();
        let done = done_tx.clone();
        runtime.spawn(Box::pin(async move {
            let _done = done;
            let (guard, peer, input) = match settle::<R>(&gate, entry, &stream, &stop).await {
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
            let _ = stream.set_nodelay(true);
            let options = gate.options();
            let conn = gate.connection();
            // The limiter sees while the application answers: a client waiting for
            // a slow answer is not shed as idle.
            let dispatch = AdmittedDispatch::new(make(conn, peer), guard.slot().clone());
            let stream = Watched {
                inner: stream,
                slot: guard.slot().clone(),
            };
            debug!(%peer, "connection accepted");
            match drive_connection::<R, _, _>(stream, peer, dispatch, options, stop, input).await {
                Ok(()) => debug!(%peer, "connection closed"),
                Err(e) => debug!(%peer, "connection closed: {e}"),
            }
            drop(guard);
        }));
    }
    stop_tx.close();
    drop(done_tx);
    gate.stopping();
    let limit = options.shutdown_grace + Duration::from_secs(2);
    until::<R, _>(Instant::now() + limit, done_rx.recv()).await;
    Ok(())
}
