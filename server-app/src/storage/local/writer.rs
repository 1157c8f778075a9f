//! Writing one upload's bytes into its temporary file.
//!
//! Why not a plain `write` per packet: on the project's machines a 1 GiB upload cost
//! the server 1.0 to 2.8 s of kernel time copying into the page cache (fresh pages are
//! slow to touch in these virtual machines, and which ones are fresh varies from run to
//! run), and the fsync before 1603 then waited for the whole file to reach the disk.
//! Once an upload has passed [`DIRECT_AFTER`] bytes, its writer switches to `O_DIRECT`:
//! the bytes are gathered in an aligned buffer and written from there straight to the
//! disk, [`BUFFER`] bytes at a time. No page-cache copy, the disk works during the
//! upload, and the final fsync has almost nothing left to do. Small uploads, the last
//! partial block, and file systems that refuse `O_DIRECT` go through the page cache as
//! before.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

/// Alignment of offsets, lengths and memory for `O_DIRECT` (the largest logical
/// block size in common use; 512-byte devices accept it too).
const ALIGN: usize = 4096;
/// Bytes gathered before each direct write. 1 MiB writes reached about 2 GB/s on
/// this machine's disk (one at a time); the buffer is the memory cost per large upload.
pub const BUFFER: usize = 1 << 20;
/// Uploads switch to direct writes once they are this long, so that small files (and
/// peers that only claim large ones) cost no buffer.
pub const DIRECT_AFTER: u64 = 4 << 20;

/// The temporary file of one upload, open for writing at its end.
pub struct UploadWriter {
    /// The ordinary handle: small uploads, the unaligned tail, fsync.
    plain: File,
    /// Bytes in the file, counting those still in the direct buffer.
    end: u64,
    direct: Option<Direct>,
    /// The path, to open the direct handle when the upload grows.
    path: std::path::PathBuf,
    /// Set once `O_DIRECT` was refused at open: stay with the page cache.
    direct_refused: bool,
    /// Set by a failed write: what the file holds is unknown, so nothing more is written.
    failed: bool,
}

/// Direct writing: one buffer being filled here while the previous one is written
/// by a thread of its own, so the connection goes on reading and decrypting while
/// the disk works (written one after the other, the disk time added to the
/// connection's own and the upload stalled).
struct Direct {
    buf: AlignedBuf,
    /// File offset of the buffer's first byte; a multiple of [`ALIGN`].
    pos: u64,
    disk: DiskThread,
}

impl Direct {
    /// Gives the buffer's first `len` bytes (a multiple of [`ALIGN`]) to the disk
    /// thread and goes on with an empty buffer at the offset after them.
    fn hand_off(&mut self, len: usize) -> io::Result<()> {
        let full = std::mem::replace(&mut self.buf, AlignedBuf::empty());
        self.buf = self.disk.submit(Job {
            buf: full,
            pos: self.pos,
            len,
        })?;
        self.pos += len as u64;
        Ok(())
    }
}

/// A heap buffer of [`BUFFER`] bytes whose start is aligned to [`ALIGN`] (found
/// inside a slightly larger allocation, so no `unsafe` is needed).
struct AlignedBuf {
    mem: Vec<u8>,
    start: usize,
    len: usize,
}

impl AlignedBuf {
    fn new() -> AlignedBuf {
        let mem = vec![0u8; BUFFER + ALIGN];
        let start = (ALIGN - mem.as_ptr() as usize % ALIGN) % ALIGN;
        AlignedBuf { mem, start, len: 0 }
    }
    /// A stand-in while the real buffer is with the disk thread.
    fn empty() -> AlignedBuf {
        AlignedBuf {
            mem: Vec::new(),
            start: 0,
            len: 0,
        }
    }
    fn filled(&self) -> &[u8] {
        &self.mem[self.start..self.start + self.len]
    }
    fn spare(&mut self) -> &mut [u8] {
        &mut self.mem[self.start + self.len..self.start + BUFFER]
    }
}

