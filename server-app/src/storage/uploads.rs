//! Uploads in progress, each owned by the connection that is sending it.
//!
//! A 900, 901 or 902 affects exactly the upload whose 1603 its connection received. A
//! client with a connection per request (protocol variant 7) leaves its upload between
//! connections: suspended between packets, or finished and awaiting its verdict. A later
//! connection of the same client takes a suspended upload over only when it is the
//! client's one such upload and no other connection of the client is sending one; a
//! finished one only when its 1603 went out on a connection whose first request was
//! that last packet ([`Handover::AnyConnection`]), it is the client's latest, and the
//! verdict is the first request of its own connection, within a short window. The
//! client id travels in clear: any other rule would let a stranger who saw one packet
//! give the verdict on a client's upload.
//!
//! [`UploadTable`] is that table; [`MemoryUploads`](crate::storage::memory::MemoryUploads)
//! keeps it in the process (one server, the default), `storage::postgres::PgUploads` in PostgreSQL, shared by a fleet of
//! servers: there a connection is named by its server instance and its number, a
//! suspended upload is kept as bytes ([`protocol_core::SuspendedUpload::to_bytes`]), and
//! taking one over is an update conditioned on its owner and state, so exactly one
//! connection of the whole fleet writes an upload at a time.

use std::time::{Duration, Instant};

use protocol_core::crypto::AesKey;
use protocol_core::{ClientId, SuspendedUpload};

pub use crate::storage::MetaError as TableError;

/// Identifies one upload in progress.
pub type UploadId = u64;
/// Identifies one connection of this server process.
pub type ConnId = u64;

/// Where the verdict on a finished upload may come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handover {
    /// Only the connection that received the 1603.
    OwnConnection,
    /// Also a new connection of the client, as its first request, within the
    /// verdict window: the 1603 went out on a connection whose first request was the
    /// last packet (a connection per request, variant 7).
    AnyConnection,
}

/// Who sends a verdict (900, 901, 902), for the rules of
/// [`UploadTable::take_for_verdict`].
#[derive(Debug, Clone, Copy)]
pub struct VerdictFrom {
    /// The connection it arrived on.
    pub conn: ConnId,
    /// The upload that connection holds, if any.
    pub own: Option<UploadId>,
    /// The verdict is the first request of its connection.
    pub fresh: bool,
    /// How long after its 1603 a finished upload may be handed over.
    pub window: Duration,
}

/// An upload whose verdict came: what the commit needs.
#[derive(Debug)]
pub struct Verdictable {
    /// Name as the client sent it.
    pub file_name: String,
    /// The contents key.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// Checksum sent in 1603.
    pub checksum: u32,
}

/// An upload removed because no connection came back for it.
#[derive(Debug)]
pub struct Abandoned {
    /// Owner.
    pub client: ClientId,
    /// The contents key to delete.
    pub key: String,
    /// How long it had been without a connection.
    pub idle: Duration,
}

/// An upload removed because its server stops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drained {
    /// Owner.
    pub client: ClientId,
    /// The contents key to delete.
    pub key: String,
    /// The bytes it had received, when the table knows (suspended or finished).
    pub bytes: Option<u64>,
}

/// A suspended upload taken over by a connection.
#[derive(Debug)]
pub struct Resumed {
    /// Its id in the table.
    pub id: UploadId,
    /// Its contents key.
    pub key: String,
    /// The core's state, to hand back in the client record. Its
    /// [`bytes_so_far`](SuspendedUpload::bytes_so_far) is what the contents held when
    /// it was suspended.
    pub upload: SuspendedUpload,
}

