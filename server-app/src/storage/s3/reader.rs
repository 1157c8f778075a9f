//! An object read from an offset, streamed: one ranged GET whose body is pulled a
//! chunk at a time through the backend's runtime, so that a reader holds one chunk,
//! not the object, whatever its size and however slowly it is read.

use std::io;
use std::sync::Arc;

use bytes::{Buf, Bytes};
use futures::stream::BoxStream;
use futures::StreamExt;
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStoreExt};

use super::{io_error, Shared};
use crate::storage::{past_the_end, ObjectRead};

type Body = BoxStream<'static, object_store::Result<Bytes>>;

/// An S3 object being read ([`Contents::open_object`](crate::storage::Contents::open_object)).
pub(super) struct S3Read {
    shared: Arc<Shared>,
    /// The GET's body; `None` once it ended (or for a read that starts at the end).
    body: Option<Arc<tokio::sync::Mutex<Body>>>,
    chunk: Bytes,
    size: u64,
}

impl S3Read {
    /// Opens `path` at `offset`: a HEAD for its size, then a GET of the range.
    pub(super) fn open(shared: Arc<Shared>, path: Path, offset: u64) -> io::Result<S3Read> {
        let store = shared.store.clone();
        let head = path.clone();
        let size = shared
            .run(async move { store.head(&head).await })?
            .map_err(io_error)?
            .size;
        if offset > size {
            return Err(past_the_end(offset, size));
        }
        let body = if offset == size {
            None
        } else {
            let store = shared.store.clone();
            let options = GetOptions::new().with_range(Some(GetRange::Offset(offset)));
            let got = shared
                .run(async move { store.get_opts(&path, options).await })?
                .map_err(io_error)?;
            Some(Arc::new(tokio::sync::Mutex::new(got.into_stream())))
        };
        Ok(S3Read {
            shared,
            body,
            chunk: Bytes::new(),
            size,
        })
    }
}

impl io::Read for S3Read {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.chunk.is_empty() {
            let Some(body) = self.body.clone() else {
                return Ok(0);
            };
            let next = self
                .shared
                .run(async move { body.lock().await.next().await })?;
            match next {
                Some(Ok(chunk)) => self.chunk = chunk,
                Some(Err(e)) => return Err(io_error(e)),
                None => self.body = None,
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk[..n]);
        self.chunk.advance(n);
        Ok(n)
    }
}

impl ObjectRead for S3Read {
    fn size(&self) -> u64 {
        self.size
    }
}
