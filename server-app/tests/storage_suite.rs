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
use std::time::Duration;

use common::faulty::{FaultyContents, FaultyMeta, Plan};
use server_app::storage::local::LocalContents;
use server_app::storage::memory::MemoryUploads;
use server_app::storage::sqlite::SqliteMetadata;
use server_app::storage::suite::{contents, metadata, uploads};
use server_app::storage::{Contents, Metadata};

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
