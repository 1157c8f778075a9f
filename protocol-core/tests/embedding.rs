//! The mistakes an embedder can make, and that none of them stalls a connection:
//! unanswered questions, forgotten or wrong `data_written`, stopping on `is_closed`,
//! a silent server, a flood of `Seen`, unbounded file data, input after the close.
#![allow(clippy::unwrap_used, clippy::expect_used)]
// test harness: a failure is a panic

// Tests are the caller: they own the clock that the core is handed.
#![allow(clippy::disallowed_methods)]

mod common;

use std::time::{Duration, Instant};

use bytes::BytesMut;
use common::mem::MemStore;
use common::pattern;
use protocol_core::crypto::{AesKey, CbcEncryptor, PrivateKey};
use protocol_core::wire::{self, RequestEncoding};
use protocol_core::*;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

type Conn = ServerConnection<ChaCha20Rng>;

fn key() -> PrivateKey {
    PrivateKey::from_base64(&common::rsa_field("private_pkcs8_b64")).unwrap()
}

fn fresh(limits: Limits, now: Instant) -> Conn {
    let config = ServerConfig {
        limits,
        ..ServerConfig::default()
    };
    ServerConnection::new(config, ChaCha20Rng::seed_from_u64(1), now)
}

fn frame(id: ClientId, req: &Request) -> BytesMut {
    let mut b = BytesMut::new();
    wire::encode_request(&mut b, id, req, RequestEncoding::default());
    b
}

fn codes(s: &mut Conn) -> Vec<u16> {
    let mut out = BytesMut::new();
    s.poll_transmit(&mut out);
    let mut codes = Vec::new();
    while let Ok(Some(r)) = wire::decode_response(&mut out) {
        codes.push(r.code() as u16);
    }
    codes
}

/// A connection whose client is registered and holds an AES key.
fn registered(limits: Limits, now: Instant) -> (Conn, MemStore, ClientId, AesKey) {
    let mut s = fresh(limits, now);
    let mut store = MemStore::default();
    let name = FieldString::new("bob").unwrap();
    let mut b = frame(ClientId::ZERO, &Request::Register { name: name.clone() });
    s.handle_input(&mut b, now).unwrap();
    store.serve(&mut s);
    let id = *store.clients.keys().next().unwrap();
    let public_key = key().public_key().to_field().unwrap().to_vec().into();
    let mut b = frame(id, &Request::SendPublicKey { name, public_key });
    s.handle_input(&mut b, now).unwrap();
    store.serve(&mut s);
    let aes = store.clients[&id].aes_key.as_ref().unwrap().duplicate();
    codes(&mut s);
    (s, store, id, aes)
}

/// The frames of an upload of `data` in packets of `unit` ciphertext bytes.
fn upload_frames(id: ClientId, aes: &AesKey, data: &[u8], unit: usize) -> BytesMut {
    let mut enc = CbcEncryptor::new(aes);
    let mut ct = BytesMut::new();
    enc.update(data, &mut ct);
    enc.finish(&mut ct);
    let total = ct.len().div_ceil(unit) as u16;
    let mut frames = BytesMut::new();
    for (i, chunk) in ct.chunks(unit).enumerate() {
        let packet = Request::SendFile(FilePacket {
            content_size: ct.len() as u32,
            original_size: data.len() as u32,
            packet_number: i as u16 + 1,
            total_packets: total,
            file_name: FieldString::new("f.bin").unwrap(),
            content: chunk.to_vec().into(),
        });
        frames.extend_from_slice(&frame(id, &packet));
    }
    frames
}

// ---- 1. an unanswered question has a deadline ----

#[test]
fn an_unanswered_question_closes_the_connection_at_the_answer_deadline() {
    let now = Instant::now();
    let limits = Limits::default();
    let mut s = fresh(limits.clone(), now);
    let mut b = frame(
        ClientId::ZERO,
        &Request::Register {
            name: FieldString::new("alice").unwrap(),
        },
    );
    s.handle_input(&mut b, now).unwrap();
    let Some(ServerEvent::Register { ticket, .. }) = s.poll_event() else {
        panic!("no question")
    };
    assert_eq!(s.pending_question(), Some(QuestionKind::Register));
    assert!(!s.wants_read());
    // Not answered: the timer still runs.
    let deadline = s
        .poll_timeout()
        .expect("a deadline while a question is pending");
    assert_eq!(deadline, now + limits.answer_timeout);
    s.handle_timeout(deadline - Duration::from_millis(1));
    assert!(!s.is_closed());
    s.handle_timeout(deadline);
    assert!(s.is_closed());
    assert!(matches!(s.error(), Some(PeerError::Timeout(_))));
    assert_eq!(codes(&mut s), vec![1607]);
    assert_eq!(s.pending_question(), None);
    assert!(s.is_finished());
    // A late answer is refused, not applied.
    let id = ticket.get();
    assert_eq!(
        s.accept_registration(ticket),
        Err(UsageError::UnknownTicket(id))
    );
}

