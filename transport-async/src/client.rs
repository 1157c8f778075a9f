//! The client driver: one session over one [`Stream`], the file from a [`Source`].

use std::future::Future;
use std::io;
use std::time::Instant;

use bytes::BytesMut;
use futures_lite::future;
use protocol_core::rand_core::CryptoRngCore;
use protocol_core::{ClientEvent, ClientSession, Outcome, UsageError};
use transport_interface::{end_of_stream, ClientError, ClientOptions};

use crate::runtime::{read_buf, until, write_all, Runtime, Stream};

/// The file a client uploads, read from its start again whenever the session asks
/// ([`ClientEvent::SendFile`]).
pub trait Source: Send {
    /// Reads into `buf`: how many bytes (0 at the end).
    fn read(&mut self, buf: &mut [u8]) -> impl Future<Output = io::Result<usize>> + Send;
    /// Goes back to the first byte.
    fn rewind(&mut self) -> impl Future<Output = io::Result<()>> + Send;
}

/// A file in memory.
impl<T: AsRef<[u8]> + Send> Source for io::Cursor<T> {
    async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        io::Read::read(self, buf)
    }
    async fn rewind(&mut self) -> io::Result<()> {
        self.set_position(0);
        Ok(())
    }
}

#[cfg(feature = "tokio")]
impl Source for tokio::fs::File {
    async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        tokio::io::AsyncReadExt::read(self, buf).await
    }
    async fn rewind(&mut self) -> io::Result<()> {
        tokio::io::AsyncSeekExt::rewind(self).await.map(drop)
    }
}

#[cfg(feature = "smol")]
impl Source for smol::fs::File {
    async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        futures_lite::AsyncReadExt::read(self, buf).await
    }
    async fn rewind(&mut self) -> io::Result<()> {
        futures_lite::AsyncSeekExt::seek(self, io::SeekFrom::Start(0)).await?;
        Ok(())
    }
}

/// What ended a wait while a request was being written.
enum Got {
    Written(io::Result<()>),
    Read(io::Result<usize>),
}

/// Room for the server's answers, reserved before each read (they are small: a
/// runtime that zeroes before it reads zeroes only this much).
const READ_ROOM: usize = 4 * 1024;

/// Runs `session` over `stream` to its end, feeding it `file` whenever it asks;
/// `on_event` sees every event.
///
/// Each buffer [`ClientSession::poll_transmit`] fills goes out as one write (a
/// request is never split; with [`protocol_core::Dialect::one_request_per_write`]
/// never joined to another), what the server says meanwhile is read, and
/// [`ClientOptions::response_timeout`] bounds every wait ([`ClientError::Timeout`]):
/// each write that makes no progress (a server that stopped reading) as well as
/// each answer.
pub async fn run_client<R: Runtime, C: CryptoRngCore, F: Source>(
    session: &mut ClientSession<C>,
    stream: R::Stream,
    file: &mut F,
    options: &ClientOptions,
    mut on_event: impl FnMut(&ClientEvent),
) -> Result<Outcome, ClientError> {
    stream.set_nodelay(true)?;
    let timeout = options.response_timeout;
    let mut input = BytesMut::with_capacity(READ_ROOM);
    let mut out = BytesMut::new();
    let mut chunk = vec![0u8; options.read_chunk.max(4096)];
    let mut sending = false;
    loop {
        while let Some(ev) = session.poll_event() {
            on_event(&ev);
            match ev {
                ClientEvent::SendFile { .. } => {
                    file.rewind().await?;
                    sending = true;
                }
                ClientEvent::Finished(outcome) => loop {
                    session.poll_transmit(&mut out);
                    if out.is_empty() {
                        let _ = stream.shutdown_write();
                        return Ok(outcome);
                    }
                    write_within::<R>(&stream, &out, timeout).await?;
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
                        Err(UsageError::SendBufferFull) => {
                            session.poll_transmit(&mut out);
                            write_within::<R>(&stream, &out, timeout).await?;
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
        // Every request the session lets go, each call's output as a write of its
        // own; what the server says meanwhile is read.
        let mut ended = false;
        loop {
            session.poll_transmit(&mut out);
            if out.is_empty() {
                break;
            }
            {
                let mut write = std::pin::pin!(write_all(&stream, &out));
                let mut deadline = Instant::now() + timeout;
                loop {
                    input.reserve(READ_ROOM);
                    let written = async { Got::Written(write.as_mut().await) };
                    let read = async { Got::Read(read_buf(&stream, &mut input).await) };
                    let Some(got) = until::<R, _>(deadline, future::or(written, read)).await else {
                        return Err(ClientError::Timeout(timeout));
                    };
                    match got {
                        Got::Written(r) => break r?,
                        Got::Read(r) => {
                            if r? == 0 {
                                ended = true;
                                break;
                            }
                            session
                                .handle_input(&mut input)
                                .map_err(ClientError::Failure)?;
                            // The server is alive: the write gets a fresh timeout.
                            deadline = Instant::now() + timeout;
                        }
                    }
                }
            }
            out.clear();
            if ended {
                return end_of_stream(session, &mut input, &mut on_event);
            }
        }
        if sending && session.wants_file_data() {
            continue;
        }
        // Nothing to send: wait for the answer, no later than the session's own
        // deadline or the response timeout.
        let now = Instant::now();
        let wait_until = session
            .poll_timeout()
            .map_or(now + timeout, |t| t.min(now + timeout));
        input.reserve(READ_ROOM);
        match until::<R, _>(wait_until, read_buf(&stream, &mut input)).await {
            Some(Ok(0)) => return end_of_stream(session, &mut input, &mut on_event),
            Some(Ok(_)) => session
                .handle_input(&mut input)
                .map_err(ClientError::Failure)?,
            Some(Err(e)) => return Err(e.into()),
            None if Instant::now() >= now + timeout => return Err(ClientError::Timeout(timeout)),
            None => session
                .handle_timeout(Instant::now())
                .map_err(ClientError::Failure)?,
        }
    }
}

/// Writes `bytes` in one go, failing with [`ClientError::Timeout`] if the server
/// does not take them within `timeout`.
async fn write_within<R: Runtime>(
    stream: &R::Stream,
    bytes: &[u8],
    timeout: std::time::Duration,
) -> Result<(), ClientError> {
    until::<R, _>(Instant::now() + timeout, write_all(stream, bytes))
        .await
        .ok_or(ClientError::Timeout(timeout))??;
    Ok(())
}

async fn read_full<F: Source>(file: &mut F, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]).await? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}
