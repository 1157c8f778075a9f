//! [`Contents`] in a local folder:
//!
//! ```text
//! uploads/<random>                 uploads in progress (anything here at start-up is garbage)
//! objects/<client hex>/<random>    committed objects, named by file records
//! files/<client hex>/<name>        objects of the layout before schema 3, still named by
//!                                  their records until replaced
//! ```
//!
//! Folders are mode 0700, files 0600. Publishing is a rename within the folder followed
//! by an fsync of both folders, so a published object survives a crash.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Component, Path, PathBuf};

use super::{past_the_end, Contents, ObjectRead, UploadSink};

pub mod writer;
pub use writer::UploadWriter;

/// The folder of uploads and objects.
pub struct LocalContents {
    root: PathBuf,
}

const UPLOADS: &str = "uploads";
const OBJECTS: &str = "objects";
const LEGACY: &str = "files";

fn mkdir(path: &Path) -> io::Result<()> {
    match fs::DirBuilder::new().mode(0o700).create(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && path.is_dir() => restrict(path),
        Err(e) => Err(e),
    }
}

/// Sets an existing storage folder to 0700 when others may enter or read it (made by
/// hand, or by an older server under another umask): uploads and stored files are
/// the clients' data, for the server's user alone. Says so, since it changes the disk.
fn restrict(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(path)?.permissions().mode() & 0o7777;
    if mode & 0o077 == 0 {
        return Ok(());
    }
    fs::set_permissions(path, fs::Permissions::from_mode(0o700))?;
    tracing::warn!(
        "storage folder {} had mode {mode:04o}, open to other users: set to 0700",
        path.display()
    );
    Ok(())
}

fn sync_dir(path: &Path) -> io::Result<()> {
    File::open(path)?.sync_all()
}

/// The error of a resumed upload that holds fewer bytes than its state accounts for.
pub(crate) fn short_upload(upload: &str, len: u64, offset: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "upload {} holds {len} bytes, not the {offset} its state accounts for",
            super::key_for_log(upload)
        ),
    )
}

