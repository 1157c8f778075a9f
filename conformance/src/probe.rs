//! Blocking std::net connections to a server under test, with every byte recorded
//! as evidence and every wait bounded.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use protocol_core::crypto::PrivateKey;
use thiserror::Error;

use crate::evidence::Evidence;
use crate::frames::{response_code, RawResponse};

/// Largest response payload read (a 1602 with an RSA-4096 key is 528 bytes).
pub const MAX_RESPONSE_PAYLOAD: usize = 4096;

/// Why a case could not run to its conclusion.
#[derive(Debug, Error)]
pub enum CaseError {
    /// A step the case needs did not work (registration refused, no key).
    #[error("could not run: {0}")]
    Setup(String),
    /// The network failed in a way the case does not judge.
    #[error("network error: {0}")]
    Io(#[from] std::io::Error),
}

/// What came back for a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// A whole response.
    Response(RawResponse),
    /// The peer closed the connection cleanly (EOF) before a whole response.
    Closed,
    /// The connection was reset.
    Reset,
    /// Nothing (or not a whole response) within the time allowed.
    Timeout,
    /// Bytes that are no response (an unknown code, an oversized payload).
    Garbage,
}

impl Answer {
    /// The response code, if a response came.
    pub fn code(&self) -> Option<u16> {
        match self {
            Answer::Response(r) => Some(r.code),
            _ => None,
        }
    }

    /// The response, if one came.
    pub fn response(&self) -> Option<&RawResponse> {
        match self {
            Answer::Response(r) => Some(r),
            _ => None,
        }
    }

    /// A refusal: 1601, 1606, 1607, a close or a reset.
    pub fn is_refusal(&self) -> bool {
        matches!(self.code(), Some(1601 | 1606 | 1607))
            || matches!(self, Answer::Closed | Answer::Reset)
    }

    /// Short text for details: `1600`, `close`, `timeout`...
    pub fn describe(&self) -> String {
        match self {
            Answer::Response(r) => r.code.to_string(),
            Answer::Closed => "close".into(),
            Answer::Reset => "reset".into(),
            Answer::Timeout => "no answer".into(),
            Answer::Garbage => "garbage".into(),
        }
    }
}

/// One TCP connection to the server under test.
#[derive(Debug)]
pub struct Conn {
    stream: TcpStream,
    /// A response has been read on it: a server may have closed it since.
    pub answered: bool,
}

/// What every case of a run shares: the address, the keys, the names registered.
#[derive(Debug)]
pub struct Env {
    /// The server under test.
    pub addr: SocketAddr,
    /// How long to wait for an answer that should come.
    pub answer_timeout: Duration,
    /// How long to wait to be sure no answer comes.
    pub silence: Duration,
    /// The most one case may take: past it, every wait ends at once and no new
    /// connection is opened (the case ends ERROR or judges what it has).
    pub case_limit: Duration,
    /// Two RSA key pairs, made once per run.
    pub keys: [PrivateKey; 2],
    /// The server closes every connection after its answer (variant 7): open a new
    /// connection for every request.
    pub per_connection: bool,
    /// The layout and largest packet size that the server took in the run's first
    /// upload (section 8 variants 2/4, 9, 12), used by every case that uploads only to
    /// get to what it tests; `None`: the specification's.
    pub adopted: Option<(crate::frames::Layout, usize)>,
    /// Byte order of the requests the cases send: big-endian when the server reads
    /// only those (variant 1).
    pub order: protocol_core::ByteOrder,
    /// The server acknowledges 900/902 only with the client's name in them (variant
    /// 5): cases that need a verdict only to get on name the client.
    pub verdict_names_client: bool,
    prefix: String,
    names: Mutex<Vec<String>>,
}

impl Env {
    /// A run against `addr`; names registered start with `prefix`.
    pub fn new(addr: SocketAddr, keys: [PrivateKey; 2], prefix: String) -> Env {
        Env {
            addr,
            answer_timeout: Duration::from_secs(5),
            silence: Duration::from_millis(400),
            case_limit: Duration::from_secs(30),
            keys,
            per_connection: false,
            adopted: None,
            verdict_names_client: false,
            order: protocol_core::ByteOrder::Little,
            prefix,
            names: Mutex::new(Vec::new()),
        }
    }

