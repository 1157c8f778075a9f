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

use super::{Pg, PgError, Transaction};
use crate::storage::{
    ClientRow, FileRecord, Intent, KeyOutcome, MetaError, Metadata, PartialUpload, Registration,
    Removed, Restored, SecureKey, SecureStatus, Switch, Version, VersionTotals,
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
mod commit;
mod secure;
mod versions;
use commit::{intent, switch_in, SELECT_INTENTS};
use versions::{still_named, unnamed_objects};

const FILE_COLUMNS: &str = concat!(
    "ID, FileName, PathName, Verified, Size, Checksum, ",
    utc!("Updated"),
    ", Sha256"
);

/// A stored SHA-256 (32 bytes, the schema checks); anything else reads as none.
pub(crate) fn sha256(bytes: Option<Vec<u8>>) -> Option<[u8; 32]> {
    bytes.and_then(|b| b.try_into().ok())
}

fn file_row(r: &Row) -> Result<FileRecord, PgError> {
    Ok(FileRecord {
        client: client_id(r.try_get(0)?),
        file_name: r.try_get(1)?,
        object: r.try_get(2)?,
        verified: r.try_get(3)?,
        size: r.try_get::<_, i64>(4)?.max(0) as u64,
        checksum: r.try_get::<_, Option<i64>>(5)?.map(|c| c as u32),
        updated: r.try_get::<_, Option<String>>(6)?.unwrap_or_default(),
        sha256: sha256(r.try_get(7)?),
    })
}

fn file_rows(rows: Vec<Row>) -> Result<Vec<FileRecord>, PgError> {
    rows.iter().map(file_row).collect()
}

/// A registration inside `tx` (see [`Metadata::register`]): a name held by a client
/// with any key (legacy or secure) is taken, one without a key for `hold` seconds.
pub(crate) async fn register_in(
    tx: &Transaction<'_>,
    id: &[u8],
    name: &str,
    hold: u64,
) -> Result<Registration, PgError> {
    let st = tx
        .prepare_cached(concat!(
            "SELECT PublicKey IS NOT NULL OR SecureKey IS NOT NULL, ",
            age!("Registered"),
            " FROM clients WHERE Name = $1"
        ))
        .await?;
    let existing = tx.query_opt(&st, &[&name]).await?;
    match existing.map(|r| (r.get::<_, bool>(0), r.get::<_, i64>(1))) {
        Some((true, _)) => return Ok(Registration::NameTaken),
        // Held for the client that registered it, until it sends its key or the hold
        // time passes.
        Some((false, age)) if (age.max(0) as u64) < hold => return Ok(Registration::NameTaken),
        Some((false, _)) => {
            tx.execute(
                "DELETE FROM clients c WHERE Name = $1 AND PublicKey IS NULL \
                 AND SecureKey IS NULL \
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
            Box::pin(async move { Ok(register_in(tx, &id, &name, hold).await?) })
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

    fn legacy_key(&self, id: &ClientId) -> Result<Option<Vec<u8>>, MetaError> {
        let id = id.0.to_vec();
        self.pg
            .run("looking up the legacy key", move |c| async move {
                let st = c
                    .prepare_cached("SELECT PublicKey FROM clients WHERE ID = $1")
                    .await?;
                Ok(c.query_opt(&st, &[&id])
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
                        "DELETE FROM clients c WHERE PublicKey IS NULL AND SecureKey IS NULL \
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
                         c.Dialect, c.SecureKind, c.WentSecure, c.KeepLegacy \
                         FROM clients c ORDER BY c.Name COLLATE \"C\""
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
                        secure_key_kind: r
                            .try_get::<_, Option<i16>>(8)?
                            .and_then(|k| u8::try_from(k).ok()),
                        secure: SecureStatus {
                            went_secure: r.try_get(9)?,
                            keep_legacy: r.try_get(10)?,
                        },
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
                // Its resumable uploads go too: their uploads, named by nothing any
                // more, are removed by the sweeps.
                tx.execute("DELETE FROM partials WHERE ID = $1", &[&id])
                    .await?;
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
                     Size, Checksum, Replaced, Switched, Sha256) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, false, $9)",
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
                        &i.sha256.map(|h| h.to_vec()),
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

    fn secure_key(&self, id: &ClientId) -> Result<Option<SecureKey>, MetaError> {
        secure::secure_key(&self.pg, id)
    }

    fn set_secure_key(&self, id: &ClientId, key: &SecureKey) -> Result<bool, MetaError> {
        secure::set_secure_key(&self.pg, id, key)
    }

    fn register_secure(
        &self,
        id: &ClientId,
        name: &str,
        key: &SecureKey,
        hold: Duration,
    ) -> Result<Registration, MetaError> {
        secure::register_secure(&self.pg, id, name, key, hold)
    }

    fn secure_status(&self, id: &ClientId) -> Result<Option<SecureStatus>, MetaError> {
        secure::secure_status(&self.pg, id)
    }

    fn mark_went_secure(&self, id: &ClientId) -> Result<bool, MetaError> {
        secure::set_flag(&self.pg, id, "WentSecure", true)
    }

    fn set_keep_legacy(&self, id: &ClientId, keep: bool) -> Result<bool, MetaError> {
        secure::set_flag(&self.pg, id, "KeepLegacy", keep)
    }

    fn retire_file(&self, id: &ClientId, file_name: &str) -> Result<Option<Version>, MetaError> {
        secure::retire_file(&self.pg, id, file_name)
    }

    fn save_partial(&self, partial: &PartialUpload) -> Result<(), MetaError> {
        secure::save_partial(&self.pg, partial)
    }

    fn partial(&self, id: &ClientId, file_name: &str) -> Result<Option<PartialUpload>, MetaError> {
        secure::partial(&self.pg, id, file_name)
    }

    fn remove_partial(
        &self,
        id: &ClientId,
        file_name: &str,
        upload: &str,
    ) -> Result<bool, MetaError> {
        secure::remove_partial(&self.pg, id, file_name, upload)
    }

    fn expire_partials(&self, older_than: Duration) -> Result<Vec<PartialUpload>, MetaError> {
        secure::expire_partials(&self.pg, older_than)
    }

    fn referenced_uploads(&self) -> Result<HashSet<String>, MetaError> {
        secure::referenced_uploads(&self.pg)
    }
}
