//! The shared table of uploads in progress on a real PostgreSQL (started by
//! `.ci/postgres.sh`, or `FLEET_DATABASE_URL`): one writer per upload across servers
//! (the rules every table keeps are tests/storage_suite.rs's), and the uploads of a server that died taken
//! back by another.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test harness: a failure is a panic

mod common;

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::postgres::TestDatabase;
use protocol_core::ClientId;
use server_app::storage::postgres::{Pg, PgUploads};
use server_app::storage::suite::uploads as suite;
use server_app::storage::uploads::{Handover, UploadTable, VerdictFrom};

/// A fresh database of this test's own (dropped with the first value).
fn database() -> (TestDatabase, Arc<Pg>) {
    let db = TestDatabase::new();
    let pg = Arc::new(Pg::connect(&db.url).expect("the test database"));
    (db, pg)
}

#[test]
fn one_server_of_many_takes_a_suspended_upload_over() {
    let (_db, pg) = database();
    let c = ClientId([7; 16]);
    let a = PgUploads::new(pg.clone(), Duration::from_secs(600));
    let id = a.start(1, c, "f.bin", "uploads/x").unwrap();
    a.suspend(id, suite::suspended(c, "f.bin")).unwrap();
    // Eight servers race for the next packet's upload: exactly one gets it.
    let servers: Vec<Arc<PgUploads>> = (0..8)
        .map(|_| Arc::new(PgUploads::new(pg.clone(), Duration::from_secs(600))))
        .collect();
    let start = Arc::new(Barrier::new(servers.len()));
    let handles: Vec<_> = servers
        .iter()
        .map(|s| {
            let (s, start) = (s.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                s.resume(1, &c, &suite::key()).unwrap().is_some()
            })
        })
        .collect();
    let winners = handles
        .into_iter()
        .map(|h| h.join().unwrap())
        .filter(|&won| won)
        .count();
    assert_eq!(winners, 1, "exactly one writer");
    // The first server's stale suspend (it no longer owns the row) changes nothing.
    a.suspend(id, suite::suspended(c, "f.bin")).unwrap();
    assert!(a.resume(2, &c, &suite::key()).unwrap().is_none());
}

#[test]
fn the_uploads_of_a_server_that_died_are_taken_back() {
    let (_db, pg) = database();
    let c = ClientId([8; 16]);
    // A server whose lease runs out at once: as if it had stopped renewing it.
    let dead = PgUploads::new(pg.clone(), Duration::ZERO);
    dead.start(1, c, "receiving.bin", "uploads/r").unwrap();
    let done = dead.start(2, c, "done.bin", "uploads/d").unwrap();
    // Its last packet came on a connection of its own (a connection per request).
    dead.finish(done, 10, 99, Handover::AnyConnection).unwrap();
    let alive = PgUploads::new(pg, Duration::from_secs(600));
    let mine = alive
        .start(1, ClientId([9; 16]), "mine.bin", "uploads/m")
        .unwrap();
    #[allow(clippy::disallowed_methods)]
    let now = Instant::now();
    let gone = alive.expire(Duration::from_secs(3600), now).unwrap();
    // The receiving upload died with its connection: removed, its contents to delete.
    assert_eq!(gone.len(), 1);
    assert_eq!(gone[0].key, "uploads/r");
    // The finished one waits for its client's verdict, on any server.
    let from = VerdictFrom {
        conn: 5,
        own: None,
        fresh: true,
        window: Duration::from_secs(600),
    };
    let v = alive.take_for_verdict(from, &c).unwrap().unwrap();
    assert_eq!((v.key.as_str(), v.size, v.checksum), ("uploads/d", 10, 99));
    // The live server's own upload is untouched.
    assert_eq!(alive.remove(mine).unwrap(), Some("uploads/m".to_string()));
}
