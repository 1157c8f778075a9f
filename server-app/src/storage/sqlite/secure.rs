//! Secure mode in SQLite (schema 7): the secure-mode key and legacy lock in
//! `clients`, a client's deletion of its file (a version, as a replacement keeps),
//! and the `partials` table of resumable uploads.

use std::collections::HashSet;
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};

use super::{client_id, versions, Ctx};
use crate::storage::{MetaError, PartialUpload, Registration, SecureKey, SecureStatus, Version};

/// See [`Metadata::secure_key`](crate::storage::Metadata::secure_key).
pub(super) fn secure_key(db: &Connection, id: &[u8]) -> Result<Option<SecureKey>, MetaError> {
    db.query_row(
        "SELECT SecureKind, SecureKey FROM clients WHERE ID = ?1",
        [id],
        |r| Ok((r.get::<_, Option<u8>>(0)?, r.get::<_, Option<Vec<u8>>>(1)?)),
    )
    .optional()
    .map(|row| match row {
        Some((Some(kind), Some(key))) => Some(SecureKey { kind, key }),
        _ => None,
    })
    .ctx("looking up the secure key")
}

/// See [`Metadata::set_secure_key`](crate::storage::Metadata::set_secure_key).
pub(super) fn set_secure_key(
    db: &Connection,
    id: &[u8],
    key: &SecureKey,
) -> Result<bool, MetaError> {
    key.check()?;
    let n = db
        .execute(
            "UPDATE clients SET SecureKind = ?2, SecureKey = ?3 WHERE ID = ?1",
            params![id, key.kind, key.key],
        )
        .ctx("storing the secure key")?;
    Ok(n == 1)
}

/// See [`Metadata::register_secure`](crate::storage::Metadata::register_secure): a
/// registration as [`Metadata::register`](crate::storage::Metadata::register) does,
/// then the key, in one transaction.
pub(super) fn register_secure(
    db: &mut Connection,
    id: &[u8],
    name: &str,
    key: &SecureKey,
    hold: Duration,
) -> Result<Registration, MetaError> {
    key.check()?;
    let tx = db.transaction().ctx("starting a secure registration")?;
    if super::register_in(&tx, id, name, hold)? == Registration::NameTaken {
        return Ok(Registration::NameTaken);
    }
    tx.execute(
        "UPDATE clients SET SecureKind = ?2, SecureKey = ?3, WentSecure = 1 WHERE ID = ?1",
        params![id, key.kind, key.key],
    )
    .ctx("storing the secure key")?;
    tx.commit().ctx("committing the secure registration")?;
    Ok(Registration::Registered)
}

/// See [`Metadata::secure_status`](crate::storage::Metadata::secure_status).
pub(super) fn secure_status(db: &Connection, id: &[u8]) -> Result<Option<SecureStatus>, MetaError> {
    db.query_row(
        "SELECT WentSecure, KeepLegacy FROM clients WHERE ID = ?1",
        [id],
        |r| {
            Ok(SecureStatus {
                went_secure: r.get(0)?,
                keep_legacy: r.get(1)?,
            })
        },
    )
    .optional()
    .ctx("looking up the secure status")
}

/// Sets one flag of [`SecureStatus`] (`column` is a constant of this module's callers).
pub(super) fn set_flag(
    db: &Connection,
    id: &[u8],
    column: &'static str,
    value: bool,
) -> Result<bool, MetaError> {
    let n = db
        .execute(
            &format!("UPDATE clients SET {column} = ?2 WHERE ID = ?1"),
            params![id, value],
        )
        .ctx("recording the secure status")?;
    Ok(n == 1)
}

/// See [`Metadata::retire_file`](crate::storage::Metadata::retire_file).
pub(super) fn retire_file(
    db: &mut Connection,
    id: &[u8],
    file_name: &str,
) -> Result<Option<Version>, MetaError> {
    let tx = db.transaction().ctx("starting to retire a file")?;
    let Some(kept) = versions::keep_current(&tx, id, file_name)? else {
        return Ok(None);
    };
    tx.execute(
        "DELETE FROM files WHERE ID = ?1 AND FileName = ?2",
        params![id, file_name],
    )
    .ctx("retiring a file")?;
    let version = versions::one(&tx, kept)?;
    tx.commit().ctx("committing the retired file")?;
    Ok(version)
}

const PARTIAL_COLUMNS: &str = "ID, FileName, Size, Received, Upload, State, Updated";

fn partial_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<PartialUpload> {
    Ok(PartialUpload {
        client: client_id(r.get(0)?),
        file_name: r.get(1)?,
        size: r.get::<_, i64>(2)?.max(0) as u64,
        offset: r.get::<_, i64>(3)?.max(0) as u64,
        upload: r.get(4)?,
        state: r.get(5)?,
        updated: r.get(6)?,
    })
}

