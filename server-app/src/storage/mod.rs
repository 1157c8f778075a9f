//! Where the server keeps what it knows: two small interfaces and their local backends.
//!
//! - [`Metadata`]: clients, keys, file records and commit intents (SQLite by default:
//!   [`sqlite::SqliteMetadata`]; PostgreSQL for a fleet of servers:
//!   [`postgres::PostgresMetadata`]).
//! - [`Contents`]: the bytes, as opaque keys: uploads in progress under `uploads/`,
//!   committed objects under `objects/` (a local folder today: [`local::LocalContents`]).
//!
//! Contents are put as objects (create an upload, append, make it durable, publish it
//! under a fresh object key, delete) rather than opened as `Read + Seek` files: an object
//! store has no rename-over and no partial overwrite, and a key that is never reused can
//! never hold two versions. A file record maps (client, FileName) to an object key; the
//! key never derives from the client-chosen name. [`commit::Storage`] joins the two with
//! the crash-atomic commit protocol and the start-up reconciliation (docs/STORAGE.md).
//!
//! Tests make either side fail at any step by wrapping it: the traits are the seams.

pub mod commit;
pub mod local;
pub mod lock;
pub mod memory;
#[cfg(feature = "fleet")]
pub mod postgres;
pub mod reconcile;
#[cfg(feature = "fleet")]
pub mod s3;
pub mod secure;
pub mod sqlite;
#[cfg(any(test, feature = "testing"))]
pub mod suite;
pub mod uploads;

use std::collections::HashSet;
use std::io;
use std::time::Duration;

use protocol_core::ClientId;
use thiserror::Error;

pub use commit::{CommitOutcome, Storage};
pub use reconcile::{Orphans, Reconciled};
pub use secure::{PartialUpload, SecureKey, SecureStatus};

/// A metadata failure: what was being done and why.
#[derive(Debug, Error)]
pub enum MetaError {
    /// The backend failed (I/O, corruption, a constraint it enforces).
    #[error("database: {what}: {detail}")]
    Backend {
        /// What was being done.
        what: &'static str,
        /// The backend's message.
        detail: String,
    },
}

impl MetaError {
    /// A backend failure while doing `what`.
    pub fn backend(what: &'static str, e: impl std::fmt::Display) -> MetaError {
        MetaError::Backend {
            what,
            detail: e.to_string(),
        }
    }
}

/// What a registration (825) did.
#[derive(Debug, PartialEq, Eq)]
pub enum Registration {
    /// A new client row.
    Registered,
    /// The name belongs to a client with a public key, or to a registration still
    /// within its hold time.
    NameTaken,
}

/// What storing a public key (826) did.
#[derive(Debug, PartialEq, Eq)]
pub enum KeyOutcome {
    /// Stored: the client had no key yet, or sent the same key again (a retry).
    Stored,
    /// The client has a different public key: never replaced.
    DifferentKeyOnFile,
    /// No client with this id and name.
    Unknown,
}

/// One client, for listings.
#[derive(Debug, Clone)]
pub struct ClientRow {
    /// Id.
    pub id: ClientId,
    /// Name.
    pub name: String,
    /// Whether a public key is on file.
    pub has_key: bool,
    /// Last request, UTC.
    pub last_seen: String,
    /// Seconds since the AES key in use was issued (`None`: no AES key on file).
    pub aes_key_age: Option<u64>,
    /// Number of file records.
    pub files: u64,
    /// Bytes of those files.
    pub bytes: u64,
    /// The protocol variants its last connection used, as the server's "dialect seen"
    /// log line shows them (`None`: not seen since schema 4).
    pub dialect: Option<String>,
    /// The kind of the secure-mode key on file ([`SecureKey::kind`]; `None`: none).
    pub secure_key_kind: Option<u8>,
    /// Whether its legacy requests are refused ([`SecureStatus`]).
    pub secure: SecureStatus,
}

/// What removing records did (one transaction): a client's, a file's, unverified
/// files, or versions past the retention policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Removed {
    /// The file records removed.
    pub files: Vec<FileRecord>,
    /// The versions removed.
    pub versions: Vec<Version>,
    /// Objects no record or version names any more: the caller deletes them.
    pub objects: Vec<String>,
}

