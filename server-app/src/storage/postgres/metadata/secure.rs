//! Secure mode in PostgreSQL (migration 6), as in SQLite: the secure-mode key and
//! legacy lock in `clients`, a client's deletion of its file (a version, under the
//! client's row lock as a switch takes it), and the `partials` table of resumable
//! uploads.

use std::collections::HashSet;
use std::time::Duration;

use protocol_core::ClientId;
use tokio_postgres::Row;

use super::{big, client_id, register_in, secs, versions};
use crate::storage::postgres::{Pg, PgError};
use crate::storage::{MetaError, PartialUpload, Registration, SecureKey, SecureStatus, Version};

/// See [`Metadata::secure_key`](crate::storage::Metadata::secure_key).
pub(super) fn secure_key(pg: &Pg, id: &ClientId) -> Result<Option<SecureKey>, MetaError> {
    let id = id.0.to_vec();
    pg.run("looking up the secure key", move |c| async move {
        let st = c
            .prepare_cached("SELECT SecureKind, SecureKey FROM clients WHERE ID = $1")
            .await?;
        let row = c.query_opt(&st, &[&id]).await?;
        Ok(row.and_then(
            |r| match (r.get::<_, Option<i16>>(0), r.get::<_, Option<Vec<u8>>>(1)) {
                (Some(kind), Some(key)) => {
                    u8::try_from(kind).ok().map(|kind| SecureKey { kind, key })
                }
                _ => None,
            },
        ))
    })
}

/// See [`Metadata::set_secure_key`](crate::storage::Metadata::set_secure_key).
pub(super) fn set_secure_key(pg: &Pg, id: &ClientId, key: &SecureKey) -> Result<bool, MetaError> {
    key.check()?;
    let (id, kind, key) = (id.0.to_vec(), i16::from(key.kind), key.key.clone());
    pg.run("storing the secure key", move |c| async move {
        let n = c
            .execute(
                "UPDATE clients SET SecureKind = $2, SecureKey = $3 WHERE ID = $1",
                &[&id, &kind, &key],
            )
            .await?;
        Ok(n == 1)
    })
}

/// See [`Metadata::register_secure`](crate::storage::Metadata::register_secure): a
/// registration as `register` does, then the key, in one transaction.
pub(super) fn register_secure(
    pg: &Pg,
    id: &ClientId,
    name: &str,
    key: &SecureKey,
    hold: Duration,
) -> Result<Registration, MetaError> {
    key.check()?;
    let (id, name, hold) = (id.0.to_vec(), name.to_string(), hold.as_secs());
    let (kind, key) = (i16::from(key.kind), key.key.clone());
    pg.transact_locked("registering a client in secure mode", move |tx| {
        let (id, name, key) = (id.clone(), name.clone(), key.clone());
        Box::pin(async move {
            if register_in(tx, &id, &name, hold).await? == Registration::NameTaken {
                return Ok(Registration::NameTaken);
            }
            tx.execute(
                "UPDATE clients SET SecureKind = $2, SecureKey = $3, WentSecure = true \
                 WHERE ID = $1",
                &[&id, &kind, &key],
            )
            .await?;
            Ok(Registration::Registered)
        })
    })
}

/// See [`Metadata::secure_status`](crate::storage::Metadata::secure_status).
pub(super) fn secure_status(pg: &Pg, id: &ClientId) -> Result<Option<SecureStatus>, MetaError> {
    let id = id.0.to_vec();
    pg.run("looking up the secure status", move |c| async move {
        let st = c
            .prepare_cached("SELECT WentSecure, KeepLegacy FROM clients WHERE ID = $1")
            .await?;
        Ok(c.query_opt(&st, &[&id]).await?.map(|r| SecureStatus {
            went_secure: r.get(0),
            keep_legacy: r.get(1),
        }))
    })
}

/// Sets one flag of [`SecureStatus`] (`column` is a constant of the callers).
pub(super) fn set_flag(
    pg: &Pg,
    id: &ClientId,
    column: &'static str,
    value: bool,
) -> Result<bool, MetaError> {
    let id = id.0.to_vec();
    pg.run("recording the secure status", move |c| async move {
        let n = c
            .execute(
                &format!("UPDATE clients SET {column} = $2 WHERE ID = $1"),
                &[&id, &value],
            )
            .await?;
        Ok(n == 1)
    })
}

