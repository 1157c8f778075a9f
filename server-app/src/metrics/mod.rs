//! What the server counts, for a Prometheus scraper and a load balancer's health check.
//!
//! [`Metrics`] holds the series (all under the `fileserver_` prefix, in the text format
//! of `prometheus-client`); [`timed`] wraps the storage interfaces so that every call
//! of a backend is timed in one place, whatever the backend; [`http`] serves
//! `/metrics` and `/healthz` on a listener of its own (`--metrics ADDR:PORT`).
//!
//! | series | type | labels |
//! |---|---|---|
//! | `fileserver_connections_open` | gauge | |
//! | `fileserver_connections_accepted_total` | counter | |
//! | `fileserver_connections_refused_total` | counter | |
//! | `fileserver_requests_total` | counter | `code`, `outcome` (`ok`, `refused`, `error`) |
//! | `fileserver_received_bytes_total` | counter | |
//! | `fileserver_uploads_total` | counter | `result` (`verified`, `unverified`, `failed`) |
//! | `fileserver_storage_duration_seconds` | histogram | `store` (`metadata`, `contents`), `op` |
//! | `fileserver_client_strain_total` | counter | `client` (the id's first 8 hex digits; `other` past 1,000 clients), `reason` ([`crate::client_limits::Strain`]) |
//! | `fileserver_versions` | gauge | |
//! | `fileserver_version_bytes` | gauge | |

#[cfg(feature = "fleet")]
pub mod http;
pub mod timed;

use std::collections::HashSet;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

/// How a request was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Done as asked (1600, 1602, 1603, 1604, 1605).
    Ok,
    /// Refused for a reason of the client's (a name taken, an unknown client, a
    /// different key on file): 1601, 1606, 1607.
    Refused,
    /// The server could not do it (the storage failed): 1601 or 1607.
    Error,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Refused => "refused",
            Outcome::Error => "error",
        }
    }
}

/// How an upload ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UploadResult {
    /// Stored and confirmed by the client's checksum (900).
    Verified,
    /// Stored as unverified: the client gave up after mismatches (902).
    Unverified,
    /// The server could not store it (the client was told 1607).
    Failed,
}

impl UploadResult {
    fn label(self) -> &'static str {
        match self {
            UploadResult::Verified => "verified",
            UploadResult::Unverified => "unverified",
            UploadResult::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    code: u16,
    outcome: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct StrainLabels {
    client: String,
    reason: &'static str,
}

/// Client ids (prefixes) labelled one by one in `client_strain`; past it, `other`.
const MAX_STRAINED_CLIENTS: usize = 1000;

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct UploadLabels {
    result: &'static str,
}

/// Which storage interface a timed call went to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Store {
    /// [`crate::storage::Metadata`].
    Metadata,
    /// [`crate::storage::Contents`] and its upload sinks.
    Contents,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct StorageLabels {
    store: &'static str,
    op: &'static str,
}

/// The server's state as a health check sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The protocol listener is not open yet.
    Starting,
    /// Accepting connections.
    Serving,
    /// A stop was asked (SIGTERM, Ctrl-C): connections finish, no new ones.
    Stopping,
}

fn storage_histogram() -> Histogram {
    // 50 µs to about 13 s: a page-cache hit to a slow object store.
    Histogram::new(exponential_buckets(0.000_05, 4.0, 10))
}

/// Every series the server exports, and the phase `/healthz` reports.
///
/// Cheap to update from any thread: counters and gauges are atomics, a labelled
/// series is found under a read lock.
pub struct Metrics {
    registry: Registry,
    connections_open: Gauge,
    connections_accepted: Counter,
    connections_refused: Counter,
    requests: Family<RequestLabels, Counter>,
    received_bytes: Counter,
    uploads: Family<UploadLabels, Counter>,
    storage: Family<StorageLabels, Histogram, fn() -> Histogram>,
    strain: Family<StrainLabels, Counter>,
    strained: Mutex<HashSet<String>>,
    versions: Gauge,
    version_bytes: Gauge,
    phase: AtomicU8,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("phase", &self.phase())
            .finish_non_exhaustive()
    }
}

