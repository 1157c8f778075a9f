//! The tokio adapter: tokio's tasks, timers and blocking pool; its `TcpStream`
//! reads straight into the spare capacity of the input buffer (no zeroing, no copy).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use bytes::BytesMut;
use tokio::net::{TcpListener, TcpStream};
use transport_interface::Offload;

use super::{Runtime, Stream, Task, Timer};

/// The tokio runtime the calling task runs on (`tokio::spawn`,
/// `tokio::task::spawn_blocking`, `tokio::time`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Tokio;

impl Offload for Tokio {
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

impl Runtime for Tokio {
    type Timer = Sleep;
    type Listener = TcpListener;
    type Stream = TcpStream;

    fn timer(at: Instant) -> Sleep {
        Sleep(Box::pin(tokio::time::sleep_until(at.into())))
    }

    fn spawn(&self, task: Task) {
        tokio::spawn(task);
    }

    async fn accept(listener: &TcpListener) -> io::Result<(TcpStream, SocketAddr)> {
        listener.accept().await
    }
}

/// A tokio `Sleep`, boxed so that it can be moved and reset.
pub struct Sleep(Pin<Box<tokio::time::Sleep>>);

impl Future for Sleep {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.0.as_mut().poll(cx)
    }
}

impl Timer for Sleep {
    fn reset(&mut self, at: Instant) {
        self.0.as_mut().reset(at.into());
    }
}

impl Stream for TcpStream {
    fn poll_read_buf(&self, cx: &mut Context<'_>, buf: &mut BytesMut) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.poll_read_ready(cx))?;
            match self.try_read_buf(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                r => return Poll::Ready(r),
            }
        }
    }

    fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.poll_write_ready(cx))?;
            match self.try_write(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                r => return Poll::Ready(r),
            }
        }
    }

    fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        TcpStream::try_write(self, buf)
    }

    fn shutdown_write(&self) -> io::Result<()> {
        socket2::SockRef::from(self).shutdown(std::net::Shutdown::Write)
    }

    fn set_nodelay(&self, on: bool) -> io::Result<()> {
        TcpStream::set_nodelay(self, on)
    }
}
