//! [`Contents`] in an S3-compatible object store (`s3://bucket/prefix`), through
//! `object_store`:
//!
//! ```text
//! <prefix>/uploads/<id>/manifest        an upload in progress: its multipart upload id,
//!                                       the parts stored, the current tail (manifest.rs)
//! <prefix>/uploads/<id>/tail-<n>        the bytes after the last part (fewer than a part)
//! <prefix>/uploads/<id>/data            the multipart upload; an object once completed
//! <prefix>/objects/<client hex>/<random>  committed objects, named by file records
//! ```
//!
//! **Writing.** A sink gathers bytes up to a part ([`S3Options::part_size`], at least
//! 5 MiB, default 8 MiB) and uploads each full part while it gathers the next; a write
//! that fills a part waits for the one before it. Memory is two parts per upload at
//! most, whatever the file's size. Files smaller than a part never start a multipart
//! upload.
//!
//! **Resuming in another process.** `flush` waits for the part in flight, stores the
//! bytes after the last part as a tail object under a new name, then replaces the
//! manifest (one PUT: the commit point of a flush). `reopen_upload`, in any process,
//! reads the manifest and the tail it names and continues after them.
//!
//! **Durable before 1603.** `finish` uploads what is left as the last part (which may
//! be short) or, for a file smaller than a part, as the tail, and marks the manifest
//! finished. A finished upload cannot be reopened.
//!
//! **Publishing.** The object key is known only at publish, and a multipart upload
//! completes under the key it was created for, so `publish` completes it at
//! `uploads/<id>/data`, copies that server-side to the object key (S3 CopyObject, one
//! request; the protocol's sizes are below its 5 GiB limit), then deletes the upload.
//! Each step can be repeated after a crash: an object key that exists already is the
//! end of an earlier attempt (keys are fresh, never reused, and a copy appears whole
//! or not at all), so publish only tidies; a data object that exists is a completed
//! upload, not completed again. Whatever a crash leaves is under `uploads/<id>/`
//! (listed by [`Contents::uploads`], removed whole by [`Contents::delete_upload`],
//! which aborts the multipart upload first) or is an object no record names (removed
//! by reconciliation). See docs/STORAGE.md ("The S3 backend").
//!
//! **Threads.** The trait is synchronous; each call runs on the backend's own small
//! tokio runtime and waits on a channel (the `bridge` module), so it may be called from any
//! thread, including `spawn_blocking` threads of another runtime.

mod bridge;
mod manifest;
pub mod memory;
mod reader;
mod sink;

use std::collections::BTreeSet;
use std::io;
use std::sync::Arc;

use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::multipart::MultipartStore;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use super::{Contents, ObjectRead, UploadSink};
use bridge::Bridge;
pub use manifest::{Manifest, Part};
pub use sink::S3Sink;

/// What an S3 backend needs of a store: objects and the multipart API. `AmazonS3`
/// is one; [`memory::MemoryS3`] is an in-memory one for tests.
pub trait S3Store: ObjectStore + MultipartStore {}
impl<T: ObjectStore + MultipartStore> S3Store for T {}

/// The smallest part S3 accepts (all parts but the last).
pub const MIN_PART_SIZE: usize = 5 << 20;

/// Settings of the S3 backend.
#[derive(Debug, Clone)]
pub struct S3Options {
    /// Bytes per multipart part (at least [`MIN_PART_SIZE`]). Each upload holds at most
    /// two parts in memory: one being filled, one being sent.
    pub part_size: usize,
    /// Worker threads of the backend's runtime.
    pub threads: usize,
}

impl Default for S3Options {
    fn default() -> S3Options {
        S3Options {
            part_size: 8 << 20,
            threads: 2,
        }
    }
}

/// Uploads and objects in a bucket, under a prefix.
pub struct S3Contents {
    shared: Arc<Shared>,
}

/// What the backend and its sinks share.
struct Shared {
    store: Arc<dyn S3Store>,
    /// The prefix inside the bucket (`Path::ROOT` for none).
    prefix: Path,
    part_size: usize,
    bridge: Bridge,
}

