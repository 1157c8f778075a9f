//! `defensive.db`: the `clients` and `files` tables of `docs/PROTOCOL.md`, in SQLite.

use std::path::Path;
use std::sync::Mutex;

use protocol_core::ClientId;
use rusqlite::{params, Connection, OptionalExtension};
use thiserror::Error;

/// The schema version this build writes (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = 2;

/// A database failure, with what was being done.
#[derive(Debug, Error)]
#[error("database: {what}: {source}")]
pub struct StoreError {
    what: &'static str,
    #[source]
    source: rusqlite::Error,
}

trait Ctx<T> {
    fn ctx(self, what: &'static str) -> Result<T, StoreError>;
}

impl<T> Ctx<T> for Result<T, rusqlite::Error> {
    fn ctx(self, what: &'static str) -> Result<T, StoreError> {
        self.map_err(|source| StoreError { what, source })
    }
}

/// What a registration did.
#[derive(Debug, PartialEq, Eq)]
pub enum Registration {
    /// A new client row.
    Registered,
    /// The name belongs to a client that has completed its key exchange.
    NameTaken,
}

/// One client, for listings.
#[derive(Debug)]
pub struct ClientRow {
    /// Id.
    pub id: ClientId,
    /// Name.
    pub name: String,
    /// Whether a public key is on file.
    pub has_key: bool,
    /// Last request, UTC.
    pub last_seen: String,
}

/// One stored file, for listings.
#[derive(Debug)]
pub struct FileRow {
    /// Owner.
    pub client: ClientId,
    /// Name as the client sent it.
    pub file_name: String,
    /// Path relative to the data folder.
    pub path: String,
    /// The client confirmed the checksum.
    pub verified: bool,
    /// Size in bytes.
    pub size: u64,
}

/// The database, shared by every connection (SQLite serialises writers anyway).
pub struct Store {
    db: Mutex<Connection>,
    /// Fault injection for tests: recording a file fails, as on a broken database.
    fail_file_records: std::sync::atomic::AtomicBool,
}

impl Store {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        // Created readable by this user only before SQLite opens it: SQLite gives the
        // -wal and -shm files the same permissions as the database.
        {
            use std::os::unix::fs::OpenOptionsExt;
            let _ = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(path);
        }
        let db = Connection::open(path).ctx("opening")?;
        db.busy_timeout(std::time::Duration::from_secs(5))
            .ctx("setting the busy timeout")?;
        // WAL with synchronous=NORMAL: a commit costs ~20 us and survives a process
        // crash; file contents are fsynced separately before they are confirmed.
        db.pragma_update(None, "journal_mode", "WAL")
            .ctx("enabling WAL")?;
        db.pragma_update(None, "synchronous", "NORMAL")
            .ctx("setting synchronous")?;
        let version: i64 = db
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .ctx("reading the schema version")?;
        if version > SCHEMA_VERSION {
            return Err(StoreError {
                what: "schema is newer than this server",
                source: rusqlite::Error::InvalidQuery,
            });
        }
        if version < 1 {
            db.execute_batch(
                "BEGIN;
                 CREATE TABLE IF NOT EXISTS clients (
                     ID BLOB PRIMARY KEY CHECK (length(ID) = 16),
                     Name TEXT NOT NULL UNIQUE CHECK (length(Name) <= 255),
                     PublicKey BLOB CHECK (PublicKey IS NULL OR length(PublicKey) = 160),
                     LastSeen TEXT NOT NULL,
                     AESKey BLOB CHECK (AESKey IS NULL OR length(AESKey) IN (16, 32))
                 );
                 CREATE TABLE IF NOT EXISTS files (
                     ID BLOB NOT NULL REFERENCES clients(ID),
                     FileName TEXT NOT NULL,
                     PathName TEXT NOT NULL,
                     Verified INTEGER NOT NULL DEFAULT 0,
                     Size INTEGER NOT NULL DEFAULT 0,
                     PRIMARY KEY (ID, FileName)
                 );
                 PRAGMA user_version = 1;
                 COMMIT;",
            )
            .ctx("creating the schema")?;
        }
        if version < 2 {
            // Version 2: when the AES key was issued, so that keys can expire.
            db.execute_batch(
                "BEGIN;
                 ALTER TABLE clients ADD COLUMN AESKeyIssued TEXT;
                 UPDATE clients SET AESKeyIssued = LastSeen WHERE AESKey IS NOT NULL;
                 PRAGMA user_version = 2;
                 COMMIT;",
            )
            .ctx("migrating the schema to version 2")?;
        }
        Ok(Store {
            db: Mutex::new(db),
            fail_file_records: std::sync::atomic::AtomicBool::new(false),
        })
    }

