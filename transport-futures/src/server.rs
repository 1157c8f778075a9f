//! The accept loop: caps, a task per connection, and the graceful shutdown.

use std::future::Future;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_io::{Async, Timer};
use futures_lite::future;
use protocol_handler::{
    AsyncDispatch, AsyncHandlerFactory, BlockingDispatch, Conn, ConnectionLimiter, Dispatch,
    HandlerFactory, ServerOptions,
};
use rand_core::OsRng;
use tracing::{debug, info, warn};

use crate::connection::drive_connection;
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
    serve_with(
        listener,
        options,
        shutdown,
        spawn,
        {
            let factory = factory.clone();
            move |conn, peer| AsyncDispatch::new(conn, factory.connect(peer))
        },
        move |peer| factory.refused(peer),
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
    serve_with(
        listener,
        options,
        shutdown,
        spawn,
        {
            let factory = factory.clone();
            move |conn, peer| BlockingDispatch::<_, Unblock>::new(conn, factory.connect(peer))
        },
        move |peer| factory.refused(peer),
    )
    .await
}

enum Accepted {
    Conn(io::Result<(Async<TcpStream>, SocketAddr)>),
    Shutdown,
}

async fn serve_with<D: Dispatch>(
    listener: Async<TcpListener>,
    options: ServerOptions,
    shutdown: impl Future<Output = ()>,
    spawn: impl Spawn,
    make: impl Fn(Conn, SocketAddr) -> D,
    refused: impl Fn(SocketAddr),
) -> io::Result<()> {
    let limiter = Arc::new(ConnectionLimiter::default());
    let options = Arc::new(options);
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
                // Out of file descriptors and the like: back off, keep serving.
                warn!("accept failed: {e}");
                Timer::after(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(guard) = limiter.try_acquire(
            peer.ip(),
            options.max_connections,
            options.max_connections_per_ip,
        ) else {
            warn!(%peer, "connection refused: too many connections");
            refused(peer);
            continue;
        };
        let _ = stream.get_ref().set_nodelay(true);
        let dispatch = make(
            Conn::new(options.config.clone(), OsRng, Instant::now()),
            peer,
        );
        let options = options.clone();
        let stop = stop_rx.clone();
        let done = done_tx.clone();
        spawn.spawn(Box::pin(async move {
            let _guard = guard;
            let _done = done;
            debug!(%peer, "connection accepted");
            match drive_connection(stream, peer, dispatch, &options, stop).await {
                Ok(()) => debug!(%peer, "connection closed"),
                Err(e) => debug!(%peer, "connection closed: {e}"),
            }
        }));
    }
    stop_tx.close();
    drop(done_tx);
    info!(
        "shutting down: waiting for {} connection(s)",
        limiter.open()
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
