//! Several servers on one PostgreSQL database: each "server" is a `PostgresMetadata`
//! with its own pool, and they race on the same records. The commit point must keep
//! its promises across them: exactly one outcome per intent, the versions of a file
//! forming one chain (each replaced object replaced once), and a verified record never
//! replaced by an unverified one, as seen by a reader watching all along.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test harness: a failure is a panic

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use protocol_core::ClientId;
use server_app::storage::postgres::PostgresMetadata;
use server_app::storage::{Intent, KeyOutcome, Metadata, Registration, Switch};

use common::postgres::TestDatabase;

const HOUR: Duration = Duration::from_secs(3600);

fn intent(c: &ClientId, file: &str, verified: bool) -> Intent {
    Intent {
        id: server_app::storage::random_name(),
        client: *c,
        file_name: file.into(),
        upload: server_app::storage::new_upload_key(),
        object: server_app::storage::new_object_key(c),
        verified,
        size: 1,
        checksum: 1,
        sha256: None,
        replaced: None,
        switched: false,
    }
}

#[test]
fn two_servers_racing_switches_on_one_record_keep_the_invariants() {
    let db = TestDatabase::new();
    let servers: Vec<Arc<dyn Metadata>> = (0..2)
        .map(|_| Arc::new(PostgresMetadata::connect(&db.url).unwrap()) as Arc<dyn Metadata>)
        .collect();
    let a = ClientId([1; 16]);
    assert_eq!(
        servers[0].register(&a, "alice", HOUR).unwrap(),
        Registration::Registered
    );
    assert_eq!(
        servers[1]
            .set_keys(&a, "alice", &[7; 160], &[9; 32])
            .unwrap(),
        KeyOutcome::Stored
    );

    // A reader on a third connection: once it sees the record verified, it must never
    // see it unverified again.
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let m = PostgresMetadata::connect(&db.url).unwrap();
        let stop = stop.clone();
        thread::spawn(move || {
            let (mut seen_verified, mut reads) = (false, 0u64);
            while !stop.load(Ordering::SeqCst) || reads == 0 {
                if let Some(rec) = m.file(&ClientId([1; 16]), "f").unwrap() {
                    assert!(
                        rec.verified || !seen_verified,
                        "a verified record was replaced by an unverified one"
                    );
                    seen_verified |= rec.verified;
                }
                reads += 1;
            }
            reads
        })
    };

    // Per server, two threads; each commits a mix of 900s and 902s on the same name.
    const THREADS: usize = 4;
    const EACH: usize = 12;
    let start = Arc::new(Barrier::new(THREADS));
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let m = servers[t % 2].clone();
            let start = start.clone();
            thread::spawn(move || {
                start.wait();
                let mut done = Vec::new();
                for k in 0..EACH {
                    // Unverified first, so that 902s race before and after the 900s.
                    let i = intent(&a, "f", k % 3 == 2);
                    m.record_intent(&i).unwrap();
                    let s = m.switch(&i).unwrap();
                    done.push((i, s));
                }
                done
            })
        })
        .collect();
    let results: Vec<(Intent, Switch)> = workers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    stop.store(true, Ordering::SeqCst);
    let reads = watcher.join().unwrap();
    assert!(reads > 0);

    let verified_object = |o: &str| results.iter().any(|(i, _)| i.verified && i.object == o);
    let switched: Vec<&Intent> = results
        .iter()
        .filter(|(_, s)| matches!(s, Switch::Switched { .. }))
        .map(|(i, _)| i)
        .collect();
    let mut replaced: Vec<&String> = Vec::new();
    for (i, s) in &results {
        match s {
            Switch::Switched { replaced: r } => {
                if let Some(r) = r {
                    // Each version is replaced by exactly one later commit...
                    assert!(!replaced.contains(&r), "{r} was replaced twice");
                    assert!(switched.iter().any(|w| &w.object == r));
                    // ...and never a verified one by an unverified one, nor
                    // deleted at all: verified content is kept as a version.
                    assert!(
                        i.verified || !verified_object(r),
                        "an unverified upload replaced a verified file"
                    );
                    assert!(!verified_object(r), "verified content to be deleted");
                    replaced.push(r);
                }
            }
            Switch::KeptVerified => assert!(!i.verified),
        }
    }
    // Each verified content replaced is a version, kept once.
    let versions = servers[0].versions(Some(&a), Some("f")).unwrap();
    for v in &versions {
        assert!(verified_object(&v.object), "only verified content is kept");
        assert!(
            !replaced.contains(&&v.object),
            "{} deleted and kept",
            v.object
        );
        assert!(switched.iter().any(|w| w.object == v.object));
        replaced.push(&v.object);
    }
    let mut kept: Vec<&str> = versions.iter().map(|v| v.object.as_str()).collect();
    kept.sort();
    kept.dedup();
    assert_eq!(kept.len(), versions.len(), "a version kept twice");
    // The contents form one chain: the first replaced nothing, the last is stored,
    // every other was deleted (unverified) or kept (verified).
    assert_eq!(replaced.len() + 1, switched.len());
    let last: Vec<&&Intent> = switched
        .iter()
        .filter(|w| !replaced.contains(&&w.object))
        .collect();
    assert_eq!(last.len(), 1);
    let rec = servers[0].file(&a, "f").unwrap().unwrap();
    assert_eq!(rec.object, last[0].object);
    // Some 900 came (every third commit of each thread): the file is verified.
    assert!(rec.verified);
    // Every switched intent was marked once; the kept-out ones are gone.
    let left = servers[1].intents().unwrap();
    assert_eq!(left.len(), switched.len());
    assert!(left.iter().all(|i| i.switched));
}

