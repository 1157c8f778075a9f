//! The SQLite schema of `defensive.db` and its upgrades, one step per version.

use rusqlite::Connection;

/// Brings a database of schema `version` up to [`super::sqlite::SCHEMA_VERSION`], each
/// step in one transaction.
pub(super) fn migrate(db: &Connection, version: i64) -> rusqlite::Result<()> {
    migrate_to(db, version, super::SCHEMA_VERSION)
}

/// Brings a database of schema `version` up to `target` (tests build the databases
/// of older servers with it).
pub(super) fn migrate_to(db: &Connection, version: i64, target: i64) -> rusqlite::Result<()> {
    if version < 1 && target >= 1 {
        db.execute_batch(
            "BEGIN;
             CREATE TABLE IF NOT EXISTS clients (
                 ID BLOB PRIMARY KEY CHECK (length(ID) = 16),
                 Name TEXT NOT NULL UNIQUE CHECK (length(Name) <= 255),
                 PublicKey BLOB CHECK (PublicKey IS NULL OR length(PublicKey) = 160),
                 LastSeen TEXT NOT NULL,
                 AESKey BLOB CHECK (AESKey IS NULL OR length(AESKey) IN (16, 32))
             );
             CREATE TABLE IF NOT EXISTS files (
                 ID BLOB NOT NULL REFERENCES clients(ID),
                 FileName TEXT NOT NULL,
                 PathName TEXT NOT NULL,
                 Verified INTEGER NOT NULL DEFAULT 0,
                 Size INTEGER NOT NULL DEFAULT 0,
                 PRIMARY KEY (ID, FileName)
             );
             PRAGMA user_version = 1;
             COMMIT;",
        )?;
    }
    if version < 2 && target >= 2 {
        // Version 2: when the AES key was issued, so that keys can expire.
        db.execute_batch(
            "BEGIN;
             ALTER TABLE clients ADD COLUMN AESKeyIssued TEXT;
             UPDATE clients SET AESKeyIssued = LastSeen WHERE AESKey IS NOT NULL;
             PRAGMA user_version = 2;
             COMMIT;",
        )?;
    }
    if version < 3 && target >= 3 {
        // Version 3: when a client registered (a name without a key is held only so
        // long), the checksum and time of each file, and commits under way. Rows of
        // version 2 keep their PathName (files/<id>/<name>): it is their object key.
        db.execute_batch(
            "BEGIN;
             ALTER TABLE clients ADD COLUMN Registered TEXT;
             UPDATE clients SET Registered = LastSeen;
             ALTER TABLE files ADD COLUMN Checksum INTEGER;
             ALTER TABLE files ADD COLUMN Updated TEXT;
             CREATE TABLE intents (
                 IntentID TEXT PRIMARY KEY,
                 ID BLOB NOT NULL,
                 FileName TEXT NOT NULL,
                 Upload TEXT NOT NULL,
                 Object TEXT NOT NULL,
                 Verified INTEGER NOT NULL,
                 Size INTEGER NOT NULL,
                 Checksum INTEGER NOT NULL,
                 Replaced TEXT,
                 Switched INTEGER NOT NULL DEFAULT 0
             );
             PRAGMA user_version = 3;
             COMMIT;",
        )?;
    }
    if version < 4 && target >= 4 {
        // Version 4: the protocol variants each client's last connection used, for
        // operators serving a mix of peers (`list-clients`).
        db.execute_batch(
            "BEGIN;
             ALTER TABLE clients ADD COLUMN Dialect TEXT;
             PRAGMA user_version = 4;
             COMMIT;",
        )?;
    }
    if version < 5 && target >= 5 {
        // Version 5: versions, the verified content a commit replaced (kept so that
        // nothing verified is lost, not even to a stranger's verified upload). The
        // id is never reused (AUTOINCREMENT): operators name versions by it.
        db.execute_batch(
            "BEGIN;
             CREATE TABLE versions (
                 VersionID INTEGER PRIMARY KEY AUTOINCREMENT,
                 ID BLOB NOT NULL REFERENCES clients(ID),
                 FileName TEXT NOT NULL,
                 PathName TEXT NOT NULL,
                 Verified INTEGER NOT NULL,
                 Size INTEGER NOT NULL,
                 Checksum INTEGER,
                 Updated TEXT,
                 Superseded TEXT NOT NULL
             );
             CREATE INDEX versions_file ON versions (ID, FileName);
             CREATE INDEX versions_pathname ON versions (PathName);
             PRAGMA user_version = 5;
             COMMIT;",
        )?;
    }
    if version < 6 && target >= 6 {
        // Version 6: whole uploads checked (1603 with a whole file's checksum) under
        // each issued AES key: at most 1 + 3, so that a stranger who knows a client
        // id gets no more checksums than the client itself needs (docs/SECURITY.md).
        db.execute_batch(
            "BEGIN;
             ALTER TABLE clients ADD COLUMN KeyUses INTEGER NOT NULL DEFAULT 0;
             PRAGMA user_version = 6;
             COMMIT;",
        )?;
    }
    if version < 7 && target >= 7 {
        // Version 7: secure mode. Each client's secure-mode key (apart from the
        // legacy RSA-1024 key) and whether its legacy requests are still served; the
        // SHA-256 of each file, version and commit; resumable uploads (one per file),
        // whose uploads the sweeps leave alone (docs/STORAGE.md, "Secure mode").
        db.execute_batch(
            "BEGIN;
             ALTER TABLE clients ADD COLUMN SecureKind INTEGER
                 CHECK (SecureKind IS NULL OR SecureKind IN (2, 3));
             ALTER TABLE clients ADD COLUMN SecureKey BLOB
                 CHECK ((SecureKey IS NULL) = (SecureKind IS NULL));
             ALTER TABLE clients ADD COLUMN WentSecure INTEGER NOT NULL DEFAULT 0;
             ALTER TABLE clients ADD COLUMN KeepLegacy INTEGER NOT NULL DEFAULT 0;
             ALTER TABLE files ADD COLUMN Sha256 BLOB
                 CHECK (Sha256 IS NULL OR length(Sha256) = 32);
             ALTER TABLE versions ADD COLUMN Sha256 BLOB
                 CHECK (Sha256 IS NULL OR length(Sha256) = 32);
             ALTER TABLE intents ADD COLUMN Sha256 BLOB
                 CHECK (Sha256 IS NULL OR length(Sha256) = 32);
             CREATE TABLE partials (
                 ID BLOB NOT NULL,
                 FileName TEXT NOT NULL,
                 Size INTEGER NOT NULL,
                 Received INTEGER NOT NULL CHECK (Received <= Size),
                 Upload TEXT NOT NULL,
                 State BLOB NOT NULL,
                 Updated TEXT NOT NULL,
                 PRIMARY KEY (ID, FileName)
             );
             PRAGMA user_version = 7;
             COMMIT;",
        )?;
    }
    Ok(())
}