    /// A fresh name `prefix-tag-N`, recorded as registered.
    pub fn fresh_name(&self, tag: &str) -> String {
        let mut names = self.names.lock().unwrap_or_else(|e| e.into_inner());
        let name = format!("{}-{}-{}", self.prefix, tag, names.len());
        names.push(name.clone());
        name
    }

    /// Records a name made elsewhere (padded to a length) as possibly registered.
    pub fn record_name(&self, name: &str) {
        let mut names = self.names.lock().unwrap_or_else(|e| e.into_inner());
        names.push(name.to_string());
    }

    /// A unique name of exactly `len` bytes (at least 12): the prefix's random part and
    /// a counter, padded with `x`.
    pub fn name_of_len(&self, len: usize) -> String {
        let mut names = self.names.lock().unwrap_or_else(|e| e.into_inner());
        let tail: String = self
            .prefix
            .chars()
            .rev()
            .take(8)
            .collect::<String>()
            .chars()
            .rev()
            .collect();
        let mut name = format!("{tail}{:04}", names.len());
        while name.len() < len {
            name.push('x');
        }
        name.truncate(len);
        names.push(name.clone());
        name
    }

    /// Every name registered (or tried) so far.
    pub fn names(&self) -> Vec<String> {
        self.names.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// One case's view: the run's environment and this case's evidence.
pub struct Ctx<'a> {
    /// The run.
    pub env: &'a Env,
    /// This case's transcript.
    pub ev: Evidence,
    /// When the case's time is up ([`Env::case_limit`]).
    pub deadline: Instant,
}

impl<'a> Ctx<'a> {
    /// A case context.
    pub fn new(env: &'a Env) -> Ctx<'a> {
        Ctx {
            env,
            ev: Evidence::default(),
            deadline: Instant::now() + env.case_limit,
        }
    }

    /// Opens a connection (bounded by the answer timeout).
    pub fn connect(&mut self) -> Result<Conn, CaseError> {
        if Instant::now() >= self.deadline {
            return Err(CaseError::Setup(format!(
                "the case's time limit ({} s) passed",
                self.env.case_limit.as_secs()
            )));
        }
        let stream = TcpStream::connect_timeout(&self.env.addr, self.env.answer_timeout)
            .map_err(|e| CaseError::Setup(format!("cannot connect: {e}")))?;
        stream.set_nodelay(true)?;
        stream.set_write_timeout(Some(self.env.answer_timeout))?;
        Ok(Conn {
            stream,
            answered: false,
        })
    }

    /// Writes `bytes` in one write call; a failed write is recorded, not fatal
    /// (hostile cases expect them), and reported as `false`.
    pub fn send(&mut self, conn: &mut Conn, bytes: &[u8]) -> bool {
        self.ev.sent(bytes);
        match conn.stream.write_all(bytes) {
            Ok(()) => true,
            Err(e) => {
                self.ev.note(format!("write failed: {}", e.kind()));
                false
            }
        }
    }

    /// Writes `bytes` in pieces cut at `cuts` (offsets), pausing between them so the
    /// pieces travel in segments of their own.
    pub fn send_split(&mut self, conn: &mut Conn, bytes: &[u8], cuts: &[usize]) -> bool {
        let mut at = 0;
        for &cut in cuts.iter().chain(std::iter::once(&bytes.len())) {
            let cut = cut.clamp(at, bytes.len());
            if cut > at {
                if !self.send(conn, &bytes[at..cut]) {
                    return false;
                }
                at = cut;
                if at < bytes.len() {
                    std::thread::sleep(Duration::from_millis(30));
                }
            }
        }
        true
    }

    /// Reads one response, waiting at most `timeout`.
    pub fn answer_within(&mut self, conn: &mut Conn, timeout: Duration) -> Answer {
        let deadline = (Instant::now() + timeout).min(self.deadline);
        let mut head = [0u8; 7];
        match read_full(&mut conn.stream, &mut head, deadline) {
            ReadEnd::Done => {}
            ReadEnd::Partial(n, end) => {
                if n > 0 {
                    self.ev.received(&head[..n]);
                }
                self.ev
                    .note(format!("{} after {n} bytes", end.describe_end()));
                return end;
            }
        }
        let Some((order, code)) = response_code(&head) else {
            self.ev.received(&head);
            self.ev.note("not a response code in either byte order");
            return Answer::Garbage;
        };
        let size = crate::frames::u32_in(order, [head[3], head[4], head[5], head[6]]) as usize;
        if size > MAX_RESPONSE_PAYLOAD {
            self.ev.received(&head);
            self.ev
                .note(format!("declared payload {size} bytes: too large"));
            return Answer::Garbage;
        }
        let mut payload = vec![0u8; size];
        match read_full(&mut conn.stream, &mut payload, deadline) {
            ReadEnd::Done => {}
            ReadEnd::Partial(n, end) => {
                let mut got = head.to_vec();
                got.extend_from_slice(&payload[..n]);
                self.ev.received(&got);
                self.ev.note(format!(
                    "{} inside a {size}-byte payload",
                    end.describe_end()
                ));
                return end;
            }
        }
        let mut all = head.to_vec();
        all.extend_from_slice(&payload);
        self.ev.received(&all);
        conn.answered = true;
        Answer::Response(RawResponse {
            order,
            version: head[0],
            code,
            payload,
        })
    }

    /// Reads one response within the run's answer timeout.
    pub fn answer(&mut self, conn: &mut Conn) -> Answer {
        let t = self.env.answer_timeout;
        self.answer_within(conn, t)
    }

    /// Sends a request and reads its answer.
    pub fn ask(&mut self, conn: &mut Conn, bytes: &[u8]) -> Answer {
        if !self.send(conn, bytes) {
            // The answer (a 1607 before a close) may still be readable.
            return self.answer_within(conn, Duration::from_millis(300));
        }
        self.answer(conn)
    }

    /// Waits the run's silence interval for a response that should not come.
    pub fn expect_silence(&mut self, conn: &mut Conn) -> Answer {
        let t = self.env.silence;
        self.answer_within(conn, t)
    }
}

impl Conn {
    /// Whether the peer has closed this connection (checked without waiting). Bytes
    /// waiting to be read count as open.
    pub fn is_closed(&self) -> bool {
        if self.stream.set_nonblocking(true).is_err() {
            return true;
        }
        let mut b = [0u8; 1];
        let closed = match self.stream.peek(&mut b) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => e.kind() != ErrorKind::WouldBlock,
        };
        let _ = self.stream.set_nonblocking(false);
        closed
    }