/// Content a file record named before a commit replaced it: kept so that verified
/// content is never lost, not even to a stranger who gets an upload verified in the
/// owner's name (docs/STORAGE.md, "Versions"). It keeps the object key the record
/// had; the object is simply not deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    /// Unique among all versions of the store, never reused; larger is newer.
    pub id: u64,
    /// Owner.
    pub client: ClientId,
    /// Name exactly as the client sent it.
    pub file_name: String,
    /// Where the contents are ([`Contents`] key).
    pub object: String,
    /// The client had confirmed the checksum (900).
    pub verified: bool,
    /// Size in bytes.
    pub size: u64,
    /// The checksum sent in 1603, when known.
    pub checksum: Option<u32>,
    /// When the content was written, UTC (empty for rows from before schema 3).
    pub updated: String,
    /// When it stopped being the current content, UTC: retention counts from here.
    pub superseded: String,
    /// The SHA-256 of the whole content, when the upload carried one (secure mode).
    pub sha256: Option<[u8; 32]>,
}

/// How many versions are kept and their bytes (`status`, `/metrics`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VersionTotals {
    /// Versions kept.
    pub versions: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// What a restore did (one transaction; no object copied or deleted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    /// The version that is the file's current content now (its row is gone).
    pub restored: Version,
    /// The version the record that was current became (`None`: there was none).
    pub kept: Option<Version>,
}

/// One stored file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRecord {
    /// Owner.
    pub client: ClientId,
    /// Name exactly as the client sent it.
    pub file_name: String,
    /// Where the contents are ([`Contents`] key; `PathName` in the database).
    pub object: String,
    /// The client confirmed the checksum (900).
    pub verified: bool,
    /// Size in bytes.
    pub size: u64,
    /// The checksum sent in 1603, when known (rows from before schema 3 have none).
    pub checksum: Option<u32>,
    /// When the record was last written, UTC (empty for old rows).
    pub updated: String,
    /// The SHA-256 of the whole content, when the upload carried one (secure mode).
    pub sha256: Option<[u8; 32]>,
}

/// A durable record that a commit is under way: written before the new object is
/// published, completed by the switch of the file record, removed when the old object
/// is gone. Start-up reconciliation rolls each one forward or back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intent {
    /// Unique id of this commit.
    pub id: String,
    /// Owner of the file.
    pub client: ClientId,
    /// Name as the client sent it.
    pub file_name: String,
    /// The upload being committed.
    pub upload: String,
    /// The fresh object key it is published under.
    pub object: String,
    /// Verified (900) or not (902).
    pub verified: bool,
    /// Size in bytes.
    pub size: u64,
    /// Checksum sent in 1603.
    pub checksum: u32,
    /// The SHA-256 of the whole upload, when it carried one (secure mode): the switch
    /// writes it into the record.
    pub sha256: Option<[u8; 32]>,
    /// Set by the switch: the object the record named before, to delete (never
    /// one kept as a version).
    pub replaced: Option<String>,
    /// Set by the switch: the record now names [`object`](Self::object).
    pub switched: bool,
}

/// What the commit point did.
#[derive(Debug, PartialEq, Eq)]
pub enum Switch {
    /// The record names the new object; `replaced` is the object to delete, if any.
    Switched {
        /// The object the record named before, when nothing names it any more.
        replaced: Option<String>,
    },
    /// A verified record stays; the unconfirmed object is to be deleted.
    KeptVerified,
}

