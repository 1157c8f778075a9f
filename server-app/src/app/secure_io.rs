//! The storage side of a secure session: the upload it writes (resumable: its place
//! is saved in the metadata store, so any server of a fleet continues it) and the
//! object a download reads.

use std::collections::HashSet;
use std::io::{self, Read};
use std::sync::Mutex;

use protocol_core::secure::digest::UploadDigest;
use protocol_core::secure::PutResume;
use protocol_core::ClientId;
use tracing::warn;

use crate::storage::commit::Finished;
use crate::storage::{
    key_for_log, new_upload_key, short_id, CommitOutcome, ObjectRead, PartialUpload, Storage,
    UploadSink,
};

/// The files whose secure upload a connection of this server is writing: a second
/// connection for the same file waits its turn (is refused) rather than append to
/// the same upload.
#[derive(Default)]
pub struct ActivePuts(Mutex<HashSet<(ClientId, String)>>);

impl ActivePuts {
    fn claim(&self, client: ClientId, name: &str) -> bool {
        self.0
            .lock()
            .map(|mut s| s.insert((client, name.to_string())))
            .unwrap_or(false)
    }

    fn release(&self, client: ClientId, name: &str) {
        if let Ok(mut s) = self.0.lock() {
            s.remove(&(client, name.to_string()));
        }
    }
}

/// A secure upload this connection writes.
pub(crate) struct SecurePut {
    client: ClientId,
    name: String,
    size: u64,
    upload: String,
    sink: Option<Box<dyn UploadSink>>,
}

/// Why a secure upload could not begin.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BeginError {
    /// Another connection of this server writes the same file now.
    #[error("an upload of this file is under way on another connection")]
    Busy,
    /// The store failed.
    #[error("{0}")]
    Storage(String),
}

/// The connection's secure transfers.
#[derive(Default)]
pub(crate) struct SecureIo {
    pub(crate) put: Option<SecurePut>,
    pub(crate) get: Option<Box<dyn ObjectRead>>,
}

impl SecureIo {
    /// Opens the upload of `name`: the saved one of the same size, continued from its
    /// offset, or a new one (a saved one of another size is dropped).
    pub(crate) fn begin_put(
        &mut self,
        storage: &Storage,
        active: &ActivePuts,
        client: ClientId,
        name: &str,
        size: u64,
    ) -> Result<Option<PutResume>, BeginError> {
        self.abandon_put(active);
        if !active.claim(client, name) {
            return Err(BeginError::Busy);
        }
        let result = self.open_put(storage, client, name, size);
        if result.is_err() {
            active.release(client, name);
        }
        result
    }

    fn open_put(
        &mut self,
        storage: &Storage,
        client: ClientId,
        name: &str,
        size: u64,
    ) -> Result<Option<PutResume>, BeginError> {
        let err = |e: &dyn std::fmt::Display| BeginError::Storage(e.to_string());
        let saved = storage.meta.partial(&client, name).map_err(|e| err(&e))?;
        if let Some(p) = saved {
            if p.size == size
                && UploadDigest::from_bytes(&p.state).is_some_and(|d| d.len() == p.offset)
            {
                match storage.contents.resume_upload(&p.upload, p.offset) {
                    Ok(sink) => {
                        self.put = Some(SecurePut {
                            client,
                            name: name.to_string(),
                            size,
                            upload: p.upload.clone(),
                            sink: Some(sink),
                        });
                        return Ok(Some(PutResume {
                            offset: p.offset,
                            state: p.state,
                        }));
                    }
                    Err(e) => warn!(
                        client = %short_id(&client),
                        upload = %key_for_log(&p.upload),
                        "a saved upload cannot be continued, starting again: {e}"
                    ),
                }
            }
            let _ = storage.meta.remove_partial(&client, name, &p.upload);
            storage.drop_upload(&p.upload);
        }
        let upload = new_upload_key();
        let sink = storage
            .contents
            .create_upload(&upload)
            .map_err(|e| err(&e))?;
        let fresh = PartialUpload {
            client,
            file_name: name.to_string(),
            size,
            offset: 0,
            upload: upload.clone(),
            state: UploadDigest::new().to_bytes(),
            updated: String::new(),
        };
        // Saved at once: the sweeps of uploads nobody names leave this one alone.
        if let Err(e) = storage.meta.save_partial(&fresh) {
            drop(sink);
            storage.drop_upload(&upload);
            return Err(err(&e));
        }
        self.put = Some(SecurePut {
            client,
            name: name.to_string(),
            size,
            upload,
            sink: Some(sink),
        });
        Ok(None)
    }

