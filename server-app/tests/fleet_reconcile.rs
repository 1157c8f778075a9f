//! Reconciliation in a fleet: servers sharing PostgreSQL and a contents store start
//! and stop while the others commit and upload. A starting server must leave the work
//! of running servers alone (a commit between its steps, an upload whose row is not
//! written yet), and what a server that died left must still be resolved, by whichever
//! server sees it go stale.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test harness: a failure is a panic

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use protocol_core::ClientId;
use server_app::app::{App, Policy};
use server_app::storage::commit::Finished;
use server_app::storage::local::LocalContents;
use server_app::storage::postgres::PgUploads;
use server_app::storage::postgres::{Pg, PostgresMetadata};
use server_app::storage::uploads::UploadTable;
use server_app::storage::{
    new_object_key, new_upload_key, random_name, Contents, Intent, KeyOutcome, Metadata,
    Registration, Storage, Switch,
};

use common::postgres::TestDatabase;

/// One server of the fleet, as `server --database postgres://... --files DIR` opens it.
fn server(pg: &Arc<Pg>, dir: &Path, policy: Policy) -> App {
    let storage = Storage::new(
        Arc::new(PostgresMetadata::new(pg.clone())),
        Arc::new(LocalContents::open(dir).unwrap()),
    );
    let table = Arc::new(PgUploads::new(pg.clone(), Duration::from_secs(10)));
    App::with_tables(storage, table, policy).unwrap()
}

fn alice(meta: &dyn Metadata) -> ClientId {
    let id = ClientId([1; 16]);
    let hour = Duration::from_secs(3600);
    assert_eq!(
        meta.register(&id, "alice", hour).unwrap(),
        Registration::Registered
    );
    assert_eq!(
        meta.set_keys(&id, "alice", &[7; 160], &[9; 32]).unwrap(),
        KeyOutcome::Stored
    );
    id
}

/// A finished upload holding `bytes`.
fn upload(contents: &dyn Contents, bytes: &[u8]) -> String {
    let key = new_upload_key();
    let mut sink = contents.create_upload(&key).unwrap();
    sink.write(bytes).unwrap();
    sink.finish().unwrap();
    key
}

/// Steps 2 and 3 of a commit (intent recorded, upload published), as a server
/// between them and its switch leaves them.
fn commit_up_to_switch(storage: &Storage, client: &ClientId, name: &str, bytes: &[u8]) -> Intent {
    let intent = Intent {
        id: random_name(),
        client: *client,
        file_name: name.into(),
        upload: upload(&*storage.contents, bytes),
        object: new_object_key(client),
        verified: true,
        size: bytes.len() as u64,
        checksum: 7,
        sha256: None,
        replaced: None,
        switched: false,
    };
    storage.meta.record_intent(&intent).unwrap();
    storage
        .contents
        .publish(&intent.upload, &intent.object)
        .unwrap();
    intent
}

fn commit(storage: &Storage, client: &ClientId, name: &str, bytes: &[u8]) {
    commit_as(storage, client, name, bytes, true)
}

fn commit_as(storage: &Storage, client: &ClientId, name: &str, bytes: &[u8], verified: bool) {
    let key = upload(&*storage.contents, bytes);
    storage
        .commit(Finished {
            client,
            file_name: name,
            upload: &key,
            verified,
            size: bytes.len() as u64,
            checksum: 7,
            sha256: None,
        })
        .unwrap();
}

fn stored(storage: &Storage, client: &ClientId, name: &str) -> Vec<u8> {
    let record = storage.meta.file(client, name).unwrap().unwrap();
    storage.contents.read_object(&record.object).unwrap()
}

