//! The promises of every [`Metadata`] backend, one function each, over
//! `&dyn Metadata`: run by [`run`] against memory (SQLite's in-memory database),
//! a SQLite file and PostgreSQL (tests/storage_suite.rs), and through the fault
//! wrappers the tests put around a backend.

pub mod secure;

use std::time::Duration;

use protocol_core::ClientId;

use crate::storage::{Intent, KeyOutcome, Metadata, Registration, Switch, Version, VersionTotals};

/// One case: its name and the check.
pub type Case = (&'static str, fn(&dyn Metadata));

/// Every case, by name.
pub const CASES: &[Case] = &[
    ("registration_and_hold", registration_and_hold),
    ("keys", keys),
    ("aes_key_lifecycle", aes_key_lifecycle),
    ("touch_and_listing", touch_and_listing),
    ("files_and_switches", files_and_switches),
    (
        "unverified_never_replaces_verified",
        unverified_never_replaces_verified,
    ),
    (
        "switch_refuses_a_removed_client",
        switch_refuses_a_removed_client,
    ),
    (
        "switch_refuses_an_unknown_intent",
        switch_refuses_an_unknown_intent,
    ),
    ("intents_round_trip", intents_round_trip),
    (
        "a_claimed_intent_fails_its_switch",
        a_claimed_intent_fails_its_switch,
    ),
    (
        "a_switched_intent_is_claimed_only_as_switched",
        a_switched_intent_is_claimed_only_as_switched,
    ),
    ("stale_intents", stale_intents),
    ("delete_file", delete_file),
    ("remove_client", remove_client),
    ("prune_unverified", prune_unverified),
    ("referenced_objects", referenced_objects),
    ("expire_registrations", expire_registrations),
    (
        "a_verified_replacement_keeps_a_version",
        a_verified_replacement_keeps_a_version,
    ),
    (
        "an_unverified_replacement_keeps_no_version",
        an_unverified_replacement_keeps_no_version,
    ),
    (
        "a_gave_up_upload_over_a_verified_file_keeps_it_and_no_version",
        a_gave_up_upload_over_a_verified_file_keeps_it_and_no_version,
    ),
    (
        "versions_go_only_past_both_retention_limits",
        versions_go_only_past_both_retention_limits,
    ),
    (
        "restore_swaps_the_record_and_a_version",
        restore_swaps_the_record_and_a_version,
    ),
    (
        "remove_client_removes_its_versions",
        remove_client_removes_its_versions,
    ),
    (
        "delete_file_removes_its_versions",
        delete_file_removes_its_versions,
    ),
];

/// Runs every case against a fresh backend from `fresh`, each case on its own,
/// and panics naming each case that failed.
pub fn run(fresh: &dyn Fn() -> Box<dyn Backend>) {
    let cases: Vec<Case> = CASES.iter().chain(secure::METADATA).copied().collect();
    super::run_cases(&cases, |case| {
        let backend = fresh();
        case(backend.metadata());
    });
}

/// A backend under test, with what keeps its storage alive (a folder, a database).
pub trait Backend {
    /// The backend.
    fn metadata(&self) -> &dyn Metadata;
}

pub const HOUR: Duration = Duration::from_secs(3600);
const PUBLIC: [u8; 160] = [7; 160];
const AES: [u8; 32] = [9; 32];

pub fn id(n: u8) -> ClientId {
    ClientId([n; 16])
}

/// Registers `n` as `name` with a public key.
pub fn client(m: &dyn Metadata, n: u8, name: &str) -> ClientId {
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

pub fn intent(c: &ClientId, file: &str, verified: bool, size: u64) -> Intent {
    Intent {
        id: crate::storage::random_name(),
        client: *c,
        file_name: file.into(),
        upload: crate::storage::new_upload_key(),
        object: crate::storage::new_object_key(c),
        verified,
        size,
        checksum: 0xdead_beef,
        sha256: None,
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

pub fn registration_and_hold(m: &dyn Metadata) {
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

pub fn keys(m: &dyn Metadata) {
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

pub fn aes_key_lifecycle(m: &dyn Metadata) {
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

pub fn touch_and_listing(m: &dyn Metadata) {
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

pub fn files_and_switches(m: &dyn Metadata) {
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
    // A new upload replaces it; the verified content it replaced is kept as a
    // version, so no object is to be deleted.
    let second = intent(&a, "f", true, 200);
    assert_eq!(commit(m, &second), Switch::Switched { replaced: None });
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

pub fn unverified_never_replaces_verified(m: &dyn Metadata) {
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

pub fn switch_refuses_a_removed_client(m: &dyn Metadata) {
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

pub fn switch_refuses_an_unknown_intent(m: &dyn Metadata) {
    let a = client(m, 1, "alice");
    let i = intent(&a, "f", true, 1);
    // Never recorded: the switch fails and leaves no record behind.
    assert!(m.switch(&i).is_err());
    assert_eq!(m.file(&a, "f").unwrap(), None);
}

pub fn intents_round_trip(m: &dyn Metadata) {
    let a = client(m, 1, "alice");
    let mut i = intent(&a, "f", false, u64::from(u32::MAX) + 7);
    i.checksum = u32::MAX;
    m.record_intent(&i).unwrap();
    assert_eq!(m.intents().unwrap(), [i.clone()]);
    let mut j = intent(&a, "g", true, 5);
    m.record_intent(&j).unwrap();
    commit(m, &intent(&a, "g", false, 9));
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
pub fn a_claimed_intent_fails_its_switch(m: &dyn Metadata) {
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

pub fn a_switched_intent_is_claimed_only_as_switched(m: &dyn Metadata) {
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
pub fn stale_intents(m: &dyn Metadata) {
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

pub fn delete_file(m: &dyn Metadata) {
    let a = client(m, 1, "alice");
    let i = intent(&a, "f", true, 1);
    commit(m, &i);
    let removed = m.delete_file(&a, "f").unwrap().unwrap();
    assert_eq!(removed.objects, [i.object]);
    assert_eq!(removed.files.len(), 1);
    assert!(removed.versions.is_empty());
    assert_eq!(m.delete_file(&a, "f").unwrap(), None);
    assert_eq!(m.file(&a, "f").unwrap(), None);
}

pub fn remove_client(m: &dyn Metadata) {
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

pub fn prune_unverified(m: &dyn Metadata) {
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

pub fn referenced_objects(m: &dyn Metadata) {
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

pub fn expire_registrations(m: &dyn Metadata) {
    client(m, 1, "keyed");
    m.register(&id(2), "waiting", HOUR).unwrap();
    assert!(m.expire_registrations(HOUR).unwrap().is_empty());
    assert_eq!(m.expire_registrations(Duration::ZERO).unwrap(), ["waiting"]);
    let names: Vec<String> = m.clients().unwrap().into_iter().map(|c| c.name).collect();
    assert_eq!(names, ["keyed"]);
}

/// The versions of one file, newest first.
fn versions_of(m: &dyn Metadata, c: &ClientId, file: &str) -> Vec<Version> {
    m.versions(Some(c), Some(file)).unwrap()
}

fn objects_of(versions: &[Version]) -> Vec<&str> {
    versions.iter().map(|v| v.object.as_str()).collect()
}

/// A verified file replaced by a verified upload (its owner's, or a stranger's who
/// got garbage verified) is kept as a version, written by the switch itself.
pub fn a_verified_replacement_keeps_a_version(m: &dyn Metadata) {
    let a = client(m, 1, "alice");
    let mut first = intent(&a, "f", true, 100);
    first.checksum = 0x1234;
    commit(m, &first);
    let written = m.file(&a, "f").unwrap().unwrap().updated;
    assert!(versions_of(m, &a, "f").is_empty());
    let second = intent(&a, "f", true, 200);
    m.record_intent(&second).unwrap();
    assert_eq!(
        m.switch(&second).unwrap(),
        Switch::Switched { replaced: None }
    );
    // Switched, not yet cleared: the version is there already (same transaction).
    let kept = versions_of(m, &a, "f");
    assert_eq!(kept.len(), 1);
    let v = &kept[0];
    assert_eq!(
        (&v.client, v.file_name.as_str(), v.object.as_str()),
        (&a, "f", first.object.as_str())
    );
    assert_eq!((v.verified, v.size, v.checksum), (true, 100, Some(0x1234)));
    assert_eq!(v.updated, written);
    assert_eq!(v.superseded.len(), 19, "{}", v.superseded);
    m.clear_intent(&second.id).unwrap();
    // The version's object is named: reconciliation never takes it for an orphan.
    assert!(m.referenced_objects().unwrap().contains(&first.object));
    // A third: two versions, newest first, ids growing.
    let third = intent(&a, "f", true, 300);
    commit(m, &third);
    let kept = versions_of(m, &a, "f");
    assert_eq!(
        objects_of(&kept),
        [second.object.as_str(), first.object.as_str()]
    );
    assert!(kept[0].id > kept[1].id);
    assert_eq!(m.file(&a, "f").unwrap().unwrap().object, third.object);
    assert_eq!(
        m.version_totals().unwrap(),
        VersionTotals {
            versions: 2,
            bytes: 300
        }
    );
    // Listed per client and all at once too.
    assert_eq!(m.versions(Some(&a), None).unwrap(), kept);
    assert_eq!(m.versions(None, None).unwrap(), kept);
}

/// Only verified content is kept: an unverified record replaced (by a 902 or a 900)
/// goes as before, its object to be deleted.
pub fn an_unverified_replacement_keeps_no_version(m: &dyn Metadata) {
    let a = client(m, 1, "alice");
    let first = intent(&a, "f", false, 1);
    commit(m, &first);
    let second = intent(&a, "f", false, 2);
    assert_eq!(
        commit(m, &second),
        Switch::Switched {
            replaced: Some(first.object.clone())
        }
    );
    let third = intent(&a, "f", true, 3);
    assert_eq!(
        commit(m, &third),
        Switch::Switched {
            replaced: Some(second.object.clone())
        }
    );
    assert!(versions_of(m, &a, "f").is_empty());
    assert_eq!(m.version_totals().unwrap(), VersionTotals::default());
}

/// A 902 over a verified file changes nothing: no version either.
pub fn a_gave_up_upload_over_a_verified_file_keeps_it_and_no_version(m: &dyn Metadata) {
    let a = client(m, 1, "alice");
    let good = intent(&a, "f", true, 3);
    commit(m, &good);
    let before = m.file(&a, "f").unwrap();
    let late = intent(&a, "f", false, 4);
    m.record_intent(&late).unwrap();
    assert_eq!(m.switch(&late).unwrap(), Switch::KeptVerified);
    assert_eq!(m.file(&a, "f").unwrap(), before);
    assert!(versions_of(m, &a, "f").is_empty());
}

/// A version goes only when it is both beyond the newest `keep` of its file and
/// superseded at least `older_than` ago: a stranger replacing a file again and again
/// never pushes the owner's content out before the retention time.
pub fn versions_go_only_past_both_retention_limits(m: &dyn Metadata) {
    let a = client(m, 1, "alice");
    let objects: Vec<String> = (0..5u64)
        .map(|n| {
            let i = intent(&a, "f", true, n + 1);
            commit(m, &i);
            i.object
        })
        .collect();
    // Another file with one version, which no prune below may touch.
    commit(m, &intent(&a, "g", true, 1));
    commit(m, &intent(&a, "g", true, 2));
    assert_eq!(versions_of(m, &a, "f").len(), 4);
    // Beyond the newest 1, but young: kept.
    assert!(m.prune_versions(1, HOUR).unwrap().versions.is_empty());
    // Old enough, but within the newest 10: kept.
    assert!(m
        .prune_versions(10, Duration::ZERO)
        .unwrap()
        .versions
        .is_empty());
    assert_eq!(versions_of(m, &a, "f").len(), 4);
    // Both: the two oldest of "f" go, their objects to be deleted.
    let removed = m.prune_versions(2, Duration::ZERO).unwrap();
    let mut gone = objects_of(&removed.versions);
    gone.sort();
    let mut expected = vec![objects[0].as_str(), objects[1].as_str()];
    expected.sort();
    assert_eq!(gone, expected);
    let mut deleted: Vec<&str> = removed.objects.iter().map(String::as_str).collect();
    deleted.sort();
    assert_eq!(deleted, expected);
    assert!(removed.files.is_empty());
    assert_eq!(
        objects_of(&versions_of(m, &a, "f")),
        [objects[3].as_str(), objects[2].as_str()]
    );
    assert_eq!(versions_of(m, &a, "g").len(), 1);
    // Keeping none: every old version goes, the current records stay.
    assert_eq!(
        m.prune_versions(0, Duration::ZERO).unwrap().versions.len(),
        3
    );
    assert_eq!(m.version_totals().unwrap(), VersionTotals::default());
    assert_eq!(m.file(&a, "f").unwrap().unwrap().object, objects[4]);
}

/// A restore swaps, in one transaction, the record with one of its versions: the
/// restored version's row goes, the record that was current becomes a new version,
/// no object is to be deleted.
pub fn restore_swaps_the_record_and_a_version(m: &dyn Metadata) {
    let a = client(m, 1, "alice");
    let b = client(m, 2, "bob");
    let mut first = intent(&a, "f", true, 1);
    first.checksum = 11;
    commit(m, &first);
    let second = intent(&a, "f", true, 2);
    commit(m, &second);
    let third = intent(&a, "f", true, 3);
    commit(m, &third);
    commit(m, &intent(&a, "other", true, 9));
    commit(m, &intent(&a, "other", true, 8));
    let before = versions_of(m, &a, "f");
    let oldest = before[1].clone();
    assert_eq!(oldest.object, first.object);
    // Not a version of this file, or of this client: nothing happens.
    let other = versions_of(m, &a, "other")[0].id;
    assert_eq!(m.restore_version(&a, "f", other).unwrap(), None);
    assert_eq!(m.restore_version(&b, "f", oldest.id).unwrap(), None);
    assert_eq!(m.restore_version(&a, "f", oldest.id + 1000).unwrap(), None);
    assert_eq!(versions_of(m, &a, "f"), before);
    let current = m.file(&a, "f").unwrap().unwrap();
    let done = m.restore_version(&a, "f", oldest.id).unwrap().unwrap();
    assert_eq!(done.restored, oldest);
    let kept = done.kept.expect("the current record became a version");
    assert_eq!(
        (
            kept.object.as_str(),
            kept.size,
            kept.verified,
            &kept.updated
        ),
        (third.object.as_str(), 3, true, &current.updated)
    );
    let rec = m.file(&a, "f").unwrap().unwrap();
    assert_eq!(
        (rec.object.as_str(), rec.size, rec.verified, rec.checksum),
        (first.object.as_str(), 1, true, Some(11))
    );
    assert_eq!(rec.updated, oldest.updated);
    assert_eq!(
        objects_of(&versions_of(m, &a, "f")),
        [third.object.as_str(), second.object.as_str()]
    );
    assert_eq!(versions_of(m, &a, "f")[0], kept);
    // Restored once only; restoring the kept one undoes it.
    assert_eq!(m.restore_version(&a, "f", oldest.id).unwrap(), None);
    m.restore_version(&a, "f", kept.id).unwrap().unwrap();
    assert_eq!(m.file(&a, "f").unwrap().unwrap().object, third.object);
    let refs = m.referenced_objects().unwrap();
    for o in [&first.object, &second.object, &third.object] {
        assert!(refs.contains(o));
    }
}

pub fn remove_client_removes_its_versions(m: &dyn Metadata) {
    let a = client(m, 1, "alice");
    let b = client(m, 2, "bob");
    let old = intent(&a, "f", true, 1);
    commit(m, &old);
    let new = intent(&a, "f", true, 2);
    commit(m, &new);
    commit(m, &intent(&b, "f", true, 3));
    commit(m, &intent(&b, "f", true, 4));
    let removed = m.remove_client(&a).unwrap().unwrap();
    assert_eq!(objects_of(&removed.versions), [old.object.as_str()]);
    let mut objects = removed.objects.clone();
    objects.sort();
    let mut expected = vec![old.object.clone(), new.object.clone()];
    expected.sort();
    assert_eq!(objects, expected);
    assert!(m.versions(Some(&a), None).unwrap().is_empty());
    assert_eq!(m.versions(None, None).unwrap().len(), 1, "bob's stays");
    assert!(!m.referenced_objects().unwrap().contains(&old.object));
}

/// An operator's delete-file removes the record and every version of the file.
pub fn delete_file_removes_its_versions(m: &dyn Metadata) {
    let a = client(m, 1, "alice");
    let old = intent(&a, "f", true, 1);
    commit(m, &old);
    let new = intent(&a, "f", true, 2);
    commit(m, &new);
    commit(m, &intent(&a, "g", true, 3));
    commit(m, &intent(&a, "g", true, 4));
    let removed = m.delete_file(&a, "f").unwrap().unwrap();
    assert_eq!(removed.files.len(), 1);
    assert_eq!(objects_of(&removed.versions), [old.object.as_str()]);
    let mut objects = removed.objects.clone();
    objects.sort();
    let mut expected = vec![old.object.clone(), new.object.clone()];
    expected.sort();
    assert_eq!(objects, expected);
    assert!(versions_of(m, &a, "f").is_empty());
    assert_eq!(versions_of(m, &a, "g").len(), 1);
}