    /// Appends upload content.
    pub(crate) fn write(&mut self, data: &[u8]) -> io::Result<()> {
        match self.put.as_mut().and_then(|p| p.sink.as_mut()) {
            Some(s) => s.write(data),
            None => Err(io::Error::other("no secure upload on this connection")),
        }
    }

    /// Makes the upload durable up to `offset` and saves its place.
    pub(crate) fn checkpoint(
        &mut self,
        storage: &Storage,
        offset: u64,
        state: Vec<u8>,
    ) -> io::Result<()> {
        let Some(p) = self.put.as_mut() else {
            return Ok(());
        };
        let Some(sink) = p.sink.as_mut() else {
            return Ok(());
        };
        sink.flush()?;
        if let Some(n) = sink.bytes_written() {
            if n != offset {
                return Err(io::Error::other(format!(
                    "the upload holds {n} bytes where its place says {offset}"
                )));
            }
        }
        storage
            .meta
            .save_partial(&PartialUpload {
                client: p.client,
                file_name: p.name.clone(),
                size: p.size,
                offset,
                upload: p.upload.clone(),
                state,
                updated: String::new(),
            })
            .map_err(io::Error::other)
    }

    /// Every byte arrived and the hashes agree: the upload becomes the file's
    /// verified content.
    pub(crate) fn complete(
        &mut self,
        storage: &Storage,
        active: &ActivePuts,
        sha256: [u8; 32],
        cksum: u32,
    ) -> Result<CommitOutcome, String> {
        let Some(mut p) = self.put.take() else {
            return Err("no secure upload on this connection".into());
        };
        active.release(p.client, &p.name);
        let sink = p.sink.take().ok_or("the upload was already closed")?;
        if let Err(e) = sink.finish() {
            return Err(format!("making the upload durable: {e}"));
        }
        // The place goes before the commit: a commit that fails leaves no saved place
        // naming an upload that the commit has consumed.
        let _ = storage.meta.remove_partial(&p.client, &p.name, &p.upload);
        storage
            .commit(Finished {
                client: &p.client,
                file_name: &p.name,
                upload: &p.upload,
                verified: true,
                size: p.size,
                checksum: cksum,
                sha256: Some(sha256),
            })
            .map_err(|e| e.to_string())
    }

    /// The upload cannot end well: it and its saved place go.
    pub(crate) fn discard_put(&mut self, storage: &Storage, active: &ActivePuts) {
        if let Some(mut p) = self.put.take() {
            active.release(p.client, &p.name);
            p.sink.take();
            let _ = storage.meta.remove_partial(&p.client, &p.name, &p.upload);
            storage.drop_upload(&p.upload);
        }
    }

    /// The connection ends or begins another upload: what was written stays for a
    /// resume (its place was saved at the last checkpoint).
    pub(crate) fn abandon_put(&mut self, active: &ActivePuts) {
        if let Some(p) = self.put.take() {
            active.release(p.client, &p.name);
        }
    }

    /// Reads up to `max` next bytes of the download; an empty result is an early end.
    pub(crate) fn read(&mut self, max: usize) -> io::Result<Vec<u8>> {
        let Some(r) = self.get.as_mut() else {
            return Ok(Vec::new());
        };
        let mut buf = vec![0u8; max];
        let mut filled = 0;
        while filled < max {
            match r.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        buf.truncate(filled);
        Ok(buf)
    }
}
