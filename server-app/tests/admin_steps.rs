//! Deleting, as the operator commands do, stopped at each of its steps, then a restart:
//! the store stays consistent (a client is either whole or gone, and nothing unnamed is
//! left after the start-up reconciliation). And the races with a running server: a
//! commit for a client removed meanwhile rolls back; pruning never takes a verified file.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test harness: a failure is a panic

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::faulty::{Fault, FaultyContents, FaultyMeta, Plan};
use protocol_core::ClientId;
use server_app::storage::commit::Finished;
use server_app::storage::local::LocalContents;
use server_app::storage::sqlite::SqliteMetadata;
use server_app::storage::{new_upload_key, CommitOutcome, Registration, Storage};

const CLIENT: ClientId = ClientId([9; 16]);
const OTHER: ClientId = ClientId([3; 16]);

fn plain(dir: &Path) -> Storage {
    Storage::new(
        Arc::new(SqliteMetadata::open(&dir.join("defensive.db")).unwrap()),
        Arc::new(LocalContents::open(dir).unwrap()),
    )
}

/// As the operator commands open it: the existing database, the folder as it is.
fn wrapped(dir: &Path, plan: Arc<Plan>) -> Storage {
    Storage::new(
        Arc::new(FaultyMeta {
            inner: SqliteMetadata::open_existing(&dir.join("defensive.db")).unwrap(),
            plan: plan.clone(),
        }),
        Arc::new(FaultyContents {
            inner: LocalContents::open_existing(dir),
            plan,
        }),
    )
}

fn client(s: &Storage, id: &ClientId, name: &str) {
    let hold = Duration::from_secs(600);
    assert_eq!(
        s.meta.register(id, name, hold).unwrap(),
        Registration::Registered
    );
    s.meta.set_keys(id, name, &[1; 160], &[2; 32]).unwrap();
}

fn upload(
    s: &Storage,
    id: &ClientId,
    name: &str,
    bytes: &[u8],
    verified: bool,
) -> Result<CommitOutcome, String> {
    let key = new_upload_key();
    let mut sink = s.contents.create_upload(&key).map_err(|e| e.to_string())?;
    sink.write(bytes).map_err(|e| e.to_string())?;
    sink.finish().map_err(|e| e.to_string())?;
    s.commit(Finished {
        client: id,
        file_name: name,
        upload: &key,
        verified,
        size: bytes.len() as u64,
        checksum: 0,
        sha256: None,
    })
    .map_err(|e| e.to_string())
}

/// alice with two files, bob with one.
fn setup(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let s = plain(dir);
    client(&s, &CLIENT, "alice");
    client(&s, &OTHER, "bob");
    upload(&s, &CLIENT, "a.txt", b"first of alice", true).unwrap();
    upload(&s, &CLIENT, "b.txt", b"second of alice", true).unwrap();
    upload(&s, &OTHER, "c.txt", b"of bob", true).unwrap();
}

/// After a restart: every record names an object with its bytes, no object is
/// unnamed, and alice is either whole or gone (files and row together).
fn check_after_restart(dir: &Path, what: &str) -> bool {
    let s = plain(dir);
    s.reconcile().unwrap();
    let records = s.meta.files(None).unwrap();
    for r in &records {
        let bytes = s.contents.read_object(&r.object).unwrap();
        assert_eq!(bytes.len() as u64, r.size, "{what}: {r:?}");
    }
    let named: Vec<String> = records.iter().map(|r| r.object.clone()).collect();
    for o in s.contents.objects().unwrap() {
        assert!(named.contains(&o), "{what}: unnamed object {o}");
    }
    assert!(
        records.iter().any(|r| r.client == OTHER),
        "{what}: bob kept"
    );
    let alice_files = records.iter().filter(|r| r.client == CLIENT).count();
    let alice_row = s.meta.clients().unwrap().iter().any(|c| c.id == CLIENT);
    assert!(
        (alice_row && alice_files == 2) || (!alice_row && alice_files == 0),
        "{what}: alice half removed (row {alice_row}, {alice_files} files)"
    );
    !alice_row
}

#[test]
fn removing_a_client_stopped_at_each_step_leaves_it_whole_or_gone() {
    let tmp = tempfile::tempdir().unwrap();
    let counted = tmp.path().join("counted");
    setup(&counted);
    let plan = Plan::new();
    let removed = wrapped(&counted, plan.clone())
        .remove_client(&CLIENT)
        .unwrap();
    assert_eq!(removed.map(|r| r.files.len()), Some(2));
    let steps = plan.steps();
    assert!(
        steps >= 3,
        "one transaction and two object deletions: {steps}"
    );
    assert!(check_after_restart(&counted, "no fault"));
    for n in 1..=steps {
        for fault in [Fault::Fail, Fault::CrashBefore, Fault::CrashAfter] {
            let dir = tmp.path().join(format!("{n}-{fault:?}"));
            setup(&dir);
            let result = wrapped(&dir, Plan::at(n, fault)).remove_client(&CLIENT);
            let what = format!("step {n} {fault:?}");
            let gone = check_after_restart(&dir, &what);
            if result.is_ok() {
                assert!(gone, "{what}: reported removed but still there");
            }
        }
    }
}

#[test]
fn a_commit_for_a_client_removed_meanwhile_rolls_back() {
    let tmp = tempfile::tempdir().unwrap();
    let s = plain(tmp.path());
    client(&s, &CLIENT, "alice");
    let key = new_upload_key();
    let mut sink = s.contents.create_upload(&key).unwrap();
    sink.write(b"late bytes").unwrap();
    sink.finish().unwrap();
    assert!(s.remove_client(&CLIENT).unwrap().is_some());
    let committed = s.commit(Finished {
        client: &CLIENT,
        file_name: "late.txt",
        upload: &key,
        verified: true,
        size: 10,
        checksum: 0,
        sha256: None,
    });
    assert!(committed.is_err(), "{committed:?}");
    assert!(s.meta.files(None).unwrap().is_empty());
    assert!(s.meta.intents().unwrap().is_empty());
    assert!(s.contents.objects().unwrap().is_empty());
    assert!(s.contents.uploads().unwrap().is_empty());
}

#[test]
fn pruning_takes_unverified_files_only() {
    let tmp = tempfile::tempdir().unwrap();
    let s = plain(tmp.path());
    client(&s, &CLIENT, "alice");
    upload(&s, &CLIENT, "kept.txt", b"verified", true).unwrap();
    upload(&s, &CLIENT, "gave-up.txt", b"902", false).unwrap();
    // An unverified upload over a verified file keeps the verified one.
    upload(&s, &CLIENT, "kept.txt", b"902 over verified", false).unwrap();
    assert!(s
        .prune_unverified(Duration::from_secs(3600))
        .unwrap()
        .files
        .is_empty());
    let removed = s.prune_unverified(Duration::ZERO).unwrap();
    let names: Vec<&str> = removed.files.iter().map(|f| f.file_name.as_str()).collect();
    assert_eq!(names, ["gave-up.txt"]);
    let left = s.meta.files(None).unwrap();
    assert_eq!(left.len(), 1);
    assert!(left[0].verified);
    assert_eq!(s.contents.objects().unwrap(), vec![left[0].object.clone()]);
}
