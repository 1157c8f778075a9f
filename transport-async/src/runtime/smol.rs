//! The smol adapter: async-io's reactor and timers, the `blocking` pool, tasks on
//! smol's global executor or any other ([`Smol::with_spawner`]: async-std runs on
//! async-io too).

use std::future::Future;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use async_io::Async;
use bytes::BytesMut;
use transport_interface::Offload;

use super::{read_zeroed, Runtime, Stream, Task, Timer};

/// async-io with a spawner: by default smol's global executor
/// (`smol::spawn(task).detach()`).
#[derive(Clone)]
pub struct Smol {
    spawner: Arc<dyn Fn(Task) + Send + Sync>,
}

impl Smol {
    /// Tasks on smol's global executor.
    pub fn new() -> Smol {
        Smol::with_spawner(|task| smol::spawn(task).detach())
    }

    /// Tasks started by `spawn`, on an executor that runs on async-io: e.g.
    /// `|task| { async_std::task::spawn(task); }`.
    pub fn with_spawner(spawn: impl Fn(Task) + Send + Sync + 'static) -> Smol {
        Smol {
            spawner: Arc::new(spawn),
        }
    }
}

impl Default for Smol {
    fn default() -> Smol {
        Smol::new()
    }
}

impl std::fmt::Debug for Smol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Smol")
    }
}

impl Offload for Smol {
    fn run<T: Send + 'static>(
        f: impl FnOnce() -> T + Send + 'static,
    ) -> impl Future<Output = T> + Send {
        blocking::unblock(f)
    }
}

impl Runtime for Smol {
    type Timer = AsyncIoTimer;
    type Listener = Async<TcpListener>;
    type Stream = Async<TcpStream>;

    fn timer(at: Instant) -> AsyncIoTimer {
        AsyncIoTimer(async_io::Timer::at(at))
    }

    fn spawn(&self, task: Task) {
        (self.spawner)(task)
    }

    async fn accept(listener: &Async<TcpListener>) -> io::Result<(Async<TcpStream>, SocketAddr)> {
        listener.accept().await
    }
}

/// An async-io timer.
pub struct AsyncIoTimer(async_io::Timer);

impl Future for AsyncIoTimer {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.0).poll(cx).map(|_| ())
    }
}

impl Timer for AsyncIoTimer {
    fn reset(&mut self, at: Instant) {
        self.0.set_at(at);
    }
}

impl Stream for Async<TcpStream> {
    fn poll_read_buf(&self, cx: &mut Context<'_>, buf: &mut BytesMut) -> Poll<io::Result<usize>> {
        // std's sockets read into initialised memory only (safe code).
        read_zeroed(
            cx,
            buf,
            |b| self.get_ref().read(b),
            |cx| self.poll_readable(cx),
        )
    }

    fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        loop {
            match self.get_ref().write(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                r => return Poll::Ready(r),
            }
            if let Err(e) = std::task::ready!(self.poll_writable(cx)) {
                return Poll::Ready(Err(e));
            }
        }
    }

    fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        self.get_ref().write(buf)
    }

    fn shutdown_write(&self) -> io::Result<()> {
        self.get_ref().shutdown(std::net::Shutdown::Write)
    }

    fn set_nodelay(&self, on: bool) -> io::Result<()> {
        self.get_ref().set_nodelay(on)
    }
}
