//! What the driver asks of an async runtime, and nothing more: a timer that can be
//! reset, a task to start, blocking work for synchronous handlers (through
//! [`Offload`]), a listener to accept from, and a TCP stream ([`Stream`]).
//!
//! The accept loop, the connection loop, the client loop and the PROXY preface are
//! written once against [`Runtime`]; an adapter is a few dozen lines:
//! [`Tokio`] (feature `tokio`) and [`Smol`] (feature `smol`: async-io's reactor
//! and timers, so any executor on async-io, async-std included, through
//! [`Smol::with_spawner`]).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::BytesMut;
use transport_interface::Offload;

#[cfg(feature = "smol")]
mod smol;
#[cfg(feature = "tokio")]
mod tokio;

#[cfg(feature = "smol")]
pub use self::smol::Smol;
#[cfg(feature = "tokio")]
pub use self::tokio::Tokio;

/// A task to start: what [`Runtime::spawn`] is given.
pub type Task = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// An async runtime as the driver uses it. Synchronous handlers run on its
/// blocking pool: [`Offload::run`].
pub trait Runtime: Offload + Clone {
    /// A timer that completes at its deadline and can be moved to another one.
    type Timer: Timer;
    /// What the server accepts connections from.
    type Listener: Send + Sync + 'static;
    /// An accepted (or connected) TCP stream.
    type Stream: Stream;

    /// A timer that completes at `at`.
    fn timer(at: Instant) -> Self::Timer;

    /// Starts `task`, to run on its own (detached).
    fn spawn(&self, task: Task);

    /// The next connection of `listener`.
    fn accept(
        listener: &Self::Listener,
    ) -> impl Future<Output = io::Result<(Self::Stream, SocketAddr)>> + Send;
}

/// A timer: a future that completes at its deadline; [`reset`](Timer::reset) moves
/// the deadline (also after it completed) without making a new timer.
pub trait Timer: Future<Output = ()> + Send + Unpin + 'static {
    /// Completes at `at` instead.
    fn reset(&mut self, at: Instant);
}

/// A TCP stream as the driver uses it. Every method takes `&self`, so that one task
/// can read while it writes (the client does).
pub trait Stream: Send + Sync + 'static {
    /// Reads into the spare capacity of `buf` (the caller reserves it), appending
    /// what arrived; `Ok(0)` is the end of the stream. An adapter whose socket can
    /// read into uninitialised memory does so; others use [`read_zeroed`].
    fn poll_read_buf(&self, cx: &mut Context<'_>, buf: &mut BytesMut) -> Poll<io::Result<usize>>;

    /// Writes some of `buf`: how many bytes were taken.
    fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>>;

    /// Writes what the socket's send buffer takes now, without waiting.
    fn try_write(&self, buf: &[u8]) -> io::Result<usize>;

    /// Shuts the sending side (the peer reads the end of the stream).
    fn shutdown_write(&self) -> io::Result<()>;

    /// Sets `TCP_NODELAY`.
    fn set_nodelay(&self, on: bool) -> io::Result<()>;
}

/// The fallback of [`Stream::poll_read_buf`] for a socket that reads into
/// initialised memory only: the spare capacity is zeroed, read into, and cut back
/// to what arrived. `read` is one non-blocking read (`WouldBlock` when empty);
/// `ready` waits until the socket is readable.
pub fn read_zeroed(
    cx: &mut Context<'_>,
    buf: &mut BytesMut,
    mut read: impl FnMut(&mut [u8]) -> io::Result<usize>,
    mut ready: impl FnMut(&mut Context<'_>) -> Poll<io::Result<()>>,
) -> Poll<io::Result<usize>> {
    let len = buf.len();
    let room = buf.capacity() - len;
    loop {
        buf.resize(len + room.max(1), 0);
        let r = read(&mut buf[len..]);
        buf.truncate(len + *r.as_ref().unwrap_or(&0));
        match r {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => return Poll::Ready(r),
        }
        match ready(cx) {
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => return Poll::Pending,
        }
    }
}

/// Reads once into `buf`'s spare capacity (see [`Stream::poll_read_buf`]).
pub(crate) async fn read_buf<S: Stream + ?Sized>(
    stream: &S,
    buf: &mut BytesMut,
) -> io::Result<usize> {
    std::future::poll_fn(|cx| stream.poll_read_buf(cx, buf)).await
}

/// Writes all of `buf`.
pub(crate) async fn write_all<S: Stream + ?Sized>(stream: &S, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        match std::future::poll_fn(|cx| stream.poll_write(cx, buf)).await {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => buf = &buf[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// `fut`'s output, or `None` if `at` comes first.
pub(crate) async fn until<R: Runtime, T>(at: Instant, fut: impl Future<Output = T>) -> Option<T> {
    futures_lite::future::or(async { Some(fut.await) }, async {
        R::timer(at).await;
        None
    })
    .await
}
