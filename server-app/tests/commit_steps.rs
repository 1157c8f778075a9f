//! The commit protocol stopped at each of its steps, then a restart.
//!
//! Storage wrappers (common/faulty.rs) fail a step, or "crash" before or after it: from
//! then on nothing more reaches storage, as when the process is killed. The folder is
//! then reopened as a restart would (start-up reconciliation) and the invariant checked:
//! every verified record names an object whose bytes are what its client confirmed, a
//! commit that returned Ok (1604 sent) has its content stored, verified content it
//! replaced is current or kept as a version (never neither), and no upload, intent or
//! unnamed object is left behind.
//!
//! The cases run on both contents backends: the local folder, and S3 (a private
//! SeaweedFS, common/s3.rs) under a prefix of its own for each test folder.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test harness: a failure is a panic

mod common;

use std::path::Path;
use std::sync::Arc;

use common::faulty::{Fault, FaultyContents, FaultyMeta, Plan};
use protocol_core::ClientId;
use server_app::storage::commit::Finished;
use server_app::storage::local::LocalContents;
use server_app::storage::sqlite::SqliteMetadata;
use server_app::storage::{
    new_upload_key, CommitOutcome, Contents, FileRecord, Registration, Storage,
};

const CLIENT: ClientId = ClientId([7; 16]);
const NAME: &str = "dir/report.txt";

/// Where a test keeps file contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Files {
    /// The folder itself.
    Local,
    /// S3, under a prefix named after the folder.
    S3,
}

fn contents(files: Files, dir: &Path) -> Arc<dyn Contents> {
    match files {
        Files::Local => Arc::new(LocalContents::open(dir).unwrap()),
        Files::S3 => Arc::new(s3_contents(dir)),
    }
}

fn s3_contents(dir: &Path) -> server_app::storage::s3::S3Contents {
    use std::sync::OnceLock;
    // Test folders are unique on this machine; the run's own name keeps them apart on
    // a shared server (FLEET_S3_ENDPOINT).
    static RUN: OnceLock<String> = OnceLock::new();
    let run = RUN.get_or_init(server_app::storage::random_name);
    let name = dir.file_name().unwrap().to_string_lossy();
    let prefix = format!("commit-steps/{run}/{name}");
    common::s3::s3_server().contents(&prefix, Default::default())
}

fn plain(files: Files, dir: &Path) -> Storage {
    Storage::new(
        Arc::new(SqliteMetadata::open(&dir.join("defensive.db")).unwrap()),
        contents(files, dir),
    )
}

fn wrapped(files: Files, dir: &Path, plan: Arc<Plan>) -> Storage {
    let meta = Arc::new(FaultyMeta {
        inner: SqliteMetadata::open(&dir.join("defensive.db")).unwrap(),
        plan: plan.clone(),
    });
    let contents: Arc<dyn Contents> = match files {
        Files::Local => Arc::new(FaultyContents {
            inner: LocalContents::open(dir).unwrap(),
            plan,
        }),
        Files::S3 => Arc::new(FaultyContents {
            inner: s3_contents(dir),
            plan,
        }),
    };
    Storage::new(meta, contents)
}

fn setup_client(s: &Storage) {
    let hold = std::time::Duration::from_secs(600);
    assert_eq!(
        s.meta.register(&CLIENT, "alice", hold).unwrap(),
        Registration::Registered
    );
    s.meta
        .set_keys(&CLIENT, "alice", &[1; 160], &[2; 32])
        .unwrap();
}

/// Writes an upload and commits it; step 1 (the fsync) is one of the counted steps.
fn upload_and_commit(s: &Storage, bytes: &[u8], verified: bool) -> Result<CommitOutcome, String> {
    let key = new_upload_key();
    let mut sink = s.contents.create_upload(&key).map_err(|e| e.to_string())?;
    sink.write(bytes).map_err(|e| e.to_string())?;
    sink.finish().map_err(|e| e.to_string())?;
    s.commit(Finished {
        client: &CLIENT,
        file_name: NAME,
        upload: &key,
        verified,
        size: bytes.len() as u64,
        checksum: 0,
        sha256: None,
    })
    .map_err(|e| e.to_string())
}

