//! Storage wrappers that fail on demand: the test seams of the storage interfaces.
//!
//! Every call of a mutating step is counted (one [`Plan`] shared by both wrappers, so
//! the count runs across metadata and contents in call order). At the chosen call the
//! wrapper fails it, or "crashes": from then on nothing more reaches storage, as when
//! the process is killed, and the test reopens the folder as a restart would.

use std::collections::HashSet;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use protocol_core::ClientId;
use server_app::storage::{
    ClientRow, Contents, FileRecord, Intent, KeyOutcome, MetaError, Metadata, ObjectRead,
    PartialUpload, Registration, Removed, Restored, SecureKey, SecureStatus, Switch, UploadSink,
    Version, VersionTotals,
};

/// What happens at the chosen step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The step returns an error and does nothing; the process goes on.
    Fail,
    /// The process dies before the step.
    CrashBefore,
    /// The process dies right after the step took effect.
    CrashAfter,
}

/// The shared schedule of faults.
#[derive(Default)]
pub struct Plan {
    calls: AtomicUsize,
    at: Mutex<Option<(usize, Fault)>>,
    dead: AtomicBool,
    /// Names of the steps called, in order.
    pub log: Mutex<Vec<&'static str>>,
    /// Upload bytes that may still be written before writes fail as on a full disk.
    write_budget: Mutex<Option<AtomicU64>>,
    /// A step that always fails.
    always: Mutex<Option<&'static str>>,
}

enum Go {
    Run,
    Refuse,
    RunThenDie,
}

impl Plan {
    /// No faults (counts the steps).
    pub fn new() -> Arc<Plan> {
        Arc::new(Plan::default())
    }

    /// A fault at the `n`th step (from 1).
    pub fn at(n: usize, fault: Fault) -> Arc<Plan> {
        let p = Plan::default();
        *p.at.lock().unwrap() = Some((n, fault));
        Arc::new(p)
    }

    /// Upload writes fail once `bytes` have been written.
    pub fn full_after(bytes: u64) -> Arc<Plan> {
        let p = Plan::default();
        *p.write_budget.lock().unwrap() = Some(AtomicU64::new(bytes));
        Arc::new(p)
    }

    /// Every later call of `step` fails (a broken database for that step).
    pub fn always(step: &'static str) -> Arc<Plan> {
        let p = Plan::default();
        *p.always.lock().unwrap() = Some(step);
        Arc::new(p)
    }

    /// How many steps were called.
    pub fn steps(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// Whether the simulated process died.
    pub fn is_dead(&self) -> bool {
        self.dead.load(Ordering::SeqCst)
    }

    fn step(&self, name: &'static str) -> Go {
        if self.is_dead() {
            return Go::Refuse;
        }
        if *self.always.lock().unwrap() == Some(name) {
            return Go::Refuse;
        }
        let at = *self.at.lock().unwrap();
        self.log.lock().unwrap().push(name);
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        match at {
            Some((k, Fault::Fail)) if k == n => Go::Refuse,
            Some((k, Fault::CrashBefore)) if k == n => {
                self.dead.store(true, Ordering::SeqCst);
                Go::Refuse
            }
            Some((k, Fault::CrashAfter)) if k == n => Go::RunThenDie,
            _ => Go::Run,
        }
    }

    fn alive(&self) -> bool {
        !self.is_dead()
    }

    fn charge(&self, n: usize) -> io::Result<()> {
        let guard = self.write_budget.lock().unwrap();
        let Some(budget) = guard.as_ref() else {
            return Ok(());
        };
        let left = budget.load(Ordering::SeqCst);
        if n as u64 > left {
            budget.store(0, Ordering::SeqCst);
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                "test: no space left on device",
            ));
        }
        budget.fetch_sub(n as u64, Ordering::SeqCst);
        Ok(())
    }
}

fn gone() -> io::Error {
    io::Error::other("test: fault injected")
}

fn meta_gone() -> MetaError {
    MetaError::backend("test", "fault injected")
}

/// A [`Metadata`] that fails as its [`Plan`] says.
pub struct FaultyMeta<M> {
    pub inner: M,
    pub plan: Arc<Plan>,
}

