//! `status`: the folder, the database's health, what is stored, disk use, and whether a
//! server is running on the folder.

use std::fs::{File, TryLockError};
use std::io::{Read, Write};
use std::path::Path;

use super::format::{bytes, json_opt, json_str};
use super::{AdminError, Stores};
use crate::app::DB_FILE;
use crate::identity::{self, Source};
use crate::storage::lock::LOCK_FILE;
use crate::storage::sqlite::SqliteMetadata;
use crate::storage::Metadata;

/// Whether a server holds the folder's lock.
#[derive(Debug, PartialEq, Eq)]
pub enum Server {
    /// A server holds `server.lock`; its pid as the file says.
    Running(String),
    /// Nobody holds it.
    NotRunning,
}

/// Looks at `server.lock` without creating it. A held lock is tested with a shared
/// lock taken and released at once (a server starting at that very instant would be
/// told the folder is in use, and can be started again).
pub fn server_on(dir: &Path) -> Result<Server, AdminError> {
    let mut file = match File::open(dir.join(LOCK_FILE)) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Server::NotRunning),
        Err(e) => return Err(e.into()),
    };
    match file.try_lock_shared() {
        Ok(()) => Ok(Server::NotRunning),
        Err(TryLockError::WouldBlock) => {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            let pid = pid.trim();
            Ok(Server::Running(if pid.is_empty() {
                "unknown".into()
            } else {
                pid.into()
            }))
        }
        Err(TryLockError::Error(e)) => Err(e.into()),
    }
}

/// Files and bytes under a folder (recursively); an absent folder holds nothing.
fn usage(path: &Path) -> (u64, u64) {
    let mut files = 0;
    let mut total = 0;
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            match entry.metadata() {
                Ok(m) if m.is_dir() => stack.push(entry.path()),
                Ok(m) => {
                    files += 1;
                    total += m.len();
                }
                Err(_) => {}
            }
        }
    }
    (files, total)
}