fn ignore_missing(r: io::Result<()>) -> io::Result<()> {
    match r {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

impl LocalContents {
    /// Uses (creating) `uploads/` and `objects/` inside `root`, setting them to 0700
    /// when they are open to other users. Changes nothing else.
    pub fn open(root: &Path) -> io::Result<LocalContents> {
        mkdir(&root.join(UPLOADS))?;
        mkdir(&root.join(OBJECTS))?;
        Ok(LocalContents {
            root: root.to_path_buf(),
        })
    }

    /// Uses the folder as it is, creating nothing (operator commands): keys in folders
    /// that do not exist are simply absent.
    pub fn open_existing(root: &Path) -> LocalContents {
        LocalContents {
            root: root.to_path_buf(),
        }
    }

    /// The path of a key: relative, plain components only, under one of our folders.
    fn path(&self, key: &str) -> io::Result<PathBuf> {
        let rel = Path::new(key);
        let plain = rel.components().all(|c| matches!(c, Component::Normal(_)));
        let ours = [UPLOADS, OBJECTS, LEGACY]
            .iter()
            .any(|top| rel.starts_with(top));
        if !plain || !ours || rel.components().count() < 2 {
            return Err(io::Error::other(format!(
                "not a storage key: {:?}",
                super::key_for_log(key)
            )));
        }
        Ok(self.root.join(rel))
    }

    fn list(&self, top: &str, depth: usize) -> io::Result<Vec<String>> {
        let mut keys = Vec::new();
        let mut stack = vec![(PathBuf::from(top), 0usize)];
        while let Some((rel, level)) = stack.pop() {
            let entries = match fs::read_dir(self.root.join(&rel)) {
                Ok(e) => e,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            for entry in entries {
                let entry = entry?;
                let child = rel.join(entry.file_name());
                let kind = entry.file_type()?;
                if level + 1 < depth {
                    if kind.is_dir() {
                        stack.push((child, level + 1));
                    }
                } else if kind.is_file() {
                    keys.push(child.to_string_lossy().into_owned());
                }
            }
        }
        Ok(keys)
    }
}

impl UploadSink for UploadWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<()> {
        UploadWriter::write(self, data)
    }
    fn flush(&mut self) -> io::Result<()> {
        UploadWriter::flush(self)
    }
    fn finish(self: Box<Self>) -> io::Result<()> {
        UploadWriter::finish(*self)
    }
    fn bytes_written(&self) -> Option<u64> {
        Some(UploadWriter::len(self))
    }
}

impl Contents for LocalContents {
    fn create_upload(&self, upload: &str) -> io::Result<Box<dyn UploadSink>> {
        Ok(Box::new(UploadWriter::create(&self.path(upload)?)?))
    }

    fn reopen_upload(&self, upload: &str) -> io::Result<Box<dyn UploadSink>> {
        Ok(Box::new(UploadWriter::resume(&self.path(upload)?)?))
    }

    fn resume_upload(&self, upload: &str, offset: u64) -> io::Result<Box<dyn UploadSink>> {
        let path = self.path(upload)?;
        let file = fs::OpenOptions::new().write(true).open(&path)?;
        let len = file.metadata()?.len();
        if len < offset {
            return Err(short_upload(upload, len, offset));
        }
        if len > offset {
            // Bytes written after the state that accounts for `offset` was saved:
            // never accounted for, so cut off (durably) before anything follows them.
            file.set_len(offset)?;
            file.sync_all()?;
        }
        drop(file);
        Ok(Box::new(UploadWriter::resume(&path)?))
    }

    fn delete_upload(&self, upload: &str) -> io::Result<()> {
        ignore_missing(fs::remove_file(self.path(upload)?))
    }

    fn publish(&self, upload: &str, object: &str) -> io::Result<()> {
        let from = self.path(upload)?;
        let to = self.path(object)?;
        let dir = to
            .parent()
            .ok_or_else(|| io::Error::other("an object key without a folder"))?;
        if !dir.is_dir() {
            mkdir(dir)?;
            if let Some(up) = dir.parent() {
                sync_dir(up)?;
            }
        }
        if fs::symlink_metadata(&to).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("object {} exists already", super::key_for_log(object)),
            ));
        }
        fs::rename(&from, &to)?;
        sync_dir(dir)?;
        if let Some(up) = from.parent() {
            sync_dir(up)?;
        }
        Ok(())
    }

    fn delete_object(&self, object: &str) -> io::Result<()> {
        ignore_missing(fs::remove_file(self.path(object)?))
    }

    fn read_object(&self, object: &str) -> io::Result<Vec<u8>> {
        fs::read(self.path(object)?)
    }

    fn open_object(&self, object: &str, offset: u64) -> io::Result<Box<dyn ObjectRead>> {
        use std::io::{Seek, SeekFrom};
        let mut file = File::open(self.path(object)?)?;
        let size = file.metadata()?.len();
        if offset > size {
            return Err(past_the_end(offset, size));
        }
        file.seek(SeekFrom::Start(offset))?;
        Ok(Box::new(LocalRead { file, size }))
    }

    fn uploads(&self) -> io::Result<Vec<String>> {
        self.list(UPLOADS, 1)
    }

    fn objects(&self) -> io::Result<Vec<String>> {
        self.list(OBJECTS, 2)
    }

    fn legacy_leftovers(&self) -> io::Result<Vec<String>> {
        // The layout before schema 3 kept uploads in progress and set-aside copies as
        // `files/<id>/.upload-*`. A client-chosen name never started with a dot there
        // (leading dots were removed), so these are temporaries by construction.
        Ok(self
            .list(LEGACY, 2)?
            .into_iter()
            .filter(|k| {
                Path::new(k)
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(".upload-"))
            })
            .collect())
    }
}

/// An object file being read.
struct LocalRead {
    file: File,
    size: u64,
}

impl io::Read for LocalRead {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.file.read(buf)
    }
}

impl ObjectRead for LocalRead {
    fn size(&self) -> u64 {
        self.size
    }
}
