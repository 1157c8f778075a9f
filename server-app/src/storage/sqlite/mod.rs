//! [`Metadata`] in SQLite: `defensive.db` with the `clients` and `files` tables of the
//! protocol, plus `intents` (commits under way) and `versions` (replaced verified
//! content, [`versions`]).

mod commit;
mod open;
mod schema;
mod secure;
mod versions;

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use protocol_core::ClientId;
use rusqlite::{params, Connection, OptionalExtension};

use super::{
    ClientRow, FileRecord, Intent, KeyOutcome, MetaError, Metadata, PartialUpload, Registration,
    Removed, Restored, SecureKey, SecureStatus, Switch, Version, VersionTotals,
};
pub use open::OpenError;
use versions::{still_named, unnamed_objects};

/// The schema version this build writes (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = 7;

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
        sha256: sha256(r.get(7)?),
    })
}

/// A stored SHA-256 (a BLOB of 32 bytes, the schema checks); anything else reads as none.
fn sha256(bytes: Option<Vec<u8>>) -> Option<[u8; 32]> {
    bytes.and_then(|b| b.try_into().ok())
}

const FILE_COLUMNS: &str = "ID, FileName, PathName, Verified, Size, Checksum, Updated, Sha256";

/// A registration inside `tx` (see [`Metadata::register`]); the caller commits.
fn register_in(
    tx: &rusqlite::Transaction<'_>,
    id: &[u8],
    name: &str,
    hold: Duration,
) -> Result<Registration, MetaError> {
    let existing: Option<(bool, i64)> = tx
            .query_row(
                "SELECT PublicKey IS NOT NULL OR SecureKey IS NOT NULL, \
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
                "DELETE FROM clients WHERE Name = ?1 AND PublicKey IS NULL AND SecureKey IS NULL \
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
        params![id, name],
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
    Ok(Registration::Registered)
}

impl Metadata for SqliteMetadata {
    fn register(
        &self,
        id: &ClientId,
        name: &str,
        hold: Duration,
    ) -> Result<Registration, MetaError> {
        let mut db = self.db();
        let tx = db.transaction().ctx("starting a registration")?;
        let done = register_in(&tx, &id.0[..], name, hold)?;
        if done == Registration::Registered {
            tx.commit().ctx("committing the registration")?;
        }
        Ok(done)
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

    fn legacy_key(&self, id: &ClientId) -> Result<Option<Vec<u8>>, MetaError> {
        self.db()
            .query_row(
                "SELECT PublicKey FROM clients WHERE ID = ?1",
                params![&id.0[..]],
                |r| r.get::<_, Option<Vec<u8>>>(0),
            )
            .optional()
            .map(Option::flatten)
            .ctx("looking up the legacy key")
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
        let cond =
            "PublicKey IS NULL AND SecureKey IS NULL AND ID NOT IN (SELECT ID FROM files) AND \
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
                 c.Dialect, c.SecureKind, c.WentSecure, c.KeepLegacy \
                 FROM clients c ORDER BY c.Name",
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
                    secure_key_kind: r.get(8)?,
                    secure: SecureStatus {
                        went_secure: r.get(9)?,
                        keep_legacy: r.get(10)?,
                    },
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
        // Its resumable uploads go too: their uploads, named by nothing any more, are
        // removed by the sweeps (at the next start, or a fleet's housekeeping).
        tx.execute("DELETE FROM partials WHERE ID = ?1", [&id.0[..]])
            .ctx("removing the client's resumable uploads")?;
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
                 Checksum, Replaced, Switched, Sha256) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, NULL, 0, ?9)",
                params![
                    i.id,
                    &i.client.0[..],
                    i.file_name,
                    i.upload,
                    i.object,
                    i.verified,
                    i.size as i64,
                    i.checksum as i64,
                    i.sha256.map(|h| h.to_vec())
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
                 Replaced, Switched, Sha256 FROM intents",
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
                    sha256: sha256(r.get(10)?),
                })
            })
            .ctx("listing commit intents")?;
        rows.collect::<Result<_, _>>().ctx("listing commit intents")
    }

    fn secure_key(&self, id: &ClientId) -> Result<Option<SecureKey>, MetaError> {
        secure::secure_key(&self.db(), &id.0[..])
    }

    fn set_secure_key(&self, id: &ClientId, key: &SecureKey) -> Result<bool, MetaError> {
        secure::set_secure_key(&self.db(), &id.0[..], key)
    }

    fn register_secure(
        &self,
        id: &ClientId,
        name: &str,
        key: &SecureKey,
        hold: Duration,
    ) -> Result<Registration, MetaError> {
        secure::register_secure(&mut self.db(), &id.0[..], name, key, hold)
    }

    fn secure_status(&self, id: &ClientId) -> Result<Option<SecureStatus>, MetaError> {
        secure::secure_status(&self.db(), &id.0[..])
    }

    fn mark_went_secure(&self, id: &ClientId) -> Result<bool, MetaError> {
        secure::set_flag(&self.db(), &id.0[..], "WentSecure", true)
    }

    fn set_keep_legacy(&self, id: &ClientId, keep: bool) -> Result<bool, MetaError> {
        secure::set_flag(&self.db(), &id.0[..], "KeepLegacy", keep)
    }

    fn retire_file(&self, id: &ClientId, file_name: &str) -> Result<Option<Version>, MetaError> {
        secure::retire_file(&mut self.db(), &id.0[..], file_name)
    }

    fn save_partial(&self, partial: &PartialUpload) -> Result<(), MetaError> {
        secure::save_partial(&self.db(), partial)
    }

    fn partial(&self, id: &ClientId, file_name: &str) -> Result<Option<PartialUpload>, MetaError> {
        secure::partial(&self.db(), &id.0[..], file_name)
    }

    fn remove_partial(
        &self,
        id: &ClientId,
        file_name: &str,
        upload: &str,
    ) -> Result<bool, MetaError> {
        secure::remove_partial(&self.db(), &id.0[..], file_name, upload)
    }

    fn expire_partials(&self, older_than: Duration) -> Result<Vec<PartialUpload>, MetaError> {
        secure::expire_partials(&self.db(), older_than)
    }

    fn referenced_uploads(&self) -> Result<HashSet<String>, MetaError> {
        secure::referenced_uploads(&self.db())
    }
}