/// `len` bytes (a multiple of [`ALIGN`]) of `buf` to write at `pos`.
struct Job {
    buf: AlignedBuf,
    pos: u64,
    len: usize,
}

/// The thread that writes full buffers; at most one is in flight.
struct DiskThread {
    jobs: Option<SyncSender<Job>>,
    done: Receiver<io::Result<AlignedBuf>>,
    in_flight: bool,
    /// A buffer to fill next (the second of the two), once one exists.
    spare: Option<AlignedBuf>,
}

impl DiskThread {
    fn start(direct: File, plain: File) -> io::Result<DiskThread> {
        let (jobs, rx) = sync_channel::<Job>(1);
        let (tx, done) = sync_channel(1);
        std::thread::Builder::new()
            .name("upload writer".into())
            .spawn(move || {
                let mut direct = Some(direct);
                for job in rx {
                    let data = &job.buf.filled()[..job.len];
                    let mut result = match &direct {
                        Some(f) => f.write_all_at(data, job.pos),
                        None => plain.write_all_at(data, job.pos),
                    };
                    // Some file systems accept the flag at open and refuse the write.
                    if matches!(&result, Err(e) if e.raw_os_error() == Some(libc::EINVAL)) {
                        direct = None;
                        result = plain.write_all_at(data, job.pos);
                    }
                    let failed = result.is_err();
                    if tx.send(result.map(|()| job.buf)).is_err() || failed {
                        break;
                    }
                }
            })?;
        Ok(DiskThread {
            jobs: Some(jobs),
            done,
            in_flight: false,
            spare: None,
        })
    }

    /// Waits for the write in flight, if any; its buffer becomes the spare.
    fn wait(&mut self) -> io::Result<()> {
        if self.in_flight {
            self.in_flight = false;
            let buf = self
                .done
                .recv()
                .map_err(|_| io::Error::other("upload writer thread stopped"))??;
            self.spare = Some(buf);
        }
        Ok(())
    }

    /// Hands `job` to the thread (after the one in flight is done) and returns an
    /// empty buffer to fill meanwhile.
    fn submit(&mut self, job: Job) -> io::Result<AlignedBuf> {
        self.wait()?;
        let sent = self.jobs.as_ref().map(|j| j.send(job).is_ok());
        if sent != Some(true) {
            return Err(io::Error::other("upload writer thread stopped"));
        }
        self.in_flight = true;
        let mut next = self.spare.take().unwrap_or_else(AlignedBuf::new);
        next.len = 0;
        Ok(next)
    }
}

impl UploadWriter {
    /// Creates `path` (which must not exist) with mode 0600.
    pub fn create(path: &Path) -> io::Result<UploadWriter> {
        let plain = OpenOptions::new()
            .write(true)
            .read(true)
            .create_new(true)
            .mode(0o600)
            .open(path)?;
        Ok(UploadWriter::over(plain, 0, path))
    }

    /// Opens an existing temporary file to go on writing at its end (an upload
    /// resumed on a new connection).
    pub fn resume(path: &Path) -> io::Result<UploadWriter> {
        let plain = OpenOptions::new().write(true).read(true).open(path)?;
        let end = plain.metadata()?.len();
        Ok(UploadWriter::over(plain, end, path))
    }

    fn over(plain: File, end: u64, path: &Path) -> UploadWriter {
        UploadWriter {
            plain,
            end,
            direct: None,
            path: path.to_path_buf(),
            direct_refused: false,
            failed: false,
        }
    }

    /// Bytes in the file, counting those still buffered.
    pub fn len(&self) -> u64 {
        self.end
    }

    /// Whether nothing has been written.
    pub fn is_empty(&self) -> bool {
        self.end == 0
    }

    /// Whether writes currently bypass the page cache.
    #[cfg(test)]
    pub fn is_direct(&self) -> bool {
        self.direct.is_some()
    }

