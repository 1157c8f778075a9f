//! One behaviour suite for every `Metadata` backend: each test below is written once,
//! over `Arc<dyn Metadata>`, and run against SQLite (a fresh file) and PostgreSQL (a
//! fresh database; see common/postgres.rs). Then what only a shared database has:
//! several servers racing on one record.

mod common;

use std::sync::Arc;
use std::time::Duration;

use protocol_core::ClientId;
use server_app::storage::postgres::PostgresMetadata;
use server_app::storage::sqlite::SqliteMetadata;
use server_app::storage::{Intent, KeyOutcome, Metadata, Registration, Switch};

use common::postgres::TestDatabase;

/// A backend under test and what keeps its storage alive.
struct Backend {
    meta: Arc<dyn Metadata>,
    _keep: Box<dyn std::any::Any>,
}

fn sqlite() -> Backend {
    let dir = tempfile::tempdir().unwrap();
    let meta = SqliteMetadata::open(&dir.path().join("defensive.db")).unwrap();
    Backend {
        meta: Arc::new(meta),
        _keep: Box::new(dir),
    }
}

fn postgres() -> Backend {
    let db = TestDatabase::new();
    let meta = PostgresMetadata::connect(&db.url).unwrap();
    Backend {
        meta: Arc::new(meta),
        // Dropped after `meta` (fields drop in order): the database goes last.
        _keep: Box::new(db),
    }
}

/// Each behaviour, as a test against each backend.
macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[test] fn $name() { super::$name(&*super::sqlite().meta) } )*
        }
        mod postgres {
            $( #[test] fn $name() { super::$name(&*super::postgres().meta) } )*
        }
    };
}

suite!(
    registration_and_hold,
    keys,
    aes_key_lifecycle,
    touch_and_listing,
    files_and_switches,
    unverified_never_replaces_verified,
    switch_refuses_a_removed_client,
    switch_refuses_an_unknown_intent,
    intents_round_trip,
    a_claimed_intent_fails_its_switch,
    a_switched_intent_is_claimed_only_as_switched,
    stale_intents,
    delete_file,
    remove_client,
    prune_unverified,
    referenced_objects,
    expire_registrations,
);

const HOUR: Duration = Duration::from_secs(3600);
const PUBLIC: [u8; 160] = [7; 160];
const AES: [u8; 32] = [9; 32];

fn id(n: u8) -> ClientId {
    ClientId([n; 16])
}

/// Registers `n` as `name` with a public key.
fn client(m: &dyn Metadata, n: u8, name: &str) -> ClientId {
    assert_eq!(
        m.register(&id(n), name, HOUR).unwrap(),
        Registration::Registered
    );
    assert_eq!(
        m.set_keys(&id(n), name, &PUBLIC, &AES).unwrap(),
        KeyOutcome::Stored
    );
    id(n)
}

fn intent(c: &ClientId, file: &str, verified: bool, size: u64) -> Intent {
    Intent {
        id: server_app::storage::random_name(),
        client: *c,
        file_name: file.into(),
        upload: server_app::storage::new_upload_key(),
        object: server_app::storage::new_object_key(c),
        verified,
        size,
        checksum: 0xdead_beef,
        replaced: None,
        switched: false,
    }
}

/// Records and switches an intent, then clears it: a whole commit's metadata.
fn commit(m: &dyn Metadata, i: &Intent) -> Switch {
    m.record_intent(i).unwrap();
    let s = m.switch(i).unwrap();
    m.clear_intent(&i.id).unwrap();
    s
}

fn registration_and_hold(m: &dyn Metadata) {
    assert_eq!(
        m.register(&id(1), "alice", HOUR).unwrap(),
        Registration::Registered
    );
    // Held for its registrant, within the hold time, against any other id.
    assert_eq!(
        m.register(&id(2), "alice", HOUR).unwrap(),
        Registration::NameTaken
    );
    // The same id under another name clashes too.
    assert_eq!(
        m.register(&id(1), "bob", HOUR).unwrap(),
        Registration::NameTaken
    );
    // A hold of zero has passed: the name is freed for the new client.
    assert_eq!(
        m.register(&id(2), "alice", Duration::ZERO).unwrap(),
        Registration::Registered
    );
    assert!(m.public_key(&id(1), "alice").unwrap().is_none());
    // A name with a key is taken whatever the hold.
    client(m, 3, "carol");
    assert_eq!(
        m.register(&id(4), "carol", Duration::ZERO).unwrap(),
        Registration::NameTaken
    );
    let names: Vec<String> = m.clients().unwrap().into_iter().map(|c| c.name).collect();
    assert_eq!(names, ["alice", "carol"]);
}

