//! Versions in PostgreSQL: the `versions` table (migration 4), as in SQLite. Each
//! function runs inside the caller's transaction, which holds the lock on the client's
//! row where it changes a file (as a switch does), so a version row is written or
//! removed with the change of the record it belongs to.

use std::time::Duration;

use tokio_postgres::Row;

use super::{big, client_id, file_row, secs, sha256, FILE_COLUMNS};
use crate::storage::postgres::{PgError, Transaction};
use crate::storage::{FileRecord, Removed, Restored, Version, VersionTotals};

/// The columns [`version_row`] reads, times as SQLite writes them.
pub(super) const VERSION_COLUMNS: &str = concat!(
    "VersionID, ID, FileName, PathName, Verified, Size, Checksum, ",
    utc!("Updated"),
    ", ",
    utc!("Superseded"),
    ", Sha256"
);

pub(super) fn version_row(r: &Row) -> Result<Version, PgError> {
    Ok(Version {
        id: r.try_get::<_, i64>(0)?.max(0) as u64,
        client: client_id(r.try_get(1)?),
        file_name: r.try_get(2)?,
        object: r.try_get(3)?,
        verified: r.try_get(4)?,
        size: r.try_get::<_, i64>(5)?.max(0) as u64,
        checksum: r.try_get::<_, Option<i64>>(6)?.map(|c| c as u32),
        updated: r.try_get::<_, Option<String>>(7)?.unwrap_or_default(),
        superseded: r.try_get(8)?,
        sha256: sha256(r.try_get(9)?),
    })
}

pub(super) fn version_rows(rows: Vec<Row>) -> Result<Vec<Version>, PgError> {
    rows.iter().map(version_row).collect()
}

/// Copies the current record of the file, if any, into a new version superseded now;
/// its id. The caller then overwrites or deletes the record in the same transaction.
pub(super) async fn keep_current(
    tx: &Transaction<'_>,
    client: &[u8],
    file_name: &str,
) -> Result<Option<u64>, PgError> {
    let st = tx
        .prepare_cached(
            "INSERT INTO versions (ID, FileName, PathName, Verified, Size, Checksum, Updated, \
             Superseded, Sha256) SELECT ID, FileName, PathName, Verified, Size, Checksum, \
             Updated, now(), Sha256 FROM files WHERE ID = $1 AND FileName = $2 RETURNING VersionID",
        )
        .await?;
    Ok(tx
        .query_opt(&st, &[&client, &file_name])
        .await?
        .map(|r| r.get::<_, i64>(0).max(0) as u64))
}

/// See [`Metadata::versions`](crate::storage::Metadata::versions).
pub(super) async fn list(
    c: &tokio_postgres::Client,
    client: Option<Vec<u8>>,
    file_name: Option<String>,
) -> Result<Vec<Version>, PgError> {
    let rows = c
        .query(
            &format!(
                "SELECT {VERSION_COLUMNS} FROM versions WHERE ($1::bytea IS NULL OR ID = $1) \
                 AND ($2::text IS NULL OR FileName = $2) \
                 ORDER BY ID, FileName COLLATE \"C\", VersionID DESC"
            ),
            &[&client, &file_name],
        )
        .await?;
    version_rows(rows)
}

/// See [`Metadata::version_totals`](crate::storage::Metadata::version_totals).
pub(super) async fn totals(c: &tokio_postgres::Client) -> Result<VersionTotals, PgError> {
    let row = c
        .query_one(
            "SELECT COUNT(*), COALESCE(SUM(Size), 0)::bigint FROM versions",
            &[],
        )
        .await?;
    Ok(VersionTotals {
        versions: row.try_get::<_, i64>(0)?.max(0) as u64,
        bytes: row.try_get::<_, i64>(1)?.max(0) as u64,
    })
}

/// One version; with `lock`, its row locked until the transaction ends (a concurrent
/// prune of it waits, then finds it gone).
pub(super) async fn one(
    tx: &Transaction<'_>,
    version: i64,
    lock: bool,
) -> Result<Option<Version>, PgError> {
    let lock = if lock { " FOR UPDATE" } else { "" };
    tx.query_opt(
        &format!("SELECT {VERSION_COLUMNS} FROM versions WHERE VersionID = $1{lock}"),
        &[&version],
    )
    .await?
    .as_ref()
    .map(version_row)
    .transpose()
}

/// Takes the client's row lock, as a switch does: changes to one client's files
/// take turns on every server. False when the client is gone.
pub(super) async fn lock_client(tx: &Transaction<'_>, client: &[u8]) -> Result<bool, PgError> {
    let st = tx
        .prepare_cached("SELECT 1 FROM clients WHERE ID = $1 FOR NO KEY UPDATE")
        .await?;
    Ok(tx.query_opt(&st, &[&client]).await?.is_some())
}

