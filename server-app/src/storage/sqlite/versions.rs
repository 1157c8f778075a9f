//! Versions in SQLite: the `versions` table (schema 5). Each function runs inside a
//! transaction or on the connection its caller holds, so a version row is written or
//! removed in the same transaction as the change of the file record it belongs to.

use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, Transaction};

use super::{client_id, file_row, sha256, Ctx, FILE_COLUMNS};
use crate::storage::{FileRecord, MetaError, Removed, Restored, Version, VersionTotals};

const VERSION_COLUMNS: &str =
    "VersionID, ID, FileName, PathName, Verified, Size, Checksum, Updated, Superseded, Sha256";

fn version_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Version> {
    Ok(Version {
        id: r.get::<_, i64>(0)?.max(0) as u64,
        client: client_id(r.get(1)?),
        file_name: r.get(2)?,
        object: r.get(3)?,
        verified: r.get(4)?,
        size: r.get::<_, i64>(5)?.max(0) as u64,
        checksum: r.get::<_, Option<i64>>(6)?.map(|c| c as u32),
        updated: r.get::<_, Option<String>>(7)?.unwrap_or_default(),
        superseded: r.get(8)?,
        sha256: sha256(r.get(9)?),
    })
}

fn version_id(id: u64) -> i64 {
    i64::try_from(id).unwrap_or(i64::MAX)
}

/// Copies the current record of the file, if any, into a new version superseded now;
/// its id. The caller then overwrites or deletes the record in the same transaction.
pub(super) fn keep_current(
    tx: &Transaction<'_>,
    id: &[u8],
    file_name: &str,
) -> Result<Option<u64>, MetaError> {
    tx.query_row(
        "INSERT INTO versions (ID, FileName, PathName, Verified, Size, Checksum, Updated, \
         Superseded, Sha256) SELECT ID, FileName, PathName, Verified, Size, Checksum, Updated, \
         datetime('now'), Sha256 FROM files WHERE ID = ?1 AND FileName = ?2 RETURNING VersionID",
        params![id, file_name],
        |r| r.get::<_, i64>(0),
    )
    .optional()
    .map(|v| v.map(|v| v.max(0) as u64))
    .ctx("keeping the replaced file as a version")
}

/// See [`Metadata::versions`](crate::storage::Metadata::versions).
pub(super) fn list(
    db: &Connection,
    client: Option<&[u8]>,
    file_name: Option<&str>,
) -> Result<Vec<Version>, MetaError> {
    let mut st = db
        .prepare(&format!(
            "SELECT {VERSION_COLUMNS} FROM versions WHERE (?1 IS NULL OR ID = ?1) \
             AND (?2 IS NULL OR FileName = ?2) ORDER BY ID, FileName, VersionID DESC"
        ))
        .ctx("listing versions")?;
    let rows = st
        .query_map(params![client, file_name], version_row)
        .ctx("listing versions")?;
    rows.collect::<Result<_, _>>().ctx("listing versions")
}

/// See [`Metadata::version_totals`](crate::storage::Metadata::version_totals).
pub(super) fn totals(db: &Connection) -> Result<VersionTotals, MetaError> {
    db.query_row(
        "SELECT COUNT(*), COALESCE(SUM(Size), 0) FROM versions",
        [],
        |r| {
            Ok(VersionTotals {
                versions: r.get::<_, i64>(0)?.max(0) as u64,
                bytes: r.get::<_, i64>(1)?.max(0) as u64,
            })
        },
    )
    .ctx("counting versions")
}

pub(super) fn one(tx: &Transaction<'_>, version: u64) -> Result<Option<Version>, MetaError> {
    tx.query_row(
        &format!("SELECT {VERSION_COLUMNS} FROM versions WHERE VersionID = ?1"),
        [version_id(version)],
        version_row,
    )
    .optional()
    .ctx("looking up a version")
}

/// See [`Metadata::restore_version`](crate::storage::Metadata::restore_version).
pub(super) fn restore(
    db: &mut Connection,
    id: &[u8],
    file_name: &str,
    version: u64,
) -> Result<Option<Restored>, MetaError> {
    let tx = db.transaction().ctx("starting a restore")?;
    let restored = match one(&tx, version)? {
        Some(v) if v.client.0[..] == *id && v.file_name == file_name => v,
        _ => return Ok(None),
    };
    let kept = match keep_current(&tx, id, file_name)? {
        Some(k) => one(&tx, k)?,
        None => None,
    };
    // The record takes the version's columns as stored (its time too).
    tx.execute(
        "INSERT INTO files (ID, FileName, PathName, Verified, Size, Checksum, Updated, Sha256) \
         SELECT ID, FileName, PathName, Verified, Size, Checksum, Updated, Sha256 FROM versions \
         WHERE VersionID = ?1 \
         ON CONFLICT (ID, FileName) DO UPDATE SET PathName = excluded.PathName, \
         Verified = excluded.Verified, Size = excluded.Size, Checksum = excluded.Checksum, \
         Updated = excluded.Updated, Sha256 = excluded.Sha256",
        [version_id(version)],
    )
    .ctx("restoring the file")?;
    tx.execute(
        "DELETE FROM versions WHERE VersionID = ?1",
        [version_id(version)],
    )
    .ctx("removing the restored version")?;
    tx.commit().ctx("committing the restore")?;
    Ok(Some(Restored { restored, kept }))
}

