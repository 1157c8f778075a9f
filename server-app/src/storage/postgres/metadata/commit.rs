//! Commit intents in PostgreSQL and the commit point (docs/STORAGE.md, step 4): the
//! file record switched to the intent's object under the client's row lock, the
//! replaced verified content kept as a version in the same transaction.

use tokio_postgres::Row;

use super::{big, client_id, sha256, still_named, versions};
use crate::storage::postgres::{PgError, Transaction, TxError};
use crate::storage::{Intent, MetaError, Switch};

pub(super) const SELECT_INTENTS: &str =
    "SELECT IntentID, ID, FileName, Upload, Object, Verified, Size, \
                              Checksum, Replaced, Switched, Sha256 FROM intents";

pub(super) fn intent(r: &Row) -> Result<Intent, PgError> {
    Ok(Intent {
        id: r.try_get(0)?,
        client: client_id(r.try_get(1)?),
        file_name: r.try_get(2)?,
        upload: r.try_get(3)?,
        object: r.try_get(4)?,
        verified: r.try_get(5)?,
        size: r.try_get::<_, i64>(6)?.max(0) as u64,
        checksum: r.try_get::<_, i64>(7)? as u32,
        replaced: r.try_get(8)?,
        switched: r.try_get(9)?,
        sha256: sha256(r.try_get(10)?),
    })
}

/// The commit point (step 4) inside its transaction: see [`Metadata::switch`].
pub(super) async fn switch_in(tx: &Transaction<'_>, i: &Intent) -> Result<Switch, TxError> {
    let client = &i.client.0[..];
    // The client's row is the lock for its files: switches of one client (on any
    // server) take turns, so each reads the record as the previous one left it, and a
    // removal of the client waits or is waited for. An operator may have removed the
    // client while its upload was under way: its file must not come back without an
    // owner (the commit rolls back, 1607).
    let st = tx
        .prepare_cached("SELECT 1 FROM clients WHERE ID = $1 FOR NO KEY UPDATE")
        .await?;
    if tx.query_opt(&st, &[&client]).await?.is_none() {
        return Err(TxError::Refused(MetaError::backend(
            "committing the file",
            "the client was removed",
        )));
    }
    let st = tx
        .prepare_cached("SELECT PathName, Verified FROM files WHERE ID = $1 AND FileName = $2")
        .await?;
    let previous: Option<(String, bool)> = tx
        .query_opt(&st, &[&client, &i.file_name])
        .await?
        .map(|r| (r.get(0), r.get(1)));
    if !i.verified && matches!(previous, Some((_, true))) {
        // 902 never replaces a verified file (checked under the client's lock, so a
        // concurrent 900 on another server is either seen here or comes after).
        let st = tx
            .prepare_cached("DELETE FROM intents WHERE IntentID = $1")
            .await?;
        tx.execute(&st, &[&i.id]).await?;
        return Ok(Switch::KeptVerified);
    }
    // Verified content is never lost: the record it replaces becomes a version in
    // this transaction, and its object stays (nothing to delete).
    let previous = match previous {
        Some((_, true)) => {
            versions::keep_current(tx, client, &i.file_name).await?;
            None
        }
        Some((p, false)) => Some(p),
        None => None,
    };
    let st = tx
        .prepare_cached(
            "INSERT INTO files (ID, FileName, PathName, Verified, Size, Checksum, Updated, \
             Sha256) VALUES ($1, $2, $3, $4, $5, $6, now(), $7) \
             ON CONFLICT (ID, FileName) DO UPDATE SET PathName = excluded.PathName, \
             Verified = excluded.Verified, Size = excluded.Size, \
             Checksum = excluded.Checksum, Updated = excluded.Updated, Sha256 = excluded.Sha256",
        )
        .await?;
    tx.execute(
        &st,
        &[
            &client,
            &i.file_name,
            &i.object,
            &i.verified,
            &big(i.size),
            &i64::from(i.checksum),
            &i.sha256.map(|h| h.to_vec()),
        ],
    )
    .await?;
    // Rows of the old layout could share one path: the replaced object goes only
    // when no record or version names it any more.
    let replaced = match previous {
        Some(p) if p != i.object && !still_named(tx, &p).await? => Some(p),
        _ => None,
    };
    let st = tx
        .prepare_cached("UPDATE intents SET Switched = true, Replaced = $2 WHERE IntentID = $1")
        .await?;
    if tx.execute(&st, &[&i.id, &replaced]).await? != 1 {
        return Err(TxError::Refused(MetaError::backend(
            "committing the file",
            "no such intent",
        )));
    }
    Ok(Switch::Switched { replaced })
}
