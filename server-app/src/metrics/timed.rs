//! Storage that times itself: [`TimedMetadata`] and [`TimedContents`] wrap any
//! backend of the two storage interfaces and record how long each call took in
//! `fileserver_storage_duration_seconds{store, op}`. The application wraps whatever
//! storage it is given ([`instrument`]), so a new backend is timed without a line of
//! its own.
//!
//! A method added to either trait must be forwarded here too: one without a default
//! body fails to compile until it is; one with a default body (like
//! [`Metadata::health`]) would otherwise run the default instead of the backend's.

use std::collections::HashSet;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use protocol_core::ClientId;

use super::{Metrics, Store};
use crate::storage::{
    ClientRow, Contents, FileRecord, Intent, KeyOutcome, MetaError, Metadata, ObjectRead,
    PartialUpload, Registration, Removed, Restored, SecureKey, SecureStatus, Storage, Switch,
    UploadSink, Version, VersionTotals,
};

/// `storage` with both interfaces timed into `metrics`.
pub fn instrument(storage: Storage, metrics: Arc<Metrics>) -> Storage {
    Storage::new(
        Arc::new(TimedMetadata {
            inner: storage.meta,
            metrics: metrics.clone(),
        }),
        Arc::new(TimedContents {
            inner: storage.contents,
            metrics,
        }),
    )
}

fn time<T>(metrics: &Metrics, store: Store, op: &'static str, f: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let out = f();
    metrics.storage_call(store, op, start.elapsed().as_secs_f64());
    out
}

/// A [`Metadata`] backend whose calls are timed.
pub struct TimedMetadata {
    inner: Arc<dyn Metadata>,
    metrics: Arc<Metrics>,
}

impl TimedMetadata {
    /// Times the calls to `inner`.
    pub fn new(inner: Arc<dyn Metadata>, metrics: Arc<Metrics>) -> TimedMetadata {
        TimedMetadata { inner, metrics }
    }

    fn t<T>(&self, op: &'static str, f: impl FnOnce(&dyn Metadata) -> T) -> T {
        time(&self.metrics, Store::Metadata, op, || f(&*self.inner))
    }
}