/// The contents of the file's versions, newest first.
fn version_contents(s: &Storage) -> Vec<Vec<u8>> {
    s.meta
        .versions(Some(&CLIENT), Some(NAME))
        .unwrap()
        .iter()
        .map(|v| {
            let bytes = s.contents.read_object(&v.object).unwrap();
            assert_eq!(bytes.len() as u64, v.size, "size of a version");
            bytes
        })
        .collect()
}

/// After a restart: nothing left over, and the record is one of `allowed`
/// (bytes, verified); `None` in `allowed` means no record is allowed too.
fn check_after_restart(files: Files, dir: &Path, allowed: &[Option<(&[u8], bool)>], what: &str) {
    check_keeping(files, dir, allowed, None, what)
}

/// As [`check_after_restart`], and `kept` (verified content before the commit) is
/// the record's content or a version's.
fn check_keeping(
    files: Files,
    dir: &Path,
    allowed: &[Option<(&[u8], bool)>],
    kept: Option<&[u8]>,
    what: &str,
) {
    let s = plain(files, dir);
    s.reconcile().unwrap();
    assert!(s.meta.intents().unwrap().is_empty(), "{what}: intents left");
    assert!(
        s.contents.uploads().unwrap().is_empty(),
        "{what}: uploads left"
    );
    let named = s.meta.referenced_objects().unwrap();
    for o in s.contents.objects().unwrap() {
        assert!(named.contains(&o), "{what}: unnamed object {o} left");
    }
    let record: Option<FileRecord> = s.meta.file(&CLIENT, NAME).unwrap();
    let found = record.map(|r| {
        let bytes = s.contents.read_object(&r.object).unwrap();
        assert_eq!(bytes.len() as u64, r.size, "{what}: size of the record");
        (bytes, r.verified)
    });
    let ok = allowed.iter().any(|a| match (a, &found) {
        (None, None) => true,
        (Some((b, v)), Some((fb, fv))) => b == &fb.as_slice() && v == fv,
        _ => false,
    });
    if let Some(kept) = kept {
        let current = found.as_ref().is_some_and(|(b, _)| b == kept);
        let versions = version_contents(&s);
        assert!(
            current || versions.iter().any(|v| v == kept),
            "{what}: the verified content before the commit is lost (versions: {:?})",
            versions.iter().map(Vec::len).collect::<Vec<_>>()
        );
    }
    assert!(
        ok,
        "{what}: record {:?} is none of the allowed outcomes",
        found.map(|(b, v)| (b.len(), v))
    );
}

/// Runs one commit under every fault at every step, restarting after each.
fn every_step(
    files: Files,
    earlier: Option<(&[u8], bool)>,
    new: &[u8],
    verified: bool,
    faults: &[Fault],
) -> usize {
    // How many steps a commit takes (a dry run with no fault).
    let steps = {
        let tmp = tempfile::tempdir().unwrap();
        let s = plain(files, tmp.path());
        setup_client(&s);
        if let Some((b, v)) = earlier {
            upload_and_commit(&s, b, v).unwrap();
        }
        let plan = Plan::new();
        upload_and_commit(&wrapped(files, tmp.path(), plan.clone()), new, verified).unwrap();
        plan.steps()
    };
    assert!(
        steps >= 4,
        "a commit has at least finish, intent, publish, switch"
    );
    let mut runs = 0;
    for &fault in faults {
        for k in 1..=steps {
            let tmp = tempfile::tempdir().unwrap();
            {
                let s = plain(files, tmp.path());
                setup_client(&s);
                if let Some((b, v)) = earlier {
                    upload_and_commit(&s, b, v).unwrap();
                }
            }
            let plan = Plan::at(k, fault);
            let result =
                upload_and_commit(&wrapped(files, tmp.path(), plan.clone()), new, verified);
            let step = plan.log.lock().unwrap().get(k - 1).copied().unwrap_or("?");
            let what = format!("{fault:?} at step {k} ({step}): {result:?}");
            // An unconfirmed upload (902) never replaces a verified file.
            let keeps_verified = !verified && matches!(earlier, Some((_, true)));
            let allowed: Vec<Option<(&[u8], bool)>> = match &result {
                Ok(CommitOutcome::Committed) => {
                    assert!(!keeps_verified, "{what}");
                    vec![Some((new, verified))]
                }
                Ok(CommitOutcome::KeptVerified) => vec![earlier],
                Err(_) if keeps_verified => vec![earlier],
                Err(_) => vec![earlier, Some((new, verified))],
            };
            // Verified content is never lost: current, or kept as a version.
            let kept = earlier.filter(|(_, v)| *v).map(|(b, _)| b);
            check_keeping(files, tmp.path(), &allowed, kept, &what);
            if let (Ok(CommitOutcome::Committed), Some(kept)) = (&result, kept) {
                let versions = version_contents(&plain(files, tmp.path()));
                assert_eq!(versions, [kept.to_vec()], "{what}: kept as the one version");
            }
            runs += 1;
        }
    }
    runs
}