fn keys(m: &dyn Metadata) {
    assert_eq!(
        m.set_keys(&id(1), "alice", &PUBLIC, &AES).unwrap(),
        KeyOutcome::Unknown
    );
    m.register(&id(1), "alice", HOUR).unwrap();
    // The wrong name for the id is unknown.
    assert_eq!(
        m.set_keys(&id(1), "bob", &PUBLIC, &AES).unwrap(),
        KeyOutcome::Unknown
    );
    assert_eq!(
        m.set_keys(&id(1), "alice", &PUBLIC, &AES).unwrap(),
        KeyOutcome::Stored
    );
    // The same key again is a retry; a different one is refused and not stored.
    assert_eq!(
        m.set_keys(&id(1), "alice", &PUBLIC, &[1; 16]).unwrap(),
        KeyOutcome::Stored
    );
    assert_eq!(
        m.set_keys(&id(1), "alice", &[8; 160], &AES).unwrap(),
        KeyOutcome::DifferentKeyOnFile
    );
    assert_eq!(
        m.public_key(&id(1), "alice").unwrap(),
        Some(PUBLIC.to_vec())
    );
    assert_eq!(m.public_key(&id(1), "bob").unwrap(), None);
    assert_eq!(m.aes_key(&id(1)).unwrap().unwrap().0, vec![1; 16]);
}

fn aes_key_lifecycle(m: &dyn Metadata) {
    assert!(!m.set_aes_key(&id(1), &AES).unwrap());
    assert_eq!(m.aes_key(&id(1)).unwrap(), None);
    client(m, 1, "alice");
    let (key, age) = m.aes_key(&id(1)).unwrap().unwrap();
    assert_eq!(key, AES.to_vec());
    assert!(age < 3600, "a key just issued is {age} s old");
    assert!(m.set_aes_key(&id(1), &[5; 16]).unwrap());
    assert_eq!(m.aes_key(&id(1)).unwrap().unwrap().0, vec![5; 16]);
    m.revoke_aes_key(&id(1)).unwrap();
    assert_eq!(m.aes_key(&id(1)).unwrap(), None);
    let row = &m.clients().unwrap()[0];
    assert!(row.has_key);
    assert_eq!(row.aes_key_age, None);
}

fn touch_and_listing(m: &dyn Metadata) {
    let a = client(m, 1, "alice");
    m.register(&id(2), "bob", HOUR).unwrap();
    m.touch(&a).unwrap();
    m.touch(&id(99)).unwrap(); // unknown: nothing to do, no error
    commit(m, &intent(&a, "x", true, 10));
    commit(m, &intent(&a, "y", false, 5));
    let rows = m.clients().unwrap();
    assert_eq!(rows.len(), 2);
    let (alice, bob) = (&rows[0], &rows[1]);
    assert_eq!((alice.id, alice.name.as_str()), (a, "alice"));
    assert!(alice.has_key && !bob.has_key);
    assert_eq!((alice.files, alice.bytes), (2, 15));
    assert_eq!((bob.files, bob.bytes), (0, 0));
    assert_eq!(bob.aes_key_age, None);
    assert_eq!(alice.dialect, None);
    m.set_dialect(&a, "variant 7").unwrap();
    assert_eq!(
        m.clients().unwrap()[0].dialect.as_deref(),
        Some("variant 7")
    );
    // LastSeen as SQLite's datetime('now') writes it.
    let seen = alice.last_seen.as_bytes();
    assert_eq!(seen.len(), 19, "{}", alice.last_seen);
    assert_eq!((seen[4], seen[10], seen[13]), (b'-', b' ', b':'));
}

fn files_and_switches(m: &dyn Metadata) {
    let a = client(m, 1, "alice");
    let b = client(m, 2, "bob");
    assert_eq!(m.file(&a, "f").unwrap(), None);
    let first = intent(&a, "f", true, 100);
    assert_eq!(commit(m, &first), Switch::Switched { replaced: None });
    let rec = m.file(&a, "f").unwrap().unwrap();
    assert_eq!(
        (rec.object.as_str(), rec.verified, rec.size, rec.checksum),
        (first.object.as_str(), true, 100, Some(0xdead_beef))
    );
    assert_eq!(rec.updated.len(), 19, "{}", rec.updated);
    // A new version replaces it, and names the object to delete.
    let second = intent(&a, "f", true, 200);
    assert_eq!(
        commit(m, &second),
        Switch::Switched {
            replaced: Some(first.object.clone())
        }
    );
    assert_eq!(m.file(&a, "f").unwrap().unwrap().size, 200);
    // Names are exact (no folding), and per client.
    commit(m, &intent(&a, "F", true, 1));
    commit(m, &intent(&b, "f", false, 2));
    let names: Vec<(ClientId, String)> = m
        .files(None)
        .unwrap()
        .into_iter()
        .map(|f| (f.client, f.file_name))
        .collect();
    assert_eq!(
        names,
        [
            (a, "F".to_string()),
            (a, "f".to_string()),
            (b, "f".to_string())
        ]
    );
    assert_eq!(m.files(Some(&b)).unwrap().len(), 1);
    assert!(m.intents().unwrap().is_empty());
}

