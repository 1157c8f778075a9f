//! The storage conformance suites (`server_app::storage::suite`), each written once,
//! run against every backend and through the fault wrappers with no fault planned
//! (a wrapper must change nothing until it is told to fail):
//!
//! - metadata: memory (SQLite's in-memory database), a SQLite file, PostgreSQL;
//! - contents: the local folder, S3 on a real server (SeaweedFS, started by
//!   `.ci/seaweedfs.sh`) and S3 on the in-memory object store;
//! - the table of uploads in progress: memory and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test harness: a failure is a panic

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::faulty::{FaultyContents, FaultyMeta, Plan};
use server_app::storage::commit::Finished;
use server_app::storage::local::LocalContents;
use server_app::storage::memory::MemoryUploads;
use server_app::storage::sqlite::SqliteMetadata;
use server_app::storage::suite::{contents, metadata, uploads};
use server_app::storage::{new_upload_key, Contents, Metadata, Orphans, PartialUpload, Storage};

/// A backend and what keeps it alive (dropped after it: fields drop in order).
struct Held<T: ?Sized> {
    store: Box<T>,
    _keep: Box<dyn std::any::Any>,
}

impl metadata::Backend for Held<dyn Metadata> {
    fn metadata(&self) -> &dyn Metadata {
        &*self.store
    }
}

impl contents::Backend for Held<dyn Contents> {
    fn contents(&self) -> &dyn Contents {
        &*self.store
    }
}

fn held<T: ?Sized>(store: Box<T>, keep: impl std::any::Any) -> Box<Held<T>> {
    Box::new(Held {
        store,
        _keep: Box::new(keep),
    })
}

fn sqlite_file() -> (SqliteMetadata, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let meta = SqliteMetadata::open(&dir.path().join("defensive.db")).unwrap();
    (meta, dir)
}

fn local_folder() -> (LocalContents, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let contents = LocalContents::open(dir.path()).unwrap();
    (contents, dir)
}

#[test]
fn metadata_in_memory() {
    metadata::run(&|| {
        held(
            Box::new(SqliteMetadata::in_memory().unwrap()) as Box<dyn Metadata>,
            (),
        )
    });
}

#[test]
fn metadata_in_a_sqlite_file() {
    metadata::run(&|| {
        let (meta, dir) = sqlite_file();
        held(Box::new(meta) as Box<dyn Metadata>, dir)
    });
}

#[test]
fn metadata_through_the_fault_wrapper() {
    metadata::run(&|| {
        let (inner, dir) = sqlite_file();
        let meta = FaultyMeta {
            inner,
            plan: Plan::new(),
        };
        held(Box::new(meta) as Box<dyn Metadata>, dir)
    });
}

#[test]
fn contents_in_a_local_folder() {
    contents::run(&|| {
        let (c, dir) = local_folder();
        held(Box::new(c) as Box<dyn Contents>, dir)
    });
}

#[test]
fn contents_through_the_fault_wrapper() {
    contents::run(&|| {
        let (inner, dir) = local_folder();
        let c = FaultyContents {
            inner,
            plan: Plan::new(),
        };
        held(Box::new(c) as Box<dyn Contents>, dir)
    });
}

#[test]
fn upload_table_in_memory() {
    uploads::run(&MemoryUploads::default(), 0);
}

/// An upload holding `data`, flushed, its sink dropped (as a cut connection leaves it).
fn upload_holding(c: &dyn Contents, data: &[u8]) -> String {
    let upload = new_upload_key();
    let mut sink = c.create_upload(&upload).unwrap();
    sink.write(data).unwrap();
    sink.flush().unwrap();
    upload
}

/// The upload a resumable upload names is never taken for an orphan: not by the
/// start-up reconciliation of a lone server (`alone`), not by a fleet's sweep. Once
/// the partial is gone, the sweeps remove it like any other.
fn a_partial_keeps_its_upload_from_the_sweeps(storage: &Storage, alone: bool) {
    let m = &*storage.meta;
    let c = &*storage.contents;
    let a = metadata::client(m, 1, "alice");
    let kept = upload_holding(c, b"hello");
    let orphan = upload_holding(c, b"nobody");
    let partial = PartialUpload {
        client: a,
        file_name: "f".into(),
        size: 10,
        offset: 5,
        upload: kept.clone(),
        state: vec![1, 2, 3],
        updated: String::new(),
    };
    m.save_partial(&partial).unwrap();
    if alone {
        let done = storage.reconcile().unwrap();
        assert_eq!(done.uploads_removed, 1);
        assert_eq!(c.uploads().unwrap(), vec![kept.clone()]);
        upload_holding(c, b"another");
    }
    let orphans = Orphans::default();
    let removed = orphans
        .sweep(storage, || Ok(Vec::new()), Duration::ZERO, Instant::now())
        .unwrap();
    assert_eq!(removed, 1, "the upload nobody names goes");
    assert_eq!(c.uploads().unwrap(), vec![kept.clone()], "{orphan} went");
    // It resumes where the partial says.
    let mut sink = c.resume_upload(&kept, partial.offset).unwrap();
    sink.write(b"world").unwrap();
    sink.finish().unwrap();
    assert!(m.remove_partial(&a, "f", &kept).unwrap());
    let removed = Orphans::default()
        .sweep(storage, || Ok(Vec::new()), Duration::ZERO, Instant::now())
        .unwrap();
    assert_eq!(removed, 1);
    assert!(c.uploads().unwrap().is_empty());
    // Expired partials go with their uploads; young ones stay.
    let old = upload_holding(c, b"old");
    m.save_partial(&PartialUpload {
        upload: old.clone(),
        ..partial
    })
    .unwrap();
    assert!(storage
        .expire_partials(Duration::from_secs(3600))
        .unwrap()
        .is_empty());
    assert_eq!(c.uploads().unwrap(), vec![old.clone()]);
    let expired = storage.expire_partials(Duration::ZERO).unwrap();
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].upload, old);
    assert!(c.uploads().unwrap().is_empty());
    assert!(m.partial(&a, "f").unwrap().is_none());
}

