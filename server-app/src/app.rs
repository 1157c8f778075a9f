//! The server application: answers the protocol core's questions from the storage
//! layer. One [`App`] per process, one [`Connection`] handler per connection.

use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::{info, warn};

use crate::client_limits::{ClientLimitPolicy, ClientLimits};
use crate::config::{Database, Files};
use crate::metrics::{timed, Metrics};
use crate::storage::local::LocalContents;
use crate::storage::lock::FolderLock;
use crate::storage::memory::MemoryUploads;
#[cfg(feature = "fleet")]
use crate::storage::postgres::PgUploads;
#[cfg(feature = "fleet")]
use crate::storage::postgres::{Pg, PostgresMetadata};
#[cfg(feature = "fleet")]
use crate::storage::s3::S3Contents;
use crate::storage::sqlite::SqliteMetadata;
use crate::storage::uploads::UploadTable;
use crate::storage::{short_id, Storage};
use crate::storage::{Contents, Metadata, Orphans, Reconciled};

/// The database's file name inside the data folder.
pub const DB_FILE: &str = "defensive.db";

/// Times the server keeps things for clients that went away.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// A registration without a public key holds its name this long.
    pub name_hold: Duration,
    /// An upload no connection holds is removed after this long.
    pub abandoned_after: Duration,
    /// In a fleet, a commit or an upload that no server has finished or named this
    /// long after it began counts as interrupted (its server died): any server
    /// resolves it then. Far longer than a commit takes. (One process resolves
    /// everything at start instead.)
    pub stale_after: Duration,
    /// How long after its 1603 a connection-per-request client (variant 7) may give
    /// its verdict on a new connection. Every other verdict belongs to the connection
    /// that received the 1603.
    pub verdict_window: Duration,
    /// Re-keys and decryption failures per client id ([`crate::client_limits`]).
    pub client_limits: ClientLimitPolicy,
    /// Versions of each file kept whatever their age (`--keep-versions`).
    pub keep_versions: usize,
    /// Every version is kept this long after it was replaced, however many newer
    /// ones there are (`--version-retention`): a version goes only once it is both
    /// beyond the newest [`keep_versions`](Self::keep_versions) and older than this.
    pub version_retention: Duration,
    /// Bytes one client's unfinished uploads may hold before its oldest one without a
    /// connection is dropped (`quota`).
    pub upload_quota: u64,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            name_hold: Duration::from_secs(10 * 60),
            abandoned_after: Duration::from_secs(5 * 60),
            stale_after: Duration::from_secs(15 * 60),
            verdict_window: Duration::from_secs(30),
            client_limits: ClientLimitPolicy::default(),
            keep_versions: 10,
            version_retention: Duration::from_secs(30 * 24 * 60 * 60),
            upload_quota: DEFAULT_UPLOAD_QUOTA,
        }
    }
}

/// The default of [`Policy::upload_quota`]: four of the largest file the protocol
/// carries (its size field is 32 bits), so that a client's few interrupted uploads of
/// large files fit and dozens do not.
pub const DEFAULT_UPLOAD_QUOTA: u64 = 4 * u32::MAX as u64;

/// Shared state of the server process.
pub struct App {
    storage: Storage,
    uploads: Arc<dyn UploadTable>,
    policy: Policy,
    next_conn: AtomicU64,
    metrics: Arc<Metrics>,
    orphans: Orphans,
    last_slow: Mutex<Option<Instant>>,
    limits: ClientLimits,
    /// The files a secure upload of this server writes now.
    active_puts: Arc<secure_io::ActivePuts>,
    _lock: Option<FolderLock>,
}

impl App {
    /// Serves the data folder `dir`: takes its lock, checks and opens `defensive.db`,
    /// opens the contents folder and reconciles what the last run left. Nothing is
    /// changed before the lock is held and the database has passed its checks.
    pub fn open(dir: &Path, policy: Policy) -> anyhow::Result<App> {
        let lock = FolderLock::acquire(dir)?;
        let meta = SqliteMetadata::open(&dir.join(DB_FILE))?;
        for name in [DB_FILE, "defensive.db-wal", "defensive.db-shm"] {
            restrict_permissions(&dir.join(name));
        }
        let contents = LocalContents::open(dir).map_err(|e| {
            anyhow::anyhow!("cannot use the storage folders in {}: {e}", dir.display())
        })?;
        let app = App::with_storage(Storage::new(Arc::new(meta), Arc::new(contents)), policy)?;
        Ok(App {
            _lock: Some(lock),
            ..app
        })
    }