/// The top folders a key may name.
const TOPS: [&str; 3] = ["uploads", "objects", "files"];

/// An `object_store` error as an `io::Error` of the matching kind.
pub(crate) fn io_error(e: object_store::Error) -> io::Error {
    let kind = match &e {
        object_store::Error::NotFound { .. } => io::ErrorKind::NotFound,
        object_store::Error::AlreadyExists { .. } => io::ErrorKind::AlreadyExists,
        _ => io::ErrorKind::Other,
    };
    io::Error::new(kind, e)
}

fn not_found_is_fine(r: object_store::Result<()>) -> io::Result<()> {
    match r {
        Err(object_store::Error::NotFound { .. }) => Ok(()),
        other => other.map_err(io_error),
    }
}

/// Splits `s3://bucket/prefix` into bucket and prefix.
fn parse_url(url: &str) -> io::Result<(String, String)> {
    let invalid = |why: &str| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{url:?} is not an s3://bucket/prefix address: {why}"),
        )
    };
    let rest = url
        .strip_prefix("s3://")
        .ok_or_else(|| invalid("it does not start with s3://"))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(invalid("no bucket"));
    }
    Ok((bucket.to_string(), prefix.trim_matches('/').to_string()))
}

impl S3Contents {
    /// The store at `s3://bucket/prefix`, with endpoint, region and credentials from
    /// the usual AWS environment variables (`AWS_ENDPOINT_URL`, `AWS_REGION`,
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_ALLOW_HTTP=true` for an
    /// `http://` endpoint). Makes no request: a wrong setting shows at the first use.
    pub fn open(url: &str) -> io::Result<S3Contents> {
        S3Contents::open_with(url, AmazonS3Builder::from_env(), S3Options::default())
    }

    /// The store at `s3://bucket/prefix`, configured by `builder` (its bucket is set
    /// from the address).
    pub fn open_with(
        url: &str,
        builder: AmazonS3Builder,
        options: S3Options,
    ) -> io::Result<S3Contents> {
        let (bucket, prefix) = parse_url(url)?;
        let store = builder.with_bucket_name(bucket).build().map_err(io_error)?;
        S3Contents::with_store(Arc::new(store), &prefix, options)
    }

    /// Any [`S3Store`] (an in-memory one, or a wrapper that fails on purpose), under
    /// `prefix` (empty for the bucket's root). Give each backend a store of its own:
    /// an HTTP client's pooled connections belong to the runtime of the backend that
    /// opened them and die with it.
    pub fn with_store(
        store: Arc<dyn S3Store>,
        prefix: &str,
        options: S3Options,
    ) -> io::Result<S3Contents> {
        if options.part_size < MIN_PART_SIZE {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("S3 parts must have at least {MIN_PART_SIZE} bytes"),
            ));
        }
        let prefix =
            Path::parse(prefix).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        Ok(S3Contents {
            shared: Arc::new(Shared {
                store,
                prefix,
                part_size: options.part_size,
                bridge: Bridge::new(options.threads)?,
            }),
        })
    }
}

impl Shared {
    /// The store path of a key: plain segments under one of our top folders.
    fn path(&self, key: &str) -> io::Result<Path> {
        let rel = Path::parse(key).ok().filter(|p| {
            let parts: Vec<_> = p.parts().collect();
            parts.len() >= 2 && TOPS.contains(&parts[0].as_ref()) && p.as_ref() == key
        });
        let Some(rel) = rel else {
            return Err(io::Error::other(format!(
                "not a storage key: {:?}",
                super::key_for_log(key)
            )));
        };
        Ok(self.join(&rel))
    }

    fn join(&self, rel: &Path) -> Path {
        self.prefix.parts().chain(rel.parts()).collect()
    }

