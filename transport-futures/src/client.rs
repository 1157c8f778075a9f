//! The client driver: one session over one futures-io stream, its answer timer on
//! `async-io`.

use std::io;
use std::time::{Duration, Instant};

use async_io::Timer;
use bytes::BytesMut;
use futures_lite::future;
use futures_lite::io::{
    AsyncRead, AsyncReadExt, AsyncSeek, AsyncSeekExt, AsyncWrite, AsyncWriteExt,
};
use protocol_core::rand_core::CryptoRngCore;
use protocol_core::{ClientEvent, ClientSession, Outcome, UsageError};
use transport_interface::{end_of_stream, ClientError, ClientOptions};

enum Got {
    Written(io::Result<()>),
    Read(io::Result<usize>),
    Timer,
}

/// Runs `session` over `stream` to its end, feeding it `file` whenever it asks;
/// `on_event` sees every event. The server's silence is bounded by the session's
/// own answer timer, set to [`ClientOptions::response_timeout`]: it fails with
/// `ClientFailure::Peer(PeerError::Timeout(_))`.
pub async fn run_client<R, S, F>(
    session: &mut ClientSession<R>,
    stream: S,
    file: &mut F,
    options: &ClientOptions,
    mut on_event: impl FnMut(&ClientEvent),
) -> Result<Outcome, ClientError>
where
    R: CryptoRngCore,
    S: AsyncRead + AsyncWrite + Unpin,
    F: AsyncRead + AsyncSeek + Unpin,
{
    session.set_answer_timeout(options.response_timeout);
    let (mut rd, mut wr) = futures_lite::io::split(stream);
    let mut input = BytesMut::with_capacity(4096);
    let mut out = BytesMut::new();
    let mut chunk = vec![0u8; options.read_chunk.max(4096)];
    let mut incoming = vec![0u8; 64 * 1024];
    let mut sending = false;
    loop {
        while let Some(ev) = session.poll_event() {
            on_event(&ev);
            match ev {
                ClientEvent::SendFile { .. } => {
                    file.seek(io::SeekFrom::Start(0)).await?;
                    sending = true;
                }
                ClientEvent::Finished(outcome) => {
                    session.poll_transmit(&mut out);
                    write_within(&mut wr, &out, options.response_timeout).await?;
                    let _ = wr.close().await;
                    return Ok(outcome);
                }
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
                let mut data = &chunk[..n];
                while !data.is_empty() {
                    match session.push_file_data(data) {
                        Ok(taken) => data = &data[taken..],
                        Err(UsageError::SendBufferFull) => {
                            session.poll_transmit(&mut out);
                            write_within(&mut wr, &out, options.response_timeout).await?;
                            out.clear();
                        }
                        Err(e) => return Err(ClientError::File(e)),
                    }
                }
            }
        }
        session.poll_transmit(&mut out);
        if let Some(f) = session.failure() {
            return Err(ClientError::Failure(f.clone()));
        }
        if !out.is_empty() {
            // Write, but read whatever the server says meanwhile; a write that makes no
            // progress for the timeout (a server that stopped reading) fails.
            let mut write = std::pin::pin!(wr.write_all(&out));
            let mut deadline = Instant::now() + options.response_timeout;
            loop {
                let got = future::or(
                    future::or(async { Got::Written(write.as_mut().await) }, async {
                        Got::Read(rd.read(&mut incoming).await)
                    }),
                    async {
                        Timer::at(deadline).await;
                        Got::Timer
                    },
                )
                .await;
                match got {
                    Got::Written(r) => {
                        r?;
                        break;
                    }
                    Got::Read(r) => {
                        let n = r?;
                        if n == 0 {
                            return end_of_stream(session, &mut input, &mut on_event);
                        }
                        input.extend_from_slice(&incoming[..n]);
                        session
                            .handle_input(&mut input)
                            .map_err(ClientError::Failure)?;
                        // The server is alive: the write gets a fresh timeout.
                        deadline = Instant::now() + options.response_timeout;
                    }
                    Got::Timer => return Err(ClientError::Timeout(options.response_timeout)),
                }
            }
            out.clear();
            continue;
        }
        if sending {
            continue;
        }
        // Nothing to send: wait for the answer, no later than the session's deadline.
        session
            .handle_timeout(Instant::now())
            .map_err(ClientError::Failure)?;
        let deadline = session.poll_timeout();
        let read = async { Got::Read(rd.read(&mut incoming).await) };
        let got = match deadline {
            Some(t) => {
                future::or(read, async {
                    Timer::at(t).await;
                    Got::Timer
                })
                .await
            }
            None => read.await,
        };
        match got {
            Got::Read(r) => {
                let n = r?;
                if n == 0 {
                    return end_of_stream(session, &mut input, &mut on_event);
                }
                input.extend_from_slice(&incoming[..n]);
                session
                    .handle_input(&mut input)
                    .map_err(ClientError::Failure)?;
            }
            Got::Timer => session
                .handle_timeout(Instant::now())
                .map_err(ClientError::Failure)?,
            Got::Written(_) => {}
        }
    }
}

/// Writes `bytes` in one `write_all`, failing with [`ClientError::Timeout`] if the
/// peer does not take them within `timeout`.
async fn write_within<W: AsyncWrite + Unpin>(
    wr: &mut W,
    bytes: &[u8],
    timeout: Duration,
) -> Result<(), ClientError> {
    future::or(async { Some(wr.write_all(bytes).await) }, async {
        Timer::after(timeout).await;
        None
    })
    .await
    .ok_or(ClientError::Timeout(timeout))??;
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
