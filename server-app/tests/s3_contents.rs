//! The S3 contents backend against a real SeaweedFS (a private one started for this
//! test process by `.ci/seaweedfs.sh`, or `FLEET_S3_ENDPOINT`): a large upload
//! resumed by another backend instance, deletion leaving nothing, publish after a
//! crash at every store call, and the same runs against the in-memory store.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test harness: a failure is a panic

mod common;

use std::sync::Arc;

use common::s3::{fresh_prefix, s3_server, CrashingStore};
use server_app::storage::s3::memory::MemoryS3;
use server_app::storage::s3::{S3Contents, S3Options, S3Store, MIN_PART_SIZE};
use server_app::storage::{new_upload_key, Contents};

fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u32).wrapping_mul(2654435761).to_le_bytes()[3] ^ seed)
        .collect()
}

fn options() -> S3Options {
    S3Options {
        part_size: MIN_PART_SIZE,
        threads: 2,
    }
}

fn object_key() -> String {
    format!(
        "objects/{}/{}",
        "5a".repeat(16),
        server_app::storage::random_name()
    )
}

/// Everything stored under a prefix, by listing the bucket itself.
fn everything(store: &Arc<dyn S3Store>, prefix: &str) -> Vec<String> {
    use futures::TryStreamExt;
    let store = store.clone();
    let prefix = object_store::path::Path::from(prefix);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        store
            .list(Some(&prefix))
            .map_ok(|m| m.location.to_string())
            .try_collect()
            .await
    })
    .unwrap()
}

#[test]
fn twenty_mib_in_uneven_pieces_resumed_by_a_new_instance_reads_back_equal() {
    let server = s3_server();
    let prefix = fresh_prefix("resume");
    let total = 20 << 20;
    let body = pattern(total, 5);
    let key = new_upload_key();
    let mut sink = server
        .contents(&prefix, options())
        .create_upload(&key)
        .unwrap();
    let mut done = 0;
    let mut i = 0usize;
    while done < total / 2 + 777 {
        let n = [1, 4093, 65_519, 1_000_003, 3 << 20][i % 5];
        sink.write(&body[done..done + n]).unwrap();
        done += n;
        i += 1;
    }
    sink.flush().unwrap();
    drop(sink);
    // Another server process continues: a new backend, a new client, a new runtime.
    let other = server.contents(&prefix, options());
    assert_eq!(other.uploads().unwrap(), vec![key.clone()]);
    let mut sink = other.reopen_upload(&key).unwrap();
    while done < total {
        let n = [65_536, 999_999, 12_345][i % 3].min(total - done);
        sink.write(&body[done..done + n]).unwrap();
        done += n;
        i += 1;
    }
    sink.finish().unwrap();
    let third = server.contents(&prefix, options());
    let object = object_key();
    third.publish(&key, &object).unwrap();
    let got = third.read_object(&object).unwrap();
    assert_eq!(got.len(), total);
    assert!(got == body, "the stored bytes differ");
    assert!(third.uploads().unwrap().is_empty());
    assert_eq!(third.objects().unwrap(), vec![object.clone()]);
    third.delete_object(&object).unwrap();
    assert!(everything(&server.store(), &prefix).is_empty());
}

#[test]
fn delete_upload_leaves_nothing_in_the_bucket() {
    let server = s3_server();
    let prefix = fresh_prefix("delete");
    let c = server.contents(&prefix, options());
    let key = new_upload_key();
    let mut sink = c.create_upload(&key).unwrap();
    sink.write(&pattern(2 * MIN_PART_SIZE + 4321, 1)).unwrap();
    sink.flush().unwrap();
    sink.write(b"more").unwrap();
    sink.flush().unwrap();
    assert!(!everything(&server.store(), &prefix).is_empty());
    drop(sink);
    c.delete_upload(&key).unwrap();
    assert!(c.uploads().unwrap().is_empty());
    assert!(everything(&server.store(), &prefix).is_empty());
    // The multipart upload was aborted: its id is no longer known to the server.
    c.delete_upload(&key).unwrap();
}