/// Clients, keys, file records and commit intents.
///
/// Every method is one atomic step: a backend implements each as one transaction.
pub trait Metadata: Send + Sync {
    /// Adds a client under `name`. A name whose registration has had no public key
    /// for longer than `hold` is freed for the new client; any other is taken.
    fn register(
        &self,
        id: &ClientId,
        name: &str,
        hold: Duration,
    ) -> Result<Registration, MetaError>;
    /// Stores the public key and AES key of `id` registered as `name`, unless it has
    /// a different public key on file.
    fn set_keys(
        &self,
        id: &ClientId,
        name: &str,
        public_key: &[u8],
        aes_key: &[u8],
    ) -> Result<KeyOutcome, MetaError>;
    /// The public key on file for `id` registered as `name`.
    fn public_key(&self, id: &ClientId, name: &str) -> Result<Option<Vec<u8>>, MetaError>;
    /// The legacy public key on file for `id`, whatever its name: what a secure
    /// sign-in with the legacy key is checked against (the signature, not the name,
    /// proves the client).
    fn legacy_key(&self, id: &ClientId) -> Result<Option<Vec<u8>>, MetaError>;
    /// Replaces the AES key of `id`; false for an unknown client.
    fn set_aes_key(&self, id: &ClientId, aes_key: &[u8]) -> Result<bool, MetaError>;
    /// The AES key last issued to `id` and its age in seconds.
    fn aes_key(&self, id: &ClientId) -> Result<Option<(Vec<u8>, u64)>, MetaError>;
    /// Forgets the AES key of `id`.
    fn revoke_aes_key(&self, id: &ClientId) -> Result<(), MetaError>;
    /// Counts one more whole upload checked (a 1603 carrying a whole file's
    /// checksum) under `aes_key`, if it is the key `id` holds now, in one atomic step;
    /// the count since that key was issued ([`set_keys`](Self::set_keys) and
    /// [`set_aes_key`](Self::set_aes_key) start it at 0). `None`: an unknown client,
    /// or another key (or none) on file. Across every connection and server, so that a
    /// stranger who sends ciphertext under a client's id gets only so many checksums
    /// per key.
    fn count_checked_upload(&self, id: &ClientId, aes_key: &[u8])
        -> Result<Option<u32>, MetaError>;
    /// Updates LastSeen of `id`.
    fn touch(&self, id: &ClientId) -> Result<(), MetaError>;
    /// Records the protocol variants the last connection of `id` used (at its close).
    fn set_dialect(&self, id: &ClientId, dialect: &str) -> Result<(), MetaError>;
    /// Removes registrations that have had no public key for longer than `hold`;
    /// returns the names freed.
    fn expire_registrations(&self, hold: Duration) -> Result<Vec<String>, MetaError>;
    /// Every client, by name.
    fn clients(&self) -> Result<Vec<ClientRow>, MetaError>;
    /// The record of one file.
    fn file(&self, id: &ClientId, file_name: &str) -> Result<Option<FileRecord>, MetaError>;
    /// Every file, or those of one client.
    fn files(&self, client: Option<&ClientId>) -> Result<Vec<FileRecord>, MetaError>;
    /// Removes a file record and every version of the file in one transaction (an
    /// operator's deletion is meant to free the content, all of it); `None` when
    /// there was neither. The caller deletes [`Removed::objects`], those no other
    /// record or version names.
    fn delete_file(&self, id: &ClientId, file_name: &str) -> Result<Option<Removed>, MetaError>;
    /// Removes a client, all its file records and all its versions in one
    /// transaction; `None` for an unknown client. Commits of that client still under
    /// way fail at their switch (the switch refuses a client that is gone). The caller
    /// deletes the objects.
    fn remove_client(&self, id: &ClientId) -> Result<Option<Removed>, MetaError>;
    /// Removes, in one transaction, every unverified file record not written for
    /// `older_than` (records from before schema 3, which have no time, count as old).
    /// A record verified meanwhile is never touched, nor is any version. The caller
    /// deletes the objects.
    fn prune_unverified(&self, older_than: Duration) -> Result<Removed, MetaError>;
    /// Every object key a file record, a version or an intent names.
    fn referenced_objects(&self) -> Result<HashSet<String>, MetaError>;
    /// The versions of one client's files (or of one file), or every version: by
    /// client and file name, newest first within a file.
    fn versions(
        &self,
        client: Option<&ClientId>,
        file_name: Option<&str>,
    ) -> Result<Vec<Version>, MetaError>;
    /// How many versions are kept, and their bytes.
    fn version_totals(&self) -> Result<VersionTotals, MetaError>;
    /// Makes version `version` of the file the current content, in one transaction:
    /// the record takes the version's object, verdict, size, checksum and time, the
    /// version row goes, and the record that was current (if any) becomes a new
    /// version. No object is copied or deleted. `None` when the file has no such
    /// version.
    fn restore_version(
        &self,
        id: &ClientId,
        file_name: &str,
        version: u64,
    ) -> Result<Option<Restored>, MetaError>;
    /// Removes, in one transaction, every version that is both beyond the newest
    /// `keep` versions of its file and superseded at least `older_than` ago: however
    /// often a file is replaced, no version goes before `older_than`. The caller
    /// deletes the objects.
    fn prune_versions(&self, keep: usize, older_than: Duration) -> Result<Removed, MetaError>;
    /// Step 2 of a commit: records the intent durably.
    fn record_intent(&self, intent: &Intent) -> Result<(), MetaError>;
    /// Step 4, the commit point: in one transaction, points the file record at the
    /// intent's object (verified, size, checksum) and marks the intent switched. A
    /// verified record it replaces becomes a [`Version`] in that same transaction
    /// (its object stays); an unverified one is noted as the object to delete when
    /// no other record or version still names it. An unverified intent over a
    /// verified record changes no record and removes the intent instead
    /// ([`Switch::KeptVerified`]).
    fn switch(&self, intent: &Intent) -> Result<Switch, MetaError>;
    /// Step 6: the intent is done.
    fn clear_intent(&self, id: &str) -> Result<(), MetaError>;
    /// Reconciliation takes an intent over: removes it if it is still as `intent`
    /// says (switched or not); false if it is gone or was switched meanwhile. A
    /// commit whose intent was claimed before its switch fails at the switch.
    fn claim_intent(&self, intent: &Intent) -> Result<bool, MetaError>;
    /// Intents not yet cleared.
    fn intents(&self) -> Result<Vec<Intent>, MetaError>;
    /// Intents recorded more than `older_than` ago (a fleet's reconciliation leaves
    /// younger ones to the commits running them). A backend that serves one process
    /// only, which reconciles before it serves, may return every intent.
    fn stale_intents(&self, older_than: Duration) -> Result<Vec<Intent>, MetaError>;
    /// The secure-mode key of `id` (`None`: an unknown client, or none on file). The
    /// legacy RSA-1024 key stays apart ([`public_key`](Self::public_key)).
    fn secure_key(&self, id: &ClientId) -> Result<Option<SecureKey>, MetaError>;
    /// Stores (replacing) the secure-mode key of `id`; false for an unknown client. A
    /// malformed key ([`SecureKey::check`]) is an error and changes nothing.
    fn set_secure_key(&self, id: &ClientId, key: &SecureKey) -> Result<bool, MetaError>;
    /// Adds a client registered in secure mode directly, with its key: the name rules
    /// of [`register`](Self::register) (a name held by a client with any key, legacy
    /// or secure, is taken; one without a key is held for `hold`). The new client
    /// counts as having gone secure ([`SecureStatus::went_secure`]): it has no legacy
    /// key, and none may be added for legacy requests unless it asks.
    fn register_secure(
        &self,
        id: &ClientId,
        name: &str,
        key: &SecureKey,
        hold: Duration,
    ) -> Result<Registration, MetaError>;
    /// Whether `id` has had a secure session and asked to keep legacy requests open;
    /// `None` for an unknown client.
    fn secure_status(&self, id: &ClientId) -> Result<Option<SecureStatus>, MetaError>;
    /// Records that `id` had a secure session: from now on its legacy requests are
    /// refused unless it keeps them open. False for an unknown client.
    fn mark_went_secure(&self, id: &ClientId) -> Result<bool, MetaError>;
    /// Keeps the legacy requests of `id` open (or closes them) after it went secure;
    /// false for an unknown client.
    fn set_keep_legacy(&self, id: &ClientId, keep: bool) -> Result<bool, MetaError>;
    /// A client deletes its file: in one transaction the current record becomes a
    /// [`Version`] (whatever its verdict) and the record goes. Nothing is deleted: the
    /// version's object stays, [`restore_version`](Self::restore_version) undoes it
    /// and [`prune_versions`](Self::prune_versions) removes it like any other
    /// version. `None` when there is no record.
    fn retire_file(&self, id: &ClientId, file_name: &str) -> Result<Option<Version>, MetaError>;
    /// Saves the state of a resumable upload, replacing the one of the same client
    /// and file name (one per file). [`PartialUpload::updated`] is ignored: the store
    /// sets it to now.
    fn save_partial(&self, partial: &PartialUpload) -> Result<(), MetaError>;
    /// The resumable upload of one file.
    fn partial(&self, id: &ClientId, file_name: &str) -> Result<Option<PartialUpload>, MetaError>;
    /// Removes the resumable upload of a file if it still names `upload` (another
    /// server that took the file over must not lose its own); whether it did.
    fn remove_partial(
        &self,
        id: &ClientId,
        file_name: &str,
        upload: &str,
    ) -> Result<bool, MetaError>;
    /// Removes, in one transaction, every resumable upload not saved for
    /// `older_than`, and returns them: the caller deletes their uploads.
    fn expire_partials(&self, older_than: Duration) -> Result<Vec<PartialUpload>, MetaError>;
    /// Every upload key that an intent or a resumable upload names: sweeps of uploads
    /// nobody writes leave them alone.
    fn referenced_uploads(&self) -> Result<HashSet<String>, MetaError>;
    /// Whether the store answers: a trivial query for a health check (`/healthz`),
    /// asked about twice a second per load balancer. The default reads the intents,
    /// a table that is empty but for commits under way; a backend with a cheaper
    /// query (`SELECT 1`) overrides it.
    fn health(&self) -> Result<(), MetaError> {
        self.intents().map(drop)
    }
}

