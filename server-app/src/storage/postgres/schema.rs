//! The PostgreSQL schema and its migrations.
//!
//! The tables and columns mean what they mean in SQLite (`clients`, `files`,
//! `intents`, `versions`; docs/STORAGE.md), with PostgreSQL's types: ids and keys `bytea`, names
//! `text`, times `timestamptz`, flags `boolean`, sizes and checksums `bigint`.
//! Unquoted, the column names fold to lower case (`PublicKey` is `publickey`).
//!
//! `schema_version` holds one row, the version the database is at. Each server
//! migrates at start under a transaction-level advisory lock, so servers starting at
//! once take turns and the later ones find the work done. A database newer than
//! this build is refused.

use tokio_postgres::Client;

use super::PgError;

/// Key of the advisory lock held while migrating (any constant the application does
/// not use for anything else).
const MIGRATION_LOCK: i64 = 0x6669_6c65_7374_6f72; // "filestor"

/// Each migration, in order: `MIGRATIONS[n]` brings version `n` to `n + 1`.
pub const MIGRATIONS: &[&str] = &[
    // Version 1: the tables of SQLite's schema 4.
    "CREATE TABLE clients (
         ID bytea PRIMARY KEY CHECK (length(ID) = 16),
         Name text NOT NULL UNIQUE CHECK (length(Name) <= 255),
         PublicKey bytea CHECK (PublicKey IS NULL OR length(PublicKey) = 160),
         LastSeen timestamptz NOT NULL,
         AESKey bytea CHECK (AESKey IS NULL OR length(AESKey) IN (16, 32)),
         AESKeyIssued timestamptz,
         Registered timestamptz NOT NULL,
         Dialect text
     );
     CREATE TABLE files (
         ID bytea NOT NULL REFERENCES clients(ID),
         FileName text NOT NULL,
         PathName text NOT NULL,
         Verified boolean NOT NULL DEFAULT false,
         Size bigint NOT NULL DEFAULT 0,
         Checksum bigint,
         Updated timestamptz,
         PRIMARY KEY (ID, FileName)
     );
     CREATE INDEX files_pathname ON files (PathName);
     CREATE TABLE intents (
         IntentID text PRIMARY KEY,
         ID bytea NOT NULL,
         FileName text NOT NULL,
         Upload text NOT NULL,
         Object text NOT NULL,
         Verified boolean NOT NULL,
         Size bigint NOT NULL,
         Checksum bigint NOT NULL,
         Replaced text,
         Switched boolean NOT NULL DEFAULT false
     );",
    // Version 2: uploads in progress, shared by the servers of a fleet.
    UPLOADS,
    // Version 3: when each intent was recorded. The servers of a fleet resolve only
    // intents older than any commit takes (others may be running); rows from before
    // count from the migration.
    "ALTER TABLE intents ADD COLUMN Recorded timestamptz NOT NULL DEFAULT now();",
    // Version 4: versions, the verified content a commit replaced (SQLite's schema
    // 5). Ids come from an identity, never reused: operators name versions by them.
    "CREATE TABLE versions (
         VersionID bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
         ID bytea NOT NULL REFERENCES clients(ID),
         FileName text NOT NULL,
         PathName text NOT NULL,
         Verified boolean NOT NULL,
         Size bigint NOT NULL,
         Checksum bigint,
         Updated timestamptz,
         Superseded timestamptz NOT NULL
     );
     CREATE INDEX versions_file ON versions (ID, FileName);
     CREATE INDEX versions_pathname ON versions (PathName);",
    // Version 5: whole uploads checked under each issued AES key (at most 1 + 3),
    // where a finished upload's verdict may come from, and which suspended uploads a
    // restart replaces (docs/SECURITY.md).
    concat!(
        "ALTER TABLE clients ADD COLUMN KeyUses integer NOT NULL DEFAULT 0;",
        "ALTER TABLE uploads ADD COLUMN handover boolean NOT NULL DEFAULT false;",
        "ALTER TABLE uploads ADD COLUMN finished_at timestamptz;",
        "ALTER TABLE uploads ADD COLUMN per_request boolean NOT NULL DEFAULT false;"
    ),
    // Version 6: secure mode (SQLite's schema 7). Each client's secure-mode key
    // (apart from the legacy RSA-1024 key) and whether its legacy requests are still
    // served; the SHA-256 of each file, version and commit; resumable uploads, one
    // per file, so that any server of the fleet continues one (docs/STORAGE.md).
    "ALTER TABLE clients ADD COLUMN SecureKind smallint
         CHECK (SecureKind IS NULL OR SecureKind IN (2, 3));
     ALTER TABLE clients ADD COLUMN SecureKey bytea;
     ALTER TABLE clients ADD CONSTRAINT clients_secure_key
         CHECK ((SecureKey IS NULL) = (SecureKind IS NULL));
     ALTER TABLE clients ADD COLUMN WentSecure boolean NOT NULL DEFAULT false;
     ALTER TABLE clients ADD COLUMN KeepLegacy boolean NOT NULL DEFAULT false;
     ALTER TABLE files ADD COLUMN Sha256 bytea CHECK (Sha256 IS NULL OR length(Sha256) = 32);
     ALTER TABLE versions ADD COLUMN Sha256 bytea
         CHECK (Sha256 IS NULL OR length(Sha256) = 32);
     ALTER TABLE intents ADD COLUMN Sha256 bytea
         CHECK (Sha256 IS NULL OR length(Sha256) = 32);
     CREATE TABLE partials (
         ID bytea NOT NULL,
         FileName text NOT NULL,
         Size bigint NOT NULL,
         Received bigint NOT NULL CHECK (Received <= Size),
         Upload text NOT NULL,
         State bytea NOT NULL,
         Updated timestamptz NOT NULL,
         PRIMARY KEY (ID, FileName)
     );
     CREATE INDEX partials_updated ON partials (Updated);",
];