impl Metadata for TimedMetadata {
    fn register(
        &self,
        id: &ClientId,
        name: &str,
        hold: Duration,
    ) -> Result<Registration, MetaError> {
        self.t("register", |m| m.register(id, name, hold))
    }
    fn set_keys(
        &self,
        id: &ClientId,
        name: &str,
        public_key: &[u8],
        aes_key: &[u8],
    ) -> Result<KeyOutcome, MetaError> {
        self.t("set_keys", |m| m.set_keys(id, name, public_key, aes_key))
    }
    fn public_key(&self, id: &ClientId, name: &str) -> Result<Option<Vec<u8>>, MetaError> {
        self.t("public_key", |m| m.public_key(id, name))
    }
    fn legacy_key(&self, id: &ClientId) -> Result<Option<Vec<u8>>, MetaError> {
        self.t("legacy_key", |m| m.legacy_key(id))
    }
    fn set_aes_key(&self, id: &ClientId, aes_key: &[u8]) -> Result<bool, MetaError> {
        self.t("set_aes_key", |m| m.set_aes_key(id, aes_key))
    }
    fn aes_key(&self, id: &ClientId) -> Result<Option<(Vec<u8>, u64)>, MetaError> {
        self.t("aes_key", |m| m.aes_key(id))
    }
    fn revoke_aes_key(&self, id: &ClientId) -> Result<(), MetaError> {
        self.t("revoke_aes_key", |m| m.revoke_aes_key(id))
    }
    fn count_checked_upload(
        &self,
        id: &ClientId,
        aes_key: &[u8],
    ) -> Result<Option<u32>, MetaError> {
        self.t("count_checked_upload", |m| {
            m.count_checked_upload(id, aes_key)
        })
    }
    fn touch(&self, id: &ClientId) -> Result<(), MetaError> {
        self.t("touch", |m| m.touch(id))
    }
    fn set_dialect(&self, id: &ClientId, dialect: &str) -> Result<(), MetaError> {
        self.t("set_dialect", |m| m.set_dialect(id, dialect))
    }
    fn expire_registrations(&self, hold: Duration) -> Result<Vec<String>, MetaError> {
        self.t("expire_registrations", |m| m.expire_registrations(hold))
    }
    fn clients(&self) -> Result<Vec<ClientRow>, MetaError> {
        self.t("clients", |m| m.clients())
    }
    fn file(&self, id: &ClientId, file_name: &str) -> Result<Option<FileRecord>, MetaError> {
        self.t("file", |m| m.file(id, file_name))
    }
    fn files(&self, client: Option<&ClientId>) -> Result<Vec<FileRecord>, MetaError> {
        self.t("files", |m| m.files(client))
    }
    fn delete_file(&self, id: &ClientId, file_name: &str) -> Result<Option<Removed>, MetaError> {
        self.t("delete_file", |m| m.delete_file(id, file_name))
    }
    fn remove_client(&self, id: &ClientId) -> Result<Option<Removed>, MetaError> {
        self.t("remove_client", |m| m.remove_client(id))
    }
    fn prune_unverified(&self, older_than: Duration) -> Result<Removed, MetaError> {
        self.t("prune_unverified", |m| m.prune_unverified(older_than))
    }
    fn referenced_objects(&self) -> Result<HashSet<String>, MetaError> {
        self.t("referenced_objects", |m| m.referenced_objects())
    }
    fn versions(
        &self,
        client: Option<&ClientId>,
        file_name: Option<&str>,
    ) -> Result<Vec<Version>, MetaError> {
        self.t("versions", |m| m.versions(client, file_name))
    }
    fn version_totals(&self) -> Result<VersionTotals, MetaError> {
        self.t("version_totals", |m| m.version_totals())
    }
    fn restore_version(
        &self,
        id: &ClientId,
        file_name: &str,
        version: u64,
    ) -> Result<Option<Restored>, MetaError> {
        self.t("restore_version", |m| {
            m.restore_version(id, file_name, version)
        })
    }
    fn prune_versions(&self, keep: usize, older_than: Duration) -> Result<Removed, MetaError> {
        self.t("prune_versions", |m| m.prune_versions(keep, older_than))
    }
    fn record_intent(&self, intent: &Intent) -> Result<(), MetaError> {
        self.t("record_intent", |m| m.record_intent(intent))
    }
    fn switch(&self, intent: &Intent) -> Result<Switch, MetaError> {
        self.t("switch", |m| m.switch(intent))
    }
    fn clear_intent(&self, id: &str) -> Result<(), MetaError> {
        self.t("clear_intent", |m| m.clear_intent(id))
    }
    fn claim_intent(&self, intent: &Intent) -> Result<bool, MetaError> {
        self.t("claim_intent", |m| m.claim_intent(intent))
    }
    fn intents(&self) -> Result<Vec<Intent>, MetaError> {
        self.t("intents", |m| m.intents())
    }
    fn stale_intents(&self, older_than: Duration) -> Result<Vec<Intent>, MetaError> {
        self.t("stale_intents", |m| m.stale_intents(older_than))
    }
    fn secure_key(&self, id: &ClientId) -> Result<Option<SecureKey>, MetaError> {
        self.t("secure_key", |m| m.secure_key(id))
    }
    fn set_secure_key(&self, id: &ClientId, key: &SecureKey) -> Result<bool, MetaError> {
        self.t("set_secure_key", |m| m.set_secure_key(id, key))
    }
    fn register_secure(
        &self,
        id: &ClientId,
        name: &str,
        key: &SecureKey,
        hold: Duration,
    ) -> Result<Registration, MetaError> {
        self.t("register_secure", |m| {
            m.register_secure(id, name, key, hold)
        })
    }
    fn secure_status(&self, id: &ClientId) -> Result<Option<SecureStatus>, MetaError> {
        self.t("secure_status", |m| m.secure_status(id))
    }
    fn mark_went_secure(&self, id: &ClientId) -> Result<bool, MetaError> {
        self.t("mark_went_secure", |m| m.mark_went_secure(id))
    }
    fn set_keep_legacy(&self, id: &ClientId, keep: bool) -> Result<bool, MetaError> {
        self.t("set_keep_legacy", |m| m.set_keep_legacy(id, keep))
    }
    fn retire_file(&self, id: &ClientId, file_name: &str) -> Result<Option<Version>, MetaError> {
        self.t("retire_file", |m| m.retire_file(id, file_name))
    }
    fn save_partial(&self, partial: &PartialUpload) -> Result<(), MetaError> {
        self.t("save_partial", |m| m.save_partial(partial))
    }
    fn partial(&self, id: &ClientId, file_name: &str) -> Result<Option<PartialUpload>, MetaError> {
        self.t("partial", |m| m.partial(id, file_name))
    }
    fn remove_partial(
        &self,
        id: &ClientId,
        file_name: &str,
        upload: &str,
    ) -> Result<bool, MetaError> {
        self.t("remove_partial", |m| {
            m.remove_partial(id, file_name, upload)
        })
    }
    fn expire_partials(&self, older_than: Duration) -> Result<Vec<PartialUpload>, MetaError> {
        self.t("expire_partials", |m| m.expire_partials(older_than))
    }
    fn referenced_uploads(&self) -> Result<HashSet<String>, MetaError> {
        self.t("referenced_uploads", |m| m.referenced_uploads())
    }
    fn health(&self) -> Result<(), MetaError> {
        self.t("health", |m| m.health())
    }
}

