//! The blocking client driver: one session over one TCP stream, the file read
//! from any `Read + Seek`.

use std::io::{self, Read, Seek, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TryRecvError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use protocol_core::{ClientEvent, ClientSession, Outcome, UsageError};
use rand_core::CryptoRngCore;

use crate::read_ahead::ReadAhead;
pub use transport_interface::{end_of_stream, ClientError, ClientOptions};

/// Runs `session` over `stream` to its end, feeding it `file` whenever it asks;
/// `on_event` sees every event (for messages, `me.info`, progress).
///
/// Four threads share the work: this one encrypts, one reads the file ahead of it,
/// one writes to the socket, one reads from it (so a server that answers every packet can never
/// fill its socket while this side keeps writing). Each buffer that
/// [`ClientSession::poll_transmit`] fills is written with one write, so a request
/// is never split and, with [`protocol_core::Dialect::one_request_per_write`], never
/// shares a write with another. [`ClientOptions::response_timeout`] bounds every wait.
///
/// [`ClientEvent::Progress`] counts the file bytes written to the socket (not those
/// the session has packed and queued), and on Linux the kernel is asked to hold at
/// most [`UNSENT_LIMIT`] bytes not yet sent: so the count is close to what has left.
pub fn run_client<R: CryptoRngCore, F: Read + Seek + Send>(
    session: &mut ClientSession<R>,
    stream: &mut TcpStream,
    file: &mut F,
    options: &ClientOptions,
    on_event: impl FnMut(&ClientEvent),
) -> Result<Outcome, ClientError> {
    std::thread::scope(|scope| {
        let mut file = ReadAhead::new(file, options.read_chunk);
        let result = run_connections(session, stream, &mut file, scope, options, on_event);
        file.stop()?;
        result
    })
}

fn run_connections<'scope, R: CryptoRngCore, F: Read + Seek + Send>(
    session: &mut ClientSession<R>,
    stream: &mut TcpStream,
    file: &mut ReadAhead<'scope, F>,
    scope: &'scope std::thread::Scope<'scope, '_>,
    options: &ClientOptions,
    mut on_event: impl FnMut(&ClientEvent),
) -> Result<Outcome, ClientError> {
    let mut sending = false;
    // File data the session could not take yet; it outlives a connection (variant 7).
    let mut leftover: Option<(Vec<u8>, usize)> = None;
    // The socket refuses a zero timeout; the shortest it takes is as good as none.
    let timeout = options.response_timeout.max(Duration::from_millis(1));
    loop {
        stream.set_nodelay(true)?;
        // A server that stops reading must not hold a write forever.
        stream.set_write_timeout(Some(timeout))?;
        #[cfg(target_os = "linux")]
        {
            // Best effort: without it the count only includes more kernel buffer.
            let _ = socket2::SockRef::from(&*stream).set_tcp_notsent_lowat(UNSENT_LIMIT);
        }
        let mut writer = Writer::new(stream, timeout)?;
        let reader = Reader::new(stream)?;
        let step = drive(
            session,
            &mut writer,
            &reader,
            file,
            scope,
            options,
            &mut sending,
            &mut leftover,
            &mut on_event,
        );
        match step {
            Ok(Step::Finished(outcome)) => {
                // Unblocks the reader thread; the writer has finished.
                let _ = stream.shutdown(std::net::Shutdown::Read);
                return Ok(outcome);
            }
            Ok(Step::NewConnection) => {
                // Variant 7: everything queued is written; the next request goes on
                // a connection of its own.
                let peer = stream.peer_addr()?;
                let _ = stream.shutdown(std::net::Shutdown::Both);
                *stream = TcpStream::connect_timeout(&peer, timeout)
                    .map_err(|e| timed_out(e, timeout))?;
                session.connection_opened();
            }
            Err(e) => {
                let _ = stream.shutdown(std::net::Shutdown::Read);
                return Err(e);
            }
        }
    }
}

/// The most bytes the kernel is asked to hold unsent for the client (Linux): enough
/// to keep the link busy, small enough that what was written has nearly left.
pub const UNSENT_LIMIT: u32 = 128 * 1024;

