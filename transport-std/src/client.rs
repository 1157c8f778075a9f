//! The blocking client driver: one session over one TCP stream, the file read
//! from any `Read + Seek`.

use std::io::{self, Read, Seek, SeekFrom, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::BytesMut;
use protocol_core::{ClientEvent, ClientFailure, ClientSession, Outcome, UsageError};
use rand_core::CryptoRngCore;

/// Why a client run did not end with an [`Outcome`].
#[derive(Debug)]
pub enum ClientError {
    /// The socket or the file failed.
    Io(io::Error),
    /// The protocol run failed (the server refused, or broke the protocol).
    Failure(ClientFailure),
    /// The file did not match its announced size (it changed while being sent).
    File(UsageError),
    /// The server did not answer in time.
    Timeout(Duration),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::Io(e) => write!(f, "{e}"),
            ClientError::Failure(e) => write!(f, "{e}"),
            ClientError::File(e) => write!(f, "the file changed while it was sent: {e}"),
            ClientError::Timeout(d) => write!(f, "the server did not answer within {d:?}"),
        }
    }
}

impl std::error::Error for ClientError {}

impl From<io::Error> for ClientError {
    fn from(e: io::Error) -> Self {
        ClientError::Io(e)
    }
}

/// Settings of the client driver.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// How long to wait for any answer from the server.
    pub response_timeout: Duration,
    /// Bytes read from the file at a time.
    pub read_chunk: usize,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            response_timeout: Duration::from_secs(60),
            read_chunk: 1 << 20,
        }
    }
}

/// Runs `session` over `stream` to its end, feeding it `file` whenever it asks;
/// `on_event` sees every event (for messages, `me.info`, progress).
pub fn run_client<R: CryptoRngCore, F: Read + Seek>(
    session: &mut ClientSession<R>,
    stream: &mut TcpStream,
    file: &mut F,
    options: &ClientOptions,
    mut on_event: impl FnMut(&ClientEvent),
) -> Result<Outcome, ClientError> {
    stream.set_nodelay(true)?;
    let mut input = BytesMut::with_capacity(4096);
    let mut out = BytesMut::new();
    let mut chunk = vec![0u8; options.read_chunk.max(4096)];
    let mut scratch = vec![0u8; 64 * 1024];
    let mut sending = false;
    loop {
        while let Some(ev) = session.poll_event() {
            on_event(&ev);
            match ev {
                ClientEvent::SendFile { .. } => {
                    file.seek(SeekFrom::Start(0))?;
                    sending = true;
                }
                ClientEvent::Finished(outcome) => {
                    session.poll_transmit(&mut out);
                    stream.write_all(&out)?;
                    return Ok(outcome);
                }
                _ => {}
            }
        }
        if sending && session.wants_file_data() {
            let n = read_full(file, &mut chunk)?;
            if n == 0 {
                session.end_of_file().map_err(ClientError::File)?;
                sending = false;
            } else {
                session
                    .push_file_data(&chunk[..n])
                    .map_err(ClientError::File)?;
            }
        }
        session.poll_transmit(&mut out);
        if !out.is_empty() {
            stream.write_all(&out)?;
            out.clear();
        }
        if let Some(f) = session.failure() {
            return Err(ClientError::Failure(f.clone()));
        }
        // While sending, only look at what has already arrived (a server that answers
        // every packet must not fill its socket while we keep writing).
        let n = if sending {
            stream.set_nonblocking(true)?;
            let r = stream.read(&mut scratch);
            stream.set_nonblocking(false)?;
            match r {
                Ok(0) => 0,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            }
        } else {
            stream.set_read_timeout(Some(options.response_timeout))?;
            match stream.read(&mut scratch) {
                Ok(n) => n,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(ClientError::Timeout(options.response_timeout))
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            }
        };
        if n == 0 {
            return end_of_stream(session, &mut input, &mut on_event);
        }
        input.extend_from_slice(&scratch[..n]);
        session
            .handle_input(&mut input)
            .map_err(ClientError::Failure)?;
    }
}

/// The server closed the connection: what is left in `input` may still finish the
/// run (a last 1604); otherwise the run failed.
pub fn end_of_stream<R: CryptoRngCore>(
    session: &mut ClientSession<R>,
    input: &mut BytesMut,
    on_event: &mut impl FnMut(&ClientEvent),
) -> Result<Outcome, ClientError> {
    session.handle_input(input).map_err(ClientError::Failure)?;
    while let Some(ev) = session.poll_event() {
        on_event(&ev);
        if let ClientEvent::Finished(outcome) = ev {
            return Ok(outcome);
        }
    }
    Err(ClientError::Failure(session.handle_eof().err().unwrap_or(
        ClientFailure::Peer(protocol_core::PeerError::UnexpectedEof),
    )))
}

fn read_full<F: Read>(file: &mut F, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}