/// Appends the bytes of one upload in progress.
pub trait UploadSink: Send {
    /// Appends `data`.
    fn write(&mut self, data: &[u8]) -> io::Result<()>;
    /// Writes out anything buffered, so that a reopened sink continues at the end.
    fn flush(&mut self) -> io::Result<()>;
    /// Step 1 of a commit: flushes and makes the bytes durable (before 1603).
    fn finish(self: Box<Self>) -> io::Result<()>;
    /// Bytes in the upload so far, counting buffered ones, when the sink knows (a
    /// reopened upload is checked against its saved state). Wrappers must forward it:
    /// `None` skips that check.
    fn bytes_written(&self) -> Option<u64>;
}

/// An object being read ([`Contents::open_object`]).
pub trait ObjectRead: io::Read + Send {
    /// The whole object's size, whatever the offset it is read from.
    fn size(&self) -> u64;
}

/// The bytes: uploads in progress and committed objects, by opaque keys.
pub trait Contents: Send + Sync {
    /// Creates an empty upload under `upload` (a key from [`new_upload_key`]).
    fn create_upload(&self, upload: &str) -> io::Result<Box<dyn UploadSink>>;
    /// Reopens an upload to append at its end (a connection per request).
    fn reopen_upload(&self, upload: &str) -> io::Result<Box<dyn UploadSink>>;
    /// Continues an upload from `offset` (a resumed upload, the offset its saved
    /// state accounts for): its content is exactly its first `offset` bytes followed
    /// by what is written next. Bytes past `offset` (written but never accounted for)
    /// are dropped where the store can (a local file is truncated); an upload that
    /// holds fewer bytes, or that cannot be cut back (an object store's flushed
    /// parts), fails with [`io::ErrorKind::InvalidData`].
    fn resume_upload(&self, upload: &str, offset: u64) -> io::Result<Box<dyn UploadSink>>;
    /// Removes an upload (missing is fine).
    fn delete_upload(&self, upload: &str) -> io::Result<()>;
    /// Step 3 of a commit: makes the finished upload durable as `object`. Afterwards
    /// the upload key no longer exists. `object` never exists before.
    fn publish(&self, upload: &str, object: &str) -> io::Result<()>;
    /// Removes an object (missing is fine).
    fn delete_object(&self, object: &str) -> io::Result<()>;
    /// The whole contents of an object (small objects, tests: a download reads
    /// through [`open_object`](Self::open_object)).
    fn read_object(&self, object: &str) -> io::Result<Vec<u8>>;
    /// An object's bytes from `offset` on, read in order without holding the object
    /// in memory (a local file read; an S3 ranged GET streamed). A missing object is
    /// [`io::ErrorKind::NotFound`]; an offset past its end
    /// [`io::ErrorKind::InvalidInput`]; an offset at its end reads nothing.
    fn open_object(&self, object: &str, offset: u64) -> io::Result<Box<dyn ObjectRead>>;
    /// Every upload in progress.
    fn uploads(&self) -> io::Result<Vec<String>>;
    /// Every object this store created (objects of an older layout are not listed).
    fn objects(&self) -> io::Result<Vec<String>>;
    /// Every object of an older layout that is provably a leftover temporary.
    fn legacy_leftovers(&self) -> io::Result<Vec<String>>;
}