    fn db(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves SQLite consistent (each call is one
        // statement or one transaction), so a poisoned lock is still usable.
        self.db.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a client. A name whose earlier registration never sent its public key is
    /// taken over (that client cannot reconnect anyway); any other existing name is taken.
    pub fn register(&self, id: &ClientId, name: &str) -> Result<Registration, StoreError> {
        let mut db = self.db();
        let tx = db.transaction().ctx("starting a registration")?;
        let existing: Option<bool> = tx
            .query_row(
                "SELECT PublicKey IS NOT NULL FROM clients WHERE Name = ?1",
                [name],
                |r| r.get(0),
            )
            .optional()
            .ctx("looking up the name")?;
        match existing {
            Some(true) => return Ok(Registration::NameTaken),
            Some(false) => {
                tx.execute(
                    "DELETE FROM clients WHERE Name = ?1 AND PublicKey IS NULL \
                     AND ID NOT IN (SELECT ID FROM files)",
                    [name],
                )
                .ctx("replacing an unfinished registration")?;
            }
            None => {}
        }
        let inserted = tx.execute(
            "INSERT INTO clients (ID, Name, LastSeen) VALUES (?1, ?2, datetime('now'))",
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

    /// Stores the public key and AES key of `id` if it is registered as `name`.
    pub fn store_keys(
        &self,
        id: &ClientId,
        name: &str,
        public_key: &[u8],
        aes_key: &[u8],
    ) -> Result<bool, StoreError> {
        let n = self
            .db()
            .execute(
                "UPDATE clients SET PublicKey = ?3, AESKey = ?4, AESKeyIssued = datetime('now'), \
                 LastSeen = datetime('now') WHERE ID = ?1 AND Name = ?2",
                params![&id.0[..], name, public_key, aes_key],
            )
            .ctx("storing the keys")?;
        Ok(n == 1)
    }

    /// The public key on file for `id` registered as `name`.
    pub fn public_key(&self, id: &ClientId, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
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

    /// Replaces the AES key of `id`.
    pub fn store_aes_key(&self, id: &ClientId, aes_key: &[u8]) -> Result<bool, StoreError> {
        let n = self
            .db()
            .execute(
                "UPDATE clients SET AESKey = ?2, AESKeyIssued = datetime('now') WHERE ID = ?1",
                params![&id.0[..], aes_key],
            )
            .ctx("storing the AES key")?;
        Ok(n == 1)
    }

    /// The AES key last issued to `id` and its age in seconds, if the client exists
    /// and has one.
    pub fn aes_key(&self, id: &ClientId) -> Result<Option<(Vec<u8>, u64)>, StoreError> {
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

    /// Forgets the AES key of `id` (after a decryption failure under it).
    pub fn revoke_aes_key(&self, id: &ClientId) -> Result<(), StoreError> {
        self.db()
            .execute(
                "UPDATE clients SET AESKey = NULL WHERE ID = ?1",
                [&id.0[..]],
            )
            .ctx("revoking the AES key")?;
        Ok(())
    }

    /// Updates LastSeen of `id` (no-op for unknown ids).
    pub fn touch(&self, id: &ClientId) -> Result<(), StoreError> {
        self.db()
            .execute(
                "UPDATE clients SET LastSeen = datetime('now') WHERE ID = ?1",
                [&id.0[..]],
            )
            .ctx("updating LastSeen")?;
        Ok(())
    }

    /// Whether `id` has a verified file under `file_name`.
    pub fn is_verified(&self, id: &ClientId, file_name: &str) -> Result<bool, StoreError> {
        Ok(self
            .db()
            .query_row(
                "SELECT Verified FROM files WHERE ID = ?1 AND FileName = ?2",
                params![&id.0[..], file_name],
                |r| r.get::<_, bool>(0),
            )
            .optional()
            .ctx("looking up a file")?
            .unwrap_or(false))
    }

    /// Makes every later [`record_file`](Self::record_file) fail (fault tests).
    pub fn inject_record_failure(&self) {
        self.fail_file_records
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Records a stored file (one write transaction per file).
    pub fn record_file(
        &self,
        id: &ClientId,
        file_name: &str,
        path: &str,
        verified: bool,
        size: u64,
    ) -> Result<(), StoreError> {
        if self
            .fail_file_records
            .load(std::sync::atomic::Ordering::SeqCst)
        {
            return Err(StoreError {
                what: "recording the file (injected fault)",
                source: rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_IOERR),
                    Some("disk I/O error".into()),
                ),
            });
        }
        self.db()
            .execute(
                "INSERT INTO files (ID, FileName, PathName, Verified, Size) \
                 VALUES (?1, ?2, ?3, ?4, ?5) \
                 ON CONFLICT (ID, FileName) DO UPDATE SET \
                 PathName = excluded.PathName, Verified = excluded.Verified, Size = excluded.Size",
                params![&id.0[..], file_name, path, verified, size as i64],
            )
            .ctx("recording the file")?;
        Ok(())
    }

    /// Every client, by name.
    pub fn clients(&self) -> Result<Vec<ClientRow>, StoreError> {
        let db = self.db();
        let mut st = db
            .prepare("SELECT ID, Name, PublicKey IS NOT NULL, LastSeen FROM clients ORDER BY Name")
            .ctx("listing clients")?;
        let rows = st
            .query_map([], |r| {
                let id: Vec<u8> = r.get(0)?;
                Ok(ClientRow {
                    id: ClientId(id.try_into().unwrap_or([0; 16])),
                    name: r.get(1)?,
                    has_key: r.get(2)?,
                    last_seen: r.get(3)?,
                })
            })
            .ctx("listing clients")?;
        rows.collect::<Result<_, _>>().ctx("listing clients")
    }

    /// Every file, or those of one client.
    pub fn files(&self, client: Option<&ClientId>) -> Result<Vec<FileRow>, StoreError> {
        let db = self.db();
        let mut st = db
            .prepare(
                "SELECT ID, FileName, PathName, Verified, Size FROM files \
                 WHERE ?1 IS NULL OR ID = ?1 ORDER BY ID, FileName",
            )
            .ctx("listing files")?;
        let filter = client.map(|c| c.0.to_vec());
        let rows = st
            .query_map([filter], |r| {
                let id: Vec<u8> = r.get(0)?;
                Ok(FileRow {
                    client: ClientId(id.try_into().unwrap_or([0; 16])),
                    file_name: r.get(1)?,
                    path: r.get(2)?,
                    verified: r.get(3)?,
                    size: r.get::<_, i64>(4)? as u64,
                })
            })
            .ctx("listing files")?;
        rows.collect::<Result<_, _>>().ctx("listing files")
    }
}