/// The schema version this build writes.
pub fn current_version() -> i64 {
    MIGRATIONS.len() as i64
}

/// The version the database is at, `None` when it has no `schema_version` table.
/// Changes nothing (unlike [`migrate`], which creates the table).
pub async fn version(client: &Client) -> Result<Option<i64>, PgError> {
    // `to_regclass` is NULL for a missing table, without an error or a notice.
    let exists: bool = client
        .query_one("SELECT to_regclass('schema_version') IS NOT NULL", &[])
        .await?
        .get(0);
    if !exists {
        return Ok(None);
    }
    let row = client
        .query_opt("SELECT version FROM schema_version", &[])
        .await?;
    Ok(Some(row.map_or(0, |r| r.get(0))))
}

/// Brings the database to [`current_version`], one transaction per call, holding the
/// migration lock for its duration. A database at a newer version is refused.
pub async fn migrate(client: &mut Client) -> Result<(), PgError> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS schema_version (version bigint NOT NULL)")
        .await?;
    let version: i64 = match tx
        .query_opt("SELECT version FROM schema_version", &[])
        .await?
    {
        Some(row) => row.get(0),
        None => {
            tx.execute("INSERT INTO schema_version (version) VALUES (0)", &[])
                .await?;
            0
        }
    };
    if version > current_version() {
        // Rolled back with the transaction; the message reaches the operator.
        tx.batch_execute(&format!(
            "DO $$ BEGIN RAISE EXCEPTION 'the database has schema version {version}, newer \
             than this server''s {}: run the newer server'; END $$",
            current_version()
        ))
        .await?;
    }
    for (from, step) in MIGRATIONS.iter().enumerate().skip(version.max(0) as usize) {
        tx.batch_execute(step).await?;
        tx.execute(
            "UPDATE schema_version SET version = $1",
            &[&(from as i64 + 1)],
        )
        .await?;
    }
    tx.commit().await
}

/// Version 2's `uploads` table: uploads in progress, shared by the servers of a fleet
/// (`uploads.rs` reads and writes it).
const UPLOADS: &str = "CREATE TABLE uploads (
        id bigserial PRIMARY KEY,
        client bytea NOT NULL,
        file_name text NOT NULL,
        key text NOT NULL UNIQUE,
        state smallint NOT NULL,
        suspended bytea,
        size bigint NOT NULL DEFAULT 0,
        checksum bigint NOT NULL DEFAULT 0,
        owner_instance text,
        owner_conn bigint,
        lease_until timestamptz,
        since timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX uploads_by_client ON uploads (client);
    CREATE INDEX uploads_by_owner ON uploads (owner_instance, owner_conn);";
