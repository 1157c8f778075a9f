//! Opening `defensive.db`: for a server (checked, then migrated), in memory, read-only
//! for listings, read-write for operator commands; and why it cannot be opened.

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use thiserror::Error;

use super::{schema, SqliteMetadata, SCHEMA_VERSION};

/// Why the database cannot be used; each says what is wrong and what to do.
#[derive(Debug, Error)]
pub enum OpenError {
    /// No database where one was expected (listing commands).
    #[error("no database at {0}: run this in the server's folder, or pass --dir")]
    Missing(String),
    /// Not a database, or damaged.
    #[error(
        "{path} is damaged ({detail}): restore it from a backup, or move it aside to start empty"
    )]
    Corrupt {
        /// The file.
        path: String,
        /// What SQLite said.
        detail: String,
    },
    /// Cannot be written.
    #[error("{path} cannot be written ({detail}): check its permissions and free space")]
    ReadOnly {
        /// The file.
        path: String,
        /// What failed.
        detail: String,
    },
    /// Written by a newer server.
    #[error(
        "{path} has schema version {found}, newer than this server's {known}: run the newer server"
    )]
    Newer {
        /// The file.
        path: String,
        /// Its version.
        found: i64,
        /// This build's.
        known: i64,
    },
    /// Anything else SQLite refused.
    #[error("cannot open {path}: {detail}")]
    Other {
        /// The file.
        path: String,
        /// What SQLite said.
        detail: String,
    },
}

fn is_corruption(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt)
    )
}

impl SqliteMetadata {
    /// Opens (creating if needed) the database for a server: checks it is sound
    /// (`quick_check`), writable and not newer than this build, before anything in it
    /// is changed; then brings the schema up to date.
    pub fn open(path: &Path) -> Result<SqliteMetadata, OpenError> {
        let shown = path.display().to_string();
        let other = |e: rusqlite::Error| OpenError::Other {
            path: shown.clone(),
            detail: e.to_string(),
        };
        let corrupt_or = |e: rusqlite::Error| {
            if is_corruption(&e) {
                OpenError::Corrupt {
                    path: shown.clone(),
                    detail: e.to_string(),
                }
            } else {
                other(e)
            }
        };
        if !path.exists() {
            // Created readable by this user only before SQLite opens it: SQLite gives
            // the -wal and -shm files the same permissions as the database.
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| OpenError::ReadOnly {
                    path: shown.clone(),
                    detail: e.to_string(),
                })?;
        }
        // Writable at all? (Opening for writing changes nothing; SQLite would fall
        // back to read-only, or fail to open its WAL, with a vaguer message.)
        std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| OpenError::ReadOnly {
                path: shown.clone(),
                detail: e.to_string(),
            })?;
        let db = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(corrupt_or)?;
        db.busy_timeout(Duration::from_secs(5)).map_err(other)?;
        let version: i64 = db
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(corrupt_or)?;
        if version > SCHEMA_VERSION {
            return Err(OpenError::Newer {
                path: shown,
                found: version,
                known: SCHEMA_VERSION,
            });
        }
        let check: String = db
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .map_err(corrupt_or)?;
        if check != "ok" {
            return Err(OpenError::Corrupt {
                path: shown,
                detail: format!("quick_check: {}", check.replace('\n', " ")),
            });
        }
        if db.is_readonly(rusqlite::MAIN_DB).unwrap_or(true) {
            return Err(OpenError::ReadOnly {
                path: shown,
                detail: "opened read-only".into(),
            });
        }
        // A real write (the same version back), inside a transaction rolled back.
        db.execute_batch(&format!(
            "BEGIN IMMEDIATE; PRAGMA user_version = {version}; ROLLBACK;"
        ))
        .map_err(|e| OpenError::ReadOnly {
            path: shown.clone(),
            detail: e.to_string(),
        })?;
        // WAL; synchronous=FULL so that a committed switch survives a power cut as
        // well as a process crash before 1604 is sent (0.3 ms per commit here).
        db.pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| OpenError::ReadOnly {
                path: shown.clone(),
                detail: e.to_string(),
            })?;
        db.pragma_update(None, "synchronous", "FULL")
            .map_err(other)?;
        schema::migrate(&db, version).map_err(|e| OpenError::Other {
            path: shown.clone(),
            detail: e.to_string(),
        })?;
        Ok(SqliteMetadata { db: Mutex::new(db) })
    }

    /// A fresh database in memory, gone when dropped: the metadata of a test or an
    /// example, with the file backend's schema and queries.
    pub fn in_memory() -> Result<SqliteMetadata, OpenError> {
        let other = |e: rusqlite::Error| OpenError::Other {
            path: ":memory:".into(),
            detail: e.to_string(),
        };
        let db = Connection::open_in_memory().map_err(other)?;
        schema::migrate(&db, 0).map_err(other)?;
        Ok(SqliteMetadata { db: Mutex::new(db) })
    }

    /// Opens an existing database for reading only (listings): never creates one.
    pub fn open_read_only(path: &Path) -> Result<SqliteMetadata, OpenError> {
        let shown = path.display().to_string();
        if !path.is_file() {
            return Err(OpenError::Missing(shown));
        }
        let db = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| OpenError::Other {
            path: shown.clone(),
            detail: e.to_string(),
        })?;
        let version: i64 = db
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(|e| OpenError::Corrupt {
                path: shown.clone(),
                detail: e.to_string(),
            })?;
        if version > SCHEMA_VERSION {
            return Err(OpenError::Newer {
                path: shown,
                found: version,
                known: SCHEMA_VERSION,
            });
        }
        if version < SCHEMA_VERSION {
            return Err(OpenError::Other {
                path: shown,
                detail: format!(
                    "schema version {version} is older than {SCHEMA_VERSION}: start the server once to upgrade it"
                ),
            });
        }
        Ok(SqliteMetadata { db: Mutex::new(db) })
    }

    /// Opens an existing database for reading and writing (operator commands): never
    /// creates one, never migrates; the schema must be this build's. Waits up to 5 s
    /// for a running server's transaction (WAL lets readers and one writer share it).
    pub fn open_existing(path: &Path) -> Result<SqliteMetadata, OpenError> {
        // The read-only open says what is wrong with a missing or foreign file.
        drop(SqliteMetadata::open_read_only(path)?);
        let shown = path.display().to_string();
        let db = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| OpenError::Other {
            path: shown.clone(),
            detail: e.to_string(),
        })?;
        db.busy_timeout(Duration::from_secs(5))
            .map_err(|e| OpenError::Other {
                path: shown.clone(),
                detail: e.to_string(),
            })?;
        if db.is_readonly(rusqlite::MAIN_DB).unwrap_or(true) {
            return Err(OpenError::ReadOnly {
                path: shown,
                detail: "opened read-only".into(),
            });
        }
        Ok(SqliteMetadata { db: Mutex::new(db) })
    }
}
