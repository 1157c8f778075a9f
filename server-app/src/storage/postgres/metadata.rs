//! [`Metadata`] in PostgreSQL, shared by several servers.
//!
//! The same semantics as [`SqliteMetadata`](crate::storage::sqlite::SqliteMetadata),
//! method for method. A method of several statements is one READ COMMITTED
//! transaction ([`Pg::transact_locked`]) that first locks the row standing for what it
//! changes: the client's row for its files (a switch, a removal), the client's row for
//! its keys; a method of one statement runs it alone (PostgreSQL re-checks a
//! `DELETE`'s condition on a row changed meanwhile). Uniqueness of names and ids is the
//! unique indexes' (`INSERT ... ON CONFLICT DO NOTHING`). Times come from the database's clock (`now()`), so
//! servers with skewed clocks agree on ages.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use protocol_core::ClientId;
use tokio_postgres::Row;

use super::{Pg, PgError, Transaction, TxError};
use crate::storage::{
    ClientRow, FileRecord, Intent, KeyOutcome, MetaError, Metadata, Registration, Removed,
    Restored, Switch, Version, VersionTotals,
};

/// Clients, keys, file records and commit intents in PostgreSQL.
pub struct PostgresMetadata {
    pg: Arc<Pg>,
}

impl PostgresMetadata {
    /// Connects to `url` and brings the schema up to date.
    pub fn connect(url: &str) -> Result<PostgresMetadata, MetaError> {
        Ok(PostgresMetadata::new(Arc::new(Pg::connect(url)?)))
    }

    /// Metadata over an existing pool (shared with other tables of the application).
    pub fn new(pg: Arc<Pg>) -> PostgresMetadata {
        PostgresMetadata { pg }
    }

    /// The pool, for other tables of the application.
    pub fn pg(&self) -> &Arc<Pg> {
        &self.pg
    }

    /// Commits under way (intents not cleared), as
    /// [`SqliteMetadata::pending_intents`](crate::storage::sqlite::SqliteMetadata::pending_intents).
    pub fn pending_intents(&self) -> Result<u64, MetaError> {
        self.pg.run("counting commit intents", |c| async move {
            let n: i64 = c
                .query_one("SELECT COUNT(*) FROM intents", &[])
                .await?
                .get(0);
            Ok(n.max(0) as u64)
        })
    }
}