#[test]
fn a_starting_server_leaves_the_commits_and_uploads_of_running_servers_alone() {
    let db = TestDatabase::new();
    let dir = tempfile::tempdir().unwrap();
    let pg = Arc::new(Pg::connect(&db.url).unwrap());
    let a = server(&pg, dir.path(), Policy::default());
    let storage = a.storage().clone();
    let client = alice(&*storage.meta);
    commit(&storage, &client, "report.pdf", b"version one");

    // Server a is between steps 3 and 4 of a commit, is receiving an upload it has
    // a row for, and has just created one whose row it is about to write.
    let intent = commit_up_to_switch(&storage, &client, "report.pdf", b"version two");
    let table = PgUploads::new(pg.clone(), Duration::from_secs(10));
    let in_table = new_upload_key();
    let mut sink = storage.contents.create_upload(&in_table).unwrap();
    sink.write(b"half of a file").unwrap();
    sink.flush().unwrap();
    table.start(1, client, "other.bin", &in_table).unwrap();
    let mut unrowed = storage.contents.create_upload(&new_upload_key()).unwrap();
    unrowed.write(b"the first packet").unwrap();
    unrowed.flush().unwrap();
    let uploads_before = storage.contents.uploads().unwrap();

    // Server b starts (and runs its housekeeping) meanwhile.
    let b = server(&pg, dir.path(), Policy::default());
    b.housekeeping(Instant::now());

    // Server a goes on: its switch, the commit point, finds its intent and object.
    assert!(matches!(
        storage.meta.switch(&intent).unwrap(),
        Switch::Switched { .. }
    ));
    assert_eq!(stored(&storage, &client, "report.pdf"), b"version two");
    // The verified content it replaced is kept as a version, object and all.
    let kept = storage
        .meta
        .versions(Some(&client), Some("report.pdf"))
        .unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(
        storage.contents.read_object(&kept[0].object).unwrap(),
        b"version one"
    );
    let mut left = storage.contents.uploads().unwrap();
    left.sort();
    let mut expected = uploads_before;
    expected.retain(|u| *u != intent.upload);
    expected.sort();
    assert_eq!(left, expected, "no upload of server a was removed");
}

#[test]
fn what_a_dead_server_left_is_resolved_by_another_once_stale() {
    let db = TestDatabase::new();
    let dir = tempfile::tempdir().unwrap();
    let pg = Arc::new(Pg::connect(&db.url).unwrap());
    let policy = Policy {
        stale_after: Duration::from_millis(300),
        ..Policy::default()
    };
    let a = server(&pg, dir.path(), policy);
    let storage = a.storage().clone();
    let client = alice(&*storage.meta);
    commit(&storage, &client, "report.pdf", b"verified");
    // Unverified: its object is the one the next switch names for deletion (verified
    // content would be kept as a version instead).
    commit_as(&storage, &client, "second.bin", b"second, old", false);
    // Server a dies: between publishing and switching another version of the
    // verified file; after switching a new version of a second file but before
    // deleting the object it replaced; with an upload whose row it had removed (its
    // verdict came) but whose intent it never recorded.
    let unswitched = commit_up_to_switch(&storage, &client, "report.pdf", b"unconfirmed");
    let switched = commit_up_to_switch(&storage, &client, "second.bin", b"second, new");
    let Switch::Switched {
        replaced: Some(replaced),
    } = storage.meta.switch(&switched).unwrap()
    else {
        panic!("the second file had a record")
    };
    let orphan = upload(&*storage.contents, b"no row");
    drop(a);

    let b = server(&pg, dir.path(), policy);
    let t0 = Instant::now();
    // Young: left alone. The orphan is found unknown for the first time.
    b.housekeeping(t0);
    assert_eq!(storage.meta.intents().unwrap().len(), 2);
    b.housekeeping(t0 + Duration::from_millis(200));
    assert!(storage.contents.uploads().unwrap().contains(&orphan));
    // Stale now: each intent is resolved, and the orphan, unknown to two listings
    // 400 ms apart, removed.
    std::thread::sleep(Duration::from_millis(400));
    b.housekeeping(t0 + Duration::from_millis(400));
    assert!(storage.meta.intents().unwrap().is_empty());
    assert!(storage.contents.read_object(&unswitched.object).is_err());
    assert!(storage.contents.read_object(&replaced).is_err());
    assert_eq!(stored(&storage, &client, "report.pdf"), b"verified");
    assert_eq!(stored(&storage, &client, "second.bin"), b"second, new");
    assert!(!storage.contents.uploads().unwrap().contains(&orphan));
    assert_eq!(stored(&storage, &client, "report.pdf"), b"verified");
}