#[test]
fn two_servers_registering_one_name_at_once_give_it_to_one() {
    let db = TestDatabase::new();
    let servers: Vec<Arc<PostgresMetadata>> = (0..2)
        .map(|_| Arc::new(PostgresMetadata::connect(&db.url).unwrap()))
        .collect();
    for round in 0..20u8 {
        let start = Arc::new(Barrier::new(4));
        let name = format!("name{round}");
        let outcomes: Vec<Registration> = (0..4u8)
            .map(|t| {
                let (m, start, name) = (
                    servers[usize::from(t % 2)].clone(),
                    start.clone(),
                    name.clone(),
                );
                thread::spawn(move || {
                    start.wait();
                    m.register(&ClientId([round * 4 + t; 16]), &name, HOUR)
                        .unwrap()
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap())
            .collect();
        let winners = outcomes
            .iter()
            .filter(|o| **o == Registration::Registered)
            .count();
        assert_eq!(winners, 1, "round {round}: {outcomes:?}");
    }
}

#[test]
fn servers_migrating_at_once_all_start() {
    let db = TestDatabase::new();
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let url = db.url.clone();
            thread::spawn(move || PostgresMetadata::connect(&url).map(|_| ()))
        })
        .collect();
    for h in handles {
        h.join().unwrap().unwrap();
    }
}

#[test]
fn callable_and_droppable_from_inside_a_tokio_runtime() {
    // The tokio transport calls handlers from its runtime's threads and `main` may
    // run inside one: neither a call nor the drop may panic there.
    let db = TestDatabase::new();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let url = db.url.clone();
    rt.block_on(async move {
        let m = PostgresMetadata::connect(&url).unwrap();
        assert_eq!(
            m.register(&ClientId([1; 16]), "alice", HOUR).unwrap(),
            Registration::Registered
        );
        let m = Arc::new(m);
        let m2 = m.clone();
        tokio::task::spawn_blocking(move || m2.touch(&ClientId([1; 16])).unwrap())
            .await
            .unwrap();
        assert_eq!(m.clients().unwrap().len(), 1);
        drop(m);
    });
}

#[test]
fn an_unreachable_database_is_an_error_not_a_hang_or_panic() {
    // A port nothing listens on (bound, then released).
    let port = common::free_port();
    let err = PostgresMetadata::connect(&format!(
        "postgres://postgres@127.0.0.1:{port}/x?connect_timeout=5"
    ))
    .err()
    .expect("connecting to nothing must fail");
    assert!(err.to_string().contains("migrating the schema"), "{err}");
    assert!(PostgresMetadata::connect("not a url at all ::").is_err());
}

#[test]
fn a_database_of_a_newer_server_is_refused_with_a_clear_message() {
    let db = TestDatabase::new();
    let m = PostgresMetadata::connect(&db.url).unwrap();
    m.pg()
        .run("faking a newer schema", |c| async move {
            c.execute("UPDATE schema_version SET version = 999", &[])
                .await
        })
        .unwrap();
    drop(m);
    let err = PostgresMetadata::connect(&db.url)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("schema version 999, newer than this server's"),
        "{err}"
    );
}

#[test]
fn two_servers_storing_different_keys_at_once_store_one() {
    let db = TestDatabase::new();
    let servers: Vec<Arc<PostgresMetadata>> = (0..2)
        .map(|_| Arc::new(PostgresMetadata::connect(&db.url).unwrap()))
        .collect();
    for round in 0..20u8 {
        let (id, name) = (ClientId([round; 16]), format!("c{round}"));
        servers[0].register(&id, &name, HOUR).unwrap();
        let start = Arc::new(Barrier::new(4));
        let outcomes: Vec<(u8, KeyOutcome)> = (0..4u8)
            .map(|t| {
                let (m, start, name) = (
                    servers[usize::from(t % 2)].clone(),
                    start.clone(),
                    name.clone(),
                );
                thread::spawn(move || {
                    start.wait();
                    (t, m.set_keys(&id, &name, &[t; 160], &[t; 16]).unwrap())
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap())
            .collect();
        let stored: Vec<u8> = outcomes
            .iter()
            .filter(|(_, o)| *o == KeyOutcome::Stored)
            .map(|(t, _)| *t)
            .collect();
        assert_eq!(stored.len(), 1, "round {round}: {outcomes:?}");
        assert_eq!(
            servers[1].public_key(&id, &name).unwrap(),
            Some(vec![stored[0]; 160])
        );
    }
}
