//! Which server `me.info` belongs to: `me.server` beside it, one line `host:port`.
//!
//! Kept apart from `me.info` so that `me.info` keeps its classic three lines, which
//! other implementations read (they take every line from the third on as the key).
//! A `me.info` without `me.server` (written by another client, or before this file
//! existed) belongs to no known server.

use std::path::{Path, PathBuf};

/// The file's name in the client's folder.
pub const FILE_NAME: &str = "me.server";

pub fn path(dir: &Path) -> PathBuf {
    dir.join(FILE_NAME)
}

/// The server recorded for the identity in `dir`, if any (none when there is no
/// `me.server`; an error when there is one that cannot be read, or one far too big).
pub fn read(dir: &Path) -> anyhow::Result<Option<String>> {
    let path = path(dir);
    let text = match crate::info::read_limited(&path, crate::info::MAX_INFO_BYTES) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(anyhow::Error::new(e).context(format!("cannot read {}", path.display())))
        }
    };
    let line = text.lines().next().unwrap_or("").trim();
    Ok((!line.is_empty()).then(|| line.to_string()))
}

/// Records `server` as the one `me.info` in `dir` belongs to. Written as the key files
/// are (a fresh temporary name created exclusively, then a rename), so a file or link
/// planted under any name in the folder is never written through.
pub fn write(dir: &Path, server: &str) -> anyhow::Result<()> {
    crate::info::write_secret(&path(dir), format!("{server}\n").as_bytes())
}
