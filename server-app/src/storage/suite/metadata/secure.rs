//! The promises of secure mode every [`Metadata`] backend keeps ([`METADATA`], run by
//! [`run`](super::run)): secure-mode keys and the names they hold, the legacy lock,
//! SHA-256 through commits, versions and restores, a client's deletion of its file,
//! and resumable uploads.

use std::time::Duration;

use protocol_core::ClientId;

use super::{client, id, intent, HOUR};
use crate::storage::{
    new_object_key, new_upload_key, Intent, Metadata, PartialUpload, Registration, SecureKey,
    SecureStatus, Switch,
};

/// The cases of secure mode every [`Metadata`] backend runs.
pub const METADATA: &[super::Case] = &[
    ("secure_keys", secure_keys),
    (
        "register_secure_follows_the_name_rules",
        register_secure_follows_the_name_rules,
    ),
    (
        "a_name_with_only_a_secure_key_never_expires",
        a_name_with_only_a_secure_key_never_expires,
    ),
    ("the_legacy_lock", the_legacy_lock),
    (
        "sha256_travels_with_commits_versions_and_restores",
        sha256_travels_with_commits_versions_and_restores,
    ),
    (
        "a_retired_file_is_a_version_and_can_be_restored",
        a_retired_file_is_a_version_and_can_be_restored,
    ),
    (
        "retired_versions_are_pruned_like_any_other",
        retired_versions_are_pruned_like_any_other,
    ),
    (
        "partials_are_one_per_file_and_upserted",
        partials_are_one_per_file_and_upserted,
    ),
    (
        "a_partial_is_removed_only_while_it_names_the_upload",
        a_partial_is_removed_only_while_it_names_the_upload,
    ),
    (
        "partials_expire_by_age_and_are_returned",
        partials_expire_by_age_and_are_returned,
    ),
    (
        "partials_and_intents_name_their_uploads",
        partials_and_intents_name_their_uploads,
    ),
    (
        "removing_a_client_removes_its_partials",
        removing_a_client_removes_its_partials,
    ),
];

/// An Ed25519 key (32 bytes).
pub fn ed25519(seed: u8) -> SecureKey {
    SecureKey {
        kind: SecureKey::ED25519,
        key: vec![seed; 32],
    }
}

/// An RSA key's DER of 3072 bits' length.
pub fn rsa(seed: u8) -> SecureKey {
    SecureKey {
        kind: SecureKey::RSA,
        key: vec![seed; 422],
    }
}

fn hash(seed: u8) -> [u8; 32] {
    [seed; 32]
}

/// Records, switches and clears an intent carrying `sha256`.
fn commit_with(m: &dyn Metadata, c: &ClientId, file: &str, sha256: Option<[u8; 32]>) -> Intent {
    let mut i = intent(c, file, true, 10);
    i.sha256 = sha256;
    m.record_intent(&i).unwrap();
    assert!(matches!(m.switch(&i).unwrap(), Switch::Switched { .. }));
    m.clear_intent(&i.id).unwrap();
    i
}

pub fn secure_keys(m: &dyn Metadata) {
    assert_eq!(m.secure_key(&id(1)).unwrap(), None, "unknown client");
    assert!(
        !m.set_secure_key(&id(1), &ed25519(1)).unwrap(),
        "unknown client"
    );
    let a = client(m, 1, "alice");
    assert_eq!(m.secure_key(&a).unwrap(), None, "a legacy client has none");
    assert!(m.set_secure_key(&a, &ed25519(1)).unwrap());
    assert_eq!(m.secure_key(&a).unwrap(), Some(ed25519(1)));
    assert!(m.set_secure_key(&a, &rsa(2)).unwrap());
    assert_eq!(m.secure_key(&a).unwrap(), Some(rsa(2)));
    // Malformed keys are refused and change nothing.
    for bad in [
        SecureKey {
            kind: 1,
            key: vec![1; 32],
        },
        SecureKey {
            kind: SecureKey::ED25519,
            key: vec![1; 31],
        },
        SecureKey {
            kind: SecureKey::RSA,
            key: vec![1; 162],
        },
    ] {
        assert!(m.set_secure_key(&a, &bad).is_err(), "{bad:?}");
    }
    assert_eq!(m.secure_key(&a).unwrap(), Some(rsa(2)));
    // The legacy key stays where it is.
    assert!(m.public_key(&a, "alice").unwrap().is_some());
    let row = m
        .clients()
        .unwrap()
        .into_iter()
        .find(|r| r.id == a)
        .unwrap();
    assert_eq!(row.secure_key_kind, Some(SecureKey::RSA));
}