/// The TLS identity a server with the same options serves: its fingerprint, or
/// why there is none (a line of `status`, and its JSON value).
fn identity_of(folder: &Path, source: &Source) -> (String, Option<String>) {
    let cert = match source {
        Source::Off => return ("none: --no-tls, legacy only".into(), None),
        Source::Given { cert, .. } => cert.clone(),
        Source::Folder => folder.join(identity::TLS_DIR).join(identity::CERT_FILE),
    };
    if *source == Source::Folder && !cert.exists() {
        return (
            format!(
                "none yet ({} is made at the server's first start)",
                cert.display()
            ),
            None,
        );
    }
    match identity::fingerprint_of(&cert) {
        Ok(f) => (format!("{f} ({})", cert.display()), Some(f.to_string())),
        Err(e) => (format!("unreadable: {e}"), None),
    }
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// Prints the folder's status. Fails (after printing what it could) when the database
/// is missing or damaged.
pub fn status(at: &Stores, json: bool, out: &mut dyn Write) -> Result<(), AdminError> {
    if at.database.is_some() || at.files.is_some() {
        return Err(AdminError::Usage(
            "status describes a data folder and its own SQLite database; servers on \
             --database/--files report through --metrics (/healthz, /metrics), and \
             list-clients and list-files work on those stores"
                .into(),
        ));
    }
    let dir = at.dir.as_path();
    let folder = std::fs::canonicalize(dir)
        .map_err(|e| AdminError::Usage(format!("cannot use the folder {}: {e}", dir.display())))?;
    let server = server_on(&folder)?;
    let meta = SqliteMetadata::open_read_only(&folder.join(DB_FILE))?;
    let check = meta.quick_check()?;
    let clients = meta.clients()?;
    let files = meta.files(None)?;
    let pending = meta.pending_intents()?;
    let kept = meta.version_totals()?;
    let verified = files.iter().filter(|f| f.verified).count();
    let recorded: u64 = files.iter().map(|f| f.size).sum();
    let db_bytes = file_len(&folder.join(DB_FILE))
        + file_len(&folder.join(format!("{DB_FILE}-wal")))
        + file_len(&folder.join(format!("{DB_FILE}-shm")));
    let (objects, object_bytes) = usage(&folder.join("objects"));
    let (legacy, legacy_bytes) = usage(&folder.join("files"));
    let (uploads, upload_bytes) = usage(&folder.join("uploads"));
    let disk = rustix::fs::statvfs(&folder).ok().map(|s| {
        let unit = s.f_frsize.max(1);
        (
            s.f_bavail.saturating_mul(unit),
            s.f_blocks.saturating_mul(unit),
        )
    });
    let healthy = check == "ok";
    let (identity, fingerprint) = identity_of(&folder, &at.identity);
    if json {
        let (free, size) = match disk {
            Some((f, s)) => (f.to_string(), s.to_string()),
            None => ("null".into(), "null".into()),
        };
        let pid = match &server {
            Server::Running(pid) => Some(pid.as_str()),
            Server::NotRunning => None,
        };
        writeln!(
            out,
            "{{\"folder\":{},\"server_running\":{},\"server_pid\":{},\
             \"database\":{{\"path\":{},\"bytes\":{db_bytes},\"check\":{},\"healthy\":{healthy},\
             \"commits_under_way\":{pending}}},\"clients\":{},\"files\":{},\"verified\":{verified},\
             \"unverified\":{},\"bytes_recorded\":{recorded},\"versions\":{},\
             \"version_bytes\":{},\"objects\":{},\"object_bytes\":{},\
             \"uploads_in_progress\":{uploads},\"upload_bytes\":{upload_bytes},\
             \"disk_free\":{free},\"disk_size\":{size},\"identity\":{}}}",
            json_str(&folder.display().to_string()),
            pid.is_some(),
            json_opt(pid),
            json_str(&folder.join(DB_FILE).display().to_string()),
            json_str(&check),
            clients.len(),
            files.len(),
            files.len() - verified,
            kept.versions,
            kept.bytes,
            objects + legacy,
            object_bytes + legacy_bytes,
            json_opt(fingerprint.as_deref()),
        )?;
    } else {
        writeln!(out, "folder:    {}", folder.display())?;
        match &server {
            Server::Running(pid) => writeln!(out, "server:    running (pid {pid})")?,
            Server::NotRunning => writeln!(out, "server:    not running")?,
        }
        writeln!(out, "identity:  {identity}")?;
        writeln!(
            out,
            "database:  {} ({}), {}",
            DB_FILE,
            bytes(db_bytes),
            if healthy {
                "quick_check ok".to_string()
            } else {
                format!("DAMAGED: {}", check.replace('\n', " "))
            }
        )?;
        if pending > 0 {
            writeln!(
                out,
                "           {pending} commits under way (finished by the server, or at its next start)"
            )?;
        }
        writeln!(
            out,
            "stored:    {} clients, {} files ({verified} verified, {} unverified), {} ({recorded} bytes)",
            clients.len(),
            files.len(),
            files.len() - verified,
            bytes(recorded)
        )?;
        writeln!(
            out,
            "versions:  {} kept (replaced verified content), {} ({} bytes)",
            kept.versions,
            bytes(kept.bytes),
            kept.bytes
        )?;
        writeln!(
            out,
            "contents:  {} objects, {}; {uploads} uploads in progress, {}",
            objects + legacy,
            bytes(object_bytes + legacy_bytes),
            bytes(upload_bytes)
        )?;
        if let Some((free, size)) = disk {
            writeln!(out, "disk:      {} free of {}", bytes(free), bytes(size))?;
        }
    }
    if healthy {
        Ok(())
    } else {
        Err(AdminError::Failed(format!(
            "{} is damaged ({}): restore it from a backup",
            folder.join(DB_FILE).display(),
            check.replace('\n', " ")
        )))
    }
}