/// A commit carries the upload's SHA-256 into the record; a client's deletion keeps
/// the object as a version, which a restore brings back.
fn commits_carry_the_hash_and_retire_keeps_the_object(storage: &Storage) {
    let m = &*storage.meta;
    let c = &*storage.contents;
    let a = metadata::client(m, 1, "alice");
    let upload = upload_holding(c, b"content");
    c.resume_upload(&upload, 7).unwrap().finish().unwrap();
    let hash = [0x42; 32];
    storage
        .commit(Finished {
            client: &a,
            file_name: "f",
            upload: &upload,
            verified: true,
            size: 7,
            checksum: 1,
            sha256: Some(hash),
        })
        .unwrap();
    let rec = m.file(&a, "f").unwrap().unwrap();
    assert_eq!(rec.sha256, Some(hash));
    let v = storage.retire_file(&a, "f").unwrap().unwrap();
    assert_eq!(
        (v.object.as_str(), v.sha256),
        (rec.object.as_str(), Some(hash))
    );
    assert!(m.file(&a, "f").unwrap().is_none());
    assert_eq!(
        c.read_object(&v.object).unwrap(),
        b"content",
        "nothing deleted"
    );
    assert!(storage.retire_file(&a, "f").unwrap().is_none());
    storage.restore_version(&a, "f", v.id).unwrap().unwrap();
    assert_eq!(m.file(&a, "f").unwrap().unwrap(), rec);
}

fn sqlite_and_folder() -> (Storage, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let meta = SqliteMetadata::open(&dir.path().join("defensive.db")).unwrap();
    let contents = LocalContents::open(dir.path()).unwrap();
    (Storage::new(Arc::new(meta), Arc::new(contents)), dir)
}

#[test]
fn a_partial_keeps_its_upload_on_sqlite_and_a_folder() {
    let (storage, _dir) = sqlite_and_folder();
    a_partial_keeps_its_upload_from_the_sweeps(&storage, true);
}

#[test]
fn commits_carry_the_hash_on_sqlite_and_a_folder() {
    let (storage, _dir) = sqlite_and_folder();
    commits_carry_the_hash_and_retire_keeps_the_object(&storage);
}

/// The local folder cuts bytes past the offset off (an object store refuses).
#[test]
fn a_local_upload_longer_than_its_offset_is_cut_back() {
    let (c, _dir) = local_folder();
    let upload = upload_holding(&c, b"0123456789");
    let mut sink = c.resume_upload(&upload, 4).unwrap();
    assert_eq!(sink.bytes_written(), Some(4));
    sink.write(b"ab").unwrap();
    sink.finish().unwrap();
    let object = server_app::storage::new_object_key(&metadata::id(1));
    c.publish(&upload, &object).unwrap();
    assert_eq!(c.read_object(&object).unwrap(), b"0123ab");
}

#[cfg(feature = "fleet")]
mod fleet {
    use super::*;
    use crate::common::postgres::TestDatabase;
    use crate::common::s3::{fresh_prefix, s3_server};
    use server_app::storage::postgres::{Pg, PgUploads, PostgresMetadata};
    use server_app::storage::s3::memory::MemoryS3;
    use server_app::storage::s3::{S3Contents, S3Options, MIN_PART_SIZE};

    fn s3_options() -> S3Options {
        S3Options {
            part_size: MIN_PART_SIZE,
            threads: 2,
        }
    }

    #[test]
    fn metadata_in_postgres() {
        metadata::run(&|| {
            let db = TestDatabase::new();
            let meta = PostgresMetadata::connect(&db.url).unwrap();
            held(Box::new(meta) as Box<dyn Metadata>, db)
        });
    }

    #[test]
    fn contents_in_s3() {
        contents::run(&|| {
            let c = s3_server().contents(&fresh_prefix("suite"), s3_options());
            held(Box::new(c) as Box<dyn Contents>, ())
        });
    }

    #[test]
    fn contents_in_the_in_memory_object_store() {
        contents::run(&|| {
            let store = Arc::new(MemoryS3::new());
            let c = S3Contents::with_store(store, "suite", s3_options()).unwrap();
            held(Box::new(c) as Box<dyn Contents>, ())
        });
    }