pub fn register_secure_follows_the_name_rules(m: &dyn Metadata) {
    let zero = Duration::ZERO;
    assert_eq!(
        m.register_secure(&id(1), "alice", &ed25519(1), HOUR)
            .unwrap(),
        Registration::Registered
    );
    assert_eq!(m.secure_key(&id(1)).unwrap(), Some(ed25519(1)));
    assert_eq!(
        m.secure_status(&id(1)).unwrap(),
        Some(SecureStatus {
            went_secure: true,
            keep_legacy: false
        }),
        "a client registered in secure mode has gone secure"
    );
    assert_eq!(m.public_key(&id(1), "alice").unwrap(), None);
    // Its name is held by a key: taken for every other registration, whatever the hold.
    assert_eq!(
        m.register_secure(&id(2), "alice", &ed25519(2), zero)
            .unwrap(),
        Registration::NameTaken
    );
    assert_eq!(
        m.register(&id(2), "alice", zero).unwrap(),
        Registration::NameTaken
    );
    assert_eq!(m.secure_key(&id(2)).unwrap(), None);
    // A legacy client's name with a key is taken too.
    client(m, 3, "bob");
    assert_eq!(
        m.register_secure(&id(4), "bob", &ed25519(4), zero).unwrap(),
        Registration::NameTaken
    );
    // A name without any key is held, then freed, as for `register`.
    assert_eq!(
        m.register(&id(5), "carol", HOUR).unwrap(),
        Registration::Registered
    );
    assert_eq!(
        m.register_secure(&id(6), "carol", &ed25519(6), HOUR)
            .unwrap(),
        Registration::NameTaken
    );
    assert_eq!(
        m.register_secure(&id(6), "carol", &ed25519(6), zero)
            .unwrap(),
        Registration::Registered
    );
    assert_eq!(
        m.secure_status(&id(5)).unwrap(),
        None,
        "the expired one is gone"
    );
    // The same id twice is refused; a malformed key registers nothing.
    assert_eq!(
        m.register_secure(&id(1), "dave", &ed25519(1), HOUR)
            .unwrap(),
        Registration::NameTaken
    );
    let bad = SecureKey {
        kind: SecureKey::ED25519,
        key: vec![7; 5],
    };
    assert!(m.register_secure(&id(7), "erin", &bad, HOUR).is_err());
    assert_eq!(m.secure_status(&id(7)).unwrap(), None);
}

pub fn a_name_with_only_a_secure_key_never_expires(m: &dyn Metadata) {
    m.register_secure(&id(1), "alice", &ed25519(1), HOUR)
        .unwrap();
    assert!(m.expire_registrations(Duration::ZERO).unwrap().is_empty());
    assert_eq!(m.secure_key(&id(1)).unwrap(), Some(ed25519(1)));
    // A legacy registration that added a secure key only: held as well.
    assert_eq!(
        m.register(&id(2), "bob", HOUR).unwrap(),
        Registration::Registered
    );
    assert!(m.set_secure_key(&id(2), &ed25519(2)).unwrap());
    assert!(m.expire_registrations(Duration::ZERO).unwrap().is_empty());
    assert_eq!(
        m.register(&id(3), "bob", Duration::ZERO).unwrap(),
        Registration::NameTaken
    );
}

