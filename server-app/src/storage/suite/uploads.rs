//! The rules every [`UploadTable`] keeps, as one suite run against each implementation
//! (the in-memory table always; PostgreSQL when a test database is given).

use std::time::{Duration, Instant};

use bytes::BytesMut;
use protocol_core::crypto::{AesKey, CbcEncryptor};
use protocol_core::rand_core::OsRng;
use protocol_core::wire::{self, FilePacket, Request, RequestEncoding};
use protocol_core::{
    ClientId, ClientRecord, FieldString, ServerConfig, ServerConnection, ServerEvent,
    SuspendedUpload,
};

use crate::storage::uploads::{ConnId, Handover, UploadId, UploadTable, VerdictFrom};

/// The AES key of the suite's uploads.
pub fn key() -> AesKey {
    AesKey::from_slice(&[5u8; 32]).expect("a 256-bit key")
}

/// A real suspended upload of `client`: packet 1 of 3 of `name`, sent as the first
/// request of a connection (a connection per request), so the core suspends it at once.
pub fn suspended(client: ClientId, name: &str) -> SuspendedUpload {
    let key = key();
    let data = vec![7u8; 100];
    let mut enc = CbcEncryptor::new(&key);
    let mut ct = BytesMut::new();
    enc.update(&data, &mut ct);
    enc.finish(&mut ct);
    let mut frame = BytesMut::new();
    let packet = Request::SendFile(FilePacket {
        content_size: ct.len() as u32,
        original_size: data.len() as u32,
        packet_number: 1,
        total_packets: 3,
        file_name: FieldString::new(name).expect("a valid name"),
        content: ct.split_to(48).freeze(),
    });
    wire::encode_request(&mut frame, client, &packet, RequestEncoding::default());
    #[allow(clippy::disallowed_methods)] // the test is the caller that owns the clock
    let now = Instant::now();
    let mut s = ServerConnection::new(ServerConfig::default(), OsRng, now);
    let mut found = None;
    // As a driver does: the 828 is looked up at its header, and its payload stays in
    // the buffer until the answer; then it is handed in again.
    loop {
        let before = frame.len();
        s.handle_input(&mut frame, now).expect("a valid frame");
        let mut answered = 0;
        while let Some(ev) = s.poll_event() {
            answered += 1;
            match ev {
                ServerEvent::LookupClient { ticket, .. } => {
                    let record = ClientRecord {
                        aes_key: Some(key.duplicate()),
                        key_age: Duration::ZERO,
                        suspended: None,
                    };
                    s.client_lookup(ticket, Some(record)).expect("answered");
                }
                ServerEvent::UploadData { data, .. } => {
                    s.data_written(data.len()).expect("written");
                }
                ServerEvent::UploadSuspended { upload, .. } => found = Some(upload),
                _ => {}
            }
        }
        if frame.is_empty() || (frame.len() == before && answered == 0) {
            break;
        }
    }
    found.expect("a connection per request suspends after each packet")
}

const C: ClientId = ClientId([1; 16]);
const D: ClientId = ClientId([2; 16]);

/// Runs every rule against `t`, a table with nothing in it. Connection numbers start at
/// `base` (a shared table needs them distinct between runs).
pub fn run(t: &dyn UploadTable, base: ConnId) {
    verdicts_take_the_upload_of_their_own_connection(t, base);
    verdicts_without_an_upload_of_their_own_take_nothing_held_elsewhere(t, base + 10);
    a_connection_per_request_gives_its_verdict_on_the_next_connection(t, base + 60);
    a_suspended_upload_is_taken_over_by_one_connection_only(t, base + 20);
    a_new_first_packet_supersedes_a_suspended_upload(t, base + 30);
    closing_kills_a_receiving_upload_and_keeps_a_finished_one(t, base + 40);
    abandoned_uploads_expire(t, base + 50);
    past_its_quota_a_client_loses_its_oldest_upload_without_a_connection(t, base + 70);
}

/// A verdict from `conn`, holding `own`; `fresh` when it is its connection's first
/// request.
fn from(conn: ConnId, own: Option<UploadId>, fresh: bool) -> VerdictFrom {
    VerdictFrom {
        conn,
        own,
        fresh,
        window: Duration::from_secs(600),
    }
}

fn verdicts_take_the_upload_of_their_own_connection(t: &dyn UploadTable, b: ConnId) {
    let one = t.start(b + 1, C, "f.txt", "uploads/one").unwrap();
    let two = t.start(b + 2, C, "f.txt", "uploads/two").unwrap();
    assert!(t.finish(two, 20, 2, Handover::OwnConnection).unwrap());
    assert!(t.finish(one, 10, 1, Handover::OwnConnection).unwrap());
    let v = t
        .take_for_verdict(from(b + 1, Some(one), false), &C)
        .unwrap()
        .unwrap();
    assert_eq!((v.key.as_str(), v.size, v.checksum), ("uploads/one", 10, 1));
    // Another connection's upload id is not this connection's own.
    assert!(t
        .take_for_verdict(from(b + 1, Some(two), false), &C)
        .unwrap()
        .is_none());
    let v = t
        .take_for_verdict(from(b + 2, Some(two), false), &C)
        .unwrap()
        .unwrap();
    assert_eq!(v.key, "uploads/two");
    assert_eq!(v.file_name, "f.txt");
    assert!(t.is_empty());
}

