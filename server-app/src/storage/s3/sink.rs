//! Writing one upload into the object store: parts of a multipart upload, one in
//! flight while the next is gathered, and a manifest that lets any process continue.

use std::io;
use std::sync::Arc;

use bytes::Bytes;
use object_store::multipart::PartId;
use object_store::path::Path;
use object_store::ObjectStoreExt;

use super::bridge::Pending;
use super::manifest::{tail_name, Manifest, Part};
use super::{io_error, Shared};
use crate::storage::UploadSink;

/// An upload being written. Memory: the part being gathered and the one being sent.
pub struct S3Sink {
    shared: Arc<Shared>,
    /// `<prefix>/uploads/<id>`.
    dir: Path,
    /// What the store holds, as far as this sink knows (parts it has seen complete).
    m: Manifest,
    /// Bytes after the parts of `m` and the part in flight.
    buf: Vec<u8>,
    /// The part being uploaded, and its size.
    in_flight: Option<(Pending<object_store::Result<PartId>>, u64)>,
    /// Something was written since the manifest was last stored.
    dirty: bool,
    /// Set by a failed call: what the store holds is unknown, so nothing more is written.
    failed: bool,
}

impl S3Sink {
    /// Starts an upload: an empty manifest, so that the upload is listed (and can be
    /// reopened or deleted) from now on.
    pub(super) fn create(shared: Arc<Shared>, dir: Path) -> io::Result<S3Sink> {
        if shared.exists(dir.clone().join("manifest"))? {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "the upload exists already",
            ));
        }
        let sink = S3Sink::over(shared, dir, Manifest::default(), Vec::new());
        sink.store_manifest()?;
        Ok(sink)
    }

    /// Continues an upload at its end, as its last flush left it (in any process).
    pub(super) fn reopen(shared: Arc<Shared>, dir: Path) -> io::Result<S3Sink> {
        let m = shared.read_manifest(&dir)?.ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, "no such upload (no manifest)")
        })?;
        if m.finished {
            return Err(io::Error::other(
                "the upload is finished: nothing can be appended",
            ));
        }
        let buf = match &m.tail {
            Some(t) => {
                let bytes = shared.get(dir.clone().join(t.as_str()))?;
                if bytes.len() as u64 != m.tail_size {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "the upload's tail is not the size its manifest says",
                    ));
                }
                bytes
            }
            None => Vec::new(),
        };
        Ok(S3Sink::over(shared, dir, m, buf))
    }

    fn over(shared: Arc<Shared>, dir: Path, m: Manifest, buf: Vec<u8>) -> S3Sink {
        S3Sink {
            shared,
            dir,
            m,
            buf,
            in_flight: None,
            dirty: false,
            failed: false,
        }
    }

    /// Bytes written in all (uploaded, in flight, gathered).
    pub fn len(&self) -> u64 {
        self.m.parts.iter().map(|p| p.size).sum::<u64>()
            + self.in_flight.as_ref().map_or(0, |f| f.1)
            + self.buf.len() as u64
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn unless_failed(&mut self, f: impl FnOnce(&mut Self) -> io::Result<()>) -> io::Result<()> {
        if self.failed {
            return Err(io::Error::other("an earlier write of this upload failed"));
        }
        let r = f(self);
        self.failed = r.is_err();
        r
    }

    fn append(&mut self, mut data: &[u8]) -> io::Result<()> {
        let part = self.shared.part_size;
        while !data.is_empty() {
            if self.buf.len() >= part {
                self.send_part()?;
            }
            let n = (part - self.buf.len()).min(data.len());
            let need = self.buf.len() + n;
            if need > self.buf.capacity() {
                // Grow as a Vec would, but never past a part (doubling would).
                let want = need.max(self.buf.capacity() * 2).min(part);
                self.buf.reserve_exact(want - self.buf.len());
            }
            self.buf.extend_from_slice(&data[..n]);
            data = &data[n..];
            self.dirty = true;
        }
        if self.buf.len() >= part {
            self.send_part()?;
        }
        Ok(())
    }

    /// Starts uploading the gathered bytes as the next part, after the previous part
    /// is done (this wait is the backpressure on the connection).
    fn send_part(&mut self) -> io::Result<()> {
        self.wait_in_flight()?;
        let id = self.multipart_id()?;
        let idx = self.m.parts.len();
        let size = self.buf.len() as u64;
        let data = Bytes::from(std::mem::replace(
            &mut self.buf,
            Vec::with_capacity(self.shared.part_size),
        ));
        let (store, at) = (self.shared.store.clone(), self.dir.clone().join("data"));
        let pending = self
            .shared
            .bridge
            .spawn(async move { store.put_part(&at, &id, idx, data.into()).await })?;
        self.in_flight = Some((pending, size));
        Ok(())
    }

    /// Sends the gathered bytes as the last part and waits for it.
    fn send_last_part(&mut self) -> io::Result<()> {
        self.send_part()?;
        self.wait_in_flight()
    }

    fn wait_in_flight(&mut self) -> io::Result<()> {
        if let Some((pending, size)) = self.in_flight.take() {
            let part = pending.wait()?.map_err(io_error)?;
            self.m.parts.push(Part {
                etag: part.content_id,
                size,
            });
        }
        Ok(())
    }

    /// The multipart upload, started (and recorded in the manifest, so that a delete
    /// can abort it) at the first full part.
    fn multipart_id(&mut self) -> io::Result<String> {
        if let Some(id) = &self.m.multipart {
            return Ok(id.clone());
        }
        let (store, at) = (self.shared.store.clone(), self.dir.clone().join("data"));
        let id = self
            .shared
            .run(async move { store.create_multipart(&at).await })?
            .map_err(io_error)?;
        self.m.multipart = Some(id.clone());
        self.store_manifest()?;
        Ok(id)
    }

    fn store_manifest(&self) -> io::Result<()> {
        self.shared
            .put(self.dir.clone().join("manifest"), self.m.encode())
    }

    /// Stores the gathered bytes as a new tail and then the manifest naming it (the
    /// commit point), then deletes the tail it replaced.
    fn store_tail_and_manifest(&mut self) -> io::Result<()> {
        let old = self.m.tail.take();
        // A file smaller than a part is its tail, even when empty.
        let whole_file = self.m.finished && self.m.multipart.is_none();
        if self.buf.is_empty() && !whole_file {
            self.m.tail_size = 0;
        } else {
            self.m.generation += 1;
            let name = tail_name(self.m.generation);
            self.shared.put(
                self.dir.clone().join(name.as_str()),
                Bytes::from(self.buf.clone()),
            )?;
            self.m.tail = Some(name);
            self.m.tail_size = self.buf.len() as u64;
        }
        self.store_manifest()?;
        self.dirty = false;
        if let Some(old) = old {
            if self.m.tail.as_deref() != Some(old.as_str()) {
                // A tail left behind is removed with the upload.
                let store = self.shared.store.clone();
                let path = self.dir.clone().join(old.as_str());
                let _ = self
                    .shared
                    .bridge
                    .spawn(async move { store.delete(&path).await });
            }
        }
        Ok(())
    }

    fn write_out(&mut self) -> io::Result<()> {
        self.wait_in_flight()?;
        if self.dirty {
            self.store_tail_and_manifest()?;
        }
        Ok(())
    }

    fn finish_upload(&mut self) -> io::Result<()> {
        self.wait_in_flight()?;
        if self.m.multipart.is_some() && !self.buf.is_empty() {
            // The last part may be short.
            self.send_last_part()?;
        }
        self.m.finished = true;
        self.store_tail_and_manifest()
    }
}