pub fn the_legacy_lock(m: &dyn Metadata) {
    assert_eq!(m.secure_status(&id(1)).unwrap(), None);
    assert!(!m.mark_went_secure(&id(1)).unwrap());
    assert!(!m.set_keep_legacy(&id(1), true).unwrap());
    let a = client(m, 1, "alice");
    let b = client(m, 2, "bob");
    assert_eq!(m.secure_status(&a).unwrap(), Some(SecureStatus::default()));
    assert!(m.mark_went_secure(&a).unwrap());
    let locked = SecureStatus {
        went_secure: true,
        keep_legacy: false,
    };
    assert_eq!(m.secure_status(&a).unwrap(), Some(locked));
    assert!(locked.legacy_refused());
    assert!(m.set_keep_legacy(&a, true).unwrap());
    let open = SecureStatus {
        went_secure: true,
        keep_legacy: true,
    };
    assert_eq!(m.secure_status(&a).unwrap(), Some(open));
    assert!(!open.legacy_refused());
    let rows = m.clients().unwrap();
    let row = |c: &ClientId| rows.iter().find(|r| r.id == *c).unwrap().secure;
    assert_eq!(row(&a), open, "listed");
    assert_eq!(
        row(&b),
        SecureStatus::default(),
        "another client is untouched"
    );
    assert!(m.set_keep_legacy(&a, false).unwrap());
    assert_eq!(m.secure_status(&a).unwrap(), Some(locked));
    // Marking again changes nothing.
    assert!(m.mark_went_secure(&a).unwrap());
    assert_eq!(m.secure_status(&a).unwrap(), Some(locked));
}

pub fn sha256_travels_with_commits_versions_and_restores(m: &dyn Metadata) {
    let a = client(m, 1, "alice");
    // An intent keeps its hash until its switch.
    let mut pending = intent(&a, "other", true, 3);
    pending.sha256 = Some(hash(9));
    m.record_intent(&pending).unwrap();
    let listed = m.intents().unwrap();
    assert_eq!(
        listed.iter().find(|i| i.id == pending.id).unwrap().sha256,
        Some(hash(9))
    );
    m.claim_intent(&pending).unwrap();

    let first = commit_with(m, &a, "f", Some(hash(1)));
    assert_eq!(m.file(&a, "f").unwrap().unwrap().sha256, Some(hash(1)));
    let second = commit_with(m, &a, "f", Some(hash(2)));
    assert_eq!(m.file(&a, "f").unwrap().unwrap().sha256, Some(hash(2)));
    let versions = m.versions(Some(&a), Some("f")).unwrap();
    assert_eq!(versions.len(), 1);
    assert_eq!(
        (versions[0].object.as_str(), versions[0].sha256),
        (first.object.as_str(), Some(hash(1)))
    );
    let restored = m.restore_version(&a, "f", versions[0].id).unwrap().unwrap();
    assert_eq!(restored.restored.sha256, Some(hash(1)));
    assert_eq!(restored.kept.unwrap().sha256, Some(hash(2)));
    let rec = m.file(&a, "f").unwrap().unwrap();
    assert_eq!((rec.object, rec.sha256), (first.object, Some(hash(1))));
    // A legacy commit has none, and replaces the hash with none.
    commit_with(m, &a, "f", None);
    assert_eq!(m.file(&a, "f").unwrap().unwrap().sha256, None);
    assert_eq!(m.files(Some(&a)).unwrap()[0].sha256, None);
    let _ = second;
}

