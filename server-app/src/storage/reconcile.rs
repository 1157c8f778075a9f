//! Resolving what interrupted work left: commit intents, uploads no one writes, objects
//! no record names.
//!
//! A server that is the only user of its storage (SQLite, the data folder locked)
//! resolves everything at start, before it serves: [`Storage::reconcile`].
//!
//! The servers of a fleet share their storage: while one starts, the others commit and
//! upload, and what looks abandoned may be a commit between two of its steps. So:
//!
//! - an intent is resolved only once it is older than `stale_after` (far longer than a
//!   commit takes), and only after claiming it, a delete of its row conditioned on its
//!   state. Should the commit that wrote it still be running, its switch then finds no
//!   intent and fails, and that commit rolls itself back (no 1604 was sent): a record
//!   never names an object that reconciliation deleted
//!   ([`Storage::resolve_stale_intents`], at start and in housekeeping);
//! - an upload is removed only when two listings at least `stale_after` apart both
//!   found it unknown to the table of uploads, to every intent and to every
//!   resumable upload ([`Metadata::referenced_uploads`](super::Metadata::referenced_uploads)): a new upload is
//!   unknown until its row is written, a confirmed one between its row's removal and
//!   its intent ([`Orphans`], in every server's housekeeping);
//! - objects are listed before the names are read: an object that exists at the
//!   listing was published after its intent was recorded, so that intent, or the
//!   record its switch wrote, is read after and names it
//!   ([`Storage::remove_unnamed_objects`], at start).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tracing::info;

use super::commit::{contents, StorageError};
use super::{short_id, Intent, MetaError, Storage};

/// What reconciliation did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Reconciled {
    /// Intents whose switch had happened: finished.
    pub rolled_forward: usize,
    /// Intents whose switch had not happened: undone.
    pub rolled_back: usize,
    /// Uploads no one writes, removed.
    pub uploads_removed: usize,
    /// Objects no record named, removed.
    pub objects_removed: usize,
}

impl Storage {
    /// Start-up of the only server of this storage: resolves every intent, then
    /// removes every upload but those a resumable upload names (none other survives
    /// a restart) and every object no record names. Must run before any connection
    /// is served, with the folder lock held.
    pub fn reconcile(&self) -> Result<Reconciled, StorageError> {
        let mut done = Reconciled::default();
        self.resolve(self.meta.intents()?, &mut done)?;
        let listed = self
            .contents
            .uploads()
            .map_err(contents("listing uploads"))?;
        // Read after the listing (as every sweep does): what a partial names stays,
        // so that its client resumes it after the restart.
        let referenced = self.meta.referenced_uploads()?;
        for upload in listed {
            if referenced.contains(&upload) {
                continue;
            }
            self.contents
                .delete_upload(&upload)
                .map_err(contents("deleting an upload"))?;
            done.uploads_removed += 1;
        }
        self.remove_unnamed_objects(&mut done)?;
        Ok(done)
    }

    /// Start-up of a server of a fleet: resolves the intents older than
    /// `stale_after` and removes the objects nothing names; other servers may be
    /// serving meanwhile (see the module's docs). Uploads are left to [`Orphans`].
    pub fn reconcile_shared(&self, stale_after: Duration) -> Result<Reconciled, StorageError> {
        let mut done = Reconciled::default();
        self.resolve_stale_intents(stale_after, &mut done)?;
        self.remove_unnamed_objects(&mut done)?;
        Ok(done)
    }

    /// Resolves the intents recorded more than `stale_after` ago, each claimed first.
    pub fn resolve_stale_intents(
        &self,
        stale_after: Duration,
        done: &mut Reconciled,
    ) -> Result<(), StorageError> {
        self.resolve(self.meta.stale_intents(stale_after)?, done)
    }