const ALL: [Fault; 3] = [Fault::Fail, Fault::CrashBefore, Fault::CrashAfter];

fn replacing_a_verified_file(files: Files) {
    let runs = every_step(
        files,
        Some((b"first version", true)),
        b"second, longer version",
        true,
        &ALL,
    );
    assert!(runs >= 12);
}

fn a_first_upload(files: Files) {
    every_step(files, None, b"only version", true, &ALL);
}

fn a_gave_up_upload_over_a_verified_one(files: Files) {
    every_step(
        files,
        Some((b"confirmed", true)),
        b"never confirmed",
        false,
        &ALL,
    );
}

fn a_gave_up_upload_over_an_unverified_one(files: Files) {
    every_step(
        files,
        Some((b"unconfirmed 1", false)),
        b"unconfirmed 2",
        false,
        &ALL,
    );
}

#[test]
fn commit_steps_replacing_a_verified_file_keep_old_or_new_never_a_mix() {
    replacing_a_verified_file(Files::Local);
}

#[test]
fn commit_steps_of_a_first_upload_leave_it_stored_or_absent() {
    a_first_upload(Files::Local);
}

#[test]
fn commit_steps_of_a_gave_up_upload_never_replace_a_verified_file() {
    a_gave_up_upload_over_a_verified_one(Files::Local);
}

#[test]
fn commit_steps_of_a_gave_up_upload_over_an_unverified_one() {
    a_gave_up_upload_over_an_unverified_one(Files::Local);
}

#[test]
fn s3_commit_steps_replacing_a_verified_file_keep_old_or_new_never_a_mix() {
    replacing_a_verified_file(Files::S3);
}

#[test]
fn s3_commit_steps_of_a_first_upload_leave_it_stored_or_absent() {
    a_first_upload(Files::S3);
}

#[test]
fn s3_commit_steps_of_a_gave_up_upload_never_replace_a_verified_file() {
    a_gave_up_upload_over_a_verified_one(Files::S3);
}

#[test]
fn s3_commit_steps_of_a_gave_up_upload_over_an_unverified_one() {
    a_gave_up_upload_over_an_unverified_one(Files::S3);
}