/// Removes every version of one file (or, with `file_name` `None`, of the client);
/// the versions removed.
pub(super) fn remove(
    tx: &Transaction<'_>,
    id: &[u8],
    file_name: Option<&str>,
) -> Result<Vec<Version>, MetaError> {
    let mut st = tx
        .prepare(&format!(
            "DELETE FROM versions WHERE ID = ?1 AND (?2 IS NULL OR FileName = ?2) \
             RETURNING {VERSION_COLUMNS}"
        ))
        .ctx("removing versions")?;
    let rows = st
        .query_map(params![id, file_name], version_row)
        .ctx("removing versions")?;
    rows.collect::<Result<_, _>>().ctx("removing versions")
}

/// See [`Metadata::prune_versions`](crate::storage::Metadata::prune_versions).
pub(super) fn prune(
    db: &mut Connection,
    keep: usize,
    older_than: Duration,
) -> Result<Removed, MetaError> {
    let tx = db.transaction().ctx("starting to prune versions")?;
    let keep = i64::try_from(keep).unwrap_or(i64::MAX);
    let secs = i64::try_from(older_than.as_secs()).unwrap_or(i64::MAX);
    // Both conditions: past the newest `keep` of its file (ids only grow, so the
    // largest are the newest) and superseded long enough ago.
    let mut st = tx
        .prepare(&format!(
            "DELETE FROM versions WHERE VersionID IN (SELECT VersionID FROM (SELECT \
             VersionID, Superseded, ROW_NUMBER() OVER (PARTITION BY ID, FileName \
             ORDER BY VersionID DESC) AS Newer FROM versions) WHERE Newer > ?1 \
             AND (julianday('now') - julianday(Superseded)) * 86400 >= ?2) \
             RETURNING {VERSION_COLUMNS}"
        ))
        .ctx("pruning versions")?;
    let versions = st
        .query_map(params![keep, secs], version_row)
        .ctx("pruning versions")?
        .collect::<Result<Vec<_>, _>>()
        .ctx("pruning versions")?;
    drop(st);
    let objects = unnamed_objects(&tx, &[], &versions)?;
    tx.commit().ctx("committing the prune of versions")?;
    Ok(Removed {
        files: Vec::new(),
        versions,
        objects,
    })
}

/// Removes a file record and its versions (see
/// [`Metadata::delete_file`](crate::storage::Metadata::delete_file)).
pub(super) fn delete_file(
    tx: &Transaction<'_>,
    id: &[u8],
    file_name: &str,
) -> Result<Option<Removed>, MetaError> {
    let files: Vec<FileRecord> = tx
        .query_row(
            &format!("DELETE FROM files WHERE ID = ?1 AND FileName = ?2 RETURNING {FILE_COLUMNS}"),
            params![id, file_name],
            file_row,
        )
        .optional()
        .ctx("deleting a file")?
        .into_iter()
        .collect();
    let versions = remove(tx, id, Some(file_name))?;
    if files.is_empty() && versions.is_empty() {
        return Ok(None);
    }
    let objects = unnamed_objects(tx, &files, &versions)?;
    Ok(Some(Removed {
        files,
        versions,
        objects,
    }))
}

/// The objects of removed records and versions that nothing still names, each once.
pub(super) fn unnamed_objects(
    tx: &Transaction<'_>,
    files: &[FileRecord],
    versions: &[Version],
) -> Result<Vec<String>, MetaError> {
    let mut out: Vec<String> = Vec::new();
    let removed = files
        .iter()
        .map(|f| &f.object)
        .chain(versions.iter().map(|v| &v.object));
    for object in removed {
        if !out.contains(object) && !still_named(tx, object)? {
            out.push(object.clone());
        }
    }
    Ok(out)
}

/// Whether a file record or a version names `object`.
pub(super) fn still_named(tx: &Transaction<'_>, object: &str) -> Result<bool, MetaError> {
    tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM files WHERE PathName = ?1) \
         OR EXISTS (SELECT 1 FROM versions WHERE PathName = ?1)",
        [object],
        |r| r.get(0),
    )
    .ctx("looking up an object's records")
}
