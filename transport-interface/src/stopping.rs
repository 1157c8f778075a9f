//! What a server connection does once its server is told to stop, and how it
//! closes after an error: the same rules on every transport.

use std::time::{Duration, Instant};

use protocol_core::ServerConnection;

/// How long a connection closed for an error keeps reading (and discarding)
/// before it closes: a close with unread input is a reset, which would discard the
/// 1607 before the peer reads it.
pub const LINGER: Duration = Duration::from_millis(500);

/// At most this many bytes are read and discarded during [`LINGER`].
pub const LINGER_BYTES: usize = 1 << 20;

/// The shutdown rule of one connection: an idle connection ends at once; an upload
/// runs to its client's verdict (900/902 answered), within
/// [`ServerOptions::shutdown_grace`](crate::ServerOptions::shutdown_grace) of the
/// moment the connection first saw the stop.
///
/// ```
/// use std::time::{Duration, Instant};
/// use transport_interface::StopRule;
///
/// let conn = protocol_core::ServerConnection::new(
///     protocol_core::ServerConfig::default(), rand_core::OsRng, Instant::now());
/// let mut rule = StopRule::new(Duration::from_secs(30));
/// assert!(!rule.stopping());
/// // Nothing in flight: the connection ends at once.
/// assert_eq!(rule.step(&conn, Instant::now()), None);
/// assert!(rule.stopping());
/// ```
#[derive(Debug, Clone)]
pub struct StopRule {
    grace: Duration,
    since: Option<Instant>,
}

impl StopRule {
    /// A rule giving uploads `grace` to finish.
    pub fn new(grace: Duration) -> Self {
        Self { grace, since: None }
    }

    /// Whether [`step`](Self::step) was called: the connection has seen the stop.
    pub fn stopping(&self) -> bool {
        self.since.is_some()
    }

    /// Called on every turn of the connection's loop once the server stops. `None`:
    /// end the connection now (`handle_eof`). `Some(t)`: an upload is in flight; go
    /// on, waking no later than `t`, the end of its grace.
    pub fn step<R: rand_core::CryptoRngCore>(
        &mut self,
        conn: &ServerConnection<R>,
        now: Instant,
    ) -> Option<Instant> {
        let since = *self.since.get_or_insert(now);
        let busy = conn.is_uploading() || conn.awaits_verdict();
        let end = since + self.grace;
        (busy && now < end).then_some(end)
    }
}