#[test]
fn commit_steps_over_an_old_layout_record_shared_by_two_names() {
    // Before schema 3, `b.txt` and `sub/b.txt` shared files/<id>/b.txt. Replacing one
    // of them at any step must never delete the file the other still names.
    let steps = 7;
    for fault in ALL {
        for k in 1..=steps {
            let tmp = tempfile::tempdir().unwrap();
            let dir = tmp.path();
            let legacy = format!("files/{}/b.txt", CLIENT.to_hex());
            {
                let s = plain(Files::Local, dir);
                setup_client(&s);
            }
            std::fs::create_dir_all(dir.join("files").join(CLIENT.to_hex())).unwrap();
            std::fs::write(dir.join(&legacy), b"shared").unwrap();
            let db = rusqlite::Connection::open(dir.join("defensive.db")).unwrap();
            for name in ["b.txt", NAME] {
                db.execute(
                    "INSERT INTO files (ID, FileName, PathName, Verified, Size) VALUES (?1, ?2, ?3, 1, 6)",
                    rusqlite::params![&CLIENT.0[..], name, legacy],
                )
                .unwrap();
            }
            drop(db);
            let plan = Plan::at(k, fault);
            let result = upload_and_commit(&wrapped(Files::Local, dir, plan), b"new", true);
            let what = format!("{fault:?} at step {k}: {result:?}");
            let allowed: Vec<Option<(&[u8], bool)>> = match result {
                Ok(_) => vec![Some((b"new", true))],
                Err(_) => vec![Some((b"shared", true)), Some((b"new", true))],
            };
            check_keeping(Files::Local, dir, &allowed, Some(b"shared"), &what);
            let s = plain(Files::Local, dir);
            let other = s.meta.file(&CLIENT, "b.txt").unwrap().unwrap();
            assert_eq!(
                s.contents.read_object(&other.object).unwrap(),
                b"shared",
                "{what}: the other name's file"
            );
        }
    }
}

#[test]
fn reconciliation_removes_uploads_and_unnamed_objects_but_no_named_one() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let s = plain(Files::Local, dir);
    setup_client(&s);
    upload_and_commit(&s, b"kept", true).unwrap();
    let stray_upload = new_upload_key();
    let mut w = s.contents.create_upload(&stray_upload).unwrap();
    w.write(b"left by a crash").unwrap();
    w.finish().unwrap();
    let stray_object = format!("objects/{}/0123", CLIENT.to_hex());
    std::fs::write(dir.join(&stray_object), b"unnamed").unwrap();
    drop(s);
    let s = plain(Files::Local, dir);
    let done = s.reconcile().unwrap();
    assert_eq!((done.uploads_removed, done.objects_removed), (1, 1));
    assert!(!dir.join(&stray_object).exists());
    let r = s.meta.file(&CLIENT, NAME).unwrap().unwrap();
    assert_eq!(s.contents.read_object(&r.object).unwrap(), b"kept");
}

/// Reconciliation is itself stopped at each of its steps (it claims each intent before
/// deleting anything), then runs again: the outcome is the same as uninterrupted.
#[test]
fn reconciliation_interrupted_at_each_step_is_finished_by_the_next_start() {
    // A crashed commit after its switch (the old object still there) and one before
    // its switch (its object published), over a verified file.
    fn crashed_commits(dir: &Path) {
        let s = plain(Files::Local, dir);
        setup_client(&s);
        upload_and_commit(&s, b"first", true).unwrap();
        // Stopped right after the switch of "second" (step 4).
        let plan = Plan::new();
        let steps = {
            let t = tempfile::tempdir().unwrap();
            let p = plain(Files::Local, t.path());
            setup_client(&p);
            upload_and_commit(&p, b"x", true).unwrap();
            upload_and_commit(&wrapped(Files::Local, t.path(), plan.clone()), b"y", true).unwrap();
            plan.log.lock().unwrap().clone()
        };
        let switch = steps.iter().position(|s| *s == "switch").unwrap() + 1;
        let crashing = Plan::at(switch, Fault::CrashAfter);
        let _ = upload_and_commit(&wrapped(Files::Local, dir, crashing), b"second", true);
        // And a 902 stopped before its switch.
        let crashing = Plan::at(switch, Fault::CrashBefore);
        let _ = upload_and_commit(&wrapped(Files::Local, dir, crashing), b"third", false);
        assert_eq!(s.meta.intents().unwrap().len(), 2);
    }
    let steps = {
        let tmp = tempfile::tempdir().unwrap();
        crashed_commits(tmp.path());
        let plan = Plan::new();
        wrapped(Files::Local, tmp.path(), plan.clone())
            .reconcile()
            .unwrap();
        plan.steps()
    };
    // The switched commit replaced a verified file, kept as a version: it has no
    // object to delete, only its upload.
    assert!(
        steps >= 5,
        "two claims, their deletions, the sweeps: {steps}"
    );
    for fault in ALL {
        for k in 1..=steps {
            let tmp = tempfile::tempdir().unwrap();
            crashed_commits(tmp.path());
            let plan = Plan::at(k, fault);
            let first = wrapped(Files::Local, tmp.path(), plan.clone()).reconcile();
            let step = plan.log.lock().unwrap().get(k - 1).copied().unwrap_or("?");
            let what = format!("{fault:?} at reconciliation step {k} ({step}): {first:?}");
            check_after_restart(
                Files::Local,
                tmp.path(),
                &[Some((b"second".as_slice(), true))],
                &what,
            );
        }
    }
}