/// How long answers are still read after a write failed: a server that refuses a
/// request and closes resets the connection, and its refusal, already on its way,
/// says more than the reset.
const DRAIN_AFTER_WRITE_ERROR: Duration = Duration::from_secs(2);

/// How often the written count is looked at while waiting for an answer.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(100);

/// How one connection's part of a run ended.
enum Step {
    Finished(Outcome),
    NewConnection,
}

#[allow(clippy::too_many_arguments)]
fn drive<'scope, R: CryptoRngCore, F: Read + Seek + Send>(
    session: &mut ClientSession<R>,
    writer: &mut Writer,
    reader: &Reader,
    file: &mut ReadAhead<'scope, F>,
    scope: &'scope std::thread::Scope<'scope, '_>,
    options: &ClientOptions,
    sending: &mut bool,
    leftover: &mut Option<(Vec<u8>, usize)>,
    on_event: &mut impl FnMut(&ClientEvent),
) -> Result<Step, ClientError> {
    let mut input = BytesMut::with_capacity(4096);
    let mut progress = Reported::default();
    let step = drive_inner(
        session,
        writer,
        reader,
        file,
        scope,
        options,
        sending,
        leftover,
        &mut input,
        &mut progress,
        on_event,
    );
    if let Err(ClientError::Io(_)) = &step {
        // The answers that arrived before the failure come first (see
        // DRAIN_AFTER_WRITE_ERROR); a failure they end the run with replaces it.
        drain_answers(session, reader, &mut input, on_event);
        if let Some(f) = session.failure() {
            return Err(ClientError::Failure(f.clone()));
        }
    }
    step
}

/// The written count last reported, and the file's size for the events.
#[derive(Default)]
struct Reported {
    sent: u64,
    total: u64,
}

impl Reported {
    /// Reports the file bytes written so far, if that moved.
    fn update(&mut self, writer: &Writer, on_event: &mut impl FnMut(&ClientEvent)) {
        let written = writer.written();
        if written != self.sent && written <= self.total {
            self.sent = written;
            on_event(&ClientEvent::Progress {
                sent: written,
                total: self.total,
            });
        }
    }
}

