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
    used: AtomicUsize,
}

/// The default budget: 64 MiB for every connection of a server together.
pub const DEFAULT_INPUT_BUDGET: usize = 64 << 20;

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
            used: AtomicUsize::new(0),
        }))
    }

    /// The configured limit.
    pub fn limit(&self) -> usize {
        self.0.limit
    }

    /// Bytes held now by every connection sharing the budget.
    pub fn used(&self) -> usize {
        self.0.used.load(Ordering::Relaxed)
    }

    /// Moves one holder's share from `from` to `to` bytes. A decrease always
    /// succeeds; an increase succeeds only within the limit (else nothing changes).
    pub(crate) fn resize(&self, from: usize, to: usize) -> bool {
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