/// Seconds of `d` as PostgreSQL's bigint.
fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// A count or size for a `bigint` column (saturating).
pub(crate) fn big(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A `bytea` client id; a malformed one (never written by a server) reads as zeros.
pub(crate) fn client_id(bytes: Vec<u8>) -> ClientId {
    ClientId(bytes.try_into().unwrap_or([0; 16]))
}

/// Whole seconds from `$col` to now, as SQLite's `CAST(... AS INTEGER)` counts them.
macro_rules! age {
    ($col:literal) => {
        concat!("floor(extract(epoch FROM now() - ", $col, "))::bigint")
    };
}

/// A time as SQLite's `datetime('now')` writes it: `YYYY-MM-DD HH:MM:SS`, UTC.
macro_rules! utc {
    ($col:literal) => {
        concat!(
            "to_char(",
            $col,
            " AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')"
        )
    };
}

// After the macros, which it uses.
mod versions;
use versions::{still_named, unnamed_objects};

const FILE_COLUMNS: &str = concat!(
    "ID, FileName, PathName, Verified, Size, Checksum, ",
    utc!("Updated")
);

fn file_row(r: &Row) -> Result<FileRecord, PgError> {
    Ok(FileRecord {
        client: client_id(r.try_get(0)?),
        file_name: r.try_get(1)?,
        object: r.try_get(2)?,
        verified: r.try_get(3)?,
        size: r.try_get::<_, i64>(4)?.max(0) as u64,
        checksum: r.try_get::<_, Option<i64>>(5)?.map(|c| c as u32),
        updated: r.try_get::<_, Option<String>>(6)?.unwrap_or_default(),
    })
}

fn file_rows(rows: Vec<Row>) -> Result<Vec<FileRecord>, PgError> {
    rows.iter().map(file_row).collect()
}

impl Metadata for PostgresMetadata {
    fn register(
        &self,
        id: &ClientId,
        name: &str,
        hold: Duration,
    ) -> Result<Registration, MetaError> {
        let (id, name, hold) = (id.0.to_vec(), name.to_string(), hold.as_secs());
        self.pg.transact_locked("registering a client", move |tx| {
            let (id, name) = (id.clone(), name.clone());
            Box::pin(async move {
                let st = tx
                    .prepare_cached(concat!(
                        "SELECT PublicKey IS NOT NULL, ",
                        age!("Registered"),
                        " FROM clients WHERE Name = $1"
                    ))
                    .await?;
                let existing = tx.query_opt(&st, &[&name]).await?;
                match existing.map(|r| (r.get::<_, bool>(0), r.get::<_, i64>(1))) {
                    Some((true, _)) => return Ok(Registration::NameTaken),
                    // Held for the client that registered it, until it sends its key
                    // or the hold time passes.
                    Some((false, age)) if (age.max(0) as u64) < hold => {
                        return Ok(Registration::NameTaken)
                    }
                    Some((false, _)) => {
                        tx.execute(
                            "DELETE FROM clients c WHERE Name = $1 AND PublicKey IS NULL \
                             AND NOT EXISTS (SELECT 1 FROM files f WHERE f.ID = c.ID) \
                             AND NOT EXISTS (SELECT 1 FROM versions v WHERE v.ID = c.ID)",
                            &[&name],
                        )
                        .await?;
                    }
                    None => {}
                }
                // Any clash (the name, or the id) means the name is not this client's.
                let st = tx
                    .prepare_cached(
                        "INSERT INTO clients (ID, Name, LastSeen, Registered) \
                         VALUES ($1, $2, now(), now()) ON CONFLICT DO NOTHING",
                    )
                    .await?;
                Ok(match tx.execute(&st, &[&id, &name]).await? {
                    1 => Registration::Registered,
                    _ => Registration::NameTaken,
                })
            })
        })
    }

    fn set_keys(
        &self,
        id: &ClientId,
        name: &str,
        public_key: &[u8],
        aes_key: &[u8],
    ) -> Result<KeyOutcome, MetaError> {
        let (id, name) = (id.0.to_vec(), name.to_string());
        let (public_key, aes_key) = (public_key.to_vec(), aes_key.to_vec());
        self.pg.transact_locked("storing keys", move |tx| {
            let (id, name) = (id.clone(), name.clone());
            let (public_key, aes_key) = (public_key.clone(), aes_key.clone());
            Box::pin(async move {
                let st = tx
                    .prepare_cached(
                        "SELECT PublicKey FROM clients WHERE ID = $1 AND Name = $2 FOR UPDATE",
                    )
                    .await?;
                // Locked: a concurrent 826 with another key waits, then sees this one.
                let on_file: Option<Option<Vec<u8>>> =
                    tx.query_opt(&st, &[&id, &name]).await?.map(|r| r.get(0));
                match on_file {
                    None => return Ok(KeyOutcome::Unknown),
                    Some(Some(k)) if k != public_key => return Ok(KeyOutcome::DifferentKeyOnFile),
                    Some(_) => {}
                }
                let st = tx
                    .prepare_cached(
                        "UPDATE clients SET PublicKey = $3, AESKey = $4, AESKeyIssued = now(), KeyUses = 0, \
                         LastSeen = now() WHERE ID = $1 AND Name = $2",
                    )
                    .await?;
                tx.execute(&st, &[&id, &name, &public_key, &aes_key])
                    .await?;
                Ok(KeyOutcome::Stored)
            })
        })
    }

    fn public_key(&self, id: &ClientId, name: &str) -> Result<Option<Vec<u8>>, MetaError> {
        let (id, name) = (id.0.to_vec(), name.to_string());
        self.pg
            .run("looking up the public key", move |c| async move {
                let st = c
                    .prepare_cached("SELECT PublicKey FROM clients WHERE ID = $1 AND Name = $2")
                    .await?;
                Ok(c.query_opt(&st, &[&id, &name])
                    .await?
                    .and_then(|r| r.get::<_, Option<Vec<u8>>>(0)))
            })
    }

    fn set_aes_key(&self, id: &ClientId, aes_key: &[u8]) -> Result<bool, MetaError> {
        let (id, aes_key) = (id.0.to_vec(), aes_key.to_vec());
        self.pg.run("storing the AES key", move |c| async move {
            let st = c
                .prepare_cached(
                    "UPDATE clients SET AESKey = $2, AESKeyIssued = now(), KeyUses = 0 WHERE ID = $1",
                )
                .await?;
            Ok(c.execute(&st, &[&id, &aes_key]).await? == 1)
        })
    }

    fn aes_key(&self, id: &ClientId) -> Result<Option<(Vec<u8>, u64)>, MetaError> {
        let id = id.0.to_vec();
        self.pg.run("looking up the AES key", move |c| async move {
            let st = c
                .prepare_cached(concat!(
                    "SELECT AESKey, ",
                    age!("COALESCE(AESKeyIssued, LastSeen)"),
                    " FROM clients WHERE ID = $1"
                ))
                .await?;
            let row = c.query_opt(&st, &[&id]).await?;
            Ok(match row {
                Some(r) => r
                    .get::<_, Option<Vec<u8>>>(0)
                    .map(|key| (key, r.get::<_, Option<i64>>(1).unwrap_or(0).max(0) as u64)),
                None => None,
            })
        })
    }

    fn revoke_aes_key(&self, id: &ClientId) -> Result<(), MetaError> {
        let id = id.0.to_vec();
        self.pg.run("revoking the AES key", move |c| async move {
            c.execute("UPDATE clients SET AESKey = NULL WHERE ID = $1", &[&id])
                .await?;
            Ok(())
        })
    }

    fn count_checked_upload(
        &self,
        id: &ClientId,
        aes_key: &[u8],
    ) -> Result<Option<u32>, MetaError> {
        let (id, aes_key) = (id.0.to_vec(), aes_key.to_vec());
        self.pg
            .run("counting a checked upload", move |c| async move {
                let st = c
                    .prepare_cached(
                        "UPDATE clients SET KeyUses = KeyUses + 1
                     WHERE ID = $1 AND AESKey = $2 RETURNING KeyUses",
                    )
                    .await?;
                Ok(c.query_opt(&st, &[&id, &aes_key])
                    .await?
                    .map(|r| u32::try_from(r.get::<_, i32>(0)).unwrap_or(u32::MAX)))
            })
    }

    fn touch(&self, id: &ClientId) -> Result<(), MetaError> {
        let id = id.0.to_vec();
        self.pg.run("updating LastSeen", move |c| async move {
            let st = c
                .prepare_cached("UPDATE clients SET LastSeen = now() WHERE ID = $1")
                .await?;
            c.execute(&st, &[&id]).await?;
            Ok(())
        })
    }

    fn set_dialect(&self, id: &ClientId, dialect: &str) -> Result<(), MetaError> {
        let (id, dialect) = (id.0.to_vec(), dialect.to_string());
        self.pg
            .run("recording the dialect seen", move |c| async move {
                let st = c
                    .prepare_cached("UPDATE clients SET Dialect = $2 WHERE ID = $1")
                    .await?;
                c.execute(&st, &[&id, &dialect]).await?;
                Ok(())
            })
    }

    fn expire_registrations(&self, hold: Duration) -> Result<Vec<String>, MetaError> {
        let hold = secs(hold);
        self.pg.run("expiring registrations", move |c| async move {
            let rows = c
                .query(
                    concat!(
                        "DELETE FROM clients c WHERE PublicKey IS NULL \
                         AND NOT EXISTS (SELECT 1 FROM files f WHERE f.ID = c.ID) \
                         AND NOT EXISTS (SELECT 1 FROM versions v WHERE v.ID = c.ID) AND ",
                        age!("Registered"),
                        " >= $1 RETURNING Name"
                    ),
                    &[&hold],
                )
                .await?;
            rows.iter().map(|r| r.try_get(0)).collect()
        })
    }

    fn clients(&self) -> Result<Vec<ClientRow>, MetaError> {
        self.pg.run("listing clients", |c| async move {
            let rows = c
                .query(
                    concat!(
                        "SELECT c.ID, c.Name, c.PublicKey IS NOT NULL, ",
                        utc!("c.LastSeen"),
                        ", CASE WHEN c.AESKey IS NULL THEN NULL ELSE ",
                        age!("COALESCE(c.AESKeyIssued, c.LastSeen)"),
                        " END, \
                         (SELECT COUNT(*) FROM files f WHERE f.ID = c.ID), \
                         (SELECT COALESCE(SUM(Size), 0)::bigint FROM files f WHERE f.ID = c.ID), \
                         c.Dialect FROM clients c ORDER BY c.Name COLLATE \"C\""
                    ),
                    &[],
                )
                .await?;
            rows.iter()
                .map(|r| {
                    Ok(ClientRow {
                        id: client_id(r.try_get(0)?),
                        name: r.try_get(1)?,
                        has_key: r.try_get(2)?,
                        last_seen: r.try_get(3)?,
                        aes_key_age: r.try_get::<_, Option<i64>>(4)?.map(|a| a.max(0) as u64),
                        files: r.try_get::<_, i64>(5)?.max(0) as u64,
                        bytes: r.try_get::<_, i64>(6)?.max(0) as u64,
                        dialect: r.try_get(7)?,
                    })
                })
                .collect()
        })
    }

    fn file(&self, id: &ClientId, file_name: &str) -> Result<Option<FileRecord>, MetaError> {
        let (id, file_name) = (id.0.to_vec(), file_name.to_string());
        self.pg.run("looking up a file", move |c| async move {
            let st = c
                .prepare_cached(&format!(
                    "SELECT {FILE_COLUMNS} FROM files WHERE ID = $1 AND FileName = $2"
                ))
                .await?;
            c.query_opt(&st, &[&id, &file_name])
                .await?
                .as_ref()
                .map(file_row)
                .transpose()
        })
    }

    fn files(&self, client: Option<&ClientId>) -> Result<Vec<FileRecord>, MetaError> {
        let filter = client.map(|c| c.0.to_vec());
        self.pg.run("listing files", move |c| async move {
            let rows = c
                .query(
                    &format!(
                        "SELECT {FILE_COLUMNS} FROM files WHERE $1::bytea IS NULL OR ID = $1 \
                         ORDER BY ID, FileName COLLATE \"C\""
                    ),
                    &[&filter],
                )
                .await?;
            file_rows(rows)
        })
    }

    fn delete_file(&self, id: &ClientId, file_name: &str) -> Result<Option<Removed>, MetaError> {
        let (id, file_name) = (id.0.to_vec(), file_name.to_string());
        self.pg.transact_locked("deleting a file", move |tx| {
            let (id, file_name) = (id.clone(), file_name.clone());
            Box::pin(async move { Ok(versions::delete_file(tx, &id, &file_name).await?) })
        })
    }

    fn remove_client(&self, id: &ClientId) -> Result<Option<Removed>, MetaError> {
        let id = id.0.to_vec();
        self.pg.transact_locked("removing a client", move |tx| {
            let id = id.clone();
            Box::pin(async move {
                // The client row first, as a commit's switch locks it: one waits for
                // the other, and a switch after this finds no client.
                if tx
                    .query_opt("SELECT 1 FROM clients WHERE ID = $1 FOR UPDATE", &[&id])
                    .await?
                    .is_none()
                {
                    return Ok(None);
                }
                let rows = tx
                    .query(
                        &format!("DELETE FROM files WHERE ID = $1 RETURNING {FILE_COLUMNS}"),
                        &[&id],
                    )
                    .await?;
                let files = file_rows(rows)?;
                let versions = versions::remove(tx, &id, None).await?;
                if tx
                    .execute("DELETE FROM clients WHERE ID = $1", &[&id])
                    .await?
                    == 0
                {
                    return Ok(None);
                }
                let objects = unnamed_objects(tx, &files, &versions).await?;
                Ok(Some(Removed {
                    files,
                    versions,
                    objects,
                }))
            })
        })
    }

    fn prune_unverified(&self, older_than: Duration) -> Result<Removed, MetaError> {
        let older_than = secs(older_than);
        self.pg.transact_locked("pruning unverified files", move |tx| {
            Box::pin(async move {
                let rows = tx
                    .query(
                        &format!(
                            "DELETE FROM files WHERE NOT Verified AND (Updated IS NULL OR {} >= $1) \
                             RETURNING {FILE_COLUMNS}",
                            age!("Updated")
                        ),
                        &[&older_than],
                    )
                    .await?;
                let files = file_rows(rows)?;
                let objects = unnamed_objects(tx, &files, &[]).await?;
                Ok(Removed {
                    files,
                    versions: Vec::new(),
                    objects,
                })
            })
        })
    }

    fn referenced_objects(&self) -> Result<HashSet<String>, MetaError> {
        self.pg.run("listing referenced objects", |c| async move {
            let rows = c
                .query(
                    "SELECT PathName FROM files UNION SELECT PathName FROM versions \
                     UNION SELECT Object FROM intents \
                     UNION SELECT Replaced FROM intents WHERE Replaced IS NOT NULL",
                    &[],
                )
                .await?;
            rows.iter().map(|r| r.try_get(0)).collect()
        })
    }

    fn versions(
        &self,
        client: Option<&ClientId>,
        file_name: Option<&str>,
    ) -> Result<Vec<Version>, MetaError> {
        let (client, file_name) = (client.map(|c| c.0.to_vec()), file_name.map(str::to_string));
        self.pg.run("listing versions", move |c| async move {
            versions::list(&c, client, file_name).await
        })
    }

    fn version_totals(&self) -> Result<VersionTotals, MetaError> {
        self.pg.run("counting versions", |c| async move {
            versions::totals(&c).await
        })
    }

    fn restore_version(
        &self,
        id: &ClientId,
        file_name: &str,
        version: u64,
    ) -> Result<Option<Restored>, MetaError> {
        let (id, file_name) = (id.0.to_vec(), file_name.to_string());
        self.pg.transact_locked("restoring a version", move |tx| {
            let (id, file_name) = (id.clone(), file_name.clone());
            Box::pin(async move { Ok(versions::restore(tx, &id, &file_name, version).await?) })
        })
    }

    fn prune_versions(&self, keep: usize, older_than: Duration) -> Result<Removed, MetaError> {
        self.pg.transact_locked("pruning versions", move |tx| {
            Box::pin(async move { Ok(versions::prune(tx, keep, older_than).await?) })
        })
    }

    fn record_intent(&self, i: &Intent) -> Result<(), MetaError> {
        let i = i.clone();
        self.pg
            .run("recording a commit intent", move |c| async move {
                let st = c
                    .prepare_cached(
                        "INSERT INTO intents (IntentID, ID, FileName, Upload, Object, Verified, \
                     Size, Checksum, Replaced, Switched) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, false)",
                    )
                    .await?;
                c.execute(
                    &st,
                    &[
                        &i.id,
                        &&i.client.0[..],
                        &i.file_name,
                        &i.upload,
                        &i.object,
                        &i.verified,
                        &big(i.size),
                        &i64::from(i.checksum),
                    ],
                )
                .await?;
                Ok(())
            })
    }

    fn switch(&self, i: &Intent) -> Result<Switch, MetaError> {
        let i = i.clone();
        self.pg.transact_locked("committing the file", move |tx| {
            let i = i.clone();
            Box::pin(async move { switch_in(tx, &i).await })
        })
    }

    fn clear_intent(&self, id: &str) -> Result<(), MetaError> {
        let id = id.to_string();
        self.pg
            .run("clearing a commit intent", move |c| async move {
                let st = c
                    .prepare_cached("DELETE FROM intents WHERE IntentID = $1")
                    .await?;
                c.execute(&st, &[&id]).await?;
                Ok(())
            })
    }

    fn claim_intent(&self, i: &Intent) -> Result<bool, MetaError> {
        let (id, switched) = (i.id.clone(), i.switched);
        self.pg
            .run("claiming a commit intent", move |c| async move {
                let st = c
                    .prepare_cached("DELETE FROM intents WHERE IntentID = $1 AND Switched = $2")
                    .await?;
                Ok(c.execute(&st, &[&id, &switched]).await? == 1)
            })
    }

    fn intents(&self) -> Result<Vec<Intent>, MetaError> {
        self.pg.run("listing commit intents", |c| async move {
            let rows = c.query(SELECT_INTENTS, &[]).await?;
            rows.iter().map(intent).collect()
        })
    }

    fn stale_intents(&self, older_than: Duration) -> Result<Vec<Intent>, MetaError> {
        let secs = older_than.as_secs_f64();
        self.pg
            .run("listing stale commit intents", move |c| async move {
                let rows = c
                    .query(
                        &format!(
                        "{SELECT_INTENTS} WHERE Recorded < now() - $1::float8 * interval '1 second'"
                    ),
                        &[&secs],
                    )
                    .await?;
                rows.iter().map(intent).collect()
            })
    }
}

const SELECT_INTENTS: &str = "SELECT IntentID, ID, FileName, Upload, Object, Verified, Size, \
                              Checksum, Replaced, Switched FROM intents";

fn intent(r: &Row) -> Result<Intent, PgError> {
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
    })
}

/// The commit point (step 4) inside its transaction: see [`Metadata::switch`].
async fn switch_in(tx: &Transaction<'_>, i: &Intent) -> Result<Switch, TxError> {
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
            "INSERT INTO files (ID, FileName, PathName, Verified, Size, Checksum, Updated) \
             VALUES ($1, $2, $3, $4, $5, $6, now()) \
             ON CONFLICT (ID, FileName) DO UPDATE SET PathName = excluded.PathName, \
             Verified = excluded.Verified, Size = excluded.Size, \
             Checksum = excluded.Checksum, Updated = excluded.Updated",
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