    /// Serves the backends chosen by `--database` and `--files` (`None`: the data
    /// folder's, exactly as [`open`](Self::open)). With SQLite the folder's lock is
    /// taken (one process). With PostgreSQL, the uploads in progress are kept there
    /// too, shared with the other servers of the fleet.
    pub fn open_with(
        dir: &Path,
        database: Option<&Database>,
        files: Option<&Files>,
        policy: Policy,
    ) -> anyhow::Result<App> {
        if database.is_none() && files.is_none() {
            return App::open(dir, policy);
        }
        let database = database
            .cloned()
            .unwrap_or_else(|| Database::Sqlite(dir.join(DB_FILE)));
        let files = files
            .cloned()
            .unwrap_or_else(|| Files::Dir(dir.to_path_buf()));
        // SQLite serves one process: its folder is locked. With PostgreSQL, several
        // servers may share a contents folder (on one machine, or a network file
        // system): the shared table names the uploads each is writing.
        let lock = match (&database, &files) {
            (Database::Sqlite(_), Files::Dir(folder)) => Some(FolderLock::acquire(folder)?),
            (Database::Sqlite(_), Files::S3 { .. }) => Some(FolderLock::acquire(dir)?),
            (Database::Postgres(_), _) => None,
        };
        let (meta, table): (Arc<dyn Metadata>, Arc<dyn UploadTable>) = match &database {
            Database::Sqlite(path) => (
                Arc::new(SqliteMetadata::open(path)?),
                Arc::new(MemoryUploads::default()),
            ),
            #[cfg(not(feature = "fleet"))]
            Database::Postgres(_) => {
                return Err(crate::config::ConfigError::NotBuilt("--database postgres://").into())
            }
            #[cfg(feature = "fleet")]
            Database::Postgres(url) => {
                let pg = Arc::new(
                    Pg::connect(url.expose())
                        .map_err(|e| anyhow::anyhow!("cannot use the database at {url}: {e}"))?,
                );
                (
                    Arc::new(PostgresMetadata::new(pg.clone())),
                    Arc::new(PgUploads::new(pg, SHARED_LEASE)),
                )
            }
        };
        let contents: Arc<dyn Contents> = match &files {
            Files::Dir(folder) => Arc::new(LocalContents::open(folder).map_err(|e| {
                anyhow::anyhow!(
                    "cannot use the storage folders in {}: {e}",
                    folder.display()
                )
            })?),
            #[cfg(not(feature = "fleet"))]
            Files::S3 { .. } => {
                return Err(crate::config::ConfigError::NotBuilt("--files s3://").into())
            }
            #[cfg(feature = "fleet")]
            Files::S3 { bucket, prefix } => {
                let url = format!("s3://{bucket}/{prefix}");
                Arc::new(S3Contents::open(&url).map_err(|e| {
                    anyhow::anyhow!(
                        "cannot use the object store at {url} (endpoint and credentials from \
                         AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION): {e}"
                    )
                })?)
            }
        };
        let app = App::with_tables(Storage::new(meta, contents), table, policy)?;
        Ok(App { _lock: lock, ..app })
    }

    /// Serves any storage (tests wrap the backends): reconciles it first. Every
    /// call to either store is timed into [`App::metrics`]. Uploads in progress are
    /// kept in this process.
    pub fn with_storage(storage: Storage, policy: Policy) -> anyhow::Result<App> {
        App::with_tables(storage, Arc::new(MemoryUploads::default()), policy)
    }

    /// Serves any storage with any table of uploads in progress (a shared one when
    /// several servers share the storage): reconciles the storage first, all of it
    /// with a table of its own, and with a shared one only what is stale (other
    /// servers may be committing and uploading; `storage::reconcile`).
    pub fn with_tables(
        storage: Storage,
        uploads: Arc<dyn UploadTable>,
        policy: Policy,
    ) -> anyhow::Result<App> {
        let metrics = Arc::new(Metrics::new());
        let storage = timed::instrument(storage, metrics.clone());
        let done = if uploads.shared() {
            storage.reconcile_shared(policy.stale_after)?
        } else {
            storage.reconcile()?
        };
        if done != Default::default() {
            info!(
                forward = done.rolled_forward,
                back = done.rolled_back,
                uploads = done.uploads_removed,
                objects = done.objects_removed,
                "start-up: resolved what the last run left"
            );
        }
        let app = App {
            storage,
            uploads,
            policy,
            next_conn: AtomicU64::new(1),
            metrics,
            orphans: Orphans::default(),
            last_slow: Mutex::new(None),
            limits: ClientLimits::new(policy.client_limits),
            active_puts: Arc::default(),
            _lock: None,
        };
        app.count_versions();
        Ok(app)
    }

    /// The storage layer.
    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// What the server counts (`/metrics`), and its phase (`/healthz`).
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Uploads in progress.
    pub fn uploads_in_progress(&self) -> usize {
        self.uploads.len()
    }