/// A file with two verified contents: the second current, the first a version.
fn two_contents(dir: &Path) -> u64 {
    let s = plain(Files::Local, dir);
    setup_client(&s);
    upload_and_commit(&s, b"first", true).unwrap();
    upload_and_commit(&s, b"second", true).unwrap();
    s.meta.versions(Some(&CLIENT), Some(NAME)).unwrap()[0].id
}

/// Every content of the file, current or version, sorted; and nothing unnamed left.
fn all_contents(dir: &Path, what: &str) -> (Vec<u8>, Vec<Vec<u8>>) {
    let s = plain(Files::Local, dir);
    s.reconcile().unwrap();
    let named = s.meta.referenced_objects().unwrap();
    for o in s.contents.objects().unwrap() {
        assert!(named.contains(&o), "{what}: unnamed object {o} left");
    }
    let record = s.meta.file(&CLIENT, NAME).unwrap().unwrap();
    let current = s.contents.read_object(&record.object).unwrap();
    (current, version_contents(&s))
}

/// A restore is one metadata transaction: stopped at any point, the file has its old
/// state or its new one, both contents still there.
#[test]
fn restore_interrupted_keeps_both_contents() {
    for fault in ALL {
        let tmp = tempfile::tempdir().unwrap();
        let version = two_contents(tmp.path());
        let plan = Plan::at(1, fault);
        let result =
            wrapped(Files::Local, tmp.path(), plan.clone()).restore_version(&CLIENT, NAME, version);
        assert_eq!(plan.log.lock().unwrap().as_slice(), ["restore_version"]);
        let what = format!("{fault:?} at the restore: {result:?}");
        let (current, versions) = all_contents(tmp.path(), &what);
        match fault {
            Fault::CrashAfter => {
                assert_eq!(
                    (current.as_slice(), versions),
                    (&b"first"[..], vec![b"second".to_vec()]),
                    "{what}"
                )
            }
            _ => assert_eq!(
                (current.as_slice(), versions),
                (&b"second"[..], vec![b"first".to_vec()]),
                "{what}"
            ),
        }
    }
}

/// Pruning removes the rows in one transaction, then the objects: stopped at any
/// step, the version is either whole or gone, and no object is left unnamed after the
/// next start.
#[test]
fn version_pruning_interrupted_leaves_whole_versions_or_none() {
    let steps = {
        let tmp = tempfile::tempdir().unwrap();
        two_contents(tmp.path());
        let plan = Plan::new();
        let removed = wrapped(Files::Local, tmp.path(), plan.clone())
            .prune_versions(0, std::time::Duration::ZERO)
            .unwrap();
        assert_eq!(removed.versions.len(), 1);
        plan.steps()
    };
    assert_eq!(steps, 2, "the rows, then the object");
    for fault in ALL {
        for k in 1..=steps {
            let tmp = tempfile::tempdir().unwrap();
            two_contents(tmp.path());
            let plan = Plan::at(k, fault);
            let result = wrapped(Files::Local, tmp.path(), plan.clone())
                .prune_versions(0, std::time::Duration::ZERO);
            let what = format!("{fault:?} at prune step {k}: {result:?}");
            let (current, versions) = all_contents(tmp.path(), &what);
            assert_eq!(current, b"second", "{what}");
            assert!(
                versions.is_empty() || versions == [b"first".to_vec()],
                "{what}: {versions:?}"
            );
        }
    }
}
