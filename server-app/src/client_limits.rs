//! Limits per client id.
//!
//! The legacy protocol carries the client id in clear in every request header, and
//! the id is the only credential of every request but the encrypted content: anyone
//! who saw one packet of a client can send requests under its id, from any address.
//! Per-address limits do not bound that. What requests under one id can cost its
//! client is bounded here, per id, whatever the sender:
//!
//! - **re-keys (827)**: each mints a fresh AES key and replaces the one on file; a
//!   stranger who could re-key without bound would get a fresh key to guess at for
//!   every try;
//! - **decryption failures** under the client's key: each is one guess at the key's
//!   padding (a padding oracle) or one try at a blind replacement (a random block
//!   decrypts to valid padding about once in 256 tries). Past the limit, uploads that
//!   need the key looked up are refused for a while;
//! - **whole uploads checked per issued key** (in the metadata store, shared by a
//!   fleet: [`crate::storage::Metadata::count_checked_upload`]): at most
//!   [`MAX_CHECKED_PER_KEY`], the 1 + 3 attempts the protocol needs; then a new 827.
//!
//! Each refusal is logged (at most once a minute per client, with the id's prefix)
//! and counted in `/metrics` by the id's prefix.
//!
//! The limits are per server process: a fleet of N servers allows N times the rate.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use protocol_core::ClientId;
use transport_interface::{Buckets, RateLimit};

/// Whole uploads whose checksum (1603) one issued key may get: the first attempt
/// and the protocol's three resends.
pub const MAX_CHECKED_PER_KEY: u32 = 4;

/// Clients remembered for the once-a-minute warnings at most.
const MAX_WARNED: usize = 10_000;

/// The shapes of the per-client buckets.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClientLimitPolicy {
    /// 827 re-keys per client id.
    pub rekeys: RateLimit,
    /// Decryption failures under a client's key, whoever sent them.
    pub decryption_failures: RateLimit,
}

impl Default for ClientLimitPolicy {
    /// 20 re-keys at once, then one every 30 s; 10 decryption failures at once,
    /// then one a minute. A client that runs once a minute never meets them; a
    /// stranger's blind replacement (about 256 tries for one success) takes hours.
    fn default() -> ClientLimitPolicy {
        ClientLimitPolicy {
            rekeys: RateLimit {
                burst: 20,
                per_second: 1.0 / 30.0,
            },
            decryption_failures: RateLimit {
                burst: 10,
                per_second: 1.0 / 60.0,
            },
        }
    }
}

/// Why a request under a client id was refused, or counted against it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Strain {
    /// An 827 past the re-key limit.
    Rekey,
    /// An upload failed to decrypt under the client's key.
    DecryptionFailure,
    /// An upload refused because the client's decryption failures are past the limit.
    LockedOut,
    /// An upload's checksum refused: its key had had [`MAX_CHECKED_PER_KEY`].
    CheckedUploads,
    /// A 900, 901 or 902 with no upload of its connection to decide.
    VerdictElsewhere,
}

impl Strain {
    /// The `reason` label in `/metrics`.
    pub fn label(self) -> &'static str {
        match self {
            Strain::Rekey => "rekeys",
            Strain::DecryptionFailure => "decryption_failure",
            Strain::LockedOut => "decryption_failures_locked",
            Strain::CheckedUploads => "checked_uploads",
            Strain::VerdictElsewhere => "verdict_elsewhere",
        }
    }
}

/// The per-client buckets of one server process.
#[derive(Debug)]
pub struct ClientLimits {
    rekeys: Buckets<ClientId>,
    failures: Buckets<ClientId>,
    warned: Mutex<HashMap<ClientId, Instant>>,
}

impl ClientLimits {
    /// Buckets of the shapes `policy`, all full.
    pub fn new(policy: ClientLimitPolicy) -> ClientLimits {
        ClientLimits {
            rekeys: Buckets::new(policy.rekeys),
            failures: Buckets::new(policy.decryption_failures),
            warned: Mutex::default(),
        }
    }

    /// An 827 for `client` at `now`: false when its re-keys are past the limit.
    pub fn rekey(&self, client: ClientId, now: Instant) -> bool {
        self.rekeys.take(client, now)
    }

    /// An upload under `client`'s key failed to decrypt at `now`.
    pub fn decryption_failed(&self, client: ClientId, now: Instant) {
        self.failures.take(client, now);
    }

    /// Whether an upload that needs `client`'s key looked up may go on: false while
    /// its decryption failures are past the limit.
    pub fn lookups_allowed(&self, client: ClientId, now: Instant) -> bool {
        self.failures.has_token(client, now)
    }

    /// Whether a warning about `client` is due (at most once a minute per client).
    pub fn warn_due(&self, client: ClientId, now: Instant) -> bool {
        let mut warned = self.warned.lock().unwrap_or_else(|e| e.into_inner());
        if warned.len() >= MAX_WARNED {
            warned.retain(|_, t| now.saturating_duration_since(*t) < Duration::from_secs(60));
        }
        match warned.get(&client) {
            Some(t) if now.saturating_duration_since(*t) < Duration::from_secs(60) => false,
            _ => {
                warned.insert(client, now);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_client_has_buckets_of_its_own() {
        let limits = ClientLimits::new(ClientLimitPolicy::default());
        let now = Instant::now();
        let (a, b) = (ClientId([1; 16]), ClientId([2; 16]));
        for _ in 0..20 {
            assert!(limits.rekey(a, now));
        }
        assert!(!limits.rekey(a, now), "the 21st re-key at once is refused");
        assert!(limits.rekey(b, now), "another client is not affected");
        assert!(limits.rekey(a, now + Duration::from_secs(31)), "refilled");
        for _ in 0..10 {
            assert!(limits.lookups_allowed(a, now));
            limits.decryption_failed(a, now);
        }
        assert!(!limits.lookups_allowed(a, now));
        assert!(limits.lookups_allowed(b, now));
        assert!(limits.lookups_allowed(a, now + Duration::from_secs(61)));
        assert!(limits.warn_due(a, now));
        assert!(!limits.warn_due(a, now + Duration::from_secs(59)));
        assert!(limits.warn_due(a, now + Duration::from_secs(60)));
    }
}
