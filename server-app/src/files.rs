//! The folder of received files: one subfolder per client, uploads written to
//! temporary files and moved into place only when the client confirms them.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use protocol_core::ClientId;

use crate::upload_writer::UploadWriter;

/// Names Windows reserves for devices; a file with one of them as its stem is renamed.
const DEVICE_NAMES: &[&str] = &[
    "CON", "PRN", "AUX", "NUL", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8",
    "COM9", "LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9",
];

/// Turns a file name as a client sent it into one safe to create inside the
/// client's folder: the last path component only, no drive letter, printable
/// characters from a small set, no leading dot, no device name, at most 200 bytes.
///
/// ```text
/// "../../etc/passwd" -> "passwd"      "C:\\x\\a.txt" -> "a.txt"     "CON.txt" -> "_CON.txt"
/// ```
pub fn safe_file_name(sent: &[u8]) -> String {
    let last = sent
        .rsplit(|&b| b == b'/' || b == b'\\')
        .next()
        .unwrap_or(sent);
    let last = match last {
        [d, b':', rest @ ..] if d.is_ascii_alphabetic() => rest,
        other => other,
    };
    let mut name: String = last
        .iter()
        .map(|&b| {
            let c = b as char;
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ' ' | '+' | ',' | '=') {
                c
            } else {
                '_'
            }
        })
        .collect();
    name = name
        .trim_start_matches(['.', ' '])
        .trim_end_matches(['.', ' '])
        .to_string();
    if name.is_empty() {
        name = "file".into();
    }
    let stem = name.split('.').next().unwrap_or("").to_ascii_uppercase();
    if DEVICE_NAMES.contains(&stem.as_str()) {
        name.insert(0, '_');
    }
    if name.len() > 200 {
        name.truncate(200);
    }
    name
}

/// The folder of received files.
pub struct FileStore {
    root: PathBuf,
    counter: AtomicU64,
}

impl FileStore {
    /// Uses (creating) `root`, and removes temporary files a previous run left behind.
    pub fn open(root: &Path) -> io::Result<FileStore> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(root)?;
        let store = FileStore {
            root: root.to_path_buf(),
            counter: AtomicU64::new(0),
        };
        store.remove_stale_temporaries()?;
        Ok(store)
    }

    fn remove_stale_temporaries(&self) -> io::Result<()> {
        for client in fs::read_dir(&self.root)? {
            let client = client?;
            if !client.file_type()?.is_dir() {
                continue;
            }
            for f in fs::read_dir(client.path())? {
                let f = f?;
                if f.file_name().to_string_lossy().ends_with(".part") {
                    let _ = fs::remove_file(f.path());
                }
            }
        }
        Ok(())
    }

    fn client_dir(&self, id: &ClientId) -> io::Result<PathBuf> {
        let dir = self.root.join(id.to_hex());
        match fs::symlink_metadata(&dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(io::Error::other(format!(
                    "{} exists and is not a folder",
                    dir.display()
                )))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::DirBuilder::new().mode(0o700).create(&dir)?;
            }
            Err(e) => return Err(e),
        }
        Ok(dir)
    }

    /// Creates a fresh temporary file for an upload of `id`.
    pub fn create_temp(&self, id: &ClientId) -> io::Result<(PathBuf, UploadWriter)> {
        let dir = self.client_dir(id)?;
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!(".upload-{}-{n}.part", std::process::id()));
        let writer = UploadWriter::create(&path)?;
        Ok((path, writer))
    }

    /// Reopens a temporary file to append to it (an upload resumed on a new connection).
    pub fn reopen_temp(&self, path: &Path) -> io::Result<UploadWriter> {
        UploadWriter::resume(path)
    }

    /// Moves a finished temporary file into place as `safe_name`, durably. The file
    /// it replaces is kept aside until [`Placed::keep`] (the database has recorded
    /// the new one) or put back by [`Placed::undo`].
    pub fn commit(&self, id: &ClientId, temp: &Path, safe_name: &str) -> io::Result<Placed> {
        let dir = self.client_dir(id)?;
        let dest = dir.join(safe_name);
        let mut previous = None;
        match fs::symlink_metadata(&dest) {
            Ok(m) if m.is_dir() => {
                return Err(io::Error::other(format!("{} is a folder", dest.display())))
            }
            // A symlink planted where the file goes is replaced, never followed.
            Ok(m) if m.file_type().is_symlink() => fs::remove_file(&dest)?,
            Ok(_) => {
                let aside = temp.with_extension("prev.part");
                fs::hard_link(&dest, &aside)?;
                previous = Some(aside);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        fs::rename(temp, &dest)?;
        File::open(&dir)?.sync_all()?;
        let root_name = self
            .root
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "files".into());
        Ok(Placed {
            path: dest,
            previous,
            relative: format!("{root_name}/{}/{safe_name}", id.to_hex()),
        })
    }

    /// Removes a temporary file (best effort).
    pub fn discard(&self, temp: &Path) {
        let _ = fs::remove_file(temp);
    }
}

/// A file moved into place whose database record is not yet written.
pub struct Placed {
    path: PathBuf,
    previous: Option<PathBuf>,
    /// Path relative to the data folder (for `PathName`).
    pub relative: String,
}

impl Placed {
    /// The database has the new file: drop the old one. On a thread of its own:
    /// freeing a large file's blocks took 0.2 s per GiB here, time the client would
    /// otherwise wait for its answer. (Should the process stop first, the `.part`
    /// file left behind is removed at the next start.)
    pub fn keep(self) {
        if let Some(p) = self.previous {
            let removal = std::thread::Builder::new()
                .name("remove replaced".into())
                .spawn({
                    let p = p.clone();
                    move || {
                        let _ = fs::remove_file(p);
                    }
                });
            if removal.is_err() {
                let _ = fs::remove_file(p);
            }
        }
    }

    /// The database could not record it: put the old file back (or remove the new
    /// one if there was none), so that disk and database still agree.
    pub fn undo(self) -> io::Result<()> {
        match &self.previous {
            Some(p) => fs::rename(p, &self.path),
            None => fs::remove_file(&self.path),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::safe_file_name;

    #[test]
    fn hostile_names_become_plain_names() {
        assert_eq!(safe_file_name(b"../../etc/passwd"), "passwd");
        assert_eq!(safe_file_name(b"C:\\Windows\\a.txt"), "a.txt");
        assert_eq!(safe_file_name(b"C:a.txt"), "a.txt");
        assert_eq!(safe_file_name(b".."), "file");
        assert_eq!(safe_file_name(b".hidden"), "hidden");
        assert_eq!(safe_file_name(b"CON.txt"), "_CON.txt");
        assert_eq!(safe_file_name(b"nul"), "_nul");
        assert_eq!(safe_file_name(b"a b$c.txt"), "a b_c.txt");
        assert_eq!(safe_file_name(b"dir/"), "file");
        assert_eq!(safe_file_name(&[b'x'; 254]).len(), 200);
        assert_eq!(
            safe_file_name(b"New_product_spec.docx"),
            "New_product_spec.docx"
        );
    }
}