    /// The folder of an upload (`uploads/<id>` and nothing deeper).
    fn upload_dir(&self, upload: &str) -> io::Result<Path> {
        let ok = upload.starts_with("uploads/") && upload.matches('/').count() == 1;
        if !ok {
            return Err(io::Error::other(format!(
                "not an upload key: {:?}",
                super::key_for_log(upload)
            )));
        }
        self.path(upload)
    }

    /// The key (relative to the prefix) of a listed path.
    fn key_of(&self, path: &Path) -> Option<String> {
        let rest: Path = path.prefix_match(&self.prefix)?.collect();
        Some(rest.as_ref().to_string())
    }

    fn run<T: Send + 'static>(
        &self,
        f: impl std::future::Future<Output = T> + Send + 'static,
    ) -> io::Result<T> {
        self.bridge.run(f)
    }

    /// The manifest of an upload; `None` when there is none.
    fn read_manifest(&self, dir: &Path) -> io::Result<Option<Manifest>> {
        match self.get(dir.clone().join("manifest")) {
            Ok(bytes) => Manifest::decode(&bytes).map(Some),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn get(&self, path: Path) -> io::Result<Vec<u8>> {
        let store = self.store.clone();
        self.run(async move {
            let r = store.get(&path).await?;
            r.bytes().await
        })?
        .map(|b| b.to_vec())
        .map_err(io_error)
    }

    fn put(&self, path: Path, bytes: impl Into<PutPayload>) -> io::Result<()> {
        let store = self.store.clone();
        let payload = bytes.into();
        self.run(async move { store.put(&path, payload).await })?
            .map(|_| ())
            .map_err(io_error)
    }

    fn exists(&self, path: Path) -> io::Result<bool> {
        let store = self.store.clone();
        match self.run(async move { store.head(&path).await })? {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(io_error(e)),
        }
    }

    fn delete(&self, path: Path) -> io::Result<()> {
        let store = self.store.clone();
        not_found_is_fine(self.run(async move { store.delete(&path).await })?)
    }

    fn list(&self, under: Path) -> io::Result<Vec<Path>> {
        let store = self.store.clone();
        self.run(async move {
            store
                .list(Some(&under))
                .map_ok(|m| m.location)
                .try_collect::<Vec<Path>>()
                .await
        })?
        .map_err(io_error)
    }

    /// Removes everything of an upload: the multipart upload (aborted, so its parts
    /// are freed), tails and data, and the manifest last, so that an interrupted
    /// removal is still listed and can be repeated.
    fn delete_upload(&self, dir: &Path) -> io::Result<()> {
        let manifest = match self.read_manifest(dir) {
            Ok(m) => m,
            // A manifest that cannot be read names nothing to abort; the rest goes.
            Err(e) if e.kind() == io::ErrorKind::InvalidData => None,
            Err(e) => return Err(e),
        };
        if let Some(Manifest {
            multipart: Some(id),
            ..
        }) = manifest
        {
            let store = self.store.clone();
            let data = dir.clone().join("data");
            let aborted = self.run(async move { store.abort_multipart(&data, &id).await })?;
            // An upload completed (by a publish) or aborted before is no longer known
            // to the store: that is what was wanted.
            if let Err(e) = aborted {
                if !self.is_gone_upload(&e) {
                    return Err(io_error(e));
                }
            }
        }
        let manifest = dir.clone().join("manifest");
        for path in self.list(dir.clone())? {
            if path != manifest {
                self.delete(path)?;
            }
        }
        self.delete(manifest)
    }

    /// Whether an abort failed only because the multipart upload no longer exists.
    fn is_gone_upload(&self, e: &object_store::Error) -> bool {
        matches!(e, object_store::Error::NotFound { .. }) || e.to_string().contains("NoSuchUpload")
    }
}

impl Contents for S3Contents {
    fn create_upload(&self, upload: &str) -> io::Result<Box<dyn UploadSink>> {
        let dir = self.shared.upload_dir(upload)?;
        Ok(Box::new(S3Sink::create(self.shared.clone(), dir)?))
    }

    fn reopen_upload(&self, upload: &str) -> io::Result<Box<dyn UploadSink>> {
        let dir = self.shared.upload_dir(upload)?;
        Ok(Box::new(S3Sink::reopen(self.shared.clone(), dir)?))
    }

    fn resume_upload(&self, upload: &str, offset: u64) -> io::Result<Box<dyn UploadSink>> {
        // Flushed parts cannot be cut back: the upload must hold exactly `offset`.
        let sink = self.reopen_upload(upload)?;
        match sink.bytes_written() {
            Some(len) if len == offset => Ok(sink),
            len => Err(super::local::short_upload(upload, len.unwrap_or(0), offset)),
        }
    }

    fn delete_upload(&self, upload: &str) -> io::Result<()> {
        let dir = self.shared.upload_dir(upload)?;
        self.shared.delete_upload(&dir)
    }

    fn publish(&self, upload: &str, object: &str) -> io::Result<()> {
        let s = &self.shared;
        let dir = s.upload_dir(upload)?;
        let target = s.path(object)?;
        if !object.starts_with("objects/") {
            return Err(io::Error::other("objects are published under objects/"));
        }
        // A target that exists is an earlier attempt's copy (keys are never reused,
        // and a copy appears whole or not at all): only the tidying is left.
        if s.exists(target.clone())? {
            return s.delete_upload(&dir);
        }
        let m = s.read_manifest(&dir)?.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("no upload {}", super::key_for_log(upload)),
            )
        })?;
        if !m.finished {
            return Err(io::Error::other(
                "publishing an upload that was not finished",
            ));
        }
        let source = match (&m.multipart, &m.tail) {
            (Some(id), _) => {
                let data = dir.clone().join("data");
                if !s.exists(data.clone())? {
                    let parts = m
                        .parts
                        .iter()
                        .map(|p| object_store::multipart::PartId {
                            content_id: p.etag.clone(),
                        })
                        .collect();
                    let (store, id, at) = (s.store.clone(), id.clone(), data.clone());
                    s.run(async move { store.complete_multipart(&at, &id, parts).await })?
                        .map_err(io_error)?;
                }
                data
            }
            (None, Some(tail)) => dir.clone().join(tail.as_str()),
            (None, None) => return Err(io::Error::other("a finished upload without a tail")),
        };
        let store = s.store.clone();
        let to = target.clone();
        s.run(async move { store.copy(&source, &to).await })?
            .map_err(io_error)?;
        s.delete_upload(&dir)
    }

    fn delete_object(&self, object: &str) -> io::Result<()> {
        let path = self.shared.path(object)?;
        self.shared.delete(path)
    }

    fn read_object(&self, object: &str) -> io::Result<Vec<u8>> {
        let path = self.shared.path(object)?;
        self.shared.get(path)
    }

    fn open_object(&self, object: &str, offset: u64) -> io::Result<Box<dyn ObjectRead>> {
        let path = self.shared.path(object)?;
        Ok(Box::new(reader::S3Read::open(
            self.shared.clone(),
            path,
            offset,
        )?))
    }

    fn uploads(&self) -> io::Result<Vec<String>> {
        let s = &self.shared;
        let under = s.join(&Path::from("uploads"));
        let mut ids = BTreeSet::new();
        for path in s.list(under)? {
            if let Some(key) = s.key_of(&path) {
                let mut parts = key.splitn(3, '/');
                if let (Some("uploads"), Some(id)) = (parts.next(), parts.next()) {
                    ids.insert(format!("uploads/{id}"));
                }
            }
        }
        Ok(ids.into_iter().collect())
    }

    fn objects(&self) -> io::Result<Vec<String>> {
        let s = &self.shared;
        let under = s.join(&Path::from("objects"));
        Ok(s.list(under)?.iter().filter_map(|p| s.key_of(p)).collect())
    }

    fn legacy_leftovers(&self) -> io::Result<Vec<String>> {
        // No server before schema 3 wrote to an object store.
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests;
