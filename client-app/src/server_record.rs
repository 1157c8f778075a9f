//! Which server `me.info` belongs to: `me.server` beside it. Line 1 is `host:port`;
//! an optional line 2, `dialect NAME`, is the preset that last worked with that server
//! (written by `--dialect auto`, tried first by the next auto run).
//!
//! Kept apart from `me.info` so that `me.info` keeps its classic three lines, which
//! other implementations read (they take every line from the third on as the key).
//! A `me.info` without `me.server` (written by another client, or before this file
//! existed) belongs to no known server. A `me.server` of one line (written before the
//! dialect line existed) reads as before, with no preset remembered; a line 2 this
//! version does not know is ignored, so older and newer clients share the folder.

use std::path::{Path, PathBuf};

use crate::dialect_presets::Preset;

/// The file's name in the client's folder.
pub const FILE_NAME: &str = "me.server";

/// The word that starts the dialect line.
const DIALECT_KEY: &str = "dialect";

pub fn path(dir: &Path) -> PathBuf {
    dir.join(FILE_NAME)
}

/// The file's lines, if it exists (an error when it cannot be read, or is far too big).
fn read_text(dir: &Path) -> anyhow::Result<Option<String>> {
    let path = path(dir);
    match crate::info::read_limited(&path, crate::info::MAX_INFO_BYTES) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(anyhow::Error::new(e).context(format!("cannot read {}", path.display()))),
    }
}

/// The server recorded for the identity in `dir`, if any (none when there is no
/// `me.server`; an error when there is one that cannot be read, or one far too big).
pub fn read(dir: &Path) -> anyhow::Result<Option<String>> {
    let Some(text) = read_text(dir)? else {
        return Ok(None);
    };
    let line = text.lines().next().unwrap_or("").trim();
    Ok((!line.is_empty()).then(|| line.to_string()))
}

/// The preset remembered for `server`: none when `me.server` is missing, names another
/// server, has no dialect line, or names a preset this version does not know.
pub fn read_dialect(dir: &Path, server: &str) -> Option<Preset> {
    let text = read_text(dir).ok()??;
    let mut lines = text.lines();
    if lines.next()?.trim() != server {
        return None;
    }
    let (key, name) = lines.next()?.trim().split_once(' ')?;
    (key == DIALECT_KEY)
        .then(|| Preset::from_name(name.trim()))
        .flatten()
}

/// Records `server` as the one `me.info` in `dir` belongs to, with the preset that
/// worked with it, if known. Written as the key files are (a fresh temporary name
/// created exclusively, then a rename), so a file or link planted under any name in
/// the folder is never written through.
pub fn write(dir: &Path, server: &str, dialect: Option<Preset>) -> anyhow::Result<()> {
    let text = match dialect {
        Some(p) => format!("{server}\n{DIALECT_KEY} {}\n", p.name()),
        None => format!("{server}\n"),
    };
    crate::info::write_secret(&path(dir), text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_files_read_and_the_dialect_belongs_to_its_server() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(path(dir.path()), "127.0.0.1:1256\n").unwrap();
        assert_eq!(read(dir.path()).unwrap().as_deref(), Some("127.0.0.1:1256"));
        assert_eq!(read_dialect(dir.path(), "127.0.0.1:1256"), None);
        write(dir.path(), "127.0.0.1:1256", Some(Preset::Padded)).unwrap();
        assert_eq!(read(dir.path()).unwrap().as_deref(), Some("127.0.0.1:1256"));
        assert_eq!(
            read_dialect(dir.path(), "127.0.0.1:1256"),
            Some(Preset::Padded)
        );
        assert_eq!(read_dialect(dir.path(), "127.0.0.1:1257"), None);
        std::fs::write(path(dir.path()), "h:1\ndialect future-thing\n").unwrap();
        assert_eq!(read_dialect(dir.path(), "h:1"), None);
    }
}