pub fn a_retired_file_is_a_version_and_can_be_restored(m: &dyn Metadata) {
    let a = client(m, 1, "alice");
    assert_eq!(m.retire_file(&a, "f").unwrap(), None, "no record");
    let i = commit_with(m, &a, "f", Some(hash(1)));
    commit_with(m, &a, "g", None);
    let v = m.retire_file(&a, "f").unwrap().expect("a version");
    assert_eq!((v.client, v.file_name.as_str()), (a, "f"));
    assert_eq!(
        (v.object.as_str(), v.verified, v.size),
        (i.object.as_str(), true, 10)
    );
    assert_eq!((v.checksum, v.sha256), (Some(0xdead_beef), Some(hash(1))));
    assert_eq!(m.file(&a, "f").unwrap(), None);
    assert_eq!(m.files(Some(&a)).unwrap().len(), 1, "only g is left");
    assert_eq!(m.versions(Some(&a), Some("f")).unwrap(), vec![v.clone()]);
    assert!(
        m.referenced_objects().unwrap().contains(&i.object),
        "nothing was freed"
    );
    assert_eq!(m.retire_file(&a, "f").unwrap(), None, "retired already");
    // Undone by a restore: no current record, so nothing is kept.
    let r = m.restore_version(&a, "f", v.id).unwrap().unwrap();
    assert_eq!((r.restored.id, r.kept), (v.id, None));
    let rec = m.file(&a, "f").unwrap().unwrap();
    assert_eq!(
        (rec.object, rec.sha256, rec.verified),
        (i.object, Some(hash(1)), true)
    );
    assert!(m.versions(Some(&a), Some("f")).unwrap().is_empty());
    // An unverified record is retired as a version too: nothing is deleted.
    let mut u = intent(&a, "u", false, 4);
    u.sha256 = None;
    m.record_intent(&u).unwrap();
    m.switch(&u).unwrap();
    m.clear_intent(&u.id).unwrap();
    let v = m.retire_file(&a, "u").unwrap().unwrap();
    assert_eq!((v.object, v.verified), (u.object, false));
    assert_eq!(m.retire_file(&id(9), "f").unwrap(), None, "unknown client");
}

pub fn retired_versions_are_pruned_like_any_other(m: &dyn Metadata) {
    let a = client(m, 1, "alice");
    let i = commit_with(m, &a, "f", Some(hash(1)));
    let v = m.retire_file(&a, "f").unwrap().unwrap();
    // Within the retention time, or among the newest kept: stays.
    assert!(m.prune_versions(0, HOUR).unwrap().versions.is_empty());
    assert!(m
        .prune_versions(1, Duration::ZERO)
        .unwrap()
        .versions
        .is_empty());
    assert_eq!(m.version_totals().unwrap().versions, 1);
    let removed = m.prune_versions(0, Duration::ZERO).unwrap();
    assert_eq!(removed.versions, vec![v]);
    assert_eq!(
        removed.objects,
        vec![i.object.clone()],
        "its object is free now"
    );
    assert!(!m.referenced_objects().unwrap().contains(&i.object));
}

fn partial(c: &ClientId, file: &str, offset: u64) -> PartialUpload {
    PartialUpload {
        client: *c,
        file_name: file.into(),
        size: 1000,
        offset,
        upload: new_upload_key(),
        state: vec![offset as u8; 40],
        updated: String::new(),
    }
}

/// `p` as read back: everything but the time the store set.
fn same(read: &PartialUpload, p: &PartialUpload) {
    let mut read = read.clone();
    assert!(!read.updated.is_empty(), "the store sets the time");
    read.updated = String::new();
    assert_eq!(&read, p);
}

pub fn partials_are_one_per_file_and_upserted(m: &dyn Metadata) {
    let a = client(m, 1, "alice");
    let b = client(m, 2, "bob");
    assert_eq!(m.partial(&a, "f").unwrap(), None);
    let p = partial(&a, "f", 100);
    m.save_partial(&p).unwrap();
    same(&m.partial(&a, "f").unwrap().unwrap(), &p);
    // Advancing the offset replaces the row (the same upload, a later state).
    let mut later = p.clone();
    later.offset = 600;
    later.state = vec![6; 40];
    m.save_partial(&later).unwrap();
    same(&m.partial(&a, "f").unwrap().unwrap(), &later);
    // Another file, another client: rows of their own.
    let g = partial(&a, "g", 5);
    let bf = partial(&b, "f", 7);
    m.save_partial(&g).unwrap();
    m.save_partial(&bf).unwrap();
    same(&m.partial(&a, "f").unwrap().unwrap(), &later);
    same(&m.partial(&a, "g").unwrap().unwrap(), &g);
    same(&m.partial(&b, "f").unwrap().unwrap(), &bf);
    // A new upload of the file replaces the old one's row (one per file).
    let fresh = partial(&a, "f", 0);
    m.save_partial(&fresh).unwrap();
    same(&m.partial(&a, "f").unwrap().unwrap(), &fresh);
}