impl UploadSink for S3Sink {
    fn write(&mut self, data: &[u8]) -> io::Result<()> {
        self.unless_failed(|s| s.append(data))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.unless_failed(S3Sink::write_out)
    }

    fn finish(mut self: Box<Self>) -> io::Result<()> {
        self.unless_failed(S3Sink::finish_upload)
    }

    fn bytes_written(&self) -> Option<u64> {
        // The tail, if any, is back in `buf` since the sink was opened.
        let parts: u64 = self.m.parts.iter().map(|p| p.size).sum();
        let in_flight = self.in_flight.as_ref().map_or(0, |f| f.1);
        Some(parts + in_flight + self.buf.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::s3::memory::MemoryS3;
    use crate::storage::s3::{S3Contents, S3Options, MIN_PART_SIZE};

    #[test]
    fn a_sink_holds_at_most_a_part_gathered_and_one_in_flight() {
        let store = Arc::new(MemoryS3::new());
        let options = S3Options {
            part_size: MIN_PART_SIZE,
            threads: 1,
        };
        let c = S3Contents::with_store(store, "p", options).unwrap();
        let dir = c.shared.upload_dir("uploads/0123").unwrap();
        let mut sink = S3Sink::create(c.shared.clone(), dir).unwrap();
        let piece = vec![1u8; 999_983];
        let total = 6 * MIN_PART_SIZE;
        let mut written = 0;
        while written < total {
            sink.write(&piece).unwrap();
            written += piece.len();
            assert_eq!(sink.bytes_written(), Some(written as u64));
            assert!(
                sink.buf.len() < MIN_PART_SIZE,
                "a full part is sent at once"
            );
            assert!(
                sink.buf.capacity() <= MIN_PART_SIZE,
                "{}",
                sink.buf.capacity()
            );
            // Every part before the one in flight has been uploaded.
            let sent = sink.m.parts.len() * MIN_PART_SIZE;
            let in_flight = sink.in_flight.as_ref().map_or(0, |f| f.1 as usize);
            assert!(in_flight <= MIN_PART_SIZE);
            assert_eq!(sent + in_flight + sink.buf.len(), written);
        }
        assert_eq!(sink.len(), written as u64);
        sink.flush().unwrap();
        assert!(sink.in_flight.is_none());
        assert_eq!(sink.m.stored_bytes(), written as u64);
    }
}