fn unverified_never_replaces_verified(m: &dyn Metadata) {
    let a = client(m, 1, "alice");
    // 902 where nothing is stored: kept as an unverified record, replaced by the next.
    let gave_up = intent(&a, "f", false, 1);
    assert_eq!(commit(m, &gave_up), Switch::Switched { replaced: None });
    let again = intent(&a, "f", false, 2);
    assert_eq!(
        commit(m, &again),
        Switch::Switched {
            replaced: Some(gave_up.object.clone())
        }
    );
    let good = intent(&a, "f", true, 3);
    commit(m, &good);
    // Over a verified record, a 902 changes nothing and its intent is gone.
    let late = intent(&a, "f", false, 4);
    m.record_intent(&late).unwrap();
    assert_eq!(m.switch(&late).unwrap(), Switch::KeptVerified);
    assert!(m.intents().unwrap().is_empty());
    let rec = m.file(&a, "f").unwrap().unwrap();
    assert_eq!((rec.object, rec.verified, rec.size), (good.object, true, 3));
}

fn switch_refuses_a_removed_client(m: &dyn Metadata) {
    let a = client(m, 1, "alice");
    let i = intent(&a, "f", true, 1);
    m.record_intent(&i).unwrap();
    m.remove_client(&a).unwrap().unwrap();
    let err = m.switch(&i).unwrap_err().to_string();
    assert!(err.contains("the client was removed"), "{err}");
    assert!(m.files(None).unwrap().is_empty());
    // Not switched: reconciliation rolls it back.
    assert!(!m.intents().unwrap()[0].switched);
}

fn switch_refuses_an_unknown_intent(m: &dyn Metadata) {
    let a = client(m, 1, "alice");
    let i = intent(&a, "f", true, 1);
    // Never recorded: the switch fails and leaves no record behind.
    assert!(m.switch(&i).is_err());
    assert_eq!(m.file(&a, "f").unwrap(), None);
}

fn intents_round_trip(m: &dyn Metadata) {
    let a = client(m, 1, "alice");
    let mut i = intent(&a, "f", false, u64::from(u32::MAX) + 7);
    i.checksum = u32::MAX;
    m.record_intent(&i).unwrap();
    assert_eq!(m.intents().unwrap(), [i.clone()]);
    let mut j = intent(&a, "g", true, 5);
    m.record_intent(&j).unwrap();
    commit(m, &intent(&a, "g", true, 9));
    let replaced = m.file(&a, "g").unwrap().unwrap().object;
    assert_eq!(
        m.switch(&j).unwrap(),
        Switch::Switched {
            replaced: Some(replaced.clone())
        }
    );
    j.switched = true;
    j.replaced = Some(replaced);
    let mut all = m.intents().unwrap();
    all.sort_by_key(|x| x.file_name.clone());
    assert_eq!(all, [i.clone(), j.clone()]);
    m.clear_intent(&i.id).unwrap();
    m.clear_intent(&j.id).unwrap();
    m.clear_intent("no such intent").unwrap();
    assert!(m.intents().unwrap().is_empty());
}

/// Reconciliation claims an intent before deleting anything: the commit that wrote
/// it, should it still be running, must then fail at its switch, never point a
/// record at an object reconciliation is deleting.
fn a_claimed_intent_fails_its_switch(m: &dyn Metadata) {
    let a = client(m, 1, "alice");
    commit(m, &intent(&a, "f", true, 3));
    let before = m.file(&a, "f").unwrap();
    let i = intent(&a, "f", true, 5);
    m.record_intent(&i).unwrap();
    assert!(m.claim_intent(&i).unwrap());
    assert!(m.switch(&i).is_err());
    assert_eq!(m.file(&a, "f").unwrap(), before, "the record is untouched");
    assert!(m.intents().unwrap().is_empty());
    // Claimed once only: a second reconciler finds nothing to do.
    assert!(!m.claim_intent(&i).unwrap());
}

fn a_switched_intent_is_claimed_only_as_switched(m: &dyn Metadata) {
    let a = client(m, 1, "alice");
    let mut i = intent(&a, "f", true, 5);
    m.record_intent(&i).unwrap();
    let read_before = i.clone();
    m.switch(&i).unwrap();
    // A reconciler that read the intent before its switch must not roll it back now.
    assert!(!m.claim_intent(&read_before).unwrap());
    assert_eq!(m.intents().unwrap().len(), 1);
    i.switched = true;
    assert!(m.claim_intent(&i).unwrap());
    assert!(m.intents().unwrap().is_empty());
    assert_eq!(m.file(&a, "f").unwrap().unwrap().object, i.object);
}