/// A [`Contents`] backend whose calls, and those of its upload sinks, are timed.
pub struct TimedContents {
    inner: Arc<dyn Contents>,
    metrics: Arc<Metrics>,
}

impl TimedContents {
    /// Times the calls to `inner`.
    pub fn new(inner: Arc<dyn Contents>, metrics: Arc<Metrics>) -> TimedContents {
        TimedContents { inner, metrics }
    }

    fn t<T>(&self, op: &'static str, f: impl FnOnce(&dyn Contents) -> T) -> T {
        time(&self.metrics, Store::Contents, op, || f(&*self.inner))
    }

    fn sink(&self, inner: Box<dyn UploadSink>) -> Box<dyn UploadSink> {
        Box::new(TimedSink {
            inner,
            metrics: self.metrics.clone(),
        })
    }
}

impl Contents for TimedContents {
    fn create_upload(&self, upload: &str) -> io::Result<Box<dyn UploadSink>> {
        let sink = self.t("create_upload", |c| c.create_upload(upload))?;
        Ok(self.sink(sink))
    }
    fn reopen_upload(&self, upload: &str) -> io::Result<Box<dyn UploadSink>> {
        let sink = self.t("reopen_upload", |c| c.reopen_upload(upload))?;
        Ok(self.sink(sink))
    }
    fn resume_upload(&self, upload: &str, offset: u64) -> io::Result<Box<dyn UploadSink>> {
        let sink = self.t("resume_upload", |c| c.resume_upload(upload, offset))?;
        Ok(self.sink(sink))
    }
    fn delete_upload(&self, upload: &str) -> io::Result<()> {
        self.t("delete_upload", |c| c.delete_upload(upload))
    }
    fn publish(&self, upload: &str, object: &str) -> io::Result<()> {
        self.t("publish", |c| c.publish(upload, object))
    }
    fn delete_object(&self, object: &str) -> io::Result<()> {
        self.t("delete_object", |c| c.delete_object(object))
    }
    fn read_object(&self, object: &str) -> io::Result<Vec<u8>> {
        self.t("read_object", |c| c.read_object(object))
    }
    fn open_object(&self, object: &str, offset: u64) -> io::Result<Box<dyn ObjectRead>> {
        self.t("open_object", |c| c.open_object(object, offset))
    }
    fn uploads(&self) -> io::Result<Vec<String>> {
        self.t("uploads", |c| c.uploads())
    }
    fn objects(&self) -> io::Result<Vec<String>> {
        self.t("objects", |c| c.objects())
    }
    fn legacy_leftovers(&self) -> io::Result<Vec<String>> {
        self.t("legacy_leftovers", |c| c.legacy_leftovers())
    }
}

/// An upload sink whose writes, flushes and finish are timed (`op` `write`,
/// `flush`, `finish`).
struct TimedSink {
    inner: Box<dyn UploadSink>,
    metrics: Arc<Metrics>,
}

impl UploadSink for TimedSink {
    fn write(&mut self, data: &[u8]) -> io::Result<()> {
        let inner = &mut self.inner;
        time(&self.metrics, Store::Contents, "write", || {
            inner.write(data)
        })
    }
    fn flush(&mut self) -> io::Result<()> {
        let inner = &mut self.inner;
        time(&self.metrics, Store::Contents, "flush", || inner.flush())
    }
    fn finish(self: Box<Self>) -> io::Result<()> {
        let TimedSink { inner, metrics } = *self;
        time(&metrics, Store::Contents, "finish", || inner.finish())
    }
    fn bytes_written(&self) -> Option<u64> {
        self.inner.bytes_written()
    }
}