fn big(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// See [`Metadata::save_partial`](crate::storage::Metadata::save_partial).
pub(super) fn save_partial(db: &Connection, p: &PartialUpload) -> Result<(), MetaError> {
    db.execute(
        "INSERT INTO partials (ID, FileName, Size, Received, Upload, State, Updated) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, datetime('now')) \
         ON CONFLICT (ID, FileName) DO UPDATE SET Size = excluded.Size, \
         Received = excluded.Received, Upload = excluded.Upload, State = excluded.State, \
         Updated = excluded.Updated",
        params![
            &p.client.0[..],
            p.file_name,
            big(p.size),
            big(p.offset),
            p.upload,
            p.state
        ],
    )
    .ctx("saving a resumable upload")?;
    Ok(())
}

/// See [`Metadata::partial`](crate::storage::Metadata::partial).
pub(super) fn partial(
    db: &Connection,
    id: &[u8],
    file_name: &str,
) -> Result<Option<PartialUpload>, MetaError> {
    db.query_row(
        &format!("SELECT {PARTIAL_COLUMNS} FROM partials WHERE ID = ?1 AND FileName = ?2"),
        params![id, file_name],
        partial_row,
    )
    .optional()
    .ctx("looking up a resumable upload")
}

/// See [`Metadata::remove_partial`](crate::storage::Metadata::remove_partial).
pub(super) fn remove_partial(
    db: &Connection,
    id: &[u8],
    file_name: &str,
    upload: &str,
) -> Result<bool, MetaError> {
    let n = db
        .execute(
            "DELETE FROM partials WHERE ID = ?1 AND FileName = ?2 AND Upload = ?3",
            params![id, file_name, upload],
        )
        .ctx("removing a resumable upload")?;
    Ok(n == 1)
}

/// See [`Metadata::expire_partials`](crate::storage::Metadata::expire_partials).
pub(super) fn expire_partials(
    db: &Connection,
    older_than: Duration,
) -> Result<Vec<PartialUpload>, MetaError> {
    let secs = big(older_than.as_secs());
    let mut st = db
        .prepare(&format!(
            "DELETE FROM partials WHERE (julianday('now') - julianday(Updated)) * 86400 >= ?1 \
             RETURNING {PARTIAL_COLUMNS}"
        ))
        .ctx("expiring resumable uploads")?;
    let rows = st
        .query_map([secs], partial_row)
        .ctx("expiring resumable uploads")?;
    rows.collect::<Result<_, _>>()
        .ctx("expiring resumable uploads")
}

/// See [`Metadata::referenced_uploads`](crate::storage::Metadata::referenced_uploads).
pub(super) fn referenced_uploads(db: &Connection) -> Result<HashSet<String>, MetaError> {
    let mut st = db
        .prepare("SELECT Upload FROM intents UNION SELECT Upload FROM partials")
        .ctx("listing referenced uploads")?;
    let rows = st
        .query_map([], |r| r.get::<_, String>(0))
        .ctx("listing referenced uploads")?;
    rows.collect::<Result<_, _>>()
        .ctx("listing referenced uploads")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Mutex;

    use protocol_core::ClientId;
    use rusqlite::Connection;

    use super::super::{schema, SqliteMetadata, SCHEMA_VERSION};
    use crate::storage::suite::metadata::secure::ed25519;
    use crate::storage::{Metadata, SecureStatus};

    /// A database of schema 6 (the server before secure mode) with a client, a file,
    /// a version and an intent is upgraded in place: every row is kept, with no
    /// secure key, no hash, and legacy open.
    #[test]
    fn a_schema_6_database_is_upgraded_with_its_rows() {
        let db = Connection::open_in_memory().unwrap();
        schema::migrate_to(&db, 0, 6).unwrap();
        db.execute_batch(
            "INSERT INTO clients (ID, Name, PublicKey, LastSeen, Registered) VALUES \
             (x'01010101010101010101010101010101', 'alice', zeroblob(160), datetime('now'), \
              datetime('now'));
             INSERT INTO files (ID, FileName, PathName, Verified, Size, Checksum, Updated) \
             VALUES (x'01010101010101010101010101010101', 'f', 'objects/a/1', 1, 5, 7, \
              datetime('now'));
             INSERT INTO versions (ID, FileName, PathName, Verified, Size, Checksum, Updated, \
              Superseded) VALUES (x'01010101010101010101010101010101', 'f', 'objects/a/0', 1, \
              4, 6, datetime('now'), datetime('now'));
             INSERT INTO intents (IntentID, ID, FileName, Upload, Object, Verified, Size, \
              Checksum) VALUES ('i', x'01010101010101010101010101010101', 'g', 'uploads/u', \
              'objects/a/2', 1, 3, 2);",
        )
        .unwrap();
        schema::migrate(&db, 6).unwrap();
        let version: i64 = db
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        let m = SqliteMetadata { db: Mutex::new(db) };
        let a = ClientId([1; 16]);
        let rec = m.file(&a, "f").unwrap().unwrap();
        assert_eq!(
            (rec.object.as_str(), rec.size, rec.sha256),
            ("objects/a/1", 5, None)
        );
        let v = &m.versions(Some(&a), Some("f")).unwrap()[0];
        assert_eq!((v.object.as_str(), v.sha256), ("objects/a/0", None));
        let i = &m.intents().unwrap()[0];
        assert_eq!((i.upload.as_str(), i.sha256), ("uploads/u", None));
        assert_eq!(m.secure_key(&a).unwrap(), None);
        assert_eq!(m.secure_status(&a).unwrap(), Some(SecureStatus::default()));
        // And the new columns and table work on the upgraded rows.
        assert!(m.set_secure_key(&a, &ed25519(3)).unwrap());
        assert!(m.retire_file(&a, "f").unwrap().is_some());
        assert_eq!(m.versions(Some(&a), Some("f")).unwrap().len(), 2);
        assert!(m.referenced_uploads().unwrap().contains("uploads/u"));
    }
}