pub fn a_partial_is_removed_only_while_it_names_the_upload(m: &dyn Metadata) {
    let a = client(m, 1, "alice");
    let old = partial(&a, "f", 10);
    m.save_partial(&old).unwrap();
    // Another server took the file over with an upload of its own.
    let taken = partial(&a, "f", 0);
    m.save_partial(&taken).unwrap();
    assert!(!m.remove_partial(&a, "f", &old.upload).unwrap());
    same(&m.partial(&a, "f").unwrap().unwrap(), &taken);
    assert!(
        !m.remove_partial(&a, "g", &taken.upload).unwrap(),
        "another file"
    );
    assert!(
        !m.remove_partial(&id(2), "f", &taken.upload).unwrap(),
        "another client"
    );
    assert!(m.remove_partial(&a, "f", &taken.upload).unwrap());
    assert_eq!(m.partial(&a, "f").unwrap(), None);
    assert!(
        !m.remove_partial(&a, "f", &taken.upload).unwrap(),
        "gone already"
    );
}

pub fn partials_expire_by_age_and_are_returned(m: &dyn Metadata) {
    let a = client(m, 1, "alice");
    let p = partial(&a, "f", 10);
    let q = partial(&a, "g", 20);
    m.save_partial(&p).unwrap();
    m.save_partial(&q).unwrap();
    assert!(
        m.expire_partials(HOUR).unwrap().is_empty(),
        "young ones stay"
    );
    assert!(m.partial(&a, "f").unwrap().is_some());
    let mut expired = m.expire_partials(Duration::ZERO).unwrap();
    expired.sort_by(|x, y| x.file_name.cmp(&y.file_name));
    assert_eq!(expired.len(), 2);
    same(&expired[0], &p);
    same(&expired[1], &q);
    assert_eq!(m.partial(&a, "f").unwrap(), None);
    assert_eq!(m.partial(&a, "g").unwrap(), None);
    assert!(m.expire_partials(Duration::ZERO).unwrap().is_empty());
}

pub fn partials_and_intents_name_their_uploads(m: &dyn Metadata) {
    let a = client(m, 1, "alice");
    assert!(m.referenced_uploads().unwrap().is_empty());
    let p = partial(&a, "f", 10);
    m.save_partial(&p).unwrap();
    let i = intent(&a, "g", true, 3);
    m.record_intent(&i).unwrap();
    let named = m.referenced_uploads().unwrap();
    assert!(
        named.contains(&p.upload),
        "a partial's upload is referenced"
    );
    assert!(
        named.contains(&i.upload),
        "an intent's upload is referenced"
    );
    assert_eq!(named.len(), 2);
    assert!(m.remove_partial(&a, "f", &p.upload).unwrap());
    m.claim_intent(&i).unwrap();
    assert!(m.referenced_uploads().unwrap().is_empty());
    // Uploads are not objects.
    assert!(!m.referenced_objects().unwrap().contains(&p.upload));
    let _ = new_object_key(&a);
}

pub fn removing_a_client_removes_its_partials(m: &dyn Metadata) {
    let a = client(m, 1, "alice");
    let b = client(m, 2, "bob");
    let p = partial(&a, "f", 10);
    let q = partial(&b, "f", 10);
    m.save_partial(&p).unwrap();
    m.save_partial(&q).unwrap();
    m.remove_client(&a).unwrap().unwrap();
    assert_eq!(m.partial(&a, "f").unwrap(), None);
    assert!(m.partial(&b, "f").unwrap().is_some());
    let named = m.referenced_uploads().unwrap();
    assert!(!named.contains(&p.upload) && named.contains(&q.upload));
}
