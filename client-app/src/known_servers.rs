//! `known_servers` in the client's folder: the servers whose identity this client has
//! pinned, as OpenSSH's `known_hosts` holds host keys.
//!
//! One line per server, `host:port SHA256:<64 hex digits>` (the SHA-256 of the
//! server's certificate, as `openssl x509 -noout -fingerprint -sha256` prints it,
//! colons and case aside); blank lines and lines starting with `#` are ignored. A
//! server is pinned the first time the client reaches it over TLS (the line is
//! appended), and from then on only that certificate is accepted for it.
//!
//! A line that cannot be read fails the run rather than being skipped: a pin that is
//! silently ignored would make its server a first use again, which is what pinning
//! exists to prevent.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use transport_std::Fingerprint;

/// The file's name in the client's folder.
pub const FILE_NAME: &str = "known_servers";

/// The most the file may hold: a line is about 90 bytes, so this is thousands of
/// servers; anything bigger is not ours (a link to `/dev/zero` fails at once).
const MAX_BYTES: u64 = 1024 * 1024;

/// What a new file starts with.
const HEADER: &str = "\
# Servers this client has pinned: host:port SHA256:<fingerprint of its certificate>.
# A server's line is added the first time the client reaches it; afterwards a server
# that shows another certificate is refused. Remove a line only once you know why
# that server's identity changed (docs/SECURITY.md, \"Pinning the server's identity\").
";

/// The file in `dir`.
pub fn path(dir: &Path) -> PathBuf {
    dir.join(FILE_NAME)
}

/// A server's pinned fingerprint, and where it is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pin {
    /// The fingerprint the server must show.
    pub fingerprint: Fingerprint,
    /// Its line in the file, counted from 1.
    pub line: usize,
}

/// Whether two `host:port` name the same entry: host names are not case-sensitive.
fn same_server(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// The file's text, or none when it does not exist.
fn read_text(dir: &Path) -> anyhow::Result<Option<String>> {
    let path = path(dir);
    match crate::info::read_limited(&path, MAX_BYTES) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(anyhow::Error::new(e).context(format!("cannot read {}", path.display()))),
    }
}

/// The pin of `server` (`host:port`) in `dir`'s known_servers: none when the file
/// does not exist or has no line for it (the first line for it counts). An error
/// when the file cannot be read or any line is not `host:port SHA256:<hex>`.
pub fn lookup(dir: &Path, server: &str) -> anyhow::Result<Option<Pin>> {
    let Some(text) = read_text(dir)? else {
        return Ok(None);
    };
    let mut found = None;
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let number = index + 1;
        let mut words = line.split_whitespace();
        let (Some(host_port), Some(shown), None) = (words.next(), words.next(), words.next())
        else {
            bail!(
                "{} line {number} must be host:port and SHA256:<fingerprint>, found {line:?}",
                path(dir).display()
            );
        };
        let fingerprint: Fingerprint = shown.parse().with_context(|| {
            format!(
                "{} line {number} does not end with a fingerprint",
                path(dir).display()
            )
        })?;
        if found.is_none() && same_server(host_port, server) {
            found = Some(Pin {
                fingerprint,
                line: number,
            });
        }
    }
    Ok(found)
}

/// Appends `server fingerprint` to `dir`'s known_servers (creating it), and returns
/// the line's number. The whole file is written anew beside the old one, fsynced and
/// renamed over it (then the folder fsynced), so a crash leaves the old file or the
/// new one, never a torn line that would fail every later run.
pub fn add(dir: &Path, server: &str, fingerprint: Fingerprint) -> anyhow::Result<usize> {
    let mut text = read_text(dir)?.unwrap_or_else(|| HEADER.to_string());
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&format!("{server} {fingerprint}\n"));
    crate::info::write_secret(&path(dir), text.as_bytes())?;
    Ok(text.lines().count())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(byte: u8) -> Fingerprint {
        Fingerprint::of_certificate(&[byte])
    }

    #[test]
    fn first_use_appends_and_later_lookups_find_it() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(lookup(dir.path(), "h:1").unwrap(), None);
        let line = add(dir.path(), "h:1", fp(1)).unwrap();
        let line2 = add(dir.path(), "other.example:2", fp(2)).unwrap();
        assert_eq!(line2, line + 1);
        let text = std::fs::read_to_string(path(dir.path())).unwrap();
        assert!(
            text.starts_with("# Servers this client has pinned"),
            "{text}"
        );
        assert_eq!(
            text.lines().nth(line - 1),
            Some(format!("h:1 {}", fp(1)).as_str())
        );
        assert_eq!(
            lookup(dir.path(), "h:1").unwrap(),
            Some(Pin {
                fingerprint: fp(1),
                line
            })
        );
        assert_eq!(
            lookup(dir.path(), "OTHER.example:2")
                .unwrap()
                .unwrap()
                .fingerprint,
            fp(2)
        );
        assert_eq!(lookup(dir.path(), "h:2").unwrap(), None);
        // No temporary file is left beside it.
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn written_by_hand_with_comments_and_openssl_colons() {
        let dir = tempfile::tempdir().unwrap();
        let colons = fp(3).as_bytes().map(|b| format!("{b:02X}")).join(":");
        std::fs::write(
            path(dir.path()),
            format!("# mine\n\n  h:1   sha256:{colons}  \nh:1 {}", fp(4)),
        )
        .unwrap();
        // The first line for a server counts.
        assert_eq!(
            lookup(dir.path(), "h:1").unwrap(),
            Some(Pin {
                fingerprint: fp(3),
                line: 3
            })
        );
        // A file without a final newline gets one before the new line.
        let line = add(dir.path(), "h:2", fp(5)).unwrap();
        assert_eq!(line, 5);
        assert_eq!(lookup(dir.path(), "h:2").unwrap().unwrap().line, 5);
    }

    #[test]
    fn a_damaged_line_fails_rather_than_unpinning() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(path(dir.path()), format!("h:1 {}\nh:2 SHA256:abc\n", fp(1))).unwrap();
        let e = format!("{:#}", lookup(dir.path(), "h:2").unwrap_err());
        assert!(e.contains("line 2"), "{e}");
        std::fs::write(path(dir.path()), "h:1\n").unwrap();
        let e = format!("{:#}", lookup(dir.path(), "h:1").unwrap_err());
        assert!(e.contains("line 1 must be host:port"), "{e}");
        std::fs::write(path(dir.path()), format!("h:1 {} extra\n", fp(1))).unwrap();
        assert!(lookup(dir.path(), "h:1").is_err());
    }
}
