//! [`Metadata`] in SQLite: `defensive.db` with the `clients` and `files` tables of the
//! protocol, plus `intents` (commits under way) and `versions` (replaced verified
//! content, [`versions`]).

mod commit;
mod schema;
mod versions;

use std::collections::HashSet;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use protocol_core::ClientId;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use thiserror::Error;

use super::{
    ClientRow, FileRecord, Intent, KeyOutcome, MetaError, Metadata, Registration, Removed,
    Restored, Switch, Version, VersionTotals,
};
use versions::{still_named, unnamed_objects};

/// The schema version this build writes (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = 6;

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

/// `defensive.db`, shared by every connection (SQLite serialises writers anyway).
pub struct SqliteMetadata {
    db: Mutex<Connection>,
}

trait Ctx<T> {
    fn ctx(self, what: &'static str) -> Result<T, MetaError>;
}

impl<T> Ctx<T> for Result<T, rusqlite::Error> {
    fn ctx(self, what: &'static str) -> Result<T, MetaError> {
        self.map_err(|e| MetaError::backend(what, e))
    }
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

    /// `PRAGMA quick_check`: "ok", or what is damaged.
    pub fn quick_check(&self) -> Result<String, MetaError> {
        self.db()
            .query_row("PRAGMA quick_check", [], |r| r.get::<_, String>(0))
            .ctx("checking the database")
    }

    /// Commits under way (intents not cleared): non-zero only while a server commits,
    /// or after a crash until the next start.
    pub fn pending_intents(&self) -> Result<u64, MetaError> {
        self.db()
            .query_row("SELECT COUNT(*) FROM intents", [], |r| r.get::<_, i64>(0))
            .map(|n| n.max(0) as u64)
            .ctx("counting commit intents")
    }

