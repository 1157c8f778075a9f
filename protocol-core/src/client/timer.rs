//! The client's one timer: how long it waits for the server's answer.

use std::time::{Duration, Instant};

use rand_core::CryptoRngCore;

use super::{ClientSession, State};
use crate::error::PeerError;

/// How long a [`ClientSession`] waits for the answer to a request before it fails
/// with [`PeerError::Timeout`], unless
/// [`set_answer_timeout`](ClientSession::set_answer_timeout) says otherwise.
pub const DEFAULT_ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

/// When the wait for an answer started, if the session is waiting.
#[derive(Debug, Clone, Copy)]
pub(super) struct AnswerTimer {
    pub(super) timeout: Duration,
    pub(super) since: Option<Instant>,
}

impl Default for AnswerTimer {
    fn default() -> Self {
        AnswerTimer {
            timeout: DEFAULT_ANSWER_TIMEOUT,
            since: None,
        }
    }
}

impl<R: CryptoRngCore> ClientSession<R> {
    /// How long to wait for each answer of the server (default
    /// [`DEFAULT_ANSWER_TIMEOUT`], 60 s).
    pub fn set_answer_timeout(&mut self, timeout: Duration) {
        self.timer.timeout = timeout;
    }

    /// Whether the session waits for the server: a request is sent (nothing of it
    /// is left for `poll_transmit`) and its answer has not come.
    fn awaiting_answer(&self) -> bool {
        if self.is_finished() || self.need_connection {
            return false;
        }
        self.in_flight
            || (self.out.buf.is_empty()
                && matches!(
                    self.state,
                    State::AwaitRegistered
                        | State::AwaitAesKey
                        | State::AwaitReconnect
                        | State::AwaitChecksum
                        | State::AwaitAck(_)
                ))
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called: the answer
    /// deadline, once `handle_timeout` has started the wait (see there). `None`
    /// while not waiting for an answer.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        if !self.awaiting_answer() {
            return None;
        }
        self.timer.since.map(|t| t + self.timer.timeout)
    }

    /// Feeds the clock. Call it with the current time **before every wait** on the
    /// socket, then wait no later than [`poll_timeout`](Self::poll_timeout): the
    /// session has no other source of time. The first call after a request went
    /// out starts the answer timer; a call at or after the deadline fails the run
    /// with [`ClientFailure::Peer`](crate::ClientFailure::Peer)`(`[`PeerError::Timeout`]`)`
    /// and returns that failure. Extra calls are harmless.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), crate::ClientFailure> {
        if !self.awaiting_answer() {
            self.timer.since = None;
            return Ok(());
        }
        let since = *self.timer.since.get_or_insert(now);
        if now.saturating_duration_since(since) >= self.timer.timeout {
            return Err(self.fail(PeerError::Timeout("no answer from the server").into()));
        }
        Ok(())
    }
}
