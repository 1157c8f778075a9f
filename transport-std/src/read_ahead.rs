//! Reading the file on a thread of its own, a few chunks ahead of the encryption.
//!
//! Why: encryption is the upload's serial bottleneck, and copying the file out of the
//! page cache took about a fifth as long again (`perf record` of a 1 GiB upload:
//! `_copy_to_iter` under `read` at 6% of samples against 32% in the AES loop, on the
//! same thread). On its own thread the copy overlaps with the encryption.

use std::io::{self, Read, Seek, SeekFrom};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::{Scope, ScopedJoinHandle};

/// Chunks read but not yet taken, at most.
const AHEAD: usize = 2;

/// A file read from the start by a scoped thread; [`restart`](Self::restart) begins
/// again from the start (the client re-sends a file after a checksum mismatch).
pub(crate) struct ReadAhead<'scope, F: Read + Seek + Send> {
    chunk: usize,
    /// The file while no thread reads it.
    idle: Option<&'scope mut F>,
    running: Option<Running<'scope, F>>,
    /// Buffers given back, for the thread to fill again (no allocation per chunk).
    spare_tx: SyncSender<Vec<u8>>,
    spare_rx: Option<Receiver<Vec<u8>>>,
}

struct Running<'scope, F> {
    chunks: Receiver<io::Result<Vec<u8>>>,
    thread: ScopedJoinHandle<'scope, (&'scope mut F, Receiver<Vec<u8>>)>,
}

impl<'scope, F: Read + Seek + Send> ReadAhead<'scope, F> {
    pub(crate) fn new(file: &'scope mut F, chunk: usize) -> Self {
        let (spare_tx, spare_rx) = sync_channel(AHEAD + 2);
        ReadAhead {
            chunk: chunk.max(4096),
            idle: Some(file),
            running: None,
            spare_tx,
            spare_rx: Some(spare_rx),
        }
    }

    /// Stops any reading in progress and starts again from the file's first byte.
    pub(crate) fn restart<'env>(&mut self, scope: &'scope Scope<'scope, 'env>) -> io::Result<()> {
        self.stop()?;
        let (Some(file), Some(spare)) = (self.idle.take(), self.spare_rx.take()) else {
            return Err(io::Error::other("file reader lost its file"));
        };
        file.seek(SeekFrom::Start(0))?;
        let (tx, chunks) = sync_channel(AHEAD);
        let chunk = self.chunk;
        let thread = std::thread::Builder::new()
            .name("file reader".into())
            .spawn_scoped(scope, move || {
                loop {
                    let mut buf = spare.try_recv().unwrap_or_default();
                    buf.resize(chunk, 0);
                    let read = read_full(file, &mut buf).map(|n| {
                        buf.truncate(n);
                        buf
                    });
                    let end = !matches!(&read, Ok(b) if !b.is_empty());
                    // A closed queue means the reader was stopped: stop too.
                    if tx.send(read).is_err() || end {
                        break;
                    }
                }
                (file, spare)
            })?;
        self.running = Some(Running { chunks, thread });
        Ok(())
    }

    /// The next chunk; empty at the end of the file.
    pub(crate) fn next(&mut self) -> io::Result<Vec<u8>> {
        match &self.running {
            Some(r) => match r.chunks.recv() {
                Ok(read) => read,
                Err(_) => Err(io::Error::other("file reader stopped")),
            },
            None => Err(io::Error::other("file reader not started")),
        }
    }

    /// Gives a chunk's buffer back for reuse.
    pub(crate) fn recycle(&mut self, buf: Vec<u8>) {
        let _ = self.spare_tx.try_send(buf);
    }

    /// Stops the thread (if any) and takes the file back.
    pub(crate) fn stop(&mut self) -> io::Result<()> {
        if let Some(Running { chunks, thread }) = self.running.take() {
            // Dropping the queue makes the thread's next send fail, so it ends.
            drop(chunks);
            match thread.join() {
                Ok((file, spare)) => {
                    self.idle = Some(file);
                    self.spare_rx = Some(spare);
                }
                Err(_) => return Err(io::Error::other("file reader panicked")),
            }
        }
        Ok(())
    }
}

pub(crate) fn read_full<F: Read>(file: &mut F, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::ReadAhead;
    use std::io::Cursor;

    fn drain<F: std::io::Read + std::io::Seek + Send>(r: &mut ReadAhead<'_, F>) -> Vec<u8> {
        let mut all = Vec::new();
        loop {
            let c = r.next().unwrap();
            if c.is_empty() {
                return all;
            }
            all.extend_from_slice(&c);
            r.recycle(c);
        }
    }

    #[test]
    fn reads_everything_in_order_and_again_after_a_restart() {
        let data: Vec<u8> = (0..100_003u32).map(|i| (i % 251) as u8).collect();
        let mut file = Cursor::new(data.clone());
        std::thread::scope(|s| {
            let mut r = ReadAhead::new(&mut file, 4096);
            r.restart(s).unwrap();
            assert_eq!(drain(&mut r), data);
            // Restart part-way through, as a re-send after 901 does.
            r.restart(s).unwrap();
            let first = r.next().unwrap();
            assert_eq!(&first[..], &data[..4096]);
            r.restart(s).unwrap();
            assert_eq!(drain(&mut r), data);
            r.stop().unwrap();
        });
    }

    #[test]
    fn an_empty_file_ends_at_once() {
        let mut file = Cursor::new(Vec::new());
        std::thread::scope(|s| {
            let mut r = ReadAhead::new(&mut file, 4096);
            r.restart(s).unwrap();
            assert!(r.next().unwrap().is_empty());
        });
    }
}
