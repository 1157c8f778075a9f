//! The promises of every [`Contents`] backend, one function each, over
//! `&dyn Contents`: run by [`run`] against the local folder, S3 (a real server and
//! the in-memory store) and through the fault wrappers the tests put around a
//! backend (tests/storage_suite.rs, tests/s3_contents.rs).

pub mod secure;

use std::io::{ErrorKind, Read};

use protocol_core::ClientId;

use crate::storage::{new_object_key, new_upload_key, Contents, UploadSink};

/// One case: its name and the check.
pub type Case = (&'static str, fn(&dyn Contents));

/// Every case, by name.
pub const CASES: &[Case] = &[
    (
        "a_published_upload_reads_back_whole",
        a_published_upload_reads_back_whole,
    ),
    (
        "a_reopened_upload_continues_at_its_end",
        a_reopened_upload_continues_at_its_end,
    ),
    (
        "an_empty_upload_publishes_an_empty_object",
        an_empty_upload_publishes_an_empty_object,
    ),
    (
        "a_large_upload_in_odd_writes_keeps_every_byte",
        a_large_upload_in_odd_writes_keeps_every_byte,
    ),
    (
        "listings_name_uploads_and_objects_apart",
        listings_name_uploads_and_objects_apart,
    ),
    ("deleted_keys_are_gone", deleted_keys_are_gone),
    (
        "deleting_what_is_missing_is_fine",
        deleting_what_is_missing_is_fine,
    ),
    (
        "reading_a_missing_object_fails_as_not_found",
        reading_a_missing_object_fails_as_not_found,
    ),
    (
        "a_fresh_store_has_no_leftovers",
        a_fresh_store_has_no_leftovers,
    ),
    (
        "an_object_reads_from_any_offset",
        an_object_reads_from_any_offset,
    ),
    (
        "a_large_object_streams_in_small_reads",
        a_large_object_streams_in_small_reads,
    ),
    (
        "opening_a_missing_object_fails_as_not_found",
        opening_a_missing_object_fails_as_not_found,
    ),
];

/// A backend under test, with what keeps its storage alive (a folder, a prefix).
pub trait Backend {
    /// The backend.
    fn contents(&self) -> &dyn Contents;
}

/// Runs every case against a fresh backend from `fresh`, each case on its own,
/// and panics naming each case that failed.
pub fn run(fresh: &dyn Fn() -> Box<dyn Backend>) {
    let cases: Vec<Case> = CASES.iter().chain(secure::CONTENTS).copied().collect();
    super::run_cases(&cases, |case| {
        let backend = fresh();
        case(backend.contents());
    });
}

/// `n` bytes that differ from one offset to the next (a shifted or lost block shows).
pub fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u32).wrapping_mul(2654435761).to_le_bytes()[3] ^ seed)
        .collect()
}

fn object() -> String {
    new_object_key(&ClientId([0x5a; 16]))
}

fn write_all(sink: &mut dyn UploadSink, data: &[u8], step: usize) {
    for piece in data.chunks(step.max(1)) {
        sink.write(piece).unwrap();
    }
}

fn sorted(mut keys: Vec<String>) -> Vec<String> {
    keys.sort();
    keys
}

pub fn a_published_upload_reads_back_whole(c: &dyn Contents) {
    let (upload, object) = (new_upload_key(), object());
    let data = pattern(70_000, 1);
    let mut sink = c.create_upload(&upload).unwrap();
    write_all(&mut *sink, &data, 65_536);
    sink.finish().unwrap();
    c.publish(&upload, &object).unwrap();
    assert_eq!(c.read_object(&object).unwrap(), data);
    assert!(
        !c.uploads().unwrap().contains(&upload),
        "a published upload key no longer exists"
    );
}

pub fn a_reopened_upload_continues_at_its_end(c: &dyn Contents) {
    let (upload, object) = (new_upload_key(), object());
    let data = pattern(3 * 65_536 + 123, 2);
    let (first, rest) = data.split_at(65_536 + 7);
    let mut sink = c.create_upload(&upload).unwrap();
    write_all(&mut *sink, first, 4096);
    sink.flush().unwrap();
    drop(sink);
    let mut sink = c.reopen_upload(&upload).unwrap();
    if let Some(n) = sink.bytes_written() {
        assert_eq!(n, first.len() as u64, "a reopened sink starts at the end");
    }
    write_all(&mut *sink, rest, 10_000);
    if let Some(n) = sink.bytes_written() {
        assert_eq!(n, data.len() as u64);
    }
    sink.finish().unwrap();
    c.publish(&upload, &object).unwrap();
    assert_eq!(c.read_object(&object).unwrap(), data);
}

pub fn an_empty_upload_publishes_an_empty_object(c: &dyn Contents) {
    let (upload, object) = (new_upload_key(), object());
    let sink = c.create_upload(&upload).unwrap();
    if let Some(n) = sink.bytes_written() {
        assert_eq!(n, 0);
    }
    sink.finish().unwrap();
    c.publish(&upload, &object).unwrap();
    assert_eq!(c.read_object(&object).unwrap(), Vec::<u8>::new());
    assert!(c.objects().unwrap().contains(&object));
}