    fn db(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves SQLite consistent (each call is one
        // statement or one transaction), so a poisoned lock is still usable.
        self.db.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn client_id(bytes: Vec<u8>) -> ClientId {
    ClientId(bytes.try_into().unwrap_or([0; 16]))
}

fn file_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<FileRecord> {
    Ok(FileRecord {
        client: client_id(r.get(0)?),
        file_name: r.get(1)?,
        object: r.get(2)?,
        verified: r.get(3)?,
        size: r.get::<_, i64>(4)?.max(0) as u64,
        checksum: r.get::<_, Option<i64>>(5)?.map(|c| c as u32),
        updated: r.get::<_, Option<String>>(6)?.unwrap_or_default(),
    })
}

const FILE_COLUMNS: &str = "ID, FileName, PathName, Verified, Size, Checksum, Updated";

impl Metadata for SqliteMetadata {
    fn register(
        &self,
        id: &ClientId,
        name: &str,
        hold: Duration,
    ) -> Result<Registration, MetaError> {
        let mut db = self.db();
        let tx = db.transaction().ctx("starting a registration")?;
        let existing: Option<(bool, i64)> = tx
            .query_row(
                "SELECT PublicKey IS NOT NULL, \
                 CAST((julianday('now') - julianday(COALESCE(Registered, LastSeen))) * 86400 AS INTEGER) \
                 FROM clients WHERE Name = ?1",
                [name],
                |r| Ok((r.get(0)?, r.get::<_, Option<i64>>(1)?.unwrap_or(0))),
            )
            .optional()
            .ctx("looking up the name")?;
        match existing {
            Some((true, _)) => return Ok(Registration::NameTaken),
            // Held for the client that registered it, until it sends its key or the
            // hold time passes.
            Some((false, age)) if (age.max(0) as u64) < hold.as_secs() => {
                return Ok(Registration::NameTaken)
            }
            Some((false, _)) => {
                tx.execute(
                    "DELETE FROM clients WHERE Name = ?1 AND PublicKey IS NULL \
                     AND ID NOT IN (SELECT ID FROM files) \
                     AND ID NOT IN (SELECT ID FROM versions)",
                    [name],
                )
                .ctx("freeing an expired registration")?;
            }
            None => {}
        }
        let inserted = tx.execute(
            "INSERT INTO clients (ID, Name, LastSeen, Registered) \
             VALUES (?1, ?2, datetime('now'), datetime('now'))",
            params![&id.0[..], name],
        );
        match inserted {
            Ok(_) => {}
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                return Ok(Registration::NameTaken)
            }
            Err(e) => return Err(e).ctx("inserting the client"),
        }
        tx.commit().ctx("committing the registration")?;
        Ok(Registration::Registered)
    }

    fn set_keys(
        &self,
        id: &ClientId,
        name: &str,
        public_key: &[u8],
        aes_key: &[u8],
    ) -> Result<KeyOutcome, MetaError> {
        let mut db = self.db();
        let tx = db.transaction().ctx("starting to store keys")?;
        let on_file: Option<Option<Vec<u8>>> = tx
            .query_row(
                "SELECT PublicKey FROM clients WHERE ID = ?1 AND Name = ?2",
                params![&id.0[..], name],
                |r| r.get(0),
            )
            .optional()
            .ctx("looking up the client")?;
        match on_file {
            None => return Ok(KeyOutcome::Unknown),
            Some(Some(k)) if k != public_key => return Ok(KeyOutcome::DifferentKeyOnFile),
            Some(_) => {}
        }
        tx.execute(
            "UPDATE clients SET PublicKey = ?3, AESKey = ?4, AESKeyIssued = datetime('now'), KeyUses = 0, \
             LastSeen = datetime('now') WHERE ID = ?1 AND Name = ?2",
            params![&id.0[..], name, public_key, aes_key],
        )
        .ctx("storing the keys")?;
        tx.commit().ctx("committing the keys")?;
        Ok(KeyOutcome::Stored)
    }

    fn public_key(&self, id: &ClientId, name: &str) -> Result<Option<Vec<u8>>, MetaError> {
        self.db()
            .query_row(
                "SELECT PublicKey FROM clients WHERE ID = ?1 AND Name = ?2",
                params![&id.0[..], name],
                |r| r.get::<_, Option<Vec<u8>>>(0),
            )
            .optional()
            .map(Option::flatten)
            .ctx("looking up the public key")
    }

    fn set_aes_key(&self, id: &ClientId, aes_key: &[u8]) -> Result<bool, MetaError> {
        let n = self
            .db()
            .execute(
                "UPDATE clients SET AESKey = ?2, AESKeyIssued = datetime('now'), KeyUses = 0 \
                 WHERE ID = ?1",
                params![&id.0[..], aes_key],
            )
            .ctx("storing the AES key")?;
        Ok(n == 1)
    }

    fn aes_key(&self, id: &ClientId) -> Result<Option<(Vec<u8>, u64)>, MetaError> {
        self.db()
            .query_row(
                "SELECT AESKey, \
                 CAST((julianday('now') - julianday(COALESCE(AESKeyIssued, LastSeen))) * 86400 AS INTEGER) \
                 FROM clients WHERE ID = ?1",
                [&id.0[..]],
                |r| Ok((r.get::<_, Option<Vec<u8>>>(0)?, r.get::<_, Option<i64>>(1)?)),
            )
            .optional()
            .map(|row| match row {
                Some((Some(key), age)) => Some((key, age.unwrap_or(0).max(0) as u64)),
                _ => None,
            })
            .ctx("looking up the AES key")
    }

    fn revoke_aes_key(&self, id: &ClientId) -> Result<(), MetaError> {
        self.db()
            .execute(
                "UPDATE clients SET AESKey = NULL WHERE ID = ?1",
                [&id.0[..]],
            )
            .ctx("revoking the AES key")?;
        Ok(())
    }

    fn count_checked_upload(
        &self,
        id: &ClientId,
        aes_key: &[u8],
    ) -> Result<Option<u32>, MetaError> {
        self.db()
            .query_row(
                "UPDATE clients SET KeyUses = KeyUses + 1 \
                 WHERE ID = ?1 AND AESKey = ?2 RETURNING KeyUses",
                params![&id.0[..], aes_key],
                |r| r.get::<_, i64>(0),
            )
            .optional()
            .map(|n| n.map(|n| u32::try_from(n).unwrap_or(u32::MAX)))
            .ctx("counting a checked upload")
    }

    fn touch(&self, id: &ClientId) -> Result<(), MetaError> {
        self.db()
            .execute(
                "UPDATE clients SET LastSeen = datetime('now') WHERE ID = ?1",
                [&id.0[..]],
            )
            .ctx("updating LastSeen")?;
        Ok(())
    }

    fn set_dialect(&self, id: &ClientId, dialect: &str) -> Result<(), MetaError> {
        self.db()
            .execute(
                "UPDATE clients SET Dialect = ?2 WHERE ID = ?1",
                params![&id.0[..], dialect],
            )
            .ctx("recording the dialect seen")?;
        Ok(())
    }

    fn expire_registrations(&self, hold: Duration) -> Result<Vec<String>, MetaError> {
        let mut db = self.db();
        let tx = db.transaction().ctx("starting to expire registrations")?;
        let cond = "PublicKey IS NULL AND ID NOT IN (SELECT ID FROM files) AND \
                    ID NOT IN (SELECT ID FROM versions) AND \
                    (julianday('now') - julianday(COALESCE(Registered, LastSeen))) * 86400 >= ?1";
        let names = {
            let mut st = tx
                .prepare(&format!("SELECT Name FROM clients WHERE {cond}"))
                .ctx("finding expired registrations")?;
            let rows = st
                .query_map([hold.as_secs() as i64], |r| r.get::<_, String>(0))
                .ctx("finding expired registrations")?;
            rows.collect::<Result<Vec<_>, _>>()
                .ctx("finding expired registrations")?
        };
        if !names.is_empty() {
            tx.execute(
                &format!("DELETE FROM clients WHERE {cond}"),
                [hold.as_secs() as i64],
            )
            .ctx("removing expired registrations")?;
        }
        tx.commit().ctx("committing expired registrations")?;
        Ok(names)
    }

    fn clients(&self) -> Result<Vec<ClientRow>, MetaError> {
        let db = self.db();
        let mut st = db
            .prepare(
                "SELECT c.ID, c.Name, c.PublicKey IS NOT NULL, c.LastSeen, \
                 CASE WHEN c.AESKey IS NULL THEN NULL ELSE CAST((julianday('now') - \
                 julianday(COALESCE(c.AESKeyIssued, c.LastSeen))) * 86400 AS INTEGER) END, \
                 (SELECT COUNT(*) FROM files f WHERE f.ID = c.ID), \
                 (SELECT COALESCE(SUM(Size), 0) FROM files f WHERE f.ID = c.ID), \
                 c.Dialect FROM clients c ORDER BY c.Name",
            )
            .ctx("listing clients")?;
        let rows = st
            .query_map([], |r| {
                Ok(ClientRow {
                    id: client_id(r.get(0)?),
                    name: r.get(1)?,
                    has_key: r.get(2)?,
                    last_seen: r.get(3)?,
                    aes_key_age: r.get::<_, Option<i64>>(4)?.map(|a| a.max(0) as u64),
                    files: r.get::<_, i64>(5)?.max(0) as u64,
                    bytes: r.get::<_, i64>(6)?.max(0) as u64,
                    dialect: r.get(7)?,
                })
            })
            .ctx("listing clients")?;
        rows.collect::<Result<_, _>>().ctx("listing clients")
    }

    fn file(&self, id: &ClientId, file_name: &str) -> Result<Option<FileRecord>, MetaError> {
        self.db()
            .query_row(
                &format!("SELECT {FILE_COLUMNS} FROM files WHERE ID = ?1 AND FileName = ?2"),
                params![&id.0[..], file_name],
                file_row,
            )
            .optional()
            .ctx("looking up a file")
    }

    fn files(&self, client: Option<&ClientId>) -> Result<Vec<FileRecord>, MetaError> {
        let db = self.db();
        let mut st = db
            .prepare(&format!(
                "SELECT {FILE_COLUMNS} FROM files WHERE ?1 IS NULL OR ID = ?1 ORDER BY ID, FileName"
            ))
            .ctx("listing files")?;
        let filter = client.map(|c| c.0.to_vec());
        let rows = st.query_map([filter], file_row).ctx("listing files")?;
        rows.collect::<Result<_, _>>().ctx("listing files")
    }

    fn delete_file(&self, id: &ClientId, file_name: &str) -> Result<Option<Removed>, MetaError> {
        let mut db = self.db();
        let tx = db.transaction().ctx("starting to delete a file")?;
        let removed = versions::delete_file(&tx, &id.0[..], file_name)?;
        tx.commit().ctx("committing the deletion")?;
        Ok(removed)
    }

    fn remove_client(&self, id: &ClientId) -> Result<Option<Removed>, MetaError> {
        let mut db = self.db();
        let tx = db.transaction().ctx("starting to remove a client")?;
        let files = {
            let mut st = tx
                .prepare(&format!("SELECT {FILE_COLUMNS} FROM files WHERE ID = ?1"))
                .ctx("listing the client's files")?;
            let rows = st
                .query_map([&id.0[..]], file_row)
                .ctx("listing the client's files")?;
            rows.collect::<Result<Vec<_>, _>>()
                .ctx("listing the client's files")?
        };
        tx.execute("DELETE FROM files WHERE ID = ?1", [&id.0[..]])
            .ctx("removing the client's files")?;
        let versions = versions::remove(&tx, &id.0[..], None)?;
        let n = tx
            .execute("DELETE FROM clients WHERE ID = ?1", [&id.0[..]])
            .ctx("removing the client")?;
        if n == 0 {
            return Ok(None);
        }
        let objects = unnamed_objects(&tx, &files, &versions)?;
        tx.commit().ctx("committing the removal")?;
        Ok(Some(Removed {
            files,
            versions,
            objects,
        }))
    }

    fn prune_unverified(&self, older_than: Duration) -> Result<Removed, MetaError> {
        let mut db = self.db();
        let tx = db.transaction().ctx("starting to prune")?;
        let cond = "Verified = 0 AND (Updated IS NULL OR \
                    (julianday('now') - julianday(Updated)) * 86400 >= ?1)";
        let secs = older_than.as_secs().min(i64::MAX as u64) as i64;
        let files = {
            let mut st = tx
                .prepare(&format!("SELECT {FILE_COLUMNS} FROM files WHERE {cond}"))
                .ctx("finding unverified files")?;
            let rows = st
                .query_map([secs], file_row)
                .ctx("finding unverified files")?;
            rows.collect::<Result<Vec<_>, _>>()
                .ctx("finding unverified files")?
        };
        tx.execute(&format!("DELETE FROM files WHERE {cond}"), [secs])
            .ctx("removing unverified files")?;
        let objects = unnamed_objects(&tx, &files, &[])?;
        tx.commit().ctx("committing the prune")?;
        Ok(Removed {
            files,
            versions: Vec::new(),
            objects,
        })
    }

    fn referenced_objects(&self) -> Result<HashSet<String>, MetaError> {
        let db = self.db();
        let mut st = db
            .prepare(
                "SELECT PathName FROM files UNION SELECT PathName FROM versions \
                 UNION SELECT Object FROM intents \
                 UNION SELECT Replaced FROM intents WHERE Replaced IS NOT NULL",
            )
            .ctx("listing referenced objects")?;
        let rows = st
            .query_map([], |r| r.get::<_, String>(0))
            .ctx("listing referenced objects")?;
        rows.collect::<Result<_, _>>()
            .ctx("listing referenced objects")
    }

    fn versions(
        &self,
        client: Option<&ClientId>,
        file_name: Option<&str>,
    ) -> Result<Vec<Version>, MetaError> {
        versions::list(&self.db(), client.map(|c| &c.0[..]), file_name)
    }

    fn version_totals(&self) -> Result<VersionTotals, MetaError> {
        versions::totals(&self.db())
    }

    fn restore_version(
        &self,
        id: &ClientId,
        file_name: &str,
        version: u64,
    ) -> Result<Option<Restored>, MetaError> {
        versions::restore(&mut self.db(), &id.0[..], file_name, version)
    }

    fn prune_versions(&self, keep: usize, older_than: Duration) -> Result<Removed, MetaError> {
        versions::prune(&mut self.db(), keep, older_than)
    }

    fn record_intent(&self, i: &Intent) -> Result<(), MetaError> {
        self.db()
            .execute(
                "INSERT INTO intents (IntentID, ID, FileName, Upload, Object, Verified, Size, \
                 Checksum, Replaced, Switched) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, NULL, 0)",
                params![
                    i.id,
                    &i.client.0[..],
                    i.file_name,
                    i.upload,
                    i.object,
                    i.verified,
                    i.size as i64,
                    i.checksum as i64
                ],
            )
            .ctx("recording a commit intent")?;
        Ok(())
    }

    fn switch(&self, i: &Intent) -> Result<Switch, MetaError> {
        commit::switch(&mut self.db(), i)
    }

    fn clear_intent(&self, id: &str) -> Result<(), MetaError> {
        self.db()
            .execute("DELETE FROM intents WHERE IntentID = ?1", [id])
            .ctx("clearing a commit intent")?;
        Ok(())
    }

    fn claim_intent(&self, i: &Intent) -> Result<bool, MetaError> {
        let n = self
            .db()
            .execute(
                "DELETE FROM intents WHERE IntentID = ?1 AND Switched = ?2",
                params![i.id, i.switched],
            )
            .ctx("claiming a commit intent")?;
        Ok(n == 1)
    }

    /// Every intent: SQLite serves one process (its folder is locked), which
    /// reconciles before serving, so no commit of another process can be running.
    fn stale_intents(&self, _older_than: Duration) -> Result<Vec<Intent>, MetaError> {
        self.intents()
    }

    fn intents(&self) -> Result<Vec<Intent>, MetaError> {
        let db = self.db();
        let mut st = db
            .prepare(
                "SELECT IntentID, ID, FileName, Upload, Object, Verified, Size, Checksum, \
                 Replaced, Switched FROM intents",
            )
            .ctx("listing commit intents")?;
        let rows = st
            .query_map([], |r| {
                Ok(Intent {
                    id: r.get(0)?,
                    client: client_id(r.get(1)?),
                    file_name: r.get(2)?,
                    upload: r.get(3)?,
                    object: r.get(4)?,
                    verified: r.get(5)?,
                    size: r.get::<_, i64>(6)?.max(0) as u64,
                    checksum: r.get::<_, i64>(7)? as u32,
                    replaced: r.get(8)?,
                    switched: r.get(9)?,
                })
            })
            .ctx("listing commit intents")?;
        rows.collect::<Result<_, _>>().ctx("listing commit intents")
    }
}
