//! An in-memory [`S3Store`](super::S3Store) for tests: `object_store`'s `InMemory`
//! for objects, plus the multipart API (which `InMemory` lacks) with S3's rules:
//! parts are numbered, every part but the last has at least 5 MiB, a completed or
//! aborted upload is gone (`NoSuchUpload`), and nothing is visible before completion.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use object_store::memory::InMemory;
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartId, MultipartUpload, ObjectMeta,
    ObjectStore, ObjectStoreExt, PutMultipartOptions, PutOptions, PutPayload, PutResult,
    RenameOptions, Result,
};

use super::MIN_PART_SIZE;

/// Objects and multipart uploads in memory.
#[derive(Debug, Default)]
pub struct MemoryS3 {
    objects: InMemory,
    uploads: Mutex<HashMap<(Path, String), BTreeMap<usize, Bytes>>>,
    next_id: AtomicU64,
}

fn no_such_upload(path: &Path) -> object_store::Error {
    object_store::Error::NotFound {
        path: path.to_string(),
        source: "NoSuchUpload".into(),
    }
}

fn generic(what: String) -> object_store::Error {
    object_store::Error::Generic {
        store: "MemoryS3",
        source: what.into(),
    }
}

impl MemoryS3 {
    /// An empty store.
    pub fn new() -> MemoryS3 {
        MemoryS3::default()
    }

    /// Multipart uploads neither completed nor aborted (S3 keeps their parts, and
    /// bills them, until one or the other).
    pub fn open_multipart_uploads(&self) -> usize {
        self.uploads.lock().map_or(0, |u| u.len())
    }
}

impl std::fmt::Display for MemoryS3 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MemoryS3")
    }
}

#[async_trait]
impl MultipartStore for MemoryS3 {
    async fn create_multipart(&self, path: &Path) -> Result<MultipartId> {
        let id = format!("m{}", self.next_id.fetch_add(1, Ordering::Relaxed));
        let mut uploads = self
            .uploads
            .lock()
            .map_err(|_| generic("poisoned".into()))?;
        uploads.insert((path.clone(), id.clone()), BTreeMap::new());
        Ok(id)
    }

    async fn put_part(
        &self,
        path: &Path,
        id: &MultipartId,
        part_idx: usize,
        data: PutPayload,
    ) -> Result<PartId> {
        let data: Bytes = data.into();
        let mut uploads = self
            .uploads
            .lock()
            .map_err(|_| generic("poisoned".into()))?;
        let parts = uploads
            .get_mut(&(path.clone(), id.clone()))
            .ok_or_else(|| no_such_upload(path))?;
        let content_id = format!("{part_idx}:{}:{:x}", data.len(), crc(&data));
        parts.insert(part_idx, data);
        Ok(PartId { content_id })
    }

    async fn complete_multipart(
        &self,
        path: &Path,
        id: &MultipartId,
        parts: Vec<PartId>,
    ) -> Result<PutResult> {
        let body = {
            let mut uploads = self
                .uploads
                .lock()
                .map_err(|_| generic("poisoned".into()))?;
            let stored = uploads
                .get(&(path.clone(), id.clone()))
                .ok_or_else(|| no_such_upload(path))?;
            let mut body = Vec::new();
            for (i, part) in parts.iter().enumerate() {
                let data = stored
                    .get(&i)
                    .ok_or_else(|| generic(format!("InvalidPart: no part {i}")))?;
                let expected = format!("{i}:{}:{:x}", data.len(), crc(data));
                if part.content_id != expected {
                    return Err(generic(format!("InvalidPart: part {i} differs")));
                }
                if i + 1 < parts.len() && data.len() < MIN_PART_SIZE {
                    return Err(generic(format!("EntityTooSmall: part {i}")));
                }
                body.extend_from_slice(data);
            }
            uploads.remove(&(path.clone(), id.clone()));
            body
        };
        self.objects.put(path, body.into()).await
    }

    async fn abort_multipart(&self, path: &Path, id: &MultipartId) -> Result<()> {
        let mut uploads = self
            .uploads
            .lock()
            .map_err(|_| generic("poisoned".into()))?;
        uploads
            .remove(&(path.clone(), id.clone()))
            .map(|_| ())
            .ok_or_else(|| no_such_upload(path))
    }
}

/// A cheap content fingerprint, so that a part id names the bytes it was given.
fn crc(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl ObjectStore for MemoryS3 {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.objects.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.objects.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.objects.get_opts(location, options).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.objects.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.objects.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.objects.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        self.objects.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.objects.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.objects.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.objects.rename_opts(from, to, options).await
    }
}