/// A fresh intent is not stale for a fleet (PostgreSQL); SQLite, one process that
/// reconciles before it serves, calls every intent stale.
fn stale_intents(m: &dyn Metadata) {
    let a = client(m, 1, "alice");
    let i = intent(&a, "f", true, 5);
    m.record_intent(&i).unwrap();
    assert_eq!(
        m.stale_intents(Duration::ZERO).unwrap(),
        std::slice::from_ref(&i)
    );
    let fresh = m.stale_intents(HOUR).unwrap();
    assert!(fresh.is_empty() || fresh == [i.clone()]);
}

#[test]
fn postgres_leaves_young_intents_to_their_commits() {
    let b = postgres();
    let m = &*b.meta;
    let a = client(m, 1, "alice");
    let i = intent(&a, "f", true, 5);
    m.record_intent(&i).unwrap();
    assert!(m.stale_intents(HOUR).unwrap().is_empty());
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        m.stale_intents(Duration::from_millis(100)).unwrap(),
        std::slice::from_ref(&i)
    );
}

fn delete_file(m: &dyn Metadata) {
    let a = client(m, 1, "alice");
    let i = intent(&a, "f", true, 1);
    commit(m, &i);
    assert_eq!(m.delete_file(&a, "f").unwrap(), Some(i.object));
    assert_eq!(m.delete_file(&a, "f").unwrap(), None);
    assert_eq!(m.file(&a, "f").unwrap(), None);
}

fn remove_client(m: &dyn Metadata) {
    assert_eq!(m.remove_client(&id(1)).unwrap(), None);
    let a = client(m, 1, "alice");
    let b = client(m, 2, "bob");
    let x = intent(&a, "x", true, 1);
    let y = intent(&a, "y", false, 2);
    commit(m, &x);
    commit(m, &y);
    commit(m, &intent(&b, "x", true, 3));
    let removed = m.remove_client(&a).unwrap().unwrap();
    let mut objects = removed.objects.clone();
    objects.sort();
    let mut expected = vec![x.object, y.object];
    expected.sort();
    assert_eq!(objects, expected);
    assert_eq!(removed.files.len(), 2);
    assert!(m.files(Some(&a)).unwrap().is_empty());
    assert_eq!(m.files(None).unwrap().len(), 1);
    let names: Vec<String> = m.clients().unwrap().into_iter().map(|c| c.name).collect();
    assert_eq!(names, ["bob"]);
    // The name is free again.
    assert_eq!(
        m.register(&id(3), "alice", HOUR).unwrap(),
        Registration::Registered
    );
}

fn prune_unverified(m: &dyn Metadata) {
    let a = client(m, 1, "alice");
    let kept = intent(&a, "good", true, 1);
    let pruned = intent(&a, "bad", false, 2);
    commit(m, &kept);
    commit(m, &pruned);
    // Not old enough yet.
    assert!(m.prune_unverified(HOUR).unwrap().files.is_empty());
    let removed = m.prune_unverified(Duration::ZERO).unwrap();
    assert_eq!(removed.objects, [pruned.object]);
    assert_eq!(removed.files.len(), 1);
    assert_eq!(removed.files[0].file_name, "bad");
    let left: Vec<String> = m
        .files(None)
        .unwrap()
        .into_iter()
        .map(|f| f.file_name)
        .collect();
    assert_eq!(left, ["good"]);
}

fn referenced_objects(m: &dyn Metadata) {
    let a = client(m, 1, "alice");
    let stored = intent(&a, "f", true, 1);
    commit(m, &stored);
    let pending = intent(&a, "g", true, 1);
    m.record_intent(&pending).unwrap();
    // Switched but not cleared: names both the new object and the one it replaced.
    let next = intent(&a, "f", true, 2);
    m.record_intent(&next).unwrap();
    m.switch(&next).unwrap();
    let refs = m.referenced_objects().unwrap();
    let mut expected: Vec<&String> = vec![&stored.object, &pending.object, &next.object];
    expected.sort();
    let mut got: Vec<&String> = refs.iter().collect();
    got.sort();
    assert_eq!(got, expected);
}

fn expire_registrations(m: &dyn Metadata) {
    client(m, 1, "keyed");
    m.register(&id(2), "waiting", HOUR).unwrap();
    assert!(m.expire_registrations(HOUR).unwrap().is_empty());
    assert_eq!(m.expire_registrations(Duration::ZERO).unwrap(), ["waiting"]);
    let names: Vec<String> = m.clients().unwrap().into_iter().map(|c| c.name).collect();
    assert_eq!(names, ["keyed"]);
}