macro_rules! read {
    ($self:ident, $e:expr) => {
        if $self.plan.alive() {
            $e
        } else {
            Err(meta_gone())
        }
    };
}

macro_rules! step {
    ($plan:expr, $name:literal, $e:expr, $err:expr) => {
        match $plan.step($name) {
            Go::Run => $e,
            Go::Refuse => Err($err),
            Go::RunThenDie => {
                let _ = $e;
                $plan.dead.store(true, Ordering::SeqCst);
                Err($err)
            }
        }
    };
}

impl<M: Metadata> Metadata for FaultyMeta<M> {
    fn register(
        &self,
        id: &ClientId,
        name: &str,
        hold: Duration,
    ) -> Result<Registration, MetaError> {
        read!(self, self.inner.register(id, name, hold))
    }
    fn set_keys(
        &self,
        id: &ClientId,
        name: &str,
        pk: &[u8],
        aes: &[u8],
    ) -> Result<KeyOutcome, MetaError> {
        read!(self, self.inner.set_keys(id, name, pk, aes))
    }
    fn public_key(&self, id: &ClientId, name: &str) -> Result<Option<Vec<u8>>, MetaError> {
        read!(self, self.inner.public_key(id, name))
    }
    fn legacy_key(&self, id: &ClientId) -> Result<Option<Vec<u8>>, MetaError> {
        read!(self, self.inner.legacy_key(id))
    }
    fn set_aes_key(&self, id: &ClientId, aes: &[u8]) -> Result<bool, MetaError> {
        read!(self, self.inner.set_aes_key(id, aes))
    }
    fn aes_key(&self, id: &ClientId) -> Result<Option<(Vec<u8>, u64)>, MetaError> {
        read!(self, self.inner.aes_key(id))
    }
    fn revoke_aes_key(&self, id: &ClientId) -> Result<(), MetaError> {
        read!(self, self.inner.revoke_aes_key(id))
    }
    fn count_checked_upload(
        &self,
        id: &ClientId,
        aes_key: &[u8],
    ) -> Result<Option<u32>, MetaError> {
        read!(self, self.inner.count_checked_upload(id, aes_key))
    }
    fn touch(&self, id: &ClientId) -> Result<(), MetaError> {
        read!(self, self.inner.touch(id))
    }
    fn set_dialect(&self, id: &ClientId, dialect: &str) -> Result<(), MetaError> {
        read!(self, self.inner.set_dialect(id, dialect))
    }
    fn expire_registrations(&self, hold: Duration) -> Result<Vec<String>, MetaError> {
        read!(self, self.inner.expire_registrations(hold))
    }
    fn clients(&self) -> Result<Vec<ClientRow>, MetaError> {
        read!(self, self.inner.clients())
    }
    fn file(&self, id: &ClientId, name: &str) -> Result<Option<FileRecord>, MetaError> {
        read!(self, self.inner.file(id, name))
    }
    fn files(&self, client: Option<&ClientId>) -> Result<Vec<FileRecord>, MetaError> {
        read!(self, self.inner.files(client))
    }
    fn delete_file(&self, id: &ClientId, name: &str) -> Result<Option<Removed>, MetaError> {
        step!(
            self.plan,
            "delete_file",
            self.inner.delete_file(id, name),
            meta_gone()
        )
    }
    fn remove_client(&self, id: &ClientId) -> Result<Option<Removed>, MetaError> {
        step!(
            self.plan,
            "remove_client",
            self.inner.remove_client(id),
            meta_gone()
        )
    }
    fn prune_unverified(&self, older_than: Duration) -> Result<Removed, MetaError> {
        step!(
            self.plan,
            "prune_unverified",
            self.inner.prune_unverified(older_than),
            meta_gone()
        )
    }
    fn referenced_objects(&self) -> Result<HashSet<String>, MetaError> {
        read!(self, self.inner.referenced_objects())
    }
    fn versions(
        &self,
        client: Option<&ClientId>,
        name: Option<&str>,
    ) -> Result<Vec<Version>, MetaError> {
        read!(self, self.inner.versions(client, name))
    }
    fn version_totals(&self) -> Result<VersionTotals, MetaError> {
        read!(self, self.inner.version_totals())
    }
    fn restore_version(
        &self,
        id: &ClientId,
        name: &str,
        version: u64,
    ) -> Result<Option<Restored>, MetaError> {
        step!(
            self.plan,
            "restore_version",
            self.inner.restore_version(id, name, version),
            meta_gone()
        )
    }
    fn prune_versions(&self, keep: usize, older_than: Duration) -> Result<Removed, MetaError> {
        step!(
            self.plan,
            "prune_versions",
            self.inner.prune_versions(keep, older_than),
            meta_gone()
        )
    }
    fn record_intent(&self, intent: &Intent) -> Result<(), MetaError> {
        step!(
            self.plan,
            "record_intent",
            self.inner.record_intent(intent),
            meta_gone()
        )
    }
    fn switch(&self, intent: &Intent) -> Result<Switch, MetaError> {
        step!(self.plan, "switch", self.inner.switch(intent), meta_gone())
    }
    fn clear_intent(&self, id: &str) -> Result<(), MetaError> {
        step!(
            self.plan,
            "clear_intent",
            self.inner.clear_intent(id),
            meta_gone()
        )
    }
    fn claim_intent(&self, intent: &Intent) -> Result<bool, MetaError> {
        step!(
            self.plan,
            "claim_intent",
            self.inner.claim_intent(intent),
            meta_gone()
        )
    }
    fn intents(&self) -> Result<Vec<Intent>, MetaError> {
        read!(self, self.inner.intents())
    }
    fn stale_intents(&self, older_than: Duration) -> Result<Vec<Intent>, MetaError> {
        read!(self, self.inner.stale_intents(older_than))
    }
    fn health(&self) -> Result<(), MetaError> {
        step!(self.plan, "health", self.inner.health(), meta_gone())
    }
    fn secure_key(&self, id: &ClientId) -> Result<Option<SecureKey>, MetaError> {
        read!(self, self.inner.secure_key(id))
    }
    fn set_secure_key(&self, id: &ClientId, key: &SecureKey) -> Result<bool, MetaError> {
        step!(
            self.plan,
            "set_secure_key",
            self.inner.set_secure_key(id, key),
            meta_gone()
        )
    }
    fn register_secure(
        &self,
        id: &ClientId,
        name: &str,
        key: &SecureKey,
        hold: Duration,
    ) -> Result<Registration, MetaError> {
        step!(
            self.plan,
            "register_secure",
            self.inner.register_secure(id, name, key, hold),
            meta_gone()
        )
    }
    fn secure_status(&self, id: &ClientId) -> Result<Option<SecureStatus>, MetaError> {
        read!(self, self.inner.secure_status(id))
    }
    fn mark_went_secure(&self, id: &ClientId) -> Result<bool, MetaError> {
        step!(
            self.plan,
            "mark_went_secure",
            self.inner.mark_went_secure(id),
            meta_gone()
        )
    }
    fn set_keep_legacy(&self, id: &ClientId, keep: bool) -> Result<bool, MetaError> {
        step!(
            self.plan,
            "set_keep_legacy",
            self.inner.set_keep_legacy(id, keep),
            meta_gone()
        )
    }
    fn retire_file(&self, id: &ClientId, name: &str) -> Result<Option<Version>, MetaError> {
        step!(
            self.plan,
            "retire_file",
            self.inner.retire_file(id, name),
            meta_gone()
        )
    }
    fn save_partial(&self, partial: &PartialUpload) -> Result<(), MetaError> {
        step!(
            self.plan,
            "save_partial",
            self.inner.save_partial(partial),
            meta_gone()
        )
    }
    fn partial(&self, id: &ClientId, name: &str) -> Result<Option<PartialUpload>, MetaError> {
        read!(self, self.inner.partial(id, name))
    }
    fn remove_partial(&self, id: &ClientId, name: &str, upload: &str) -> Result<bool, MetaError> {
        step!(
            self.plan,
            "remove_partial",
            self.inner.remove_partial(id, name, upload),
            meta_gone()
        )
    }
    fn expire_partials(&self, older_than: Duration) -> Result<Vec<PartialUpload>, MetaError> {
        step!(
            self.plan,
            "expire_partials",
            self.inner.expire_partials(older_than),
            meta_gone()
        )
    }
    fn referenced_uploads(&self) -> Result<HashSet<String>, MetaError> {
        read!(self, self.inner.referenced_uploads())
    }
}