/// See [`Metadata::retire_file`](crate::storage::Metadata::retire_file).
pub(super) fn retire_file(
    pg: &Pg,
    id: &ClientId,
    file_name: &str,
) -> Result<Option<Version>, MetaError> {
    let (id, file_name) = (id.0.to_vec(), file_name.to_string());
    pg.transact_locked("retiring a file", move |tx| {
        let (id, file_name) = (id.clone(), file_name.clone());
        Box::pin(async move {
            // The client's row lock, as a switch takes it: a commit of the same file
            // comes before (and is retired) or after (and finds no record).
            if !versions::lock_client(tx, &id).await? {
                return Ok(None);
            }
            let Some(kept) = versions::keep_current(tx, &id, &file_name).await? else {
                return Ok(None);
            };
            tx.execute(
                "DELETE FROM files WHERE ID = $1 AND FileName = $2",
                &[&id, &file_name],
            )
            .await?;
            Ok(versions::one(tx, big(kept), false).await?)
        })
    })
}

const PARTIAL_COLUMNS: &str = concat!(
    "ID, FileName, Size, Received, Upload, State, ",
    utc!("Updated")
);

fn partial_row(r: &Row) -> Result<PartialUpload, PgError> {
    Ok(PartialUpload {
        client: client_id(r.try_get(0)?),
        file_name: r.try_get(1)?,
        size: r.try_get::<_, i64>(2)?.max(0) as u64,
        offset: r.try_get::<_, i64>(3)?.max(0) as u64,
        upload: r.try_get(4)?,
        state: r.try_get(5)?,
        updated: r.try_get(6)?,
    })
}

/// See [`Metadata::save_partial`](crate::storage::Metadata::save_partial).
pub(super) fn save_partial(pg: &Pg, p: &PartialUpload) -> Result<(), MetaError> {
    let p = p.clone();
    pg.run("saving a resumable upload", move |c| async move {
        let st = c
            .prepare_cached(
                "INSERT INTO partials (ID, FileName, Size, Received, Upload, State, Updated) \
                 VALUES ($1, $2, $3, $4, $5, $6, now()) \
                 ON CONFLICT (ID, FileName) DO UPDATE SET Size = excluded.Size, \
                 Received = excluded.Received, Upload = excluded.Upload, \
                 State = excluded.State, Updated = excluded.Updated",
            )
            .await?;
        c.execute(
            &st,
            &[
                &&p.client.0[..],
                &p.file_name,
                &big(p.size),
                &big(p.offset),
                &p.upload,
                &p.state,
            ],
        )
        .await?;
        Ok(())
    })
}

/// See [`Metadata::partial`](crate::storage::Metadata::partial).
pub(super) fn partial(
    pg: &Pg,
    id: &ClientId,
    file_name: &str,
) -> Result<Option<PartialUpload>, MetaError> {
    let (id, file_name) = (id.0.to_vec(), file_name.to_string());
    pg.run("looking up a resumable upload", move |c| async move {
        let st = c
            .prepare_cached(&format!(
                "SELECT {PARTIAL_COLUMNS} FROM partials WHERE ID = $1 AND FileName = $2"
            ))
            .await?;
        c.query_opt(&st, &[&id, &file_name])
            .await?
            .as_ref()
            .map(partial_row)
            .transpose()
    })
}

/// See [`Metadata::remove_partial`](crate::storage::Metadata::remove_partial).
pub(super) fn remove_partial(
    pg: &Pg,
    id: &ClientId,
    file_name: &str,
    upload: &str,
) -> Result<bool, MetaError> {
    let (id, file_name, upload) = (id.0.to_vec(), file_name.to_string(), upload.to_string());
    pg.run("removing a resumable upload", move |c| async move {
        let n = c
            .execute(
                "DELETE FROM partials WHERE ID = $1 AND FileName = $2 AND Upload = $3",
                &[&id, &file_name, &upload],
            )
            .await?;
        Ok(n == 1)
    })
}

/// See [`Metadata::expire_partials`](crate::storage::Metadata::expire_partials): one
/// statement, so one transaction.
pub(super) fn expire_partials(
    pg: &Pg,
    older_than: Duration,
) -> Result<Vec<PartialUpload>, MetaError> {
    let older_than = secs(older_than);
    pg.run("expiring resumable uploads", move |c| async move {
        let rows = c
            .query(
                &format!(
                    "DELETE FROM partials WHERE {} >= $1 RETURNING {PARTIAL_COLUMNS}",
                    age!("Updated")
                ),
                &[&older_than],
            )
            .await?;
        rows.iter().map(partial_row).collect()
    })
}

/// See [`Metadata::referenced_uploads`](crate::storage::Metadata::referenced_uploads).
pub(super) fn referenced_uploads(pg: &Pg) -> Result<HashSet<String>, MetaError> {
    pg.run("listing referenced uploads", |c| async move {
        let rows = c
            .query(
                "SELECT Upload FROM intents UNION SELECT Upload FROM partials",
                &[],
            )
            .await?;
        rows.iter().map(|r| r.try_get(0)).collect()
    })
}
