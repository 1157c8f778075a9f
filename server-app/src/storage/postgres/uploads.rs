//! The table of uploads in progress in PostgreSQL, shared by every server of a fleet.
//!
//! One row per upload: its client, name, contents key, state (receiving, suspended,
//! finished), the suspended core state as bytes ([`SuspendedUpload::to_bytes`], no key
//! material), size and checksum once finished, and its owner: the server instance and
//! connection that holds it, with a lease. Every method is one SERIALIZABLE transaction
//! (retried when a concurrent one wins), and a take-over is additionally an `UPDATE`
//! conditioned on the row having no owner and being suspended: exactly one connection
//! of the whole fleet writes an upload at a time.
//!
//! Leases: a server renews the leases of the rows it owns at each
//! [`expire`](UploadTable::expire) (its housekeeping). Rows whose lease ran out belong
//! to a server that stopped (SIGKILL, lost host): a receiving upload of one is dead (its
//! connection is gone) and removed, a finished one waits for another connection of its
//! client like any upload whose connection closed. Whichever server sees them first
//! removes them; the caller deletes their contents (for S3, aborting the multipart
//! upload and its parts).

use std::sync::Arc;
use std::time::{Duration, Instant};

use protocol_core::crypto::AesKey;
use protocol_core::{ClientId, SuspendedUpload};

use crate::storage::postgres::metadata::{big, client_id};
use crate::storage::postgres::{Pg, TxError};
use crate::storage::uploads::{
    Abandoned, ConnId, Drained, Handover, Resumed, TableError, UploadId, UploadTable, VerdictFrom,
    Verdictable,
};
use crate::storage::{random_name, MetaError};

const RECEIVING: i16 = 0;
const SUSPENDED: i16 = 1;
const FINISHED: i16 = 2;

/// Uploads in progress in PostgreSQL, as seen by one server instance.
pub struct PgUploads {
    pg: Arc<Pg>,
    /// This server process: random, so a restarted server never owns its old rows.
    instance: String,
    /// How long a row this server holds stays its own without a renewal.
    lease: Duration,
}

/// One finished row, as the verdict rules need it.
struct Row {
    id: i64,
    owner: Option<(String, i64)>,
    /// Finished with [`Handover::AnyConnection`] within the verdict window.
    handed_over: bool,
}

fn id_of(id: UploadId) -> i64 {
    i64::try_from(id).unwrap_or(i64::MAX)
}

fn conn_of(conn: ConnId) -> i64 {
    i64::try_from(conn).unwrap_or(i64::MAX)
}

fn refused(what: &'static str) -> TxError {
    TxError::Refused(MetaError::backend(what, "the row changed"))
}

impl PgUploads {
    /// The table on `pg`, for a new server instance whose rows stay its own for
    /// `lease` without renewal (several renewal intervals: `app::SHARED_LEASE`).
    pub fn new(pg: Arc<Pg>, lease: Duration) -> PgUploads {
        PgUploads {
            pg,
            instance: random_name(),
            lease,
        }
    }

    /// This server instance's id, as the `owner_instance` column holds it.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    fn lease_secs(&self) -> f64 {
        self.lease.as_secs_f64()
    }

    /// The finished upload a verdict is about (the rules of
    /// [`UploadTable::take_for_verdict`]), deleted; its key, name, size and checksum.
    fn take_finished(
        &self,
        what: &'static str,
        from: VerdictFrom,
        client: &ClientId,
    ) -> Result<Option<Verdictable>, TableError> {
        let me = self.instance.clone();
        let client = client.0.to_vec();
        let window = from.window.as_secs_f64();
        self.pg.transact(what, move |tx| {
            let me = me.clone();
            let client = client.clone();
            Box::pin(async move {
                // Latest first: only the client's most recent 1603 may be handed over.
                let rows = tx
                    .query(
                        "SELECT id, owner_instance, owner_conn,
                             handover AND finished_at > now() - make_interval(secs => $3)
                         FROM uploads WHERE client = $1 AND state = $2
                         ORDER BY finished_at DESC NULLS LAST, id DESC",
                        &[&client, &FINISHED, &window],
                    )
                    .await?;
                let rows: Vec<Row> = rows
                    .iter()
                    .map(|r| Row {
                        id: r.get(0),
                        owner: r
                            .get::<_, Option<String>>(1)
                            .zip(r.get::<_, Option<i64>>(2)),
                        handed_over: r.get::<_, Option<bool>>(3).unwrap_or(false),
                    })
                    .collect();
                let Some(id) = pick_finished(&rows, &me, from) else {
                    return Ok(None);
                };
                let row = tx
                    .query_opt(
                        "DELETE FROM uploads WHERE id = $1 AND state = $2
                         RETURNING file_name, key, size, checksum",
                        &[&id, &FINISHED],
                    )
                    .await?;
                Ok(row.map(|r| Verdictable {
                    file_name: r.get(0),
                    key: r.get(1),
                    size: u64::try_from(r.get::<_, i64>(2)).unwrap_or(0),
                    checksum: u32::try_from(r.get::<_, i64>(3)).unwrap_or(0),
                }))
            })
        })
    }
}