/// A [`Contents`] that fails as its [`Plan`] says.
pub struct FaultyContents<C> {
    pub inner: C,
    pub plan: Arc<Plan>,
}

struct FaultySink {
    inner: Box<dyn UploadSink>,
    plan: Arc<Plan>,
}

impl UploadSink for FaultySink {
    fn write(&mut self, data: &[u8]) -> io::Result<()> {
        if !self.plan.alive() {
            return Err(gone());
        }
        self.plan.charge(data.len())?;
        self.inner.write(data)
    }
    fn flush(&mut self) -> io::Result<()> {
        if !self.plan.alive() {
            return Err(gone());
        }
        self.inner.flush()
    }
    fn bytes_written(&self) -> Option<u64> {
        self.inner.bytes_written()
    }
    fn finish(self: Box<Self>) -> io::Result<()> {
        let plan = self.plan.clone();
        let inner = self.inner;
        step!(plan, "finish", inner.finish(), gone())
    }
}

impl<C: Contents> Contents for FaultyContents<C> {
    fn create_upload(&self, upload: &str) -> io::Result<Box<dyn UploadSink>> {
        if !self.plan.alive() {
            return Err(gone());
        }
        Ok(Box::new(FaultySink {
            inner: self.inner.create_upload(upload)?,
            plan: self.plan.clone(),
        }))
    }
    fn reopen_upload(&self, upload: &str) -> io::Result<Box<dyn UploadSink>> {
        if !self.plan.alive() {
            return Err(gone());
        }
        Ok(Box::new(FaultySink {
            inner: self.inner.reopen_upload(upload)?,
            plan: self.plan.clone(),
        }))
    }
    fn resume_upload(&self, upload: &str, offset: u64) -> io::Result<Box<dyn UploadSink>> {
        // A step: cutting a longer upload back changes the store.
        let inner = step!(
            self.plan,
            "resume_upload",
            self.inner.resume_upload(upload, offset),
            gone()
        )?;
        Ok(Box::new(FaultySink {
            inner,
            plan: self.plan.clone(),
        }))
    }
    fn delete_upload(&self, upload: &str) -> io::Result<()> {
        step!(
            self.plan,
            "delete_upload",
            self.inner.delete_upload(upload),
            gone()
        )
    }
    fn publish(&self, upload: &str, object: &str) -> io::Result<()> {
        step!(
            self.plan,
            "publish",
            self.inner.publish(upload, object),
            gone()
        )
    }
    fn delete_object(&self, object: &str) -> io::Result<()> {
        step!(
            self.plan,
            "delete_object",
            self.inner.delete_object(object),
            gone()
        )
    }
    fn read_object(&self, object: &str) -> io::Result<Vec<u8>> {
        if !self.plan.alive() {
            return Err(gone());
        }
        self.inner.read_object(object)
    }
    fn open_object(&self, object: &str, offset: u64) -> io::Result<Box<dyn ObjectRead>> {
        if !self.plan.alive() {
            return Err(gone());
        }
        self.inner.open_object(object, offset)
    }
    fn uploads(&self) -> io::Result<Vec<String>> {
        if !self.plan.alive() {
            return Err(gone());
        }
        self.inner.uploads()
    }
    fn objects(&self) -> io::Result<Vec<String>> {
        if !self.plan.alive() {
            return Err(gone());
        }
        self.inner.objects()
    }
    fn legacy_leftovers(&self) -> io::Result<Vec<String>> {
        if !self.plan.alive() {
            return Err(gone());
        }
        self.inner.legacy_leftovers()
    }
}
