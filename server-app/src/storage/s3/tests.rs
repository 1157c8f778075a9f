//! The S3 backend over the in-memory store: the sink's parts and tails, resuming in
//! a new backend instance, publishing and deleting. (The same behaviours against a
//! real SeaweedFS, and crashes at every store call, are in tests/s3_contents.rs.)

use std::sync::Arc;

use super::memory::MemoryS3;
use super::*;

const PART: usize = MIN_PART_SIZE;

fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u32).wrapping_mul(2654435761).to_le_bytes()[3] ^ seed)
        .collect()
}

fn backend(store: &Arc<MemoryS3>) -> S3Contents {
    let options = S3Options {
        part_size: PART,
        threads: 1,
    };
    S3Contents::with_store(store.clone(), "fleet/a", options).unwrap()
}

fn upload_key() -> String {
    crate::storage::new_upload_key()
}

#[test]
fn a_file_smaller_than_a_part_is_stored_without_a_multipart_upload() {
    let store = Arc::new(MemoryS3::new());
    let c = backend(&store);
    for body in [Vec::new(), b"x".to_vec(), pattern(PART - 1, 3)] {
        let key = upload_key();
        let mut s = c.create_upload(&key).unwrap();
        s.write(&body).unwrap();
        s.finish().unwrap();
        assert_eq!(store.open_multipart_uploads(), 0);
        let object = format!("objects/{}/o{}", "ab".repeat(16), body.len());
        c.publish(&key, &object).unwrap();
        assert_eq!(c.read_object(&object).unwrap(), body);
        assert!(c.uploads().unwrap().is_empty());
    }
}

#[test]
fn uneven_writes_flushes_and_reopens_in_new_instances_store_the_exact_bytes() {
    let store = Arc::new(MemoryS3::new());
    let total = 3 * PART + 12_345;
    let body = pattern(total, 9);
    let key = upload_key();
    let mut sink = backend(&store).create_upload(&key).unwrap();
    let mut done = 0;
    let mut round = 0usize;
    // Pieces of odd sizes; every few pieces a flush, a drop and a reopen from a new
    // backend instance (another server process).
    while done < total {
        let n = (65_519 * (round % 7 + 1) + round * 1_000_003 % PART).min(total - done);
        sink.write(&body[done..done + n]).unwrap();
        done += n;
        round += 1;
        if round.is_multiple_of(3) {
            sink.flush().unwrap();
            drop(sink);
            sink = backend(&store).reopen_upload(&key).unwrap();
        }
    }
    sink.finish().unwrap();
    let c = backend(&store);
    assert!(
        c.reopen_upload(&key).is_err(),
        "a finished upload is closed"
    );
    let object = format!("objects/{}/x", "cd".repeat(16));
    c.publish(&key, &object).unwrap();
    let got = c.read_object(&object).unwrap();
    assert_eq!(got.len(), total);
    assert!(got == body, "contents differ");
    assert!(c.uploads().unwrap().is_empty());
    assert_eq!(c.objects().unwrap(), vec![object]);
    assert_eq!(store.open_multipart_uploads(), 0);
}

#[test]
fn an_unflushed_tail_is_lost_but_a_flushed_one_is_not() {
    let store = Arc::new(MemoryS3::new());
    let key = upload_key();
    let mut sink = backend(&store).create_upload(&key).unwrap();
    sink.write(b"kept").unwrap();
    sink.flush().unwrap();
    sink.write(b" lost").unwrap();
    drop(sink);
    let mut sink = backend(&store).reopen_upload(&key).unwrap();
    sink.write(b" and more").unwrap();
    sink.finish().unwrap();
    let c = backend(&store);
    let object = format!("objects/{}/y", "ef".repeat(16));
    c.publish(&key, &object).unwrap();
    assert_eq!(c.read_object(&object).unwrap(), b"kept and more");
}