impl Metrics {
    /// Every series at zero, phase [`Phase::Starting`].
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("fileserver");
        let connections_open = Gauge::default();
        let connections_accepted = Counter::default();
        let connections_refused = Counter::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let received_bytes = Counter::default();
        let uploads = Family::<UploadLabels, Counter>::default();
        let storage = Family::<StorageLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            storage_histogram,
        );
        registry.register(
            "connections_open",
            "Client connections open now",
            connections_open.clone(),
        );
        registry.register(
            "connections_accepted",
            "Client connections accepted",
            connections_accepted.clone(),
        );
        registry.register(
            "connections_refused",
            "Client connections refused at accept: over --max-connections or --max-connections-per-ip, over the failure bucket, or closed for a missing, bad or unexpected PROXY header",
            connections_refused.clone(),
        );
        registry.register(
            "requests",
            "Requests answered, by request code and outcome (828: one per file, not per packet)",
            requests.clone(),
        );
        registry.register_with_unit(
            "received",
            "File bytes received in 828 packets (decrypted), as handed to the contents store",
            Unit::Bytes,
            received_bytes.clone(),
        );
        registry.register(
            "uploads",
            "Uploads ended: verified (900), unverified (902), failed (the server could not store it)",
            uploads.clone(),
        );
        let strain = Family::<StrainLabels, Counter>::default();
        registry.register(
            "client_strain",
            "Requests under a client id refused or counted against it (re-keys, decryption failures, checked uploads per key, verdicts from another connection), by the id's prefix",
            strain.clone(),
        );
        registry.register_with_unit(
            "storage_duration",
            "Time of each call to the metadata and contents stores, by operation",
            Unit::Seconds,
            storage.clone(),
        );
        // Counted from the metadata at start and at each housekeeping round: in a
        // fleet every server reports the same shared totals.
        let versions = Gauge::default();
        let version_bytes = Gauge::default();
        registry.register(
            "versions",
            "Versions kept (verified content a newer upload replaced), at the last count",
            versions.clone(),
        );
        registry.register_with_unit(
            "version",
            "Bytes of the versions kept, at the last count",
            Unit::Bytes,
            version_bytes.clone(),
        );
        Metrics {
            registry,
            versions,
            version_bytes,
            connections_open,
            connections_accepted,
            connections_refused,
            requests,
            received_bytes,
            uploads,
            storage,
            strain,
            strained: Mutex::default(),
            phase: AtomicU8::new(Phase::Starting as u8),
        }
    }

    /// Every series in the text format (OpenMetrics 1.0, which Prometheus reads).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// A connection was accepted (and is open until [`connection_closed`](Self::connection_closed)).
    pub fn connection_accepted(&self) {
        self.connections_accepted.inc();
        self.connections_open.inc();
    }

    /// An accepted connection is over.
    pub fn connection_closed(&self) {
        self.connections_open.dec();
    }

    /// A connection was refused at accept (over a connection cap or the failure
    /// bucket), or closed for its PROXY header.
    pub fn connection_refused(&self) {
        self.connections_refused.inc();
    }

    /// A request with `code` was answered with `outcome`.
    pub fn request(&self, code: u16, outcome: Outcome) {
        self.requests
            .get_or_create(&RequestLabels {
                code,
                outcome: outcome.label(),
            })
            .inc();
    }

    /// `n` bytes of a file arrived.
    pub fn received(&self, n: usize) {
        self.received_bytes.inc_by(n as u64);
    }

    /// An upload ended with `result`.
    pub fn upload(&self, result: UploadResult) {
        self.uploads
            .get_or_create(&UploadLabels {
                result: result.label(),
            })
            .inc();
    }

    /// A request under the client id whose log prefix is `client` was refused or
    /// counted against it, for `reason`.
    pub fn client_strain(&self, client: &str, reason: &'static str) {
        let client = {
            let mut seen = self.strained.lock().unwrap_or_else(|e| e.into_inner());
            if seen.contains(client) || seen.len() < MAX_STRAINED_CLIENTS {
                seen.insert(client.to_string());
                client.to_string()
            } else {
                "other".to_string()
            }
        };
        self.strain
            .get_or_create(&StrainLabels { client, reason })
            .inc();
    }

    /// A storage call `op` to `store` took `seconds`.
    pub fn storage_call(&self, store: Store, op: &'static str, seconds: f64) {
        let store = match store {
            Store::Metadata => "metadata",
            Store::Contents => "contents",
        };
        self.storage
            .get_or_create(&StorageLabels { store, op })
            .observe(seconds);
    }

    /// The versions kept and their bytes, as last counted.
    pub fn set_versions(&self, versions: u64, bytes: u64) {
        self.versions
            .set(i64::try_from(versions).unwrap_or(i64::MAX));
        self.version_bytes
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    /// Moves to `phase` (never back from [`Phase::Stopping`]).
    pub fn set_phase(&self, phase: Phase) {
        let _ = self
            .phase
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |now| {
                (now != Phase::Stopping as u8).then_some(phase as u8)
            });
    }

    /// Where the server is.
    pub fn phase(&self) -> Phase {
        match self.phase.load(Ordering::SeqCst) {
            x if x == Phase::Serving as u8 => Phase::Serving,
            x if x == Phase::Stopping as u8 => Phase::Stopping,
            _ => Phase::Starting,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_carry_their_names_and_labels() {
        let m = Metrics::new();
        m.connection_accepted();
        m.connection_refused();
        m.request(828, Outcome::Ok);
        m.received(10);
        m.upload(UploadResult::Verified);
        m.storage_call(Store::Metadata, "register", 0.001);
        m.client_strain("c13303e7", "rekeys");
        let text = m.encode();
        for line in [
            "fileserver_connections_open 1",
            "fileserver_connections_accepted_total 1",
            "fileserver_connections_refused_total 1",
            "fileserver_requests_total{code=\"828\",outcome=\"ok\"} 1",
            "fileserver_received_bytes_total 10",
            "fileserver_uploads_total{result=\"verified\"} 1",
            "fileserver_storage_duration_seconds_count{store=\"metadata\",op=\"register\"} 1",
            "fileserver_client_strain_total{client=\"c13303e7\",reason=\"rekeys\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
        m.connection_closed();
        assert!(m.encode().contains("fileserver_connections_open 0\n"));
    }

    #[test]
    fn stopping_is_final() {
        let m = Metrics::new();
        assert_eq!(m.phase(), Phase::Starting);
        m.set_phase(Phase::Serving);
        assert_eq!(m.phase(), Phase::Serving);
        m.set_phase(Phase::Stopping);
        m.set_phase(Phase::Serving);
        assert_eq!(m.phase(), Phase::Stopping);
    }
}