#[test]
fn an_unanswered_upload_finished_is_aborted_at_the_deadline() {
    let now = Instant::now();
    let (mut s, _, id, aes) = registered(Limits::default(), now);
    let mut b = upload_frames(id, &aes, &pattern(100, 3), 4096);
    s.handle_input(&mut b, now).unwrap();
    let mut written = 0;
    while let Some(ev) = s.poll_event() {
        if let ServerEvent::UploadData { data, .. } = ev {
            written += data.len();
        }
    }
    s.data_written(written).unwrap();
    assert_eq!(s.pending_question(), Some(QuestionKind::UploadFinished));
    let deadline = s.poll_timeout().unwrap();
    s.handle_timeout(deadline);
    let events: Vec<_> = std::iter::from_fn(|| s.poll_event()).collect();
    assert!(
        matches!(events[..], [ServerEvent::UploadAborted { .. }]),
        "{events:?}"
    );
    assert!(s.is_finished() || !codes(&mut s).is_empty());
}

// ---- 2. data_written ----

#[test]
fn data_written_refuses_more_than_was_handed_out() {
    let now = Instant::now();
    let (mut s, _, id, aes) = registered(Limits::default(), now);
    assert_eq!(
        s.data_written(usize::MAX),
        Err(UsageError::WrittenTooMuch {
            reported: usize::MAX,
            outstanding: 0
        })
    );
    let mut b = upload_frames(id, &aes, &pattern(1000, 3), 512);
    s.handle_input(&mut b, now).unwrap();
    let mut handed = 0;
    while let Some(ev) = s.poll_event() {
        if let ServerEvent::UploadData { data, .. } = ev {
            handed += data.len();
        }
    }
    assert!(handed > 0);
    assert!(s.data_written(handed + 1).is_err());
    s.data_written(handed).unwrap();
    assert!(s.data_written(1).is_err());
}

#[test]
fn a_forgotten_data_written_closes_at_the_answer_deadline_not_the_idle_timeout() {
    let now = Instant::now();
    let limits = Limits {
        max_unwritten: 1024,
        ..Limits::default()
    };
    let (mut s, _, id, aes) = registered(limits.clone(), now);
    let mut b = upload_frames(id, &aes, &pattern(8000, 3), 2048);
    s.handle_input(&mut b, now).unwrap();
    while s.poll_event().is_some() {} // the data is never reported written
    assert!(!s.wants_read());
    assert!(!b.is_empty(), "input waits in the buffer");
    assert_eq!(s.poll_timeout(), Some(now + limits.answer_timeout));
    s.handle_timeout(now + limits.answer_timeout);
    assert!(s.is_closed());
    assert!(matches!(s.error(), Some(PeerError::Timeout(why)) if why.contains("data_written")));
    assert_eq!(codes(&mut s), vec![1607]);
}

#[test]
fn after_data_written_handle_input_with_the_same_buffer_goes_on() {
    let now = Instant::now();
    let limits = Limits {
        max_unwritten: 1024,
        ..Limits::default()
    };
    let (mut s, _, id, aes) = registered(limits, now);
    let data = pattern(8000, 3);
    let mut b = upload_frames(id, &aes, &data, 2048);
    let mut got = Vec::new();
    let mut finished = false;
    // The documented order: handle_input, events (report data_written), and after
    // any report, handle_input again with the same buffer. No new bytes arrive.
    for _ in 0..100 {
        s.handle_input(&mut b, now).unwrap();
        let mut reported = false;
        while let Some(ev) = s.poll_event() {
            match ev {
                ServerEvent::UploadData { data, .. } => {
                    got.extend_from_slice(&data);
                    s.data_written(data.len()).unwrap();
                    reported = true;
                }
                ServerEvent::UploadFinished { ticket, .. } => {
                    s.succeed(ticket).unwrap();
                    finished = true;
                }
                _ => {}
            }
        }
        if !reported {
            break;
        }
    }
    assert!(finished, "the buffered packets were all processed");
    assert_eq!(got, data);
    assert!(b.is_empty());
}