#[test]
fn delete_upload_aborts_the_multipart_upload_and_leaves_nothing() {
    let store = Arc::new(MemoryS3::new());
    let c = backend(&store);
    let key = upload_key();
    let mut sink = c.create_upload(&key).unwrap();
    sink.write(&pattern(2 * PART + 10, 1)).unwrap();
    sink.flush().unwrap();
    assert_eq!(c.uploads().unwrap(), vec![key.clone()]);
    assert_eq!(store.open_multipart_uploads(), 1);
    c.delete_upload(&key).unwrap();
    assert_eq!(store.open_multipart_uploads(), 0);
    assert!(c.uploads().unwrap().is_empty());
    let all = c.shared.list(Path::from("fleet")).unwrap();
    assert!(all.is_empty(), "left: {all:?}");
    // Deleting again, or an upload that never was, is fine.
    c.delete_upload(&key).unwrap();
    c.delete_upload(&upload_key()).unwrap();
}

#[test]
fn publishing_twice_is_harmless_and_unfinished_uploads_are_not_published() {
    let store = Arc::new(MemoryS3::new());
    let c = backend(&store);
    let key = upload_key();
    let mut sink = c.create_upload(&key).unwrap();
    sink.write(&pattern(PART + 1, 2)).unwrap();
    sink.flush().unwrap();
    let object = format!("objects/{}/z", "01".repeat(16));
    assert!(c.publish(&key, &object).is_err(), "not finished");
    assert!(c.objects().unwrap().is_empty());
    drop(sink);
    let sink = c.reopen_upload(&key).unwrap();
    sink.finish().unwrap();
    c.publish(&key, &object).unwrap();
    c.publish(&key, &object).unwrap();
    assert_eq!(c.read_object(&object).unwrap(), pattern(PART + 1, 2));
    let missing = c.publish(&upload_key(), &format!("objects/{}/w", "01".repeat(16)));
    assert_eq!(missing.unwrap_err().kind(), io::ErrorKind::NotFound);
}

#[test]
fn keys_outside_our_folders_are_refused() {
    let store = Arc::new(MemoryS3::new());
    let c = backend(&store);
    for bad in [
        "",
        "uploads",
        "../x",
        "uploads/../x",
        "uploads//x",
        "other/x",
        "/uploads/x",
    ] {
        assert!(c.read_object(bad).is_err(), "{bad}");
        assert!(c.delete_object(bad).is_err(), "{bad}");
    }
    assert!(c.create_upload("uploads/a/b").is_err());
    assert!(c.create_upload("objects/a").is_err());
}

#[test]
fn addresses_and_part_sizes_are_checked() {
    assert_eq!(
        parse_url("s3://bucket/a/b/").unwrap(),
        ("bucket".into(), "a/b".into())
    );
    assert_eq!(
        parse_url("s3://bucket").unwrap(),
        ("bucket".into(), "".into())
    );
    for bad in ["bucket/x", "s3:///x", "file:///tmp"] {
        assert!(parse_url(bad).is_err(), "{bad}");
    }
    let small = S3Options {
        part_size: MIN_PART_SIZE - 1,
        threads: 1,
    };
    assert!(S3Contents::with_store(Arc::new(MemoryS3::new()), "", small).is_err());
}

#[test]
fn objects_and_uploads_are_listed_without_the_prefix() {
    let store = Arc::new(MemoryS3::new());
    let c = backend(&store);
    let other = S3Contents::with_store(store.clone(), "fleet/b", S3Options::default()).unwrap();
    let key = upload_key();
    let sink = c.create_upload(&key).unwrap();
    sink.finish().unwrap();
    let object = format!("objects/{}/e", "02".repeat(16));
    c.publish(&key, &object).unwrap();
    assert_eq!(c.objects().unwrap(), vec![object.clone()]);
    assert_eq!(c.read_object(&object).unwrap(), b"");
    assert!(
        other.objects().unwrap().is_empty(),
        "another prefix is apart"
    );
    c.delete_object(&object).unwrap();
    c.delete_object(&object).unwrap();
    assert!(c.objects().unwrap().is_empty());
}