/// Every upload in progress: the rules of docs/STORAGE.md ("Uploads in progress belong
/// to their connection"). Each method is one atomic step.
pub trait UploadTable: Send + Sync {
    /// Records a new upload sent by `conn`.
    fn start(
        &self,
        conn: ConnId,
        client: ClientId,
        file_name: &str,
        key: &str,
    ) -> Result<UploadId, TableError>;
    /// Removes the suspended uploads of `client` for `file_name` that no connection
    /// holds and whose packets were each answered exactly when `per_request` (the new
    /// upload's first packet was the first request of its connection): the client
    /// started that file again from its first packet. An upload of the other kind is
    /// another sender's under the same id, and leaves this one alone. Their keys, to
    /// delete.
    fn supersede(
        &self,
        client: &ClientId,
        file_name: &str,
        per_request: bool,
    ) -> Result<Vec<String>, TableError>;
    /// The last packet arrived and the bytes are durable: 1603 goes out, and the
    /// verdict may come from where `handover` says. False if the upload is no longer
    /// in the table.
    fn finish(
        &self,
        id: UploadId,
        size: u64,
        checksum: u32,
        handover: Handover,
    ) -> Result<bool, TableError>;
    /// The connection left between packets: another may continue. The caller has
    /// flushed the contents first, so the state never claims bytes they lack.
    fn suspend(&self, id: UploadId, upload: SuspendedUpload) -> Result<(), TableError>;
    /// A connection of `client` continues a suspended upload: the client's only one,
    /// and only when no other connection of the client is sending one. `key` is the
    /// client's AES key (a shared table keeps the upload without it).
    fn resume(
        &self,
        conn: ConnId,
        client: &ClientId,
        key: &AesKey,
    ) -> Result<Option<Resumed>, TableError>;
    /// The upload a verdict of `client` is about: the sending connection's own
    /// finished upload; else, only when the verdict is the first request of its
    /// connection, the client's most recently finished upload, if it was finished
    /// with [`Handover::AnyConnection`] less than `from.window` ago (its connection
    /// may not have closed yet). Nothing else: a verdict on another connection is
    /// refused. Removed from the table.
    fn take_for_verdict(
        &self,
        from: VerdictFrom,
        client: &ClientId,
    ) -> Result<Option<Verdictable>, TableError>;
    /// Removes an upload; its contents key, to delete.
    fn remove(&self, id: UploadId) -> Result<Option<String>, TableError>;
    /// Removes the finished upload a 901 of `client` is about (found as
    /// [`take_for_verdict`](Self::take_for_verdict) finds it); its key, to delete.
    fn remove_for_retry(
        &self,
        from: VerdictFrom,
        client: &ClientId,
    ) -> Result<Option<String>, TableError>;
    /// `conn` closed: an upload it was receiving is dead (its key returned, to delete);
    /// one awaiting its verdict waits for another connection of its client.
    fn release(&self, conn: ConnId) -> Result<Vec<String>, TableError>;
    /// Removes uploads no connection has held for `after` (and, in a shared table,
    /// uploads held by a server that stopped renewing its lease); `now` is this
    /// process's clock (a shared table uses the database's).
    fn expire(&self, after: Duration, now: Instant) -> Result<Vec<Abandoned>, TableError>;
    /// The server stops: removes the uploads it holds (in memory, every upload; in a
    /// shared table, those its connections hold, while suspended and finished ones stay
    /// for the other servers); what they were, to log and delete.
    fn drain(&self) -> Result<Vec<Drained>, TableError>;
    /// Drops `client`'s uploads without a connection (suspended, or finished and
    /// awaiting a verdict), oldest first, while the bytes its uploads in the table hold
    /// pass `quota`; what it dropped, to log and delete. Bytes still arriving on a
    /// connection count from their suspension or finish. In a shared table, the
    /// client's uploads on every server count.
    fn enforce_quota(&self, client: &ClientId, quota: u64) -> Result<Vec<Abandoned>, TableError>;
    /// Every contents key the table names (start-up reconciliation keeps those).
    fn keys(&self) -> Result<Vec<String>, TableError>;
    /// How many uploads are in progress.
    fn len(&self) -> usize;
    /// Whether other server processes use this table too (then no server may
    /// remove what only looks abandoned: `storage::reconcile`).
    fn shared(&self) -> bool {
        false
    }
    /// Whether none is.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
