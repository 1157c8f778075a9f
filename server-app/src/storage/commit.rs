//! The crash-atomic commit and the start-up reconciliation, over any [`Metadata`] and
//! [`Contents`].
//!
//! A commit (the client's 900, or 902 where no verified file exists):
//!
//! 1. the upload is durable ([`UploadSink::finish`](super::UploadSink::finish), before 1603);
//! 2. an [`Intent`] is recorded: upload key, fresh object key, verdict, size, checksum;
//! 3. the upload is published under the fresh object key (never an existing one);
//! 4. one metadata transaction points the file record at the new object and marks the
//!    intent switched: the commit point; 1604 is sent only after it. A verified record
//!    it replaces becomes a version in that same transaction (its object stays), so a
//!    crash at any step leaves the old content current or kept, never neither;
//! 5. the object an unverified record named before is deleted, unless another record
//!    or a version names it;
//! 6. the intent is cleared.
//!
//! What an interrupted commit leaves is resolved by [`super::reconcile`].

use std::sync::Arc;

use protocol_core::ClientId;
use thiserror::Error;
use tracing::warn;

use super::{
    key_for_log, new_object_key, Contents, Intent, MetaError, Metadata, Removed, Restored, Switch,
};

/// A storage failure.
#[derive(Debug, Error)]
pub enum StorageError {
    /// The metadata store failed.
    #[error(transparent)]
    Meta(#[from] MetaError),
    /// The contents store failed.
    #[error("contents: {what}: {source}")]
    Contents {
        /// What was being done.
        what: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

pub(super) fn contents(what: &'static str) -> impl FnOnce(std::io::Error) -> StorageError {
    move |source| StorageError::Contents { what, source }
}

/// What a commit did.
#[derive(Debug, PartialEq, Eq)]
pub enum CommitOutcome {
    /// The record names the upload's bytes now.
    Committed,
    /// An unconfirmed upload (902) met a verified file, which stays as it was.
    KeptVerified,
}

/// Metadata and contents, joined by the commit protocol.
#[derive(Clone)]
pub struct Storage {
    /// Clients, keys, records.
    pub meta: Arc<dyn Metadata>,
    /// The bytes.
    pub contents: Arc<dyn Contents>,
}

/// One upload to commit.
#[derive(Debug, Clone)]
pub struct Finished<'a> {
    /// Owner.
    pub client: &'a ClientId,
    /// Name as the client sent it.
    pub file_name: &'a str,
    /// The upload key (durable already: step 1).
    pub upload: &'a str,
    /// 900 (true) or 902.
    pub verified: bool,
    /// Size in bytes.
    pub size: u64,
    /// Checksum sent in 1603.
    pub checksum: u32,
    /// The SHA-256 of the whole upload, computed as it streamed and agreed with the
    /// client (secure mode); `None` for legacy uploads.
    pub sha256: Option<[u8; 32]>,
}

impl Storage {
    /// Joins a metadata store and a contents store.
    pub fn new(meta: Arc<dyn Metadata>, contents: Arc<dyn Contents>) -> Storage {
        Storage { meta, contents }
    }

    /// Steps 2 to 6. On `Ok`, the record is durable (1604 may be sent). On `Err`, the
    /// record is unchanged or (when even that cannot be told) the intent is left for
    /// the next start to resolve; the upload is gone either way.
    pub fn commit(&self, f: Finished<'_>) -> Result<CommitOutcome, StorageError> {
        let intent = Intent {
            id: super::random_name(),
            client: *f.client,
            file_name: f.file_name.to_string(),
            upload: f.upload.to_string(),
            object: new_object_key(f.client),
            verified: f.verified,
            size: f.size,
            checksum: f.checksum,
            sha256: f.sha256,
            replaced: None,
            switched: false,
        };
        if let Err(e) = self.meta.record_intent(&intent) {
            self.drop_upload(f.upload);
            return Err(e.into());
        }
        if let Err(e) = self.contents.publish(&intent.upload, &intent.object) {
            self.roll_back(&intent);
            return Err(contents("publishing the upload")(e));
        }
        let switched = match self.meta.switch(&intent) {
            Ok(s) => s,
            Err(e) => {
                // Did the transaction commit before the error? Ask; if even that
                // fails, leave the intent for the next start.
                match self.meta.file(f.client, f.file_name) {
                    // Committed after all; the next start finishes the intent.
                    Ok(Some(r)) if r.object == intent.object => {
                        return Ok(CommitOutcome::Committed)
                    }
                    Ok(_) => {
                        self.roll_back(&intent);
                        return Err(e.into());
                    }
                    Err(_) => return Err(e.into()),
                }
            }
        };
        match switched {
            Switch::KeptVerified => {
                self.delete_object(&intent.object);
                Ok(CommitOutcome::KeptVerified)
            }
            Switch::Switched { replaced } => {
                // Committed: what follows is tidying, which the next start redoes
                // from the intent should it fail here.
                if let Some(old) = replaced {
                    if let Err(e) = self.contents.delete_object(&old) {
                        warn!(
                            "could not delete the replaced object {}: {e} (removed at the next start)",
                            key_for_log(&old)
                        );
                        return Ok(CommitOutcome::Committed);
                    }
                }
                if let Err(e) = self.meta.clear_intent(&intent.id) {
                    warn!(
                        "could not clear a finished commit intent: {e} (cleared at the next start)"
                    );
                }
                Ok(CommitOutcome::Committed)
            }
        }
    }

    /// Removes an upload in progress (best effort: the next start removes what is left).
    pub fn drop_upload(&self, upload: &str) {
        if let Err(e) = self.contents.delete_upload(upload) {
            warn!(
                "could not delete the upload {}: {e} (removed at the next start)",
                key_for_log(upload)
            );
        }
    }

    fn delete_object(&self, object: &str) {
        if let Err(e) = self.contents.delete_object(object) {
            warn!(
                "could not delete the object {}: {e} (removed at the next start)",
                key_for_log(object)
            );
        }
    }

    /// Undoes an intent whose switch did not happen.
    fn roll_back(&self, intent: &Intent) {
        self.drop_upload(&intent.upload);
        if let Err(e) = self.contents.delete_object(&intent.object) {
            warn!("could not delete an uncommitted object: {e} (removed at the next start)");
            return;
        }
        if let Err(e) = self.meta.clear_intent(&intent.id) {
            warn!("could not clear an undone commit intent: {e} (cleared at the next start)");
        }
    }

    /// Deletes a file: its record and its versions in one transaction, then the
    /// objects nothing else names (as [`remove_client`](Self::remove_client)). For
    /// operator commands. `None` when the file had neither a record nor a version.
    pub fn delete_file(
        &self,
        client: &ClientId,
        file_name: &str,
    ) -> Result<Option<Removed>, StorageError> {
        let Some(removed) = self.meta.delete_file(client, file_name)? else {
            return Ok(None);
        };
        self.delete_objects(&removed.objects)?;
        Ok(Some(removed))
    }

    /// A client deletes its file: the record becomes a version in one metadata
    /// transaction and no object is deleted, so a mistaken delete is undone by
    /// [`restore_version`](Self::restore_version) within the retention policy, and
    /// [`prune_versions`](Self::prune_versions) frees it in time like any version.
    /// `None`: no such file. (An operator's [`delete_file`](Self::delete_file), by
    /// contrast, frees the content at once, versions and all.)
    pub fn retire_file(
        &self,
        client: &ClientId,
        file_name: &str,
    ) -> Result<Option<super::Version>, StorageError> {
        Ok(self.meta.retire_file(client, file_name)?)
    }

    /// Removes the resumable uploads not saved for `older_than`: their rows in one
    /// transaction, then their uploads. A crash in between leaves uploads nothing
    /// names, which the sweeps remove. Returns what expired.
    pub fn expire_partials(
        &self,
        older_than: std::time::Duration,
    ) -> Result<Vec<super::PartialUpload>, StorageError> {
        let expired = self.meta.expire_partials(older_than)?;
        for p in &expired {
            self.contents
                .delete_upload(&p.upload)
                .map_err(contents("deleting an expired resumable upload"))?;
        }
        Ok(expired)
    }

    /// Makes a version of a file current again, the current content becoming a
    /// version: one metadata transaction, no object copied or deleted, so a crash
    /// leaves either the state before or the state after. `None`: no such version.
    pub fn restore_version(
        &self,
        client: &ClientId,
        file_name: &str,
        version: u64,
    ) -> Result<Option<Restored>, StorageError> {
        Ok(self.meta.restore_version(client, file_name, version)?)
    }

    /// Removes the versions the retention policy lets go (beyond the newest `keep` of
    /// their file and superseded at least `older_than` ago): the rows in one
    /// transaction, then the objects nothing names any more. A crash in between leaves
    /// only unnamed objects, which reconciliation removes.
    pub fn prune_versions(
        &self,
        keep: usize,
        older_than: std::time::Duration,
    ) -> Result<Removed, StorageError> {
        let removed = self.meta.prune_versions(keep, older_than)?;
        self.delete_objects(&removed.objects)?;
        Ok(removed)
    }

    /// Removes a client: its rows in one transaction (the commit point), then the objects
    /// no record names any more. A crash between the two leaves objects no record
    /// names, which the next start removes. `None` for an unknown client.
    pub fn remove_client(&self, client: &ClientId) -> Result<Option<Removed>, StorageError> {
        let Some(removed) = self.meta.remove_client(client)? else {
            return Ok(None);
        };
        self.delete_objects(&removed.objects)?;
        Ok(Some(removed))
    }

    /// Removes every unverified file not written for `older_than`: the records in one
    /// transaction, then their objects (as [`remove_client`](Self::remove_client)).
    pub fn prune_unverified(
        &self,
        older_than: std::time::Duration,
    ) -> Result<Removed, StorageError> {
        let removed = self.meta.prune_unverified(older_than)?;
        self.delete_objects(&removed.objects)?;
        Ok(removed)
    }

    fn delete_objects(&self, objects: &[String]) -> Result<(), StorageError> {
        for object in objects {
            self.contents
                .delete_object(object)
                .map_err(contents("deleting an object (removed at the next start)"))?;
        }
        Ok(())
    }
}