    /// Appends `data`.
    pub fn write(&mut self, data: &[u8]) -> io::Result<()> {
        self.unless_failed(|w| w.append(data))
    }

    /// Writes whatever is buffered (the aligned part directly, the rest through the
    /// page cache) and waits for the disk thread, so the file holds every byte
    /// written so far. The writer stays usable.
    pub fn flush(&mut self) -> io::Result<()> {
        self.unless_failed(UploadWriter::write_out)
    }

    /// Flushes and makes the file durable (fsync).
    pub fn finish(mut self) -> io::Result<()> {
        self.flush()?;
        self.plain.sync_all()
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
        if self.direct.is_none() && !self.direct_refused && self.end >= DIRECT_AFTER {
            self.start_direct()?;
        }
        let Some(d) = &mut self.direct else {
            self.plain.write_all_at(data, self.end)?;
            self.end += data.len() as u64;
            return Ok(());
        };
        while !data.is_empty() {
            let spare = d.buf.spare();
            let n = spare.len().min(data.len());
            spare[..n].copy_from_slice(&data[..n]);
            d.buf.len += n;
            self.end += n as u64;
            data = &data[n..];
            if d.buf.len == BUFFER {
                d.hand_off(BUFFER)?;
            }
        }
        Ok(())
    }

    fn write_out(&mut self) -> io::Result<()> {
        let Some(d) = &mut self.direct else {
            return Ok(());
        };
        let aligned = d.buf.len / ALIGN * ALIGN;
        let mut tail = [0u8; ALIGN];
        let rest = d.buf.len - aligned;
        tail[..rest].copy_from_slice(&d.buf.filled()[aligned..]);
        if aligned > 0 {
            d.hand_off(aligned)?;
            // The partial block stays at the buffer's front for the next direct write.
            d.buf.spare()[..rest].copy_from_slice(&tail[..rest]);
            d.buf.len = rest;
        }
        d.disk.wait()?;
        if rest > 0 {
            self.plain.write_all_at(&tail[..rest], d.pos)?;
        }
        Ok(())
    }