/// The error of an [`Contents::open_object`] offset past the object's end.
pub fn past_the_end(offset: u64, size: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("offset {offset} is past the end of the object ({size} bytes)"),
    )
}

/// 128 random bits as 32 hex digits: names that are never reused.
pub fn random_name() -> String {
    use rand_core::RngCore;
    let mut bytes = [0u8; 16];
    rand_core::OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A fresh upload key: `uploads/<random>`.
pub fn new_upload_key() -> String {
    format!("uploads/{}", random_name())
}

/// A fresh object key for a file of `client`: `objects/<client hex>/<random>`.
pub fn new_object_key(client: &ClientId) -> String {
    format!("objects/{}/{}", client.to_hex(), random_name())
}

/// A client id as logs show it: the first 8 hex digits. Ids are credentials (anyone
/// who knows one, and the name, can act as that client until it has a key).
pub fn short_id(id: &ClientId) -> String {
    let mut hex = id.to_hex();
    hex.truncate(8);
    hex
}

/// A contents key as logs show it: the client id in `objects/<id>/...` and
/// `files/<id>/...` shortened as by [`short_id`].
pub fn key_for_log(key: &str) -> String {
    let mut parts: Vec<String> = key.split('/').map(str::to_string).collect();
    if parts.len() > 2 && (parts[0] == "objects" || parts[0] == "files") {
        if let Some(id) = ClientId::from_hex(&parts[1]) {
            parts[1] = format!("{}~", short_id(&id));
        }
    }
    parts.join("/")
}
