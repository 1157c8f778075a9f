//! File descriptors: the connection cap fitted to the process's limit.
//!
//! Each client connection may hold two descriptors (its socket and the file its upload
//! is written to), and the process needs more for its listeners, the database, the
//! contents store, the metrics listener and its log. With the common soft limit of
//! 1,024 and a cap of 1,024 connections, descriptors ran out before the cap: accepts
//! failed, idle connections were never shed (the cap was not reached), and a client
//! waited for idle ones to time out. So at start the server raises its soft limit to
//! the hard one where it may, and lowers the cap to what the limit can hold, keeping a
//! reserve; at the cap, idle connections are shed for newcomers as always.

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// Descriptors kept for everything but client connections, at most: listeners, the
/// metadata pool, SQLite's files, the contents store, the metrics listener and its
/// connections, the log. Small limits keep half.
pub const RESERVE: u64 = 96;

/// Descriptors one client connection may hold: its socket and its upload's file.
pub const PER_CONNECTION: u64 = 2;

/// What the limit allows, and what was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fitted {
    /// The soft limit in force (after raising it), `None` when it is unlimited.
    pub soft: Option<u64>,
    /// The hard limit, `None` when unlimited.
    pub hard: Option<u64>,
    /// Connections the limit can hold.
    pub connections: usize,
}

/// How many connections `soft` descriptors can serve, keeping the reserve.
///
/// ```
/// use server_app::descriptors::connections_for;
/// assert_eq!(connections_for(1024), 464);
/// assert_eq!(connections_for(64), 16);
/// assert_eq!(connections_for(4), 1);
/// ```
pub fn connections_for(soft: u64) -> usize {
    let reserve = RESERVE.min(soft / 2);
    let n = soft.saturating_sub(reserve) / PER_CONNECTION;
    usize::try_from(n).unwrap_or(usize::MAX).max(1)
}

/// Raises the soft limit to the hard one (where allowed) and says how many
/// connections the result can hold.
pub fn raise_and_fit() -> Fitted {
    let Rlimit { current, maximum } = getrlimit(Resource::Nofile);
    let soft = match (current, maximum) {
        (Some(s), Some(h)) if s < h => {
            let raised = Rlimit {
                current: Some(h),
                maximum: Some(h),
            };
            if setrlimit(Resource::Nofile, raised).is_ok() {
                Some(h)
            } else {
                Some(s)
            }
        }
        (Some(s), None) => {
            // An unlimited hard limit: take a generous finite soft one.
            let want = s.max(1 << 20);
            let raised = Rlimit {
                current: Some(want),
                maximum: None,
            };
            Some(if setrlimit(Resource::Nofile, raised).is_ok() {
                want
            } else {
                s
            })
        }
        (s, _) => s,
    };
    Fitted {
        soft,
        hard: maximum,
        connections: soft.map_or(usize::MAX, connections_for),
    }
}
