//! A server-wide budget for input that connections hold in their buffers.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Bytes of request input that all connections sharing this budget may hold at
/// once: the partial frames (and anything read past a pending question) left in the
/// callers' input buffers between [`handle_input`](crate::ServerConnection::handle_input)
/// calls. A connection whose input would take the total past the limit is refused
/// with a 1607 ([`PeerError::Busy`](crate::PeerError::Busy)) and closed, so memory
/// for input is bounded by configuration whatever sizes many peers declare.
///
/// Each connection may hold its first [`free_per_connection`](Self::free_per_connection)
/// bytes without counting against the limit ([`InputBudget::with_free_per_connection`];
/// none by default), so that a full budget never refuses a client that holds no
/// more than an honest one does. Memory for input is then at most
/// `connections × free_per_connection + limit`.
///
/// Clones share one count. Give every connection of a server a clone with
/// [`ServerConnection::with_budget`](crate::ServerConnection::with_budget).
///
/// ```
/// use protocol_core::InputBudget;
/// let budget = InputBudget::new(1024);
/// let shared = budget.clone();
/// assert_eq!(shared.limit(), 1024);
/// assert_eq!(budget.used(), 0);
/// ```
#[derive(Debug, Clone)]
pub struct InputBudget(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    limit: usize,
    free: usize,
    used: AtomicUsize,
}

/// The default budget: 64 MiB for every connection of a server together.
pub const DEFAULT_INPUT_BUDGET: usize = 64 << 20;

/// What a server built on this crate lets each connection hold outside its budget
/// by default: 512 KiB, more than a client sending packets of the usual 64 KiB
/// holds at once (a partial packet plus one 256 KiB read of a transport).
pub const DEFAULT_FREE_PER_CONNECTION: usize = 512 << 10;

impl Default for InputBudget {
    fn default() -> Self {
        InputBudget::new(DEFAULT_INPUT_BUDGET)
    }
}

impl InputBudget {
    /// A budget of `limit` bytes, none used.
    pub fn new(limit: usize) -> InputBudget {
        InputBudget(Arc::new(Inner {
            limit,
            free: 0,
            used: AtomicUsize::new(0),
        }))
    }

    /// A budget of `limit` bytes in which each connection's first `free` bytes do
    /// not count (none used).
    ///
    /// ```
    /// use protocol_core::InputBudget;
    /// let budget = InputBudget::new(1024).with_free_per_connection(100);
    /// assert_eq!(budget.free_per_connection(), 100);
    /// ```
    #[must_use]
    pub fn with_free_per_connection(self, free: usize) -> InputBudget {
        InputBudget(Arc::new(Inner {
            limit: self.0.limit,
            free,
            used: AtomicUsize::new(self.used()),
        }))
    }

    /// Bytes each connection may hold without counting against the limit.
    pub fn free_per_connection(&self) -> usize {
        self.0.free
    }

    /// The configured limit.
    pub fn limit(&self) -> usize {
        self.0.limit
    }

    /// Bytes held now by every connection sharing the budget.
    pub fn used(&self) -> usize {
        self.0.used.load(Ordering::Relaxed)
    }

    /// Moves one holder's share from holding `from` to `to` bytes (of which its
    /// first [`free_per_connection`](Self::free_per_connection) do not count). A
    /// decrease always succeeds; an increase succeeds only within the limit (else
    /// nothing changes).
    pub(crate) fn resize(&self, from: usize, to: usize) -> bool {
        let (from, to) = (
            from.saturating_sub(self.0.free),
            to.saturating_sub(self.0.free),
        );
        if to <= from {
            self.0.used.fetch_sub(from - to, Ordering::Relaxed);
            return true;
        }
        let more = to - from;
        self.0
            .used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                used.checked_add(more).filter(|&n| n <= self.0.limit)
            })
            .is_ok()
    }
}

impl<R: rand_core::CryptoRngCore> super::ServerConnection<R> {
    /// Shares `budget` with the other connections of the server: the input this
    /// connection leaves in the caller's buffer counts against it, and an input
    /// that would pass the limit is refused (1607, [`PeerError::Busy`](crate::PeerError::Busy)). Without a
    /// budget, input is bounded per connection only (by
    /// [`Limits::max_payload`](crate::Limits::max_payload)).
    ///
    /// ```
    /// use std::time::Instant;
    /// use bytes::BytesMut;
    /// use protocol_core::{InputBudget, ServerConfig, ServerConnection};
    /// use rand_chacha::{ChaCha20Rng, rand_core::SeedableRng};
    /// let budget = InputBudget::new(10);
    /// let now = Instant::now();
    /// let mut conn = ServerConnection::new(ServerConfig::default(), ChaCha20Rng::seed_from_u64(0), now)
    ///     .with_budget(budget.clone());
    /// conn.handle_input(&mut BytesMut::from(&[0u8; 5][..]), now).unwrap();
    /// assert_eq!(budget.used(), 5);
    /// assert!(conn.handle_input(&mut BytesMut::from(&[0u8; 11][..]), now).is_err());
    /// drop(conn);
    /// assert_eq!(budget.used(), 0);
    /// ```
    #[must_use]
    pub fn with_budget(mut self, budget: InputBudget) -> Self {
        self.budget = Some(budget);
        self
    }

    /// Bytes of input this connection holds against its [`InputBudget`].
    pub fn buffered_input(&self) -> usize {
        self.held
    }
}