/// Writes an upload of two parts and a short last part with a healthy backend, then
/// publishes it on a store that dies at each mutating call in turn (before or after
/// it), then either retries the publish on a new instance (a restart that goes on)
/// or undoes it as the commit's reconciliation does (delete the upload and the
/// object). Either way: the object is whole or absent, and nothing else is left.
/// `store` gives each backend instance a client of its own: a client's pooled
/// connections belong to the runtime of the instance that opened them.
fn publish_survives_a_crash_at_every_call(
    store: &dyn Fn() -> Arc<dyn S3Store>,
    prefix_of: &dyn Fn() -> String,
) {
    let body = pattern(2 * MIN_PART_SIZE + 1_000, 7);
    let healthy = |prefix: &str| S3Contents::with_store(store(), prefix, options()).unwrap();
    let prepare = |prefix: &str| {
        let key = new_upload_key();
        let mut sink = healthy(prefix).create_upload(&key).unwrap();
        sink.write(&body).unwrap();
        sink.finish().unwrap();
        key
    };
    // How many mutating calls a publish makes.
    let calls = {
        let prefix = prefix_of();
        let key = prepare(&prefix);
        let counting = Arc::new(CrashingStore::new(store(), usize::MAX, false));
        let c = S3Contents::with_store(counting.clone(), &prefix, options()).unwrap();
        c.publish(&key, &object_key()).unwrap();
        counting.calls()
    };
    assert!(calls >= 3, "complete, copy, delete at least: {calls}");
    let mut runs = 0;
    for at in 1..=calls {
        for after in [false, true] {
            for retry in [true, false] {
                let prefix = prefix_of();
                let key = prepare(&prefix);
                let object = object_key();
                let crashing = Arc::new(CrashingStore::new(store(), at, after));
                let c = S3Contents::with_store(crashing.clone(), &prefix, options()).unwrap();
                let first = c.publish(&key, &object);
                assert!(crashing.is_dead(), "call {at} was reached");
                assert!(first.is_err(), "a dead store reports failure");
                drop(c);
                let what = format!("crash at call {at} (after: {after}, retry: {retry})");
                let c = healthy(&prefix);
                if retry {
                    c.publish(&key, &object)
                        .unwrap_or_else(|e| panic!("{what}: {e}"));
                    assert!(c.read_object(&object).unwrap() == body, "{what}: bytes");
                    c.delete_object(&object).unwrap();
                } else {
                    // Roll back, as reconciliation does with an intent not switched.
                    c.delete_object(&object).unwrap();
                    c.delete_upload(&key).unwrap();
                }
                assert!(c.uploads().unwrap().is_empty(), "{what}: uploads left");
                let left = everything(&store(), &prefix);
                assert!(left.is_empty(), "{what}: left {left:?}");
                runs += 1;
            }
        }
    }
    assert_eq!(runs, calls * 4);
}

#[test]
fn publish_survives_a_crash_at_every_call_on_seaweedfs() {
    let server = s3_server();
    publish_survives_a_crash_at_every_call(&|| server.store(), &|| fresh_prefix("crash"));
}

#[test]
fn publish_survives_a_crash_at_every_call_in_memory() {
    let memory = Arc::new(MemoryS3::new());
    let store: Arc<dyn S3Store> = memory.clone();
    publish_survives_a_crash_at_every_call(&|| store.clone(), &|| fresh_prefix("crash"));
    assert_eq!(
        memory.open_multipart_uploads(),
        0,
        "every multipart upload ended"
    );
}

#[test]
fn a_crash_while_writing_leaves_an_upload_that_delete_upload_removes() {
    // Dies at each mutating call of writing three parts and flushing; what is left is
    // listed as an upload, and deleting it ends the multipart upload and leaves nothing.
    let memory = Arc::new(MemoryS3::new());
    let store: Arc<dyn S3Store> = memory.clone();
    let body = pattern(3 * MIN_PART_SIZE + 10, 3);
    let write = |c: &S3Contents, key: &str| -> std::io::Result<()> {
        let mut sink = c.create_upload(key)?;
        for piece in body.chunks(1_000_003) {
            sink.write(piece)?;
        }
        sink.flush()?;
        sink.finish()
    };
    let counting = Arc::new(CrashingStore::new(store.clone(), usize::MAX, false));
    let c = S3Contents::with_store(counting.clone(), "w", options()).unwrap();
    let counted = new_upload_key();
    write(&c, &counted).unwrap();
    let calls = counting.calls();
    c.delete_upload(&counted).unwrap();
    for at in 1..=calls {
        for after in [false, true] {
            let prefix = format!("w{at}{after}");
            let key = new_upload_key();
            let crashing = Arc::new(CrashingStore::new(store.clone(), at, after));
            let c = S3Contents::with_store(crashing, &prefix, options()).unwrap();
            // Fails, except where the crash hits the best-effort deletion of a
            // replaced tail (its result is not waited for).
            let _ = write(&c, &key);
            let c = S3Contents::with_store(store.clone(), &prefix, options()).unwrap();
            for upload in c.uploads().unwrap() {
                c.delete_upload(&upload).unwrap();
            }
            assert!(everything(&store, &prefix).is_empty(), "at {at} {after}");
        }
    }
    // The one kind of leftover a listing cannot find: a multipart upload created
    // right before the crash, not yet in the manifest (no parts; see STORAGE.md): at
    // most the two runs that die right after creating it or before recording it.
    assert!(
        memory.open_multipart_uploads() <= 2,
        "{}",
        memory.open_multipart_uploads()
    );
}
