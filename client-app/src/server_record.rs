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

/// The server recorded for the identity in `dir`, if any.
pub fn read(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path(dir)).ok()?;
    let line = text.lines().next()?.trim();
    (!line.is_empty()).then(|| line.to_string())
}

/// Records `server` as the one `me.info` in `dir` belongs to.
pub fn write(dir: &Path, server: &str) -> std::io::Result<()> {
    let tmp = dir.join(format!("{FILE_NAME}.tmp"));
    std::fs::write(&tmp, format!("{server}\n"))?;
    std::fs::rename(&tmp, path(dir))
}