fn verdicts_without_an_upload_of_their_own_take_nothing_held_elsewhere(
    t: &dyn UploadTable,
    b: ConnId,
) {
    let one = t.start(b + 1, C, "f.txt", "uploads/one").unwrap();
    t.finish(one, 10, 1, Handover::OwnConnection).unwrap();
    // A stranger's fresh connection with the client's id: never another's upload,
    // while its connection is open...
    assert!(t
        .take_for_verdict(from(b + 2, None, true), &C)
        .unwrap()
        .is_none());
    // ...nor once it has gone (a verdict hijack after the client's connection died).
    t.release(b + 1).unwrap();
    assert!(t
        .take_for_verdict(from(b + 2, None, true), &C)
        .unwrap()
        .is_none());
    assert_eq!(
        t.remove_for_retry(from(b + 2, None, true), &C).unwrap(),
        None
    );
    assert_eq!(
        t.len(),
        1,
        "the upload waits for its own connection or expiry"
    );
    assert_eq!(t.remove(one).unwrap(), Some("uploads/one".to_string()));
    assert!(t.is_empty());
}

fn a_connection_per_request_gives_its_verdict_on_the_next_connection(
    t: &dyn UploadTable,
    b: ConnId,
) {
    // The last packet was the first request of its connection (variant 7).
    let one = t.start(b + 1, C, "f.txt", "uploads/one").unwrap();
    t.finish(one, 10, 1, Handover::AnyConnection).unwrap();
    // Not to a connection that sent other requests first, nor to another client.
    assert!(t
        .take_for_verdict(from(b + 2, None, false), &C)
        .unwrap()
        .is_none());
    assert!(t
        .take_for_verdict(from(b + 2, None, true), &D)
        .unwrap()
        .is_none());
    // A fresh connection takes it, although the first has not closed yet.
    let v = t
        .take_for_verdict(from(b + 3, None, true), &C)
        .unwrap()
        .unwrap();
    assert_eq!(v.key, "uploads/one");
    // Only the client's latest 1603 is handed over.
    let old = t.start(b + 4, C, "g.txt", "uploads/old").unwrap();
    t.finish(old, 5, 5, Handover::AnyConnection).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    let new = t.start(b + 5, C, "h.txt", "uploads/new").unwrap();
    t.finish(new, 6, 6, Handover::OwnConnection).unwrap();
    assert!(t
        .take_for_verdict(from(b + 6, None, true), &C)
        .unwrap()
        .is_none());
    assert_eq!(
        t.remove_for_retry(from(b + 5, Some(new), false), &C)
            .unwrap(),
        Some("uploads/new".to_string())
    );
    // Past the window, nothing.
    let late = VerdictFrom {
        window: Duration::ZERO,
        ..from(b + 7, None, true)
    };
    assert!(t.take_for_verdict(late, &C).unwrap().is_none());
    assert_eq!(
        t.remove_for_retry(from(b + 7, None, true), &C).unwrap(),
        Some("uploads/old".to_string())
    );
    assert!(t.is_empty());
}

fn a_suspended_upload_is_taken_over_by_one_connection_only(t: &dyn UploadTable, b: ConnId) {
    let id = t.start(b + 1, C, "f.txt", "uploads/s").unwrap();
    let up = suspended(C, "f.txt");
    let so_far = up.bytes_so_far();
    t.suspend(id, up).unwrap();
    t.release(b + 1).unwrap();
    // Another client's connection sees nothing.
    assert!(t.resume(b + 2, &D, &key()).unwrap().is_none());
    let r = t.resume(b + 3, &C, &key()).unwrap().expect("taken over");
    assert_eq!((r.id, r.key.as_str()), (id, "uploads/s"));
    assert_eq!(r.upload.bytes_so_far(), so_far);
    assert_eq!(r.upload.client_id(), C);
    // Exactly one writer: a second connection gets nothing while the first holds it.
    assert!(t.resume(b + 4, &C, &key()).unwrap().is_none());
    t.suspend(id, r.upload).unwrap();
    // While another connection of the client sends an upload, none is taken over.
    let other = t.start(b + 5, C, "g.txt", "uploads/g").unwrap();
    assert!(t.resume(b + 6, &C, &key()).unwrap().is_none());
    assert_eq!(t.remove(other).unwrap(), Some("uploads/g".to_string()));
    let mut keys = t.keys().unwrap();
    keys.sort();
    assert_eq!(keys, vec!["uploads/s".to_string()]);
    assert!(t.resume(b + 6, &C, &key()).unwrap().is_some());
    assert_eq!(t.remove(id).unwrap(), Some("uploads/s".to_string()));
    assert!(t.is_empty());
}