/// The rules of [`UploadTable::take_for_verdict`] over the client's finished rows,
/// latest first.
fn pick_finished(rows: &[Row], me: &str, from: VerdictFrom) -> Option<i64> {
    let conn = conn_of(from.conn);
    if let Some(id) = from.own.map(id_of) {
        let mine = rows
            .iter()
            .any(|r| r.id == id && r.owner.as_ref().is_some_and(|(i, c)| i == me && *c == conn));
        if mine {
            return Some(id);
        }
    }
    if !from.fresh {
        return None;
    }
    rows.first().filter(|r| r.handed_over).map(|r| r.id)
}

impl UploadTable for PgUploads {
    fn start(
        &self,
        conn: ConnId,
        client: ClientId,
        file_name: &str,
        key: &str,
    ) -> Result<UploadId, TableError> {
        let (me, lease) = (self.instance.clone(), self.lease_secs());
        let (client, name, key) = (client.0.to_vec(), file_name.to_string(), key.to_string());
        let conn = conn_of(conn);
        let id = self.pg.run("recording an upload", move |c| async move {
            let row = c
                .query_one(
                    "INSERT INTO uploads (client, file_name, key, state, owner_instance,
                         owner_conn, lease_until)
                     VALUES ($1, $2, $3, $4, $5, $6, now() + make_interval(secs => $7))
                     RETURNING id",
                    &[&client, &name, &key, &RECEIVING, &me, &conn, &lease],
                )
                .await?;
            Ok(row.get::<_, i64>(0))
        })?;
        Ok(u64::try_from(id).unwrap_or(0))
    }

    fn supersede(
        &self,
        client: &ClientId,
        file_name: &str,
        per_request: bool,
    ) -> Result<Vec<String>, TableError> {
        let (client, name) = (client.0.to_vec(), file_name.to_string());
        self.pg.run("superseding uploads", move |c| async move {
            let rows = c
                .query(
                    "DELETE FROM uploads WHERE client = $1 AND file_name = $2
                         AND owner_instance IS NULL AND state = $3 AND per_request = $4
                     RETURNING key",
                    &[&client, &name, &SUSPENDED, &per_request],
                )
                .await?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
    }

    fn finish(
        &self,
        id: UploadId,
        size: u64,
        checksum: u32,
        handover: Handover,
    ) -> Result<bool, TableError> {
        let id = id_of(id);
        let size = big(size);
        let checksum = i64::from(checksum);
        let handover = handover == Handover::AnyConnection;
        self.pg.run("finishing an upload", move |c| async move {
            let n = c
                .execute(
                    "UPDATE uploads SET state = $2, size = $3, checksum = $4, suspended = NULL,
                         handover = $5, finished_at = clock_timestamp()
                     WHERE id = $1",
                    &[&id, &FINISHED, &size, &checksum, &handover],
                )
                .await?;
            Ok(n == 1)
        })
    }

    fn suspend(&self, id: UploadId, upload: SuspendedUpload) -> Result<(), TableError> {
        let id = id_of(id);
        let me = self.instance.clone();
        let bytes = upload.to_bytes();
        let per_request = upload.every_packet_answered();
        // What it holds, for the quota (`size` of a finished upload is its file's).
        let held = big(upload.bytes_so_far());
        self.pg.run("suspending an upload", move |c| async move {
            // Only the owner saves its state: a row taken over meanwhile is not ours.
            c.execute(
                "UPDATE uploads SET state = $2, suspended = $3, owner_instance = NULL,
                     owner_conn = NULL, lease_until = NULL, since = now(), per_request = $5,
                     size = $6
                 WHERE id = $1 AND owner_instance = $4",
                &[&id, &SUSPENDED, &bytes, &me, &per_request, &held],
            )
            .await?;
            Ok(())
        })
    }

    fn resume(
        &self,
        conn: ConnId,
        client: &ClientId,
        key: &AesKey,
    ) -> Result<Option<Resumed>, TableError> {
        let (me, lease) = (self.instance.clone(), self.lease_secs());
        let client = client.0.to_vec();
        let conn = conn_of(conn);
        let taken = self
            .pg
            .transact("taking over a suspended upload", move |tx| {
                let (me, client) = (me.clone(), client.clone());
                Box::pin(async move {
                    let rows = tx
                        .query(
                            "SELECT id, state, owner_instance, owner_conn FROM uploads
                         WHERE client = $1 AND state IN ($2, $3)",
                            &[&client, &RECEIVING, &SUSPENDED],
                        )
                        .await?;
                    let sending_elsewhere = rows.iter().any(|r| {
                        r.get::<_, i16>(1) == RECEIVING
                            && (r.get::<_, Option<String>>(2).as_deref() != Some(me.as_str())
                                || r.get::<_, Option<i64>>(3) != Some(conn))
                    });
                    let mut suspended = rows
                        .iter()
                        .filter(|r| r.get::<_, i16>(1) == SUSPENDED)
                        .map(|r| r.get::<_, i64>(0));
                    let (Some(id), None) = (suspended.next(), suspended.next()) else {
                        return Ok(None);
                    };
                    if sending_elsewhere {
                        return Ok(None);
                    }
                    let row = tx
                        .query_opt(
                            "UPDATE uploads SET state = $2, owner_instance = $3, owner_conn = $4,
                             lease_until = now() + make_interval(secs => $5)
                         WHERE id = $1 AND state = $6 AND owner_instance IS NULL
                         RETURNING key, suspended",
                            &[&id, &RECEIVING, &me, &conn, &lease, &SUSPENDED],
                        )
                        .await?;
                    match row {
                        Some(r) => Ok(Some((
                            id,
                            r.get::<_, String>(0),
                            r.get::<_, Option<Vec<u8>>>(1),
                        ))),
                        None => Err(refused("taking over a suspended upload")),
                    }
                })
            })?;
        let Some((id, upload_key, bytes)) = taken else {
            return Ok(None);
        };
        let id = u64::try_from(id).unwrap_or(0);
        match bytes.map(|b| SuspendedUpload::from_bytes(&b, key)) {
            Some(Ok(upload)) => Ok(Some(Resumed {
                id,
                key: upload_key,
                upload,
            })),
            // The row stays this connection's, receiving: its close removes it and
            // the contents go with it, as for any upload whose connection died.
            Some(Err(e)) => Err(MetaError::backend("decoding a suspended upload", e)),
            None => Err(MetaError::backend(
                "taking over a suspended upload",
                "no state saved",
            )),
        }
    }

    fn take_for_verdict(
        &self,
        from: VerdictFrom,
        client: &ClientId,
    ) -> Result<Option<Verdictable>, TableError> {
        self.take_finished("taking an upload for its verdict", from, client)
    }

    fn remove(&self, id: UploadId) -> Result<Option<String>, TableError> {
        let id = id_of(id);
        self.pg.run("removing an upload", move |c| async move {
            let row = c
                .query_opt("DELETE FROM uploads WHERE id = $1 RETURNING key", &[&id])
                .await?;
            Ok(row.map(|r| r.get(0)))
        })
    }

    fn remove_for_retry(
        &self,
        from: VerdictFrom,
        client: &ClientId,
    ) -> Result<Option<String>, TableError> {
        Ok(self
            .take_finished("removing a retried upload", from, client)?
            .map(|v| v.key))
    }

    fn release(&self, conn: ConnId) -> Result<Vec<String>, TableError> {
        let me = self.instance.clone();
        let conn = conn_of(conn);
        self.pg
            .transact("releasing a connection's uploads", move |tx| {
                let me = me.clone();
                Box::pin(async move {
                    let dead = tx
                        .query(
                            "DELETE FROM uploads
                         WHERE owner_instance = $1 AND owner_conn = $2 AND state = $3
                         RETURNING key",
                            &[&me, &conn, &RECEIVING],
                        )
                        .await?;
                    tx.execute(
                        "UPDATE uploads SET owner_instance = NULL, owner_conn = NULL,
                         lease_until = NULL, since = now()
                     WHERE owner_instance = $1 AND owner_conn = $2",
                        &[&me, &conn],
                    )
                    .await?;
                    Ok(dead.iter().map(|r| r.get(0)).collect())
                })
            })
    }

    fn expire(&self, after: Duration, _now: Instant) -> Result<Vec<Abandoned>, TableError> {
        let (me, lease) = (self.instance.clone(), self.lease_secs());
        let after = after.as_secs_f64();
        self.pg.transact("expiring abandoned uploads", move |tx| {
            let me = me.clone();
            Box::pin(async move {
                // Ours stay ours: this server is alive.
                tx.execute(
                    "UPDATE uploads SET lease_until = now() + make_interval(secs => $2)
                     WHERE owner_instance = $1",
                    &[&me, &lease],
                )
                .await?;
                // A stopped server's finished uploads wait like any whose connection
                // closed; its receiving ones died with their connections.
                tx.execute(
                    "UPDATE uploads SET owner_instance = NULL, owner_conn = NULL,
                         lease_until = NULL, since = now()
                     WHERE lease_until < now() AND state <> $1",
                    &[&RECEIVING],
                )
                .await?;
                let rows = tx
                    .query(
                        "DELETE FROM uploads
                         WHERE (owner_instance IS NULL
                                AND since <= now() - make_interval(secs => $1))
                            OR (lease_until < now() AND state = $2)
                         RETURNING client, key,
                             extract(epoch FROM now() - since)::float8",
                        &[&after, &RECEIVING],
                    )
                    .await?;
                Ok(rows
                    .iter()
                    .map(|r| Abandoned {
                        client: client_id(r.get(0)),
                        key: r.get(1),
                        idle: Duration::try_from_secs_f64(r.get::<_, f64>(2)).unwrap_or_default(),
                    })
                    .collect())
            })
        })
    }

    fn enforce_quota(&self, client: &ClientId, quota: u64) -> Result<Vec<Abandoned>, TableError> {
        let (id, client) = (*client, client.0.to_vec());
        let quota = big(quota);
        self.pg
            .transact("enforcing a client's upload quota", move |tx| {
                let client = client.clone();
                Box::pin(async move {
                    // The client's rows, locked: two servers enforcing at once drop each
                    // upload once, and only as many as the quota needs.
                    let rows = tx
                        .query(
                            "SELECT id, state, size, owner_instance IS NULL, key,
                             extract(epoch FROM now() - since)::float8
                         FROM uploads WHERE client = $1
                         ORDER BY since, id FOR UPDATE",
                            &[&client],
                        )
                        .await?;
                    let held = |r: &tokio_postgres::Row| {
                        if r.get::<_, i16>(1) == RECEIVING {
                            0
                        } else {
                            r.get::<_, i64>(2).max(0)
                        }
                    };
                    let mut total = rows.iter().fold(0i64, |t, r| t.saturating_add(held(r)));
                    let mut gone = Vec::new();
                    for row in rows.iter().filter(|r| r.get::<_, bool>(3)) {
                        if total <= quota {
                            break;
                        }
                        tx.execute(
                            "DELETE FROM uploads WHERE id = $1",
                            &[&row.get::<_, i64>(0)],
                        )
                        .await?;
                        total = total.saturating_sub(held(row));
                        gone.push(Abandoned {
                            client: id,
                            key: row.get(4),
                            idle: Duration::try_from_secs_f64(row.get::<_, f64>(5))
                                .unwrap_or_default(),
                        });
                    }
                    Ok(gone)
                })
            })
    }

    fn drain(&self) -> Result<Vec<Drained>, TableError> {
        let me = self.instance.clone();
        self.pg
            .run("removing this server's uploads", move |c| async move {
                let rows = c
                    .query(
                        "DELETE FROM uploads WHERE owner_instance = $1
                         RETURNING key, client, CASE WHEN state = $2 THEN size END",
                        &[&me, &FINISHED],
                    )
                    .await?;
                Ok(rows
                    .iter()
                    .map(|r| {
                        let size: Option<i64> = r.get(2);
                        Drained {
                            key: r.get(0),
                            client: client_id(r.get(1)),
                            bytes: size.and_then(|n| u64::try_from(n).ok()),
                        }
                    })
                    .collect())
            })
    }

    fn keys(&self) -> Result<Vec<String>, TableError> {
        self.pg.run("listing uploads", |c| async move {
            let rows = c.query("SELECT key FROM uploads", &[]).await?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
    }

    fn len(&self) -> usize {
        let me = self.instance.clone();
        self.pg
            .run("counting uploads", move |c| async move {
                let row = c
                    .query_one(
                        "SELECT count(*) FROM uploads WHERE owner_instance = $1
                             OR owner_instance IS NULL",
                        &[&me],
                    )
                    .await?;
                Ok(row.get::<_, i64>(0))
            })
            .map_or(0, |n| usize::try_from(n).unwrap_or(0))
    }

    fn shared(&self) -> bool {
        true
    }
}
