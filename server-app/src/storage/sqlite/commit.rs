//! The commit point in SQLite (docs/STORAGE.md, step 4): the file record switched to
//! the intent's object in one transaction, the replaced verified content kept as a
//! version in the same one.

use rusqlite::{params, Connection, OptionalExtension};

use super::{still_named, versions, Ctx};
use crate::storage::{Intent, MetaError, Switch};

/// See [`Metadata::switch`](crate::storage::Metadata::switch).
pub(super) fn switch(db: &mut Connection, i: &Intent) -> Result<Switch, MetaError> {
    let tx = db.transaction().ctx("starting a commit")?;
    // An operator may have removed the client while its upload was under way: its
    // file must not come back without an owner (the commit rolls back, 1607).
    let owner: bool = tx
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM clients WHERE ID = ?1)",
            [&i.client.0[..]],
            |r| r.get(0),
        )
        .ctx("looking up the client")?;
    if !owner {
        return Err(MetaError::backend(
            "committing the file",
            "the client was removed",
        ));
    }
    let previous: Option<(String, bool)> = tx
        .query_row(
            "SELECT PathName, Verified FROM files WHERE ID = ?1 AND FileName = ?2",
            params![&i.client.0[..], i.file_name],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .ctx("looking up the file")?;
    if !i.verified && matches!(previous, Some((_, true))) {
        // 902 never replaces a verified file (checked here, inside the commit
        // transaction, so a concurrent 900 cannot slip in between).
        tx.execute("DELETE FROM intents WHERE IntentID = ?1", [&i.id])
            .ctx("dropping the intent")?;
        tx.commit().ctx("committing the file")?;
        return Ok(Switch::KeptVerified);
    }
    // Verified content is never lost: the record it replaces becomes a version in
    // this transaction, and its object stays (nothing to delete).
    let previous = match previous {
        Some((_, true)) => {
            versions::keep_current(&tx, &i.client.0[..], &i.file_name)?;
            None
        }
        Some((p, false)) => Some(p),
        None => None,
    };
    tx.execute(
        "INSERT INTO files (ID, FileName, PathName, Verified, Size, Checksum, Updated, Sha256) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, datetime('now'), ?7) \
         ON CONFLICT (ID, FileName) DO UPDATE SET PathName = excluded.PathName, \
         Verified = excluded.Verified, Size = excluded.Size, Checksum = excluded.Checksum, \
         Updated = excluded.Updated, Sha256 = excluded.Sha256",
        params![
            &i.client.0[..],
            i.file_name,
            i.object,
            i.verified,
            i.size as i64,
            i.checksum as i64,
            i.sha256.map(|h| h.to_vec())
        ],
    )
    .ctx("recording the file")?;
    // Rows of the old layout could share one path (names that sanitised alike):
    // the replaced object goes only when no record or version names it any more.
    let replaced = match previous {
        Some(p) if p != i.object && !still_named(&tx, &p)? => Some(p),
        _ => None,
    };
    let n = tx
        .execute(
            "UPDATE intents SET Switched = 1, Replaced = ?2 WHERE IntentID = ?1",
            params![i.id, replaced],
        )
        .ctx("marking the intent switched")?;
    if n != 1 {
        return Err(MetaError::backend("committing the file", "no such intent"));
    }
    tx.commit().ctx("committing the file")?;
    Ok(Switch::Switched { replaced })
}
