//! The promise of resumed uploads every [`Contents`] backend keeps ([`CONTENTS`], run
//! by [`run`](super::run)): an upload continued at an offset holds exactly its first
//! `offset` bytes and what follows.

use std::io;

use protocol_core::ClientId;

use super::pattern;
use crate::storage::{new_object_key, new_upload_key, Contents, UploadSink};

/// The cases of resumed uploads every [`Contents`] backend runs.
pub const CONTENTS: &[super::Case] = &[
    (
        "a_resumed_upload_continues_at_its_offset",
        a_resumed_upload_continues_at_its_offset,
    ),
    (
        "resuming_past_what_an_upload_holds_fails",
        resuming_past_what_an_upload_holds_fails,
    ),
    (
        "a_longer_upload_is_cut_back_or_refused",
        a_longer_upload_is_cut_back_or_refused,
    ),
    (
        "resuming_a_missing_upload_fails",
        resuming_a_missing_upload_fails,
    ),
];

fn write_all(sink: &mut dyn UploadSink, data: &[u8], step: usize) {
    for piece in data.chunks(step.max(1)) {
        sink.write(piece).unwrap();
    }
}

fn object() -> String {
    new_object_key(&ClientId([0x5b; 16]))
}

/// An upload holding `data`, flushed (as a checkpoint leaves it), its sink dropped.
fn flushed_upload(c: &dyn Contents, data: &[u8]) -> String {
    let upload = new_upload_key();
    let mut sink = c.create_upload(&upload).unwrap();
    write_all(&mut *sink, data, 4096);
    sink.flush().unwrap();
    drop(sink);
    upload
}

pub fn a_resumed_upload_continues_at_its_offset(c: &dyn Contents) {
    let data = pattern(2 * 65_536 + 321, 3);
    let (first, rest) = data.split_at(65_536 + 11);
    let upload = flushed_upload(c, first);
    let mut sink = c.resume_upload(&upload, first.len() as u64).unwrap();
    if let Some(n) = sink.bytes_written() {
        assert_eq!(n, first.len() as u64, "a resumed sink starts at the offset");
    }
    write_all(&mut *sink, rest, 9_999);
    sink.finish().unwrap();
    let object = object();
    c.publish(&upload, &object).unwrap();
    assert_eq!(c.read_object(&object).unwrap(), data);
    // An empty upload resumes at 0.
    let empty = flushed_upload(c, &[]);
    let mut sink = c.resume_upload(&empty, 0).unwrap();
    sink.write(b"abc").unwrap();
    sink.finish().unwrap();
    let object = self::object();
    c.publish(&empty, &object).unwrap();
    assert_eq!(c.read_object(&object).unwrap(), b"abc");
}

pub fn resuming_past_what_an_upload_holds_fails(c: &dyn Contents) {
    let data = pattern(5000, 4);
    let upload = flushed_upload(c, &data);
    let e = c
        .resume_upload(&upload, 5001)
        .err()
        .expect("an upload that holds too little");
    assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
    // Nothing changed: it still resumes at its true length.
    let mut sink = c.resume_upload(&upload, 5000).unwrap();
    sink.write(b"!").unwrap();
    sink.finish().unwrap();
    let object = object();
    c.publish(&upload, &object).unwrap();
    let mut want = data;
    want.push(b'!');
    assert_eq!(c.read_object(&object).unwrap(), want);
}

pub fn a_longer_upload_is_cut_back_or_refused(c: &dyn Contents) {
    let data = pattern(70_000, 5);
    let upload = flushed_upload(c, &data);
    match c.resume_upload(&upload, 30_000) {
        // Cut back: exactly the first 30,000 bytes, then what follows.
        Ok(mut sink) => {
            if let Some(n) = sink.bytes_written() {
                assert_eq!(n, 30_000);
            }
            let more = pattern(1234, 6);
            write_all(&mut *sink, &more, 100);
            sink.finish().unwrap();
            let object = object();
            c.publish(&upload, &object).unwrap();
            let mut want = data[..30_000].to_vec();
            want.extend_from_slice(&more);
            assert_eq!(c.read_object(&object).unwrap(), want);
        }
        // A store that cannot cut flushed bytes back refuses.
        Err(e) => assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}"),
    }
}

pub fn resuming_a_missing_upload_fails(c: &dyn Contents) {
    assert!(c.resume_upload(&new_upload_key(), 0).is_err());
    assert!(c.uploads().unwrap().is_empty(), "and creates nothing");
}