    /// Opens the `O_DIRECT` handle and its thread, and loads the file's last partial
    /// block into the buffer, so that every direct write starts at an aligned offset.
    fn start_direct(&mut self) -> io::Result<()> {
        let file = match OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_DIRECT)
            .open(&self.path)
        {
            Ok(f) => f,
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                self.direct_refused = true;
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let disk = DiskThread::start(file, self.plain.try_clone()?)?;
        let pos = self.end / ALIGN as u64 * ALIGN as u64;
        let mut buf = AlignedBuf::new();
        let head = (self.end - pos) as usize;
        self.plain.read_exact_at(&mut buf.spare()[..head], pos)?;
        buf.len = head;
        self.direct = Some(Direct { buf, pos, disk });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(n: usize, seed: u8) -> Vec<u8> {
        (0..n)
            .map(|i| (i as u32).wrapping_mul(2654435761).to_le_bytes()[3] ^ seed)
            .collect()
    }

    /// Writes `total` bytes in pieces of `piece`, optionally closing and resuming the
    /// writer at `resume_at`; the file must hold exactly the bytes.
    fn roundtrip(total: usize, piece: usize, resume_at: Option<usize>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("up.part");
        let data = pattern(total, piece as u8);
        let mut w = UploadWriter::create(&path).unwrap();
        let mut done = 0;
        let mut resumed = false;
        while done < total {
            if let Some(r) = resume_at {
                if !resumed && done >= r {
                    w.flush().unwrap();
                    drop(w);
                    w = UploadWriter::resume(&path).unwrap();
                    resumed = true;
                }
            }
            let n = piece.min(total - done);
            w.write(&data[done..done + n]).unwrap();
            done += n;
        }
        if total > DIRECT_AFTER as usize + BUFFER {
            // Where the temporary folder refuses O_DIRECT (tmpfs on old kernels) the
            // writer falls back; both ways the bytes must be right.
            eprintln!("direct: {}", w.is_direct());
        }
        w.finish().unwrap();
        let got = std::fs::read(&path).unwrap();
        assert_eq!(got.len(), total);
        assert!(
            got == data,
            "contents differ ({total}, {piece}, {resume_at:?})"
        );
    }

    #[test]
    fn small_uploads_are_written_exactly() {
        roundtrip(0, 1, None);
        roundtrip(1, 1, None);
        roundtrip(100_000, 65_536, None);
    }

    #[test]
    fn large_uploads_are_written_exactly_across_the_switch_and_odd_pieces() {
        let big = DIRECT_AFTER as usize + 3 * BUFFER + 12_345;
        roundtrip(big, 65_536, None);
        roundtrip(big, 65_519, None);
        roundtrip(big, 1_000_003, None);
        roundtrip(DIRECT_AFTER as usize + 2 * BUFFER, 1 << 16, None);
    }

    #[test]
    fn a_failing_disk_write_fails_the_upload_and_every_write_after() {
        // The direct writes happen on the writer thread; its error must come back.
        // Here its handles are swapped for read-only ones once direct writing has
        // begun, so every write it makes fails (EBADF), as a full disk would (ENOSPC).
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("up.part");
        let mut w = UploadWriter::create(&path).unwrap();
        let piece = vec![7u8; 65_536];
        while !w.is_direct() {
            w.write(&piece).unwrap();
            if w.end > DIRECT_AFTER + BUFFER as u64 {
                eprintln!("O_DIRECT refused here; the page-cache path has no thread");
                return;
            }
        }
        let read_only = || File::open(&path).unwrap();
        if let Some(d) = &mut w.direct {
            d.disk = DiskThread::start(read_only(), read_only()).unwrap();
        }
        let mut first_error = None;
        for _ in 0..(3 * BUFFER / piece.len()) {
            if let Err(e) = w.write(&piece) {
                first_error = Some(e);
                break;
            }
        }
        let e = match first_error {
            Some(e) => e,
            None => w.flush().expect_err("the writes fail"),
        };
        assert_eq!(e.raw_os_error(), Some(libc::EBADF), "{e}");
        assert!(w.write(&piece).is_err(), "nothing more is written");
        assert!(w.finish().is_err());
    }

    #[test]
    fn resumed_uploads_continue_at_an_unaligned_end() {
        let big = DIRECT_AFTER as usize + 2 * BUFFER + 777;
        roundtrip(big, 65_519, Some(DIRECT_AFTER as usize + BUFFER + 5_000));
        roundtrip(big, 65_519, Some(1_000));
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        /// Any piece sizes, flushes and resumptions (a connection per packet) give a
        /// file holding exactly the bytes written, in order.
        #[test]
        fn any_pieces_flushes_and_resumptions_store_the_exact_bytes(
            pieces in prop::collection::vec((1usize..600_000, 0u8..8), 1..60),
            seed in any::<u8>(),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("up.part");
            let mut w = UploadWriter::create(&path).unwrap();
            let mut expected = Vec::new();
            for (i, (len, action)) in pieces.into_iter().enumerate() {
                let piece: Vec<u8> = (0..len).map(|j| (j as u8).wrapping_mul(31) ^ seed ^ i as u8).collect();
                w.write(&piece).unwrap();
                expected.extend_from_slice(&piece);
                match action {
                    0 => w.flush().unwrap(),
                    1 => {
                        w.flush().unwrap();
                        drop(w);
                        w = UploadWriter::resume(&path).unwrap();
                    }
                    _ => {}
                }
            }
            w.finish().unwrap();
            let got = std::fs::read(&path).unwrap();
            prop_assert_eq!(got.len(), expected.len());
            prop_assert!(got == expected);
        }
    }
}