    /// Periodic work while serving: removes abandoned uploads, frees names whose
    /// registration never sent a key and removes versions past the retention policy; in a fleet, also resolves what servers that
    /// died left (`storage::reconcile`). Logs what it did.
    pub fn housekeeping(&self, now: Instant) {
        let expired = match self.uploads.expire(self.policy.abandoned_after, now) {
            Ok(gone) => gone,
            Err(e) => {
                warn!("{e}");
                Vec::new()
            }
        };
        for gone in expired {
            info!(
                client = %short_id(&gone.client),
                idle_s = gone.idle.as_secs(),
                "abandoned upload removed (no connection, no verdict)"
            );
            self.storage.drop_upload(&gone.key);
        }
        // Secure uploads cut and never resumed, on the same clock as legacy ones.
        match self.storage.expire_partials(self.policy.abandoned_after) {
            Ok(gone) => {
                for p in gone {
                    info!(
                        client = %short_id(&p.client),
                        offset = p.offset,
                        size = p.size,
                        "resumable upload expired (not resumed in time)"
                    );
                }
            }
            Err(e) => warn!("resumable uploads not expired: {e}"),
        }
        if self.uploads.shared() {
            self.resolve_interrupted(now);
        }
        // Registrations at the policy's pace, even when a shared table's leases are
        // renewed (above) more often.
        {
            let mut last = self.last_slow.lock().unwrap_or_else(|e| e.into_inner());
            let due = housekeeping_interval(&self.policy);
            if matches!(*last, Some(t) if now.saturating_duration_since(t) < due) {
                return;
            }
            *last = Some(now);
        }
        match self
            .storage
            .meta
            .expire_registrations(self.policy.name_hold)
        {
            Ok(names) => {
                for name in names {
                    info!(
                        name,
                        "registration without a public key expired: name free again"
                    );
                }
            }
            Err(e) => warn!("{e}"),
        }
        self.prune_versions();
    }

    /// Removes the versions the retention policy lets go, then counts those left for
    /// `/metrics`. Here rather than after each commit: the rule is about age, so a
    /// round every housekeeping interval is soon enough, and commits stay short.
    fn prune_versions(&self) {
        match self
            .storage
            .prune_versions(self.policy.keep_versions, self.policy.version_retention)
        {
            Ok(removed) if !removed.versions.is_empty() => info!(
                versions = removed.versions.len(),
                bytes = removed.versions.iter().map(|v| v.size).sum::<u64>(),
                "versions past the retention policy removed"
            ),
            Ok(_) => {}
            Err(e) => warn!("versions past the retention policy stay for a later round: {e}"),
        }
        self.count_versions();
    }

    /// Sets the version gauges of `/metrics` from the metadata.
    fn count_versions(&self) {
        match self.storage.meta.version_totals() {
            Ok(t) => self.metrics.set_versions(t.versions, t.bytes),
            Err(e) => warn!("cannot count versions: {e}"),
        }
    }

    /// A fleet's share of housekeeping: stale intents, and uploads no one names.
    fn resolve_interrupted(&self, now: Instant) {
        let stale = self.policy.stale_after;
        let mut done = Reconciled::default();
        if let Err(e) = self.storage.resolve_stale_intents(stale, &mut done) {
            warn!("interrupted commits stay for a later round: {e}");
        }
        match self
            .orphans
            .sweep(&self.storage, || self.uploads.keys(), stale, now)
        {
            Ok(n) => done.uploads_removed = n,
            Err(e) => warn!("uploads no one writes stay for a later round: {e}"),
        }
        if done != Reconciled::default() {
            info!(
                forward = done.rolled_forward,
                back = done.rolled_back,
                uploads = done.uploads_removed,
                "resolved what a stopped server left"
            );
        }
    }

    /// How often [`housekeeping`](Self::housekeeping) should run: with a shared
    /// table, often enough to renew this server's leases (a server that died holds
    /// its rows until [`SHARED_LEASE`] runs out).
    pub fn housekeeping_interval(&self) -> Duration {
        let every = housekeeping_interval(&self.policy);
        if self.uploads.shared() {
            every.min(LEASE_RENEWAL)
        } else {
            every
        }
    }

    /// The server stops: uploads still in progress are removed.
    pub fn discard_uploads(&self) {
        match self.uploads.drain() {
            Ok(dropped) => {
                for upload in dropped {
                    // The client sends it again; the operator sees what a stop cost.
                    let client = short_id(&upload.client);
                    match upload.bytes {
                        Some(bytes) => {
                            info!(%client, bytes_so_far = bytes, "stopping: upload in progress dropped")
                        }
                        None => info!(%client, "stopping: upload in progress dropped"),
                    }
                    self.storage.drop_upload(&upload.key);
                }
            }
            Err(e) => warn!("uploads in progress left for another server to expire: {e}"),
        }
    }
}

/// How often a connection's upload progress is logged at INFO (at DEBUG: each second).
pub const PROGRESS_LOG_EVERY: Duration = Duration::from_secs(10);

/// How long the rows of a shared table of uploads stay a server's own without a
/// renewal: a connection-per-request client whose packet a dying server was receiving
/// waits this long before another server continues its uploads.
pub const SHARED_LEASE: Duration = Duration::from_secs(10);
/// How often a server renews its leases (five times a lease).
const LEASE_RENEWAL: Duration = Duration::from_secs(2);

fn housekeeping_interval(policy: &Policy) -> Duration {
    (policy.abandoned_after.min(policy.name_hold) / 4)
        .clamp(Duration::from_millis(100), Duration::from_secs(30))
}

fn restrict_permissions(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if !path.exists() {
        return;
    }
    if let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)) {
        warn!("could not restrict {}: {e}", path.display());
    }
}

mod connection;
pub(crate) mod secure_io;
pub use connection::{Connection, SharedApp};
pub(crate) use connection::{Failed, VerdictError};

mod quota;
#[cfg(test)]
mod resume_tests;