    #[test]
    fn upload_table_in_postgres() {
        let db = TestDatabase::new();
        let pg = Arc::new(Pg::connect(&db.url).unwrap());
        uploads::run(&PgUploads::new(pg, Duration::from_secs(600)), 0);
    }

    fn postgres_and_memory_s3(db: &TestDatabase) -> Storage {
        let meta = PostgresMetadata::connect(&db.url).unwrap();
        let store = Arc::new(MemoryS3::new());
        let c = S3Contents::with_store(store, "secure", s3_options()).unwrap();
        Storage::new(Arc::new(meta), Arc::new(c))
    }

    #[test]
    fn a_partial_keeps_its_upload_on_postgres_and_s3() {
        let db = TestDatabase::new();
        a_partial_keeps_its_upload_from_the_sweeps(&postgres_and_memory_s3(&db), false);
    }

    #[test]
    fn commits_carry_the_hash_on_postgres_and_s3() {
        let db = TestDatabase::new();
        commits_carry_the_hash_and_retire_keeps_the_object(&postgres_and_memory_s3(&db));
    }

    /// Flushed parts cannot be cut back: S3 refuses an offset short of them.
    #[test]
    fn an_s3_upload_longer_than_its_offset_is_refused() {
        let store = Arc::new(MemoryS3::new());
        let c = S3Contents::with_store(store, "cut", s3_options()).unwrap();
        let upload = upload_holding(&c, b"0123456789");
        let e = c.resume_upload(&upload, 4).err().unwrap();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
        assert_eq!(
            c.resume_upload(&upload, 10).unwrap().bytes_written(),
            Some(10)
        );
    }

    /// A database of migration 5 (before secure mode) with rows is upgraded in place.
    #[test]
    fn a_postgres_database_of_version_5_is_upgraded_with_its_rows() {
        use server_app::storage::postgres::schema::MIGRATIONS;
        use server_app::storage::SecureStatus;
        let db = TestDatabase::new();
        let pg = Pg::open(&db.url).unwrap();
        pg.run("building a database of version 5", |c| async move {
            c.batch_execute(
                "CREATE TABLE schema_version (version bigint NOT NULL);
                 INSERT INTO schema_version (version) VALUES (5);",
            )
            .await?;
            for step in &MIGRATIONS[..5] {
                c.batch_execute(step).await?;
            }
            c.batch_execute(
                "INSERT INTO clients (ID, Name, PublicKey, LastSeen, Registered) VALUES \
                 ('\\x01010101010101010101010101010101', 'alice', \
                  decode(repeat('00', 160), 'hex'), now(), now());
                 INSERT INTO files (ID, FileName, PathName, Verified, Size, Checksum, Updated) \
                 VALUES ('\\x01010101010101010101010101010101', 'f', 'objects/a/1', true, 5, \
                  7, now());
                 INSERT INTO versions (ID, FileName, PathName, Verified, Size, Checksum, \
                  Updated, Superseded) VALUES ('\\x01010101010101010101010101010101', 'f', \
                  'objects/a/0', true, 4, 6, now(), now());
                 INSERT INTO intents (IntentID, ID, FileName, Upload, Object, Verified, Size, \
                  Checksum) VALUES ('i', '\\x01010101010101010101010101010101', 'g', \
                  'uploads/u', 'objects/a/2', true, 3, 2);",
            )
            .await
        })
        .unwrap();
        drop(pg);
        let m = PostgresMetadata::connect(&db.url).unwrap();
        assert_eq!(
            m.pg().schema_version().unwrap(),
            Some(MIGRATIONS.len() as i64)
        );
        let a = metadata::id(1);
        let rec = m.file(&a, "f").unwrap().unwrap();
        assert_eq!(
            (rec.object.as_str(), rec.size, rec.sha256),
            ("objects/a/1", 5, None)
        );
        let v = &m.versions(Some(&a), Some("f")).unwrap()[0];
        assert_eq!((v.object.as_str(), v.sha256), ("objects/a/0", None));
        assert_eq!(m.intents().unwrap()[0].sha256, None);
        assert_eq!(m.secure_key(&a).unwrap(), None);
        assert_eq!(m.secure_status(&a).unwrap(), Some(SecureStatus::default()));
        assert!(m
            .set_secure_key(
                &a,
                &server_app::storage::suite::metadata::secure::ed25519(3)
            )
            .unwrap());
        assert!(m.retire_file(&a, "f").unwrap().is_some());
        assert!(m.referenced_uploads().unwrap().contains("uploads/u"));
    }

    /// A fleet's commits run while others reconcile: a young intent is left alone.
    #[test]
    fn postgres_leaves_young_intents_to_their_commits() {
        let db = TestDatabase::new();
        let m = &PostgresMetadata::connect(&db.url).unwrap();
        let a = metadata::client(m, 1, "alice");
        let i = metadata::intent(&a, "f", true, 5);
        m.record_intent(&i).unwrap();
        assert!(m.stale_intents(metadata::HOUR).unwrap().is_empty());
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(
            m.stale_intents(Duration::from_millis(100)).unwrap(),
            std::slice::from_ref(&i)
        );
    }
}