/// Feeds the session what the server sent before the connection failed.
fn drain_answers<R: CryptoRngCore>(
    session: &mut ClientSession<R>,
    reader: &Reader,
    input: &mut BytesMut,
    on_event: &mut impl FnMut(&ClientEvent),
) {
    let deadline = Instant::now() + DRAIN_AFTER_WRITE_ERROR;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match reader.rx.recv_timeout(left) {
            Ok(Incoming::Data(bytes)) => {
                input.extend_from_slice(&bytes);
                let failed = session.handle_input(input).is_err();
                while let Some(ev) = session.poll_event() {
                    if !matches!(ev, ClientEvent::Progress { .. }) {
                        on_event(&ev);
                    }
                }
                if failed {
                    return;
                }
            }
            _ => return,
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn drive_inner<'scope, R: CryptoRngCore, F: Read + Seek + Send>(
    session: &mut ClientSession<R>,
    writer: &mut Writer,
    reader: &Reader,
    file: &mut ReadAhead<'scope, F>,
    scope: &'scope std::thread::Scope<'scope, '_>,
    options: &ClientOptions,
    sending: &mut bool,
    leftover: &mut Option<(Vec<u8>, usize)>,
    input: &mut BytesMut,
    progress: &mut Reported,
    on_event: &mut impl FnMut(&ClientEvent),
) -> Result<Step, ClientError> {
    let mut out = BytesMut::new();
    loop {
        progress.update(writer, on_event);
        while let Some(ev) = session.poll_event() {
            if let ClientEvent::Progress { total, .. } = ev {
                // Packed and queued only: the written count is reported instead.
                progress.total = total;
                continue;
            }
            on_event(&ev);
            match ev {
                ClientEvent::SendFile { .. } => {
                    *leftover = None;
                    file.restart(scope)?;
                    *sending = true;
                    writer.restart();
                    progress.sent = 0;
                }
                ClientEvent::Finished(outcome) => {
                    transmit(session, writer, &mut out)?;
                    writer.finish()?;
                    return Ok(Step::Finished(outcome));
                }
                ClientEvent::NewConnection => {
                    writer.finish()?;
                    return Ok(Step::NewConnection);
                }
                _ => {}
            }
        }
        if *sending && leftover.is_none() && session.wants_file_data() {
            let chunk = file.next()?;
            if chunk.is_empty() {
                session.end_of_file().map_err(ClientError::File)?;
                *sending = false;
                file.recycle(chunk);
            } else {
                *leftover = Some((chunk, 0));
            }
        }
        if let Some((chunk, mut at)) = leftover.take() {
            // The session takes a bounded amount at a time: send, then go on. When
            // nothing can be sent (a connection per request waits for its answer), the
            // rest of the chunk waits for the next turn.
            while at < chunk.len() {
                match session.push_file_data(&chunk[at..]) {
                    Ok(n) if n > 0 => at += n,
                    Ok(_) | Err(UsageError::SendBufferFull) => {
                        session.poll_transmit(&mut out);
                        if out.is_empty() {
                            break;
                        }
                        writer.send(&mut out, session.file_bytes_transmitted())?;
                    }
                    Err(e) => return Err(ClientError::File(e)),
                }
            }
            if at < chunk.len() {
                *leftover = Some((chunk, at));
            } else {
                file.recycle(chunk);
            }
        }
        transmit(session, writer, &mut out)?;
        progress.update(writer, on_event);
        if let Some(f) = session.failure() {
            return Err(ClientError::Failure(f.clone()));
        }
        // While there is file data to take, take only what has already arrived;
        // otherwise wait.
        let message = if *sending && leftover.is_none() && session.wants_file_data() {
            match reader.rx.try_recv() {
                Ok(m) => m,
                Err(TryRecvError::Empty) => continue,
                Err(TryRecvError::Disconnected) => Incoming::Eof,
            }
        } else {
            // Waiting for an answer while the writer drains: the count moves on.
            let deadline = Instant::now() + options.response_timeout;
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(ClientError::Timeout(options.response_timeout));
                }
                match reader.rx.recv_timeout(left.min(PROGRESS_INTERVAL)) {
                    Ok(m) => break m,
                    Err(RecvTimeoutError::Timeout) => progress.update(writer, on_event),
                    Err(RecvTimeoutError::Disconnected) => break Incoming::Eof,
                }
            }
        };
        match message {
            Incoming::Data(bytes) => {
                input.extend_from_slice(&bytes);
                session.handle_input(input).map_err(ClientError::Failure)?;
            }
            Incoming::Eof => {
                progress.update(writer, on_event);
                return end_of_stream(session, input, on_event).map(Step::Finished);
            }
            Incoming::Error(e) => return Err(e.into()),
        }
    }
}

/// Hands every request the session lets go to the writer, each call's output as a
/// write of its own.
fn transmit<R: CryptoRngCore>(
    session: &mut ClientSession<R>,
    writer: &mut Writer,
    out: &mut BytesMut,
) -> Result<(), ClientError> {
    loop {
        session.poll_transmit(out);
        if out.is_empty() {
            return Ok(());
        }
        writer.send(out, session.file_bytes_transmitted())?;
    }
}

/// A socket timeout (`WouldBlock` on Unix, `TimedOut` on Windows) as the run's timeout.
fn timed_out(e: io::Error, after: Duration) -> ClientError {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => ClientError::Timeout(after),
        _ => ClientError::Io(e),
    }
}

enum Incoming {
    Data(Vec<u8>),
    Eof,
    Error(io::Error),
}

/// Reads the socket on a thread of its own and hands over what arrives.
struct Reader {
    rx: Receiver<Incoming>,
}

impl Reader {
    fn new(stream: &TcpStream) -> io::Result<Reader> {
        let mut socket = stream.try_clone()?;
        let (tx, rx) = sync_channel(16);
        std::thread::Builder::new()
            .name("socket reader".into())
            .spawn(move || {
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let message = match socket.read(&mut buf) {
                        Ok(0) => Incoming::Eof,
                        Ok(n) => Incoming::Data(buf[..n].to_vec()),
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => Incoming::Error(e),
                    };
                    let last = !matches!(message, Incoming::Data(_));
                    if tx.send(message).is_err() || last {
                        break;
                    }
                }
            })?;
        Ok(Reader { rx })
    }
}