    /// Whether a response (or a close) is waiting, checked without waiting.
    pub fn has_input(&self) -> bool {
        if self.stream.set_nonblocking(true).is_err() {
            return true;
        }
        let mut b = [0u8; 1];
        let ready =
            !matches!(self.stream.peek(&mut b), Err(ref e) if e.kind() == ErrorKind::WouldBlock);
        let _ = self.stream.set_nonblocking(false);
        ready
    }

    /// Stops sending (half close).
    pub fn shutdown_write(&self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }
}

enum ReadEnd {
    Done,
    Partial(usize, Answer),
}

impl Answer {
    fn describe_end(&self) -> &'static str {
        match self {
            Answer::Closed => "closed",
            Answer::Reset => "reset",
            Answer::Timeout => "timeout",
            _ => "ended",
        }
    }
}

fn read_full(stream: &mut TcpStream, buf: &mut [u8], deadline: Instant) -> ReadEnd {
    let mut n = 0;
    while n < buf.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return ReadEnd::Partial(n, Answer::Timeout);
        }
        if stream.set_read_timeout(Some(left)).is_err() {
            return ReadEnd::Partial(n, Answer::Reset);
        }
        match stream.read(&mut buf[n..]) {
            Ok(0) => return ReadEnd::Partial(n, Answer::Closed),
            Ok(k) => n += k,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return ReadEnd::Partial(n, Answer::Timeout)
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return ReadEnd::Partial(n, Answer::Reset),
        }
    }
    ReadEnd::Done
}