fn a_new_first_packet_supersedes_a_suspended_upload(t: &dyn UploadTable, b: ConnId) {
    let id = t.start(b + 1, C, "f.txt", "uploads/old").unwrap();
    t.suspend(id, suspended(C, "f.txt")).unwrap();
    let other = t.start(b + 2, C, "g.txt", "uploads/g").unwrap();
    t.suspend(other, suspended(C, "g.txt")).unwrap();
    // A first packet that was not its connection's first request is another kind of
    // client under the same id (a stranger's, perhaps): the suspended one stays.
    assert!(t.supersede(&C, "f.txt", false).unwrap().is_empty());
    assert_eq!(
        t.supersede(&C, "f.txt", true).unwrap(),
        vec!["uploads/old".to_string()]
    );
    assert!(t.supersede(&C, "f.txt", true).unwrap().is_empty());
    assert_eq!(t.remove(other).unwrap(), Some("uploads/g".to_string()));
    assert!(t.is_empty());
}

fn closing_kills_a_receiving_upload_and_keeps_a_finished_one(t: &dyn UploadTable, b: ConnId) {
    let dead = t.start(b + 1, C, "f.txt", "uploads/dead").unwrap();
    let done = t.start(b + 1, C, "g.txt", "uploads/done").unwrap();
    t.finish(done, 3, 3, Handover::OwnConnection).unwrap();
    assert_eq!(t.release(b + 1).unwrap(), vec!["uploads/dead".to_string()]);
    assert_eq!(t.remove(dead).unwrap(), None);
    assert_eq!(t.len(), 1);
    assert_eq!(t.remove(done).unwrap(), Some("uploads/done".to_string()));
    // A stop removes the uploads this server holds.
    t.start(b + 2, C, "h.txt", "uploads/held").unwrap();
    let drained = t.drain().unwrap();
    let keys: Vec<&str> = drained.iter().map(|d| d.key.as_str()).collect();
    assert_eq!(keys, vec!["uploads/held"]);
    assert_eq!((drained[0].client, drained[0].bytes), (C, None));
    assert!(t.is_empty());
}

fn abandoned_uploads_expire(t: &dyn UploadTable, b: ConnId) {
    let held = t.start(b + 1, C, "f.txt", "uploads/held").unwrap();
    let left = t.start(b + 2, C, "g.txt", "uploads/left").unwrap();
    t.finish(left, 1, 1, Handover::OwnConnection).unwrap();
    t.release(b + 2).unwrap();
    #[allow(clippy::disallowed_methods)]
    let now = Instant::now();
    // Not yet.
    assert!(t.expire(Duration::from_secs(3600), now).unwrap().is_empty());
    let gone = t
        .expire(Duration::ZERO, now + Duration::from_secs(1))
        .unwrap();
    assert_eq!(gone.len(), 1);
    assert_eq!(gone[0].key, "uploads/left");
    assert_eq!(gone[0].client, C);
    // The one a connection holds stays.
    assert_eq!(t.remove(held).unwrap(), Some("uploads/held".to_string()));
    assert!(t.is_empty());
}

fn past_its_quota_a_client_loses_its_oldest_upload_without_a_connection(
    t: &dyn UploadTable,
    b: ConnId,
) {
    // C, oldest first: one finished and left (100 bytes), one suspended (its state's
    // bytes, s), one finished and left (50), one receiving; D: one finished and left.
    let first = t.start(b + 1, C, "a", "uploads/qa").unwrap();
    t.finish(first, 100, 1, Handover::OwnConnection).unwrap();
    t.release(b + 1).unwrap();
    let other = t.start(b + 2, D, "d", "uploads/qd").unwrap();
    t.finish(other, 100, 1, Handover::OwnConnection).unwrap();
    t.release(b + 2).unwrap();
    let upload = suspended(C, "b");
    let s = upload.bytes_so_far();
    let second = t.start(b + 3, C, "b", "uploads/qb").unwrap();
    t.suspend(second, upload).unwrap();
    let third = t.start(b + 4, C, "e", "uploads/qe").unwrap();
    t.finish(third, 50, 1, Handover::OwnConnection).unwrap();
    t.release(b + 4).unwrap();
    let receiving = t.start(b + 5, C, "c", "uploads/qc").unwrap();

    assert!(
        t.enforce_quota(&C, 150 + s).unwrap().is_empty(),
        "at the quota"
    );
    let gone = t.enforce_quota(&C, 150 + s - 1).unwrap();
    let keys: Vec<&str> = gone.iter().map(|g| g.key.as_str()).collect();
    assert_eq!(keys, vec!["uploads/qa"], "the oldest left goes, only it");
    assert_eq!(gone[0].client, C);
    // Below any quota, every one without a connection goes, oldest first; never the
    // one receiving, nor another client's.
    let gone = t.enforce_quota(&C, 0).unwrap();
    let keys: Vec<&str> = gone.iter().map(|g| g.key.as_str()).collect();
    assert_eq!(keys, vec!["uploads/qb", "uploads/qe"]);
    for id in [first, second, third] {
        assert_eq!(t.remove(id).unwrap(), None);
    }
    assert_eq!(t.remove(other).unwrap(), Some("uploads/qd".to_string()));
    assert_eq!(t.remove(receiving).unwrap(), Some("uploads/qc".to_string()));
    assert!(t.is_empty());
}