    /// Rolls each intent forward (its switch happened: the replaced object goes) or
    /// back (its object goes), and deletes its upload. The intent is claimed before
    /// anything is deleted; one another server claimed, or whose commit finished
    /// meanwhile, is skipped. A failure after the claim leaves only what nothing
    /// names, which the sweeps remove.
    fn resolve(&self, intents: Vec<Intent>, done: &mut Reconciled) -> Result<(), StorageError> {
        for intent in intents {
            if !self.meta.claim_intent(&intent)? {
                continue;
            }
            if intent.switched {
                if let Some(old) = &intent.replaced {
                    self.contents
                        .delete_object(old)
                        .map_err(contents("deleting a replaced object"))?;
                }
                done.rolled_forward += 1;
            } else {
                self.contents
                    .delete_object(&intent.object)
                    .map_err(contents("deleting an uncommitted object"))?;
                done.rolled_back += 1;
            }
            self.contents
                .delete_upload(&intent.upload)
                .map_err(contents("deleting an upload"))?;
            info!(
                client = %short_id(&intent.client),
                switched = intent.switched,
                "resolved an interrupted commit"
            );
        }
        Ok(())
    }

    /// Removes every object no record or intent names (and leftovers of the old
    /// layout). The objects are listed before the names are read.
    pub fn remove_unnamed_objects(&self, done: &mut Reconciled) -> Result<(), StorageError> {
        let listed = self
            .contents
            .objects()
            .map_err(contents("listing objects"))?;
        let legacy = self
            .contents
            .legacy_leftovers()
            .map_err(contents("listing old temporaries"))?;
        let named = self.meta.referenced_objects()?;
        for object in listed.into_iter().chain(legacy) {
            if !named.contains(&object) {
                self.contents
                    .delete_object(&object)
                    .map_err(contents("deleting an unnamed object"))?;
                done.objects_removed += 1;
            }
        }
        Ok(())
    }
}

/// Uploads no server of a fleet writes any more (their server died between two
/// steps), found by listing: see the module's docs. One per server process.
#[derive(Debug, Default)]
pub struct Orphans {
    state: Mutex<Sightings>,
}

#[derive(Debug, Default)]
struct Sightings {
    /// When each upload unknown at the last listing was first found unknown.
    unknown_since: HashMap<String, Instant>,
    last: Option<Instant>,
}

impl Orphans {
    /// Lists the uploads, then reads the keys the table of uploads, the intents and
    /// the resumable uploads name (`table_keys`, called after the listing), and removes each upload found
    /// unknown by this listing and by one at least `stale_after` before. Lists at most
    /// every `stale_after / 2` (the calls in between do nothing); `now` is this
    /// process's clock. Returns how many uploads it removed.
    pub fn sweep(
        &self,
        storage: &Storage,
        table_keys: impl FnOnce() -> Result<Vec<String>, MetaError>,
        stale_after: Duration,
        now: Instant,
    ) -> Result<usize, StorageError> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if matches!(state.last, Some(t) if now.saturating_duration_since(t) < stale_after / 2) {
            return Ok(0);
        }
        state.last = Some(now);
        let listed = storage
            .contents
            .uploads()
            .map_err(contents("listing uploads"))?;
        let mut known: HashSet<String> = table_keys()?.into_iter().collect();
        // Intents and resumable uploads (secure mode) name uploads too.
        known.extend(storage.meta.referenced_uploads()?);
        let unknown: HashSet<String> = listed.into_iter().filter(|u| !known.contains(u)).collect();
        state.unknown_since.retain(|u, _| unknown.contains(u));
        let mut removed = 0;
        for upload in unknown {
            let since = *state.unknown_since.entry(upload.clone()).or_insert(now);
            if now.saturating_duration_since(since) >= stale_after {
                storage
                    .contents
                    .delete_upload(&upload)
                    .map_err(contents("deleting an orphaned upload"))?;
                state.unknown_since.remove(&upload);
                removed += 1;
            }
        }
        Ok(removed)
    }
}
