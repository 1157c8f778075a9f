//! The server application: answers the protocol core's questions from the storage
//! layer. One [`App`] per process, one [`Connection`] handler per connection.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use protocol_core::crypto::AesKey;
use protocol_core::rand_core::CryptoRngCore;
use protocol_core::{ClientId, ClientRecord, ServerConnection, ServerEvent, Verdict};
use tracing::{error, info, warn};
use transport_std::{Conn, ConnectionHandler, HandlerFactory};

use crate::client_limits::{ClientLimitPolicy, ClientLimits, Strain};
use crate::config::{Database, Files};
use crate::metrics::{timed, Metrics, Outcome};
use crate::storage::commit::Finished;
use crate::storage::local::LocalContents;
use crate::storage::lock::FolderLock;
use crate::storage::postgres::{Pg, PostgresMetadata};
use crate::storage::s3::S3Contents;
use crate::storage::sqlite::SqliteMetadata;
use crate::storage::{new_upload_key, short_id, CommitOutcome, Storage, UploadSink};
use crate::storage::{Contents, Metadata, Orphans, Reconciled};
use crate::uploads::postgres::PgUploads;
use crate::uploads::VerdictFrom;
use crate::uploads::{ConnId, Handover, MemoryUploads, Resumed, UploadId, UploadTable};

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
            Database::Postgres(url) => {
                let pg = Arc::new(Pg::connect(url).map_err(|e| {
                    anyhow::anyhow!("cannot use the database at {}: {e}", without_password(url))
                })?);
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

/// A database URL for messages: the password, if any, left out.
fn without_password(url: &str) -> String {
    match (url.split_once("://"), url.rfind('@')) {
        (Some((scheme, rest)), Some(_)) => match rest.rsplit_once('@') {
            Some((user, host)) => {
                let user = user.split(':').next().unwrap_or("");
                format!("{scheme}://{user}@{host}")
            }
            None => url.to_string(),
        },
        _ => url.to_string(),
    }
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

/// `Arc<App>` as a handler factory.
pub struct SharedApp(pub Arc<App>);

impl HandlerFactory for SharedApp {
    type Handler = Connection;
    fn connect(&self, peer: SocketAddr) -> Connection {
        self.0.metrics.connection_accepted();
        Connection {
            id: self.0.next_conn.fetch_add(1, Ordering::Relaxed),
            app: self.0.clone(),
            peer,
            upload: None,
            writer: None,
            last_touch: None,
            progress_log: crate::throttle::Throttle::new(PROGRESS_LOG_EVERY),
            failed: None,
        }
    }

    fn refused(&self, _peer: SocketAddr) {
        self.0.metrics.connection_refused();
    }
}

/// The handler of one connection.
pub struct Connection {
    id: ConnId,
    app: Arc<App>,
    peer: SocketAddr,
    /// The upload this connection is sending, or whose 1603 it received.
    upload: Option<UploadId>,
    /// Where this connection's upload bytes go.
    writer: Option<Box<dyn UploadSink>>,
    /// When LastSeen was last written for this connection's client: at most once a
    /// second, not once per packet.
    last_touch: Option<(ClientId, Instant)>,
    /// Upload progress (828 packets) is logged at INFO at most this often, so that a
    /// long upload is visible without a line per second per connection.
    pub(crate) progress_log: crate::throttle::Throttle,
    /// This connection's upload failed (logged once): the data and end of it that the
    /// core had already queued are dropped without more lines.
    failed: Option<Failed>,
}

/// Why a verdict (900, 902) changed nothing.
#[derive(Debug, thiserror::Error)]
pub(crate) enum VerdictError {
    /// No upload of this connection awaits a verdict, and no upload of a connection
    /// per request may be handed over to it: a verdict belongs to the connection that
    /// received the 1603.
    #[error("no upload of this connection awaits a verdict")]
    NothingToDecide,
    /// The table or the commit failed.
    #[error(transparent)]
    Failed(anyhow::Error),
}

/// How the client learns of a failed upload (1607).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failed {
    /// Told at once (the core's `fail_upload`); the queued end of it needs no answer.
    Told,
    /// The last packet was in before the failure: the queued end gets the 1607.
    AtFinish,
}

impl Connection {
    /// Drops this connection's own upload, whatever its state.
    fn abort_upload(&mut self) {
        self.writer = None;
        if let Some(id) = self.upload.take() {
            self.app.remove_upload(id);
        }
    }

    fn write_data(&mut self, data: &[u8]) -> std::io::Result<()> {
        match &mut self.writer {
            Some(w) => w.write(data),
            None => Err(std::io::Error::other("no open upload on this connection")),
        }
    }

    fn finish_upload(
        &mut self,
        size: u64,
        checksum: u32,
        handover: Handover,
    ) -> std::io::Result<()> {
        let writer = self
            .writer
            .take()
            .ok_or_else(|| std::io::Error::other("no open upload"))?;
        writer.finish()?;
        let id = self
            .upload
            .ok_or_else(|| std::io::Error::other("no upload on this connection"))?;
        if !self
            .app
            .uploads
            .finish(id, size, checksum, handover)
            .map_err(std::io::Error::other)?
        {
            return Err(std::io::Error::other("upload lost"));
        }
        Ok(())
    }

    fn verdict_from(&mut self, fresh: bool) -> VerdictFrom {
        VerdictFrom {
            conn: self.id,
            own: self.upload.take(),
            fresh,
            window: self.app.policy.verdict_window,
        }
    }

    fn confirm(
        &mut self,
        client: &ClientId,
        verdict: Verdict,
        fresh: bool,
    ) -> Result<CommitOutcome, VerdictError> {
        let from = self.verdict_from(fresh);
        let up = self
            .app
            .uploads
            .take_for_verdict(from, client)
            .map_err(|e| VerdictError::Failed(e.into()))?
            .ok_or(VerdictError::NothingToDecide)?;
        let outcome = self
            .app
            .storage
            .commit(Finished {
                client,
                file_name: &up.file_name,
                upload: &up.key,
                verified: verdict == Verdict::Verified,
                size: up.size,
                checksum: up.checksum,
            })
            .map_err(|e| VerdictError::Failed(e.into()))?;
        Ok(outcome)
    }

    fn lookup(&mut self, client_id: ClientId) -> Option<ClientRecord> {
        let key = match self.app.storage.meta.aes_key(&client_id) {
            Ok(k) => k.and_then(|(k, age)| Some((AesKey::from_slice(&k)?, age))),
            Err(e) => {
                error!(peer = %self.peer, "828 lookup failed: {e}");
                self.app.metrics.request(828, Outcome::Error);
                return None;
            }
        };
        let Some((aes_key, age)) = key else {
            // Unknown, or no usable key: the core answers 1607.
            self.app.metrics.request(828, Outcome::Refused);
            return None;
        };
        let suspended = match self.app.uploads.resume(self.id, &client_id, &aes_key) {
            Ok(Some(r)) => self.reopen(r),
            Ok(None) => None,
            Err(e) => {
                warn!(peer = %self.peer, "could not look for a suspended upload: {e}");
                None
            }
        };
        Some(ClientRecord {
            aes_key: Some(aes_key),
            key_age: Duration::from_secs(age),
            suspended,
        })
    }
}

impl Connection {
    /// Reopens the contents of a suspended upload taken over by this connection. The
    /// contents must hold exactly the bytes the state accounts for: more means a
    /// suspension flushed them and then failed to save its state (or its server died
    /// between the two); less, that bytes were lost. Either way the upload is dropped
    /// and the client starts the file again, rather than continue into bytes that do
    /// not match its state.
    fn reopen(&mut self, r: Resumed) -> Option<protocol_core::SuspendedUpload> {
        let expected = r.upload.bytes_so_far();
        let failure = match self.app.storage.contents.reopen_upload(&r.key) {
            Ok(w) => match w.bytes_written() {
                Some(held) if held != expected => {
                    format!("its contents hold {held} bytes, its state {expected}")
                }
                _ => {
                    self.writer = Some(w);
                    self.upload = Some(r.id);
                    return Some(r.upload);
                }
            },
            Err(e) => e.to_string(),
        };
        warn!(peer = %self.peer, "could not resume an upload, dropped (the client starts it again): {failure}");
        self.app.remove_upload(r.id);
        self.app.storage.drop_upload(&r.key);
        None
    }
}

impl App {
    /// Removes an upload from the table and deletes its contents.
    fn remove_upload(&self, id: UploadId) {
        match self.uploads.remove(id) {
            Ok(Some(key)) => self.storage.drop_upload(&key),
            Ok(None) => {}
            Err(e) => warn!("an upload stays in the table until it expires: {e}"),
        }
    }

    /// Keys of uploads of a connection that closed, to delete.
    fn release(&self, conn: ConnId) {
        match self.uploads.release(conn) {
            Ok(keys) => {
                for key in keys {
                    self.storage.drop_upload(&key);
                }
            }
            Err(e) => warn!("uploads of a closed connection stay until they expire: {e}"),
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        // An upload still receiving when its connection goes without the core having
        // ended it (a shutdown past its grace closes connections): said, not silent.
        if let Some(writer) = self.writer.take() {
            let client = self
                .last_touch
                .map(|(id, _)| short_id(&id))
                .unwrap_or_default();
            let what = "upload in progress dropped with its connection";
            match writer.bytes_written() {
                Some(bytes) => info!(peer = %self.peer, %client, bytes_so_far = bytes, "{what}"),
                None => info!(peer = %self.peer, %client, "{what}"),
            }
        }
        self.app.release(self.id);
        self.app.metrics.connection_closed();
    }
}

impl ConnectionHandler for Connection {
    fn on_close(&mut self, conn: &Conn) {
        self.closed(conn);
    }

    fn on_event(&mut self, conn: &mut Conn, event: ServerEvent) {
        self.handle_event(conn, event);
    }
}

/// The handler over a connection with any random generator: the transports drive it
/// through [`ConnectionHandler`] (with the OS generator); a seeded simulation of the
/// whole server calls these directly, so that its runs replay.
impl Connection {
    /// Answers one event of `conn` (every question before returning).
    pub fn handle_event<R: CryptoRngCore>(
        &mut self,
        conn: &mut ServerConnection<R>,
        event: ServerEvent,
    ) {
        crate::events::handle(self, conn, event);
    }

    /// The connection ended: records the dialect its client was seen using.
    pub fn closed<R: CryptoRngCore>(&mut self, conn: &ServerConnection<R>) {
        // Once per connection: which variants this peer speaks (docs/PROTOCOL.md).
        let seen = conn.detected();
        if seen.byte_order.is_some() {
            // Client ids are credentials: a prefix only.
            let id = conn.client_id();
            let client = id.map(|c| short_id(&c)).unwrap_or_default();
            info!(peer = %self.peer, %client, dialect = %seen, "dialect seen");
            // And for `list-clients`: the last dialect each client was seen using.
            if let Some(id) = id {
                if let Err(e) = self.app.storage.meta.set_dialect(&id, &seen.to_string()) {
                    warn!(peer = %self.peer, %client, "cannot record the dialect seen: {e}");
                }
            }
        }
    }
}

/// What the event handlers in [`crate::events`] may reach.
impl Connection {
    pub(crate) fn peer(&self) -> SocketAddr {
        self.peer
    }
    pub(crate) fn storage(&self) -> &Storage {
        &self.app.storage
    }
    pub(crate) fn metrics(&self) -> &Metrics {
        &self.app.metrics
    }
    pub(crate) fn policy(&self) -> Policy {
        self.app.policy
    }
    /// Whether LastSeen of `client` is due an update (at most once a second).
    pub(crate) fn touch_due(&mut self, client: ClientId, now: Instant) -> bool {
        let recent = matches!(self.last_touch, Some((id, t))
            if id == client && now.duration_since(t) < Duration::from_secs(1));
        if !recent {
            self.last_touch = Some((client, now));
        }
        !recent
    }
    pub(crate) fn start_upload(
        &mut self,
        client: ClientId,
        file_name: String,
        per_request: bool,
    ) -> std::io::Result<()> {
        self.abort_upload();
        self.failed = None;
        let stale = self
            .app
            .uploads
            .supersede(&client, &file_name, per_request)
            .map_err(std::io::Error::other)?;
        for stale in stale {
            self.app.storage.drop_upload(&stale);
        }
        let key = new_upload_key();
        let writer = self.app.storage.contents.create_upload(&key)?;
        match self.app.uploads.start(self.id, client, &file_name, &key) {
            Ok(id) => {
                self.writer = Some(writer);
                self.upload = Some(id);
                Ok(())
            }
            Err(e) => {
                drop(writer);
                self.app.storage.drop_upload(&key);
                Err(std::io::Error::other(e))
            }
        }
    }
    pub(crate) fn data(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.write_data(data)
    }
    pub(crate) fn finished(
        &mut self,
        size: u64,
        checksum: u32,
        handover: Handover,
    ) -> std::io::Result<()> {
        self.finish_upload(size, checksum, handover)
    }
    pub(crate) fn abort(&mut self) {
        self.abort_upload()
    }
    /// Drops the upload after a failure that was logged: what the core queued of it
    /// before hearing so is skipped (no more lines) until the next upload starts.
    pub(crate) fn fail(&mut self, how: Failed) {
        self.abort_upload();
        self.failed = Some(how);
    }
    /// Whether this connection's upload failed, and how the client learns of it.
    pub(crate) fn failed(&self) -> Option<Failed> {
        self.failed
    }
    pub(crate) fn suspend(
        &mut self,
        upload: protocol_core::SuspendedUpload,
    ) -> std::io::Result<()> {
        // The checkpoint rule: what is buffered must be in the contents before the
        // state is saved (another connection, perhaps on another server, resumes from
        // the contents' end), so a saved state never claims bytes the contents lack.
        let flushed = match self.writer.take() {
            Some(mut w) => w.flush(),
            None => Ok(()),
        };
        let Some(id) = self.upload.take() else {
            return flushed;
        };
        let saved = flushed.and_then(|()| {
            self.app
                .uploads
                .suspend(id, upload)
                .map_err(std::io::Error::other)
        });
        if saved.is_err() {
            self.app.remove_upload(id);
        }
        saved
    }
    pub(crate) fn verdict(
        &mut self,
        client: &ClientId,
        verdict: Verdict,
        fresh: bool,
    ) -> Result<CommitOutcome, VerdictError> {
        self.confirm(client, verdict, fresh)
    }
    /// A 901: the upload it is about is dropped (the file follows again). True when
    /// there was one for this connection to decide.
    pub(crate) fn retry_announced(&mut self, client: &ClientId, fresh: bool) -> bool {
        let from = self.verdict_from(fresh);
        let own = from.own;
        self.writer = None;
        match self.app.uploads.remove_for_retry(from, client) {
            Ok(Some(key)) => {
                self.app.storage.drop_upload(&key);
                true
            }
            Ok(None) => {
                if let Some(id) = own {
                    self.app.remove_upload(id);
                }
                own.is_some()
            }
            Err(e) => {
                warn!("a retried upload stays until it expires: {e}");
                true
            }
        }
    }
    pub(crate) fn limits(&self) -> &ClientLimits {
        &self.app.limits
    }
    /// Logs (at most once a minute per client) and counts a request under `client`
    /// that was refused or counted against it.
    pub(crate) fn strain(&self, client: ClientId, strain: Strain, what: &str) {
        let prefix = short_id(&client);
        self.app.metrics.client_strain(&prefix, strain.label());
        if self.app.limits.warn_due(client, Instant::now()) {
            warn!(peer = %self.peer, client = %prefix, reason = strain.label(),
                  "{what} (requests under this client id are limited: docs/SECURITY.md; \
                   further lines for this client within a minute are not logged)");
        }
    }
    pub(crate) fn lookup_client(&mut self, client: ClientId) -> Option<ClientRecord> {
        self.lookup(client)
    }
}

mod quota;
#[cfg(test)]
mod resume_tests;