// ---- 3. closed is not finished while events wait ----

#[test]
fn eof_mid_upload_is_finished_only_once_the_suspended_upload_is_polled() {
    let now = Instant::now();
    let (mut s, _, id, aes) = registered(Limits::default(), now);
    let mut b = upload_frames(id, &aes, &pattern(3000, 3), 1024);
    let len = wire::peek_request_header(&b).unwrap().unwrap().2 as usize;
    let mut first = b.split_to(wire::REQUEST_HEADER_LEN + len);
    s.handle_input(&mut first, now).unwrap();
    while let Some(ev) = s.poll_event() {
        if let ServerEvent::UploadData { data, .. } = ev {
            s.data_written(data.len()).unwrap();
        }
    }
    assert!(s.is_uploading());
    s.handle_eof();
    assert!(s.is_closed());
    assert!(!s.is_finished(), "UploadSuspended still waits");
    assert!(matches!(
        s.poll_event(),
        Some(ServerEvent::UploadSuspended { .. })
    ));
    assert!(s.is_finished());
}

// ---- 4. client timers ----

#[test]
fn a_silent_server_fails_the_client_at_the_answer_deadline() {
    let mut c = ClientSession::new(
        ClientConfig {
            name: FieldString::new("alice").unwrap(),
            file_name: FieldString::new("a.txt").unwrap(),
            file_size: 10,
            identity: None,
            registration_key: Some(key()),
            dialect: Dialect::default(),
        },
        ChaCha20Rng::seed_from_u64(3),
    )
    .unwrap();
    let t0 = Instant::now();
    assert_eq!(c.poll_timeout(), None, "nothing sent yet");
    c.handle_timeout(t0).unwrap();
    assert_eq!(c.poll_timeout(), None, "the request is not sent yet");
    let mut out = BytesMut::new();
    c.poll_transmit(&mut out);
    c.set_answer_timeout(Duration::from_secs(5));
    c.handle_timeout(t0).unwrap();
    let deadline = c.poll_timeout().expect("waiting for 1600");
    assert_eq!(deadline, t0 + Duration::from_secs(5));
    c.handle_timeout(t0 + Duration::from_secs(4)).unwrap();
    assert!(!c.is_finished());
    let failure = c.handle_timeout(deadline).unwrap_err();
    assert!(matches!(
        failure,
        ClientFailure::Peer(PeerError::Timeout(_))
    ));
    assert!(c.is_finished());
    assert_eq!(c.failure(), Some(&failure));
    assert_eq!(c.poll_timeout(), None);
}

#[test]
fn an_answer_restarts_the_client_timer() {
    let now = Instant::now();
    let mut s = fresh(Limits::default(), now);
    let mut store = MemStore::default();
    let mut c = ClientSession::new(
        ClientConfig {
            name: FieldString::new("alice").unwrap(),
            file_name: FieldString::new("a.txt").unwrap(),
            file_size: 10,
            identity: None,
            registration_key: Some(key()),
            dialect: Dialect::default(),
        },
        ChaCha20Rng::seed_from_u64(3),
    )
    .unwrap();
    let (mut up, mut down) = (BytesMut::new(), BytesMut::new());
    c.poll_transmit(&mut up);
    c.handle_timeout(now).unwrap();
    let later = now + Duration::from_secs(50);
    s.handle_input(&mut up, now).unwrap();
    store.serve(&mut s);
    s.poll_transmit(&mut down);
    c.handle_input(&mut down).unwrap(); // 1600: the 826 goes out
    c.poll_transmit(&mut up);
    c.handle_timeout(later).unwrap();
    assert_eq!(
        c.poll_timeout(),
        Some(later + protocol_core::client::DEFAULT_ANSWER_TIMEOUT)
    );
}

// ---- 5. rand_core re-exported ----

#[test]
fn the_reexported_rand_core_is_the_one_the_api_takes() {
    let now = Instant::now();
    let s = ServerConnection::new(
        ServerConfig::default(),
        protocol_core::rand_core::OsRng,
        now,
    );
    assert!(s.wants_read());
}

// ---- 6. Seen once per interval ----

