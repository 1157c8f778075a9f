//! A stream that reports what it reads to the connection limiter and ends (reads
//! as end of stream) once the limiter sheds its connection for a newcomer.

use std::io;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::BytesMut;
use transport_interface::Slot;

use crate::runtime::Stream;

/// A server connection's stream under the limiter's eye.
pub(crate) struct Watched<S> {
    pub inner: S,
    pub slot: Arc<Slot>,
}

/// Reads from `stream` for the connection of `slot`: the end of the stream once
/// the slot is shed.
pub(crate) fn poll_read_watched<S: Stream + ?Sized>(
    stream: &S,
    slot: &Slot,
    cx: &mut Context<'_>,
    buf: &mut BytesMut,
) -> Poll<io::Result<usize>> {
    slot.set_waker(cx.waker());
    // Checked after the waker is set: a shed between the two still wakes us.
    if slot.is_shed() {
        return Poll::Ready(Ok(0));
    }
    let r = stream.poll_read_buf(cx, buf);
    if let Poll::Ready(Ok(n)) = &r {
        slot.note_read(*n);
    }
    r
}

impl<S: Stream> Stream for Watched<S> {
    fn poll_read_buf(&self, cx: &mut Context<'_>, buf: &mut BytesMut) -> Poll<io::Result<usize>> {
        poll_read_watched(&self.inner, &self.slot, cx, buf)
    }
    fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.inner.poll_write(cx, buf)
    }
    fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        self.inner.try_write(buf)
    }
    fn shutdown_write(&self) -> io::Result<()> {
        self.inner.shutdown_write()
    }
    fn set_nodelay(&self, on: bool) -> io::Result<()> {
        self.inner.set_nodelay(on)
    }
}
