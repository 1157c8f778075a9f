//! What every client driver shares: its options, its error, and the end of the stream.

use std::io;
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
    /// The server did not answer, take our bytes or accept a connection in time.
    Timeout(Duration),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::Io(e) => write!(f, "{e}"),
            ClientError::Failure(e) => write!(f, "{e}"),
            ClientError::File(e) => write!(f, "the file changed while it was sent: {e}"),
            ClientError::Timeout(d) => write!(
                f,
                "the server did not answer, or stopped reading, for {d:?}"
            ),
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
    /// The longest any one wait may last: a connection (a connection per request),
    /// each write to the socket, each answer from the server. A server that stops
    /// reading, stops answering or stops accepting fails the run with
    /// [`ClientError::Timeout`] after this long.
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