/// Writes to the socket on a thread of its own, so that encrypting the next piece of
/// the file overlaps with sending the last (encryption is the serial bottleneck).
/// At most [`WRITE_QUEUE`] buffers wait; buffers come back for reuse.
struct Writer {
    tx: Option<SyncSender<(BytesMut, u64)>>,
    /// File bytes of the current send in the buffers written so far.
    written: Arc<AtomicU64>,
    spare: Receiver<BytesMut>,
    thread: Option<JoinHandle<io::Result<()>>>,
    /// The socket's write timeout, to name in the error when a write times out.
    timeout: Duration,
}

const WRITE_QUEUE: usize = 2;

impl Writer {
    fn new(stream: &TcpStream, timeout: Duration) -> io::Result<Writer> {
        let mut socket = stream.try_clone()?;
        let (tx, rx) = sync_channel::<(BytesMut, u64)>(WRITE_QUEUE);
        let (back_tx, spare) = sync_channel::<BytesMut>(WRITE_QUEUE + 1);
        let written = Arc::new(AtomicU64::new(0));
        let count = written.clone();
        let thread = std::thread::Builder::new()
            .name("socket writer".into())
            .spawn(move || {
                for (mut buf, file_bytes) in rx {
                    write_record(&socket, &buf)?;
                    count.fetch_max(file_bytes, Ordering::Relaxed);
                    buf.clear();
                    let _ = back_tx.try_send(buf);
                }
                socket.flush()
            })?;
        Ok(Writer {
            tx: Some(tx),
            written,
            spare,
            thread: Some(thread),
            timeout,
        })
    }

    /// Queues what `out` holds, leaving `out` empty (a recycled buffer). Waits while
    /// the queue is full, at most as long as the socket's write timeout (the thread
    /// then fails and the queue closes).
    /// `file_bytes`: those of the current send once this buffer is written.
    fn send(&mut self, out: &mut BytesMut, file_bytes: u64) -> Result<(), ClientError> {
        if out.is_empty() {
            return Ok(());
        }
        let buf = std::mem::replace(out, self.spare.try_recv().unwrap_or_default());
        let sent = self
            .tx
            .as_ref()
            .map(|tx| tx.send((buf, file_bytes)).is_ok())
            .unwrap_or(false);
        if sent {
            Ok(())
        } else {
            // The thread stopped: its error says why.
            let e = self
                .join()
                .err()
                .unwrap_or_else(|| io::Error::other("socket writer stopped"));
            Err(timed_out(e, self.timeout))
        }
    }

    /// File bytes of the current send written to the socket.
    fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// A new send of the file starts from its first byte. What an earlier send
    /// queued was written before the answer that asked for this one arrived.
    fn restart(&self) {
        self.written.store(0, Ordering::Relaxed);
    }

    /// Waits until everything queued is written.
    fn finish(&mut self) -> Result<(), ClientError> {
        self.join().map_err(|e| timed_out(e, self.timeout))
    }

    fn join(&mut self) -> io::Result<()> {
        self.tx = None;
        match self.thread.take() {
            Some(t) => t
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("socket writer panicked"))),
            None => Ok(()),
        }
    }
}

/// Writes one buffer of whole requests. On Linux with `MSG_EOR`, so that the kernel
/// never appends a later write to it while it waits for the peer's window: a
/// request then travels in a segment of its own (up to the segment size) and is
/// never cut where a partly open window happens to end. Without it, a server that
/// reads a request with one `recv` (variant 13) and falls behind gets a request
/// split across two reads.
fn write_record(socket: &TcpStream, buf: &[u8]) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        let socket = socket2::SockRef::from(socket);
        let mut rest = buf;
        while !rest.is_empty() {
            match socket.send_with_flags(rest, libc::MSG_EOR) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => rest = &rest[n..],
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
    #[cfg(not(target_os = "linux"))]
    {
        let mut socket = socket;
        socket.write_all(buf)
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Closing the queue ends the thread once it has written what it holds.
        self.tx = None;
    }
}