/// See [`Metadata::restore_version`](crate::storage::Metadata::restore_version).
pub(super) async fn restore(
    tx: &Transaction<'_>,
    client: &[u8],
    file_name: &str,
    version: u64,
) -> Result<Option<Restored>, PgError> {
    if !lock_client(tx, client).await? {
        return Ok(None);
    }
    let version = big(version);
    let restored = match one(tx, version, true).await? {
        Some(v) if v.client.0[..] == *client && v.file_name == file_name => v,
        _ => return Ok(None),
    };
    let kept = match keep_current(tx, client, file_name).await? {
        Some(k) => one(tx, big(k), false).await?,
        None => None,
    };
    // The record takes the version's columns as stored (its time too).
    tx.execute(
        "INSERT INTO files (ID, FileName, PathName, Verified, Size, Checksum, Updated, Sha256) \
         SELECT ID, FileName, PathName, Verified, Size, Checksum, Updated, Sha256 FROM versions \
         WHERE VersionID = $1 \
         ON CONFLICT (ID, FileName) DO UPDATE SET PathName = excluded.PathName, \
         Verified = excluded.Verified, Size = excluded.Size, \
         Checksum = excluded.Checksum, Updated = excluded.Updated, Sha256 = excluded.Sha256",
        &[&version],
    )
    .await?;
    tx.execute("DELETE FROM versions WHERE VersionID = $1", &[&version])
        .await?;
    Ok(Some(Restored { restored, kept }))
}

/// Removes every version of one file (or, with `file_name` `None`, of the client).
pub(super) async fn remove(
    tx: &Transaction<'_>,
    client: &[u8],
    file_name: Option<&str>,
) -> Result<Vec<Version>, PgError> {
    let rows = tx
        .query(
            &format!(
                "DELETE FROM versions WHERE ID = $1 AND ($2::text IS NULL OR FileName = $2) \
                 RETURNING {VERSION_COLUMNS}"
            ),
            &[&client, &file_name],
        )
        .await?;
    version_rows(rows)
}

/// See [`Metadata::prune_versions`](crate::storage::Metadata::prune_versions).
pub(super) async fn prune(
    tx: &Transaction<'_>,
    keep: usize,
    older_than: Duration,
) -> Result<Removed, PgError> {
    let keep = i64::try_from(keep).unwrap_or(i64::MAX);
    let older_than = secs(older_than);
    // Both conditions: past the newest `keep` of its file (ids only grow, and one
    // file's versions are written under its client's lock, so the largest are the
    // newest) and superseded long enough ago.
    let rows = tx
        .query(
            &format!(
                "DELETE FROM versions WHERE VersionID IN (SELECT VersionID FROM (SELECT \
                 VersionID, Superseded, ROW_NUMBER() OVER (PARTITION BY ID, FileName \
                 ORDER BY VersionID DESC) AS Newer FROM versions) AS ranked \
                 WHERE Newer > $1 AND {} >= $2) RETURNING {VERSION_COLUMNS}",
                age!("Superseded")
            ),
            &[&keep, &older_than],
        )
        .await?;
    let versions = version_rows(rows)?;
    let objects = unnamed_objects(tx, &[], &versions).await?;
    Ok(Removed {
        files: Vec::new(),
        versions,
        objects,
    })
}

/// Removes a file record and its versions (see
/// [`Metadata::delete_file`](crate::storage::Metadata::delete_file)).
pub(super) async fn delete_file(
    tx: &Transaction<'_>,
    client: &[u8],
    file_name: &str,
) -> Result<Option<Removed>, PgError> {
    if !lock_client(tx, client).await? {
        return Ok(None);
    }
    let files: Vec<FileRecord> = tx
        .query(
            &format!("DELETE FROM files WHERE ID = $1 AND FileName = $2 RETURNING {FILE_COLUMNS}"),
            &[&client, &file_name],
        )
        .await?
        .iter()
        .map(file_row)
        .collect::<Result<_, _>>()?;
    let versions = remove(tx, client, Some(file_name)).await?;
    if files.is_empty() && versions.is_empty() {
        return Ok(None);
    }
    let objects = unnamed_objects(tx, &files, &versions).await?;
    Ok(Some(Removed {
        files,
        versions,
        objects,
    }))
}

/// The objects of removed records and versions that nothing still names, each once.
pub(super) async fn unnamed_objects(
    tx: &Transaction<'_>,
    files: &[FileRecord],
    versions: &[Version],
) -> Result<Vec<String>, PgError> {
    let mut out: Vec<String> = Vec::new();
    let removed = files
        .iter()
        .map(|f| &f.object)
        .chain(versions.iter().map(|v| &v.object));
    for object in removed {
        if !out.contains(object) && !still_named(tx, object).await? {
            out.push(object.clone());
        }
    }
    Ok(out)
}

/// Whether a file record or a version names `object`.
pub(super) async fn still_named(tx: &Transaction<'_>, object: &str) -> Result<bool, PgError> {
    let st = tx
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM files WHERE PathName = $1) \
             OR EXISTS (SELECT 1 FROM versions WHERE PathName = $1)",
        )
        .await?;
    Ok(tx.query_one(&st, &[&object]).await?.get(0))
}