#[test]
fn seen_is_reported_once_per_interval_not_per_packet() {
    let now = Instant::now();
    let limits = Limits::default();
    let (mut s, mut store, id, aes) = registered(limits.clone(), now);
    let data = pattern(20_000, 3);
    let mut b = upload_frames(id, &aes, &data, 512);
    let mut seen = 0;
    let mut t = now;
    let mut packets = 0;
    // One packet at a time, 100 ms apart: 40 packets in 4 s.
    while !b.is_empty() {
        let len =
            wire::peek_request_header(&b).unwrap().unwrap().2 as usize + wire::REQUEST_HEADER_LEN;
        let mut one = b.split_to(len);
        s.handle_input(&mut one, t).unwrap();
        packets += 1;
        while let Some(ev) = s.poll_event() {
            if let ServerEvent::Seen { .. } = ev {
                seen += 1;
            }
            store.handle(&mut s, ev);
        }
        t += Duration::from_millis(100);
    }
    assert_eq!(packets, 40);
    // The 826 at `now` was seen; then once a second: at 1 s, 2 s, 3 s.
    assert_eq!(seen, 3, "{seen} Seen events for {packets} packets");
}

// ---- 8. bounded file data, distinct errors, errors after the close ----

#[test]
fn ten_megabytes_pushed_at_once_do_not_come_out_of_one_poll_transmit() {
    let size = 10 << 20;
    let mut c = ClientSession::new(
        ClientConfig {
            name: FieldString::new("alice").unwrap(),
            file_name: FieldString::new("big.bin").unwrap(),
            file_size: size as u64,
            identity: None,
            registration_key: Some(key()),
            dialect: Dialect::default(),
        },
        ChaCha20Rng::seed_from_u64(3),
    )
    .unwrap();
    assert_eq!(c.push_file_data(b"x"), Err(UsageError::NotSendingFile));
    let now = Instant::now();
    let mut s = fresh(Limits::default(), now);
    let mut store = MemStore::default();
    let (mut up, mut down) = (BytesMut::new(), BytesMut::new());
    let file = vec![7u8; size];
    let mut outputs = Vec::new();
    'run: for _ in 0..100 {
        while let Some(ev) = c.poll_event() {
            if let ClientEvent::SendFile { .. } = ev {
                let taken = c.push_file_data(&file).unwrap();
                assert!(taken < size, "all 10 MB taken at once");
                assert!(!c.wants_file_data());
                assert_eq!(
                    c.push_file_data(&file[taken..]),
                    Err(UsageError::SendBufferFull)
                );
                let mut out = BytesMut::new();
                c.poll_transmit(&mut out);
                outputs.push(out.len());
                break 'run;
            }
        }
        c.poll_transmit(&mut up);
        s.handle_input(&mut up, now).unwrap();
        store.serve(&mut s);
        s.poll_transmit(&mut down);
        c.handle_input(&mut down).unwrap();
    }
    let bound = 2 * c.packet_unit() as usize + 64 * 1024 + 1024;
    assert!(
        outputs.iter().all(|&n| n > 0 && n <= bound),
        "{outputs:?} > {bound}"
    );
    assert!(matches!(
        c.end_of_file(),
        Err(UsageError::FileShorter { .. })
    ));
}

#[test]
fn misuse_errors_say_what_was_wrong() {
    let now = Instant::now();
    let (mut s, ..) = registered(Limits::default(), now);
    assert_eq!(s.fail_upload(), Err(UsageError::NoUpload));
}

#[test]
fn handle_input_reports_an_error_every_time_after_the_close() {
    let now = Instant::now();
    let mut s = fresh(Limits::default(), now);
    let mut bad = BytesMut::from(&[0xffu8; 23][..]);
    let first = s.handle_input(&mut bad, now).unwrap_err();
    for _ in 0..3 {
        let mut more = frame(
            ClientId::ZERO,
            &Request::Register {
                name: FieldString::new("a").unwrap(),
            },
        );
        let len = more.len();
        assert_eq!(s.handle_input(&mut more, now), Err(first.clone()));
        assert_eq!(more.len(), len, "nothing consumed after the close");
    }
    // After a quiet close (the peer's end), the error is `Closed`.
    let mut s = fresh(Limits::default(), now);
    s.handle_eof();
    let mut more = BytesMut::from(&b"x"[..]);
    assert_eq!(s.handle_input(&mut more, now), Err(PeerError::Closed));
    assert_eq!(s.handle_input(&mut more, now), Err(PeerError::Closed));
}