/// Past every buffer a backend keeps (the local writer's direct writes after
/// 4 MiB, S3's 5 MiB parts), in writes that never line up with them.
pub fn a_large_upload_in_odd_writes_keeps_every_byte(c: &dyn Contents) {
    let (upload, object) = (new_upload_key(), object());
    let data = pattern(11 * (1 << 20) + 4099, 3);
    let mut sink = c.create_upload(&upload).unwrap();
    write_all(&mut *sink, &data, 65_521);
    if let Some(n) = sink.bytes_written() {
        assert_eq!(n, data.len() as u64);
    }
    sink.finish().unwrap();
    c.publish(&upload, &object).unwrap();
    let back = c.read_object(&object).unwrap();
    assert_eq!(back.len(), data.len());
    assert!(back == data, "the bytes read back differ");
}

pub fn listings_name_uploads_and_objects_apart(c: &dyn Contents) {
    assert!(
        c.uploads().unwrap().is_empty(),
        "a fresh store has no uploads"
    );
    assert!(
        c.objects().unwrap().is_empty(),
        "a fresh store has no objects"
    );
    let (kept, published, object) = (new_upload_key(), new_upload_key(), object());
    c.create_upload(&kept).unwrap().finish().unwrap();
    let mut sink = c.create_upload(&published).unwrap();
    sink.write(b"x").unwrap();
    sink.finish().unwrap();
    c.publish(&published, &object).unwrap();
    assert_eq!(c.uploads().unwrap(), [kept]);
    assert_eq!(c.objects().unwrap(), [object]);
}

pub fn deleted_keys_are_gone(c: &dyn Contents) {
    let (upload, kept, object) = (new_upload_key(), new_upload_key(), object());
    let mut sink = c.create_upload(&upload).unwrap();
    sink.write(b"abc").unwrap();
    sink.finish().unwrap();
    c.publish(&upload, &object).unwrap();
    c.create_upload(&kept).unwrap().finish().unwrap();
    c.delete_object(&object).unwrap();
    c.delete_upload(&kept).unwrap();
    assert!(c.objects().unwrap().is_empty());
    assert!(c.uploads().unwrap().is_empty());
    assert_eq!(
        c.read_object(&object).unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

pub fn deleting_what_is_missing_is_fine(c: &dyn Contents) {
    c.delete_upload(&new_upload_key()).unwrap();
    c.delete_object(&object()).unwrap();
    let (a, b) = (new_upload_key(), new_upload_key());
    c.create_upload(&a).unwrap().finish().unwrap();
    c.create_upload(&b).unwrap().finish().unwrap();
    c.delete_upload(&a).unwrap();
    c.delete_upload(&a).unwrap();
    assert_eq!(sorted(c.uploads().unwrap()), [b]);
}

pub fn reading_a_missing_object_fails_as_not_found(c: &dyn Contents) {
    let e = c.read_object(&object()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
}

pub fn a_fresh_store_has_no_leftovers(c: &dyn Contents) {
    assert!(c.legacy_leftovers().unwrap().is_empty());
}

/// Publishes `data` as a fresh object; its key.
fn published(c: &dyn Contents, data: &[u8]) -> String {
    let (upload, object) = (new_upload_key(), object());
    let mut sink = c.create_upload(&upload).unwrap();
    write_all(&mut *sink, data, 65_536);
    sink.finish().unwrap();
    c.publish(&upload, &object).unwrap();
    object
}

/// Everything `open_object` gives from `offset`, in reads of `step` bytes.
fn read_from(c: &dyn Contents, object: &str, offset: u64, step: usize) -> (u64, Vec<u8>) {
    let mut r = c.open_object(object, offset).unwrap();
    let mut out = Vec::new();
    let mut buf = vec![0u8; step];
    loop {
        let n = r.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    (r.size(), out)
}

pub fn an_object_reads_from_any_offset(c: &dyn Contents) {
    let data = pattern(200_000, 4);
    let object = published(c, &data);
    for offset in [0, 1, 15, 16, 65_535, 65_536, 199_999, 200_000] {
        let (size, back) = read_from(c, &object, offset as u64, 8192);
        assert_eq!(size, data.len() as u64, "the size, read from {offset}");
        assert!(back == data[offset..], "the bytes from offset {offset}");
    }
    let past = c.open_object(&object, 200_001).err().map(|e| e.kind());
    assert_eq!(
        past,
        Some(ErrorKind::InvalidInput),
        "an offset past the end"
    );
}

/// A download is read a little at a time, past the backends' buffers and parts.
pub fn a_large_object_streams_in_small_reads(c: &dyn Contents) {
    let data = pattern(11 * (1 << 20) + 77, 5);
    let object = published(c, &data);
    let (size, back) = read_from(c, &object, 0, 4093);
    assert_eq!(size, data.len() as u64);
    assert_eq!(back.len(), data.len());
    assert!(back == data, "the bytes streamed back differ");
}

pub fn opening_a_missing_object_fails_as_not_found(c: &dyn Contents) {
    let e = c.open_object(&object(), 0).err().map(|e| e.kind());
    assert_eq!(e, Some(ErrorKind::NotFound));
}
