//! The server role against requests that break its limits: sizes, orders, names,
//! padding, keys, time and the shared input budget. (tests/server.rs holds the
//! variants of docs/PROTOCOL.md section 8.)
#![allow(clippy::unwrap_used, clippy::expect_used)]
// test harness: a failure is a panic

// Tests are the caller: they own the clock that the core is handed.
#![allow(clippy::disallowed_methods)]

mod common;

use std::time::{Duration, Instant};

use bytes::BytesMut;
use common::mem::MemStore;
use common::pattern;
use common::serving::{client, exchange, key, stored};
use protocol_core::wire::{self, RequestEncoding};
use protocol_core::*;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

fn fresh(limits: Limits) -> (ServerConnection<ChaCha20Rng>, Instant) {
    let now = Instant::now();
    (
        ServerConnection::new(
            ServerConfig {
                limits,
                ..ServerConfig::default()
            },
            ChaCha20Rng::seed_from_u64(1),
            now,
        ),
        now,
    )
}

fn frame(id: ClientId, req: &Request) -> BytesMut {
    let mut b = BytesMut::new();
    wire::encode_request(&mut b, id, req, RequestEncoding::default());
    b
}

fn last_code(s: &mut ServerConnection<ChaCha20Rng>) -> Option<u16> {
    let mut out = BytesMut::new();
    s.poll_transmit(&mut out);
    let mut last = None;
    while let Ok(Some(r)) = wire::decode_response(&mut out) {
        last = Some(r.code() as u16);
    }
    last
}

#[test]
fn oversized_payload_is_refused_from_the_header_alone() {
    let (mut s, now) = fresh(Limits {
        max_payload: 1000,
        ..Limits::default()
    });
    let mut b = BytesMut::new();
    b.extend_from_slice(&[1u8; 16]);
    b.extend_from_slice(&[3]);
    b.extend_from_slice(&828u16.to_le_bytes());
    b.extend_from_slice(&(u32::MAX).to_le_bytes());
    let err = s.handle_input(&mut b, now).unwrap_err();
    assert!(matches!(err, PeerError::PayloadTooLarge { .. }), "{err}");
    assert!(s.is_closed());
    assert_eq!(last_code(&mut s), Some(1607));
}

#[test]
fn wrong_sizes_for_fixed_requests_and_unknown_codes_are_refused() {
    for (code, size) in [(825u16, 254u32), (826, 255), (900, 0), (1234, 255)] {
        let (mut s, now) = fresh(Limits::default());
        let mut b = BytesMut::new();
        b.extend_from_slice(&[1u8; 16]);
        b.extend_from_slice(&[3]);
        b.extend_from_slice(&code.to_le_bytes());
        b.extend_from_slice(&size.to_le_bytes());
        assert!(s.handle_input(&mut b, now).is_err(), "{code} {size}");
        assert_eq!(last_code(&mut s), Some(1607));
    }
}

#[test]
fn names_without_terminator_or_not_printable_are_refused() {
    let (mut s, now) = fresh(Limits::default());
    let mut b = frame(
        ClientId::ZERO,
        &Request::Register {
            name: FieldString::new("a").unwrap(),
        },
    );
    for byte in &mut b[23..] {
        *byte = b'a';
    }
    assert_eq!(
        s.handle_input(&mut b, now).unwrap_err(),
        PeerError::UnterminatedString
    );
}

/// Section 7: an invalid name gets 1601 to 825 and 1606 to 827 (as does 827 with the
/// zero id), answered by the core without a question, and the connection stays open.
#[test]
fn invalid_names_and_the_zero_id_are_refused_with_the_sections_answer() {
    let named = |id: ClientId, name: &str, reconnect: bool| {
        let name = FieldString::new(name).unwrap();
        let request = if reconnect {
            Request::Reconnect { name }
        } else {
            Request::Register { name }
        };
        (id, request)
    };
    let mut cases = Vec::new();
    for bad in ["", "   ", "tab\tname", "caf\u{e9}", "esc\u{1b}[0m"] {
        cases.push((
            named(ClientId::ZERO, bad, false),
            ResponseCode::RegistrationFailed,
        ));
        cases.push((
            named(ClientId([7; 16]), bad, true),
            ResponseCode::ReconnectRefused,
        ));
    }
    cases.push((
        named(ClientId::ZERO, "alice", true),
        ResponseCode::ReconnectRefused,
    ));
    for ((id, request), expected) in cases {
        let (mut s, now) = fresh(Limits::default());
        let mut b = frame(id, &request);
        s.handle_input(&mut b, now).unwrap();
        assert!(s.poll_event().is_none(), "{request:?}: no question");
        let mut out = BytesMut::new();
        s.poll_transmit(&mut out);
        let answer = wire::decode_response(&mut out).unwrap().unwrap();
        assert_eq!(answer.code(), expected, "{request:?}");
        assert!(!s.is_closed(), "{request:?}: the connection stays open");
    }
}

/// A registered session on a fresh connection, with its AES key.
fn session(
    limits: Limits,
) -> (
    ServerConnection<ChaCha20Rng>,
    MemStore,
    ClientId,
    protocol_core::crypto::AesKey,
    Instant,
) {
    let (mut s, now) = fresh(limits);
    let mut store = MemStore::default();
    let name = FieldString::new("bob").unwrap();
    let mut b = frame(ClientId::ZERO, &Request::Register { name: name.clone() });
    s.handle_input(&mut b, now).unwrap();
    store.serve(&mut s);
    let id = *store.clients.keys().next().unwrap();
    let field = key().public_key().to_field().unwrap();
    let mut b = frame(
        id,
        &Request::SendPublicKey {
            name,
            public_key: field.to_vec().into(),
        },
    );
    s.handle_input(&mut b, now).unwrap();
    store.serve(&mut s);
    let aes = store.clients[&id].aes_key.as_ref().unwrap().duplicate();
    let mut out = BytesMut::new();
    s.poll_transmit(&mut out);
    (s, store, id, aes, now)
}

fn packet(number: u16, total: u16, content_size: u32, original: u32, content: &[u8]) -> Request {
    Request::SendFile(FilePacket {
        content_size,
        original_size: original,
        packet_number: number,
        total_packets: total,
        file_name: FieldString::new("f.bin").unwrap(),
        content: content.to_vec().into(),
    })
}

fn encrypt(key: &protocol_core::crypto::AesKey, data: &[u8]) -> Vec<u8> {
    let mut e = protocol_core::crypto::CbcEncryptor::new(key);
    let mut out = BytesMut::new();
    e.update(data, &mut out);
    e.finish(&mut out);
    out.to_vec()
}

#[test]
fn packets_out_of_order_repeated_or_beyond_the_total_are_refused() {
    let data = pattern(100, 1);
    for bad in [(3u16, 3u16), (1, 3), (4, 3)] {
        let (mut s, mut store, id, aes, now) = session(Limits::default());
        let ct = encrypt(&aes, &data);
        let mut b = frame(id, &packet(1, 3, ct.len() as u32, 100, &ct[..32]));
        s.handle_input(&mut b, now).unwrap();
        store.serve(&mut s);
        let mut b = frame(id, &packet(bad.0, bad.1, ct.len() as u32, 100, &ct[32..64]));
        assert!(
            matches!(s.handle_input(&mut b, now), Err(PeerError::BadPacket(_))),
            "{bad:?}"
        );
        store.serve(&mut s);
        assert_eq!(last_code(&mut s), Some(1607));
        assert!(store.temp.is_empty(), "aborted upload discarded");
    }
}

#[test]
fn content_beyond_the_declared_sizes_is_refused() {
    let (mut s, mut store, id, aes, now) = session(Limits::default());
    let ct = encrypt(&aes, &pattern(100, 1));
    let mut b = frame(id, &packet(1, 2, 112, 100, &ct));
    s.handle_input(&mut b, now).unwrap();
    store.serve(&mut s);
    let mut b = frame(id, &packet(2, 2, 112, 100, &ct));
    assert!(matches!(
        s.handle_input(&mut b, now),
        Err(PeerError::BadPacket(_))
    ));
}

#[test]
fn lies_about_the_original_size_are_refused() {
    let (mut s, mut store, id, aes, now) = session(Limits::default());
    let ct = encrypt(&aes, &pattern(100, 1));
    // 90 bytes cannot encrypt to 112: refused on sizes before decrypting.
    let mut b = frame(id, &packet(1, 1, 112, 90, &ct));
    let err = s.handle_input(&mut b, now).unwrap_err();
    assert!(matches!(err, PeerError::BadPacket(_)), "{err}");
    // 97 bytes could, but these decrypt to 100.
    let (mut s, _, id, aes, now) = session(Limits::default());
    let ct = encrypt(&aes, &pattern(100, 1));
    let mut b = frame(id, &packet(1, 1, 112, 97, &ct));
    let err = s.handle_input(&mut b, now).unwrap_err();
    assert!(matches!(err, PeerError::SizeMismatch { .. }), "{err}");
    store.serve(&mut s);
    assert!(store.finished.is_empty() && store.files.is_empty());
}

#[test]
fn bad_padding_gets_the_same_answer_as_a_bad_length() {
    let (mut s, _, id, aes, now) = session(Limits::default());
    let mut ct = encrypt(&aes, &pattern(100, 1));
    let n = ct.len();
    ct[n - 17] ^= 0x40; // changes the last block's padding byte
    let mut b = frame(id, &packet(1, 1, n as u32, 100, &ct));
    let e1 = s.handle_input(&mut b, now).unwrap_err();
    let (mut s2, _, id2, _, now2) = session(Limits::default());
    let mut b = frame(id2, &packet(1, 1, 100, 100, &ct[..100]));
    let e2 = s2.handle_input(&mut b, now2).unwrap_err();
    assert_eq!(e1, PeerError::DecryptionFailed);
    assert_eq!(e2, PeerError::DecryptionFailed);
    assert_eq!(last_code(&mut s), last_code(&mut s2));
    // Either way the key is revoked: no second try at the same key.
    for conn in [&mut s, &mut s2] {
        let mut revoked = false;
        while let Some(ev) = conn.poll_event() {
            revoked |= matches!(ev, ServerEvent::RevokeKey { .. });
        }
        assert!(revoked);
        assert!(conn.is_closed());
    }
}

#[test]
fn after_a_failed_write_the_rest_of_the_upload_is_skipped_quietly() {
    let (mut s, mut store, id, aes, now) = session(Limits::default());
    let data = pattern(3000, 4);
    let ct = encrypt(&aes, &data);
    let mut b = frame(id, &packet(1, 3, ct.len() as u32, 3000, &ct[..1024]));
    s.handle_input(&mut b, now).unwrap();
    store.serve(&mut s);
    // The disk fills up: the app fails the upload.
    s.fail_upload().unwrap();
    assert_eq!(last_code(&mut s), Some(1607));
    let mut rest = frame(id, &packet(2, 3, ct.len() as u32, 3000, &ct[1024..2048]));
    rest.extend_from_slice(&frame(
        id,
        &packet(3, 3, ct.len() as u32, 3000, &ct[2048..]),
    ));
    s.handle_input(&mut rest, now).unwrap();
    let mut questions = 0;
    while let Some(ev) = s.poll_event() {
        questions += matches!(
            ev,
            ServerEvent::LookupClient { .. } | ServerEvent::UploadFinished { .. }
        ) as usize;
    }
    assert_eq!(
        questions, 0,
        "skipped packets ask nothing of the application"
    );
    assert!(!s.is_closed() && s.wants_read());
    assert_eq!(last_code(&mut s), None);
}

#[test]
fn a_revoked_key_is_gone_from_the_store_and_a_new_connection_is_refused() {
    let (mut s, mut store, id, aes, now) = session(Limits::default());
    let mut ct = encrypt(&aes, &pattern(100, 1));
    let n = ct.len();
    ct[n - 1] ^= 0x55;
    let mut b = frame(id, &packet(1, 1, n as u32, 100, &ct));
    assert!(s.handle_input(&mut b, now).is_err());
    store.serve(&mut s);
    assert!(store.clients[&id].aes_key.is_none());
    // A replay on a fresh connection finds no key.
    let (mut s2, now2) = fresh(Limits::default());
    let mut b = frame(id, &packet(1, 1, n as u32, 100, &ct));
    s2.handle_input(&mut b, now2).unwrap();
    store.serve(&mut s2);
    assert_eq!(last_code(&mut s2), Some(1607));
    assert!(s2.is_closed());
}

#[test]
fn keys_expire() {
    let limits = Limits {
        key_lifetime: Duration::from_secs(10),
        ..Limits::default()
    };
    let (mut s, _, id, aes, now) = session(limits.clone());
    let ct = encrypt(&aes, &pattern(100, 1));
    let mut b = frame(id, &packet(1, 1, ct.len() as u32, 100, &ct));
    let later = now + Duration::from_secs(11);
    assert_eq!(s.handle_input(&mut b, later), Err(PeerError::KeyExpired));
    assert_eq!(last_code(&mut s), Some(1607));

    // A key looked up for a new connection carries its age.
    let (mut s, now) = fresh(limits);
    let mut b = frame(id, &packet(1, 1, ct.len() as u32, 100, &ct));
    s.handle_input(&mut b, now).unwrap();
    let ticket = loop {
        match s.poll_event() {
            Some(ServerEvent::LookupClient { ticket, .. }) => break ticket,
            Some(_) => {}
            None => panic!("no lookup"),
        }
    };
    s.client_lookup(
        ticket,
        Some(ClientRecord {
            aes_key: Some(aes),
            key_age: Duration::from_secs(10),
            suspended: None,
        }),
    )
    .unwrap();
    assert_eq!(last_code(&mut s), Some(1607));
    assert!(s.is_closed());
}

#[test]
fn file_size_and_packet_count_limits() {
    let limits = Limits {
        max_file_size: 1000,
        max_packets: 10,
        ..Limits::default()
    };
    let (mut s, _, id, _, now) = session(limits.clone());
    let mut b = frame(id, &packet(1, 1, 2000, 1999, &[0u8; 16]));
    assert!(matches!(
        s.handle_input(&mut b, now),
        Err(PeerError::UploadTooLarge(_))
    ));
    let (mut s, _, id, _, now) = session(limits);
    let mut b = frame(id, &packet(1, 11, 176, 100, &[0u8; 16]));
    assert!(matches!(
        s.handle_input(&mut b, now),
        Err(PeerError::UploadTooLarge(_))
    ));
}

#[test]
fn a_packet_from_an_unknown_client_gets_1607() {
    let (mut s, now) = fresh(Limits::default());
    let mut store = MemStore::default();
    let mut b = frame(ClientId([5; 16]), &packet(1, 1, 16, 1, &[0u8; 16]));
    s.handle_input(&mut b, now).unwrap();
    store.serve(&mut s);
    assert_eq!(last_code(&mut s), Some(1607));
}

#[test]
fn a_slow_header_times_out_and_an_idle_connection_closes() {
    let limits = Limits {
        request_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(30),
        first_header_timeout: Duration::from_secs(60),
        ..Limits::default()
    };
    let (mut s, now) = fresh(limits.clone());
    let mut b = BytesMut::from(&[0u8; 10][..]);
    s.handle_input(&mut b, now).unwrap();
    assert_eq!(s.poll_timeout(), Some(now + Duration::from_secs(5)));
    s.handle_timeout(now + Duration::from_secs(4));
    assert!(!s.is_closed());
    s.handle_timeout(now + Duration::from_secs(5));
    assert!(s.is_closed());
    assert_eq!(last_code(&mut s), Some(1607));

    let (mut s, now) = fresh(limits);
    s.handle_timeout(now + Duration::from_secs(29));
    assert!(!s.is_closed());
    s.handle_timeout(now + Duration::from_secs(30));
    assert!(s.is_closed());
    assert_eq!(last_code(&mut s), None, "an idle close sends nothing");
}

#[test]
fn a_connection_without_a_header_in_time_gets_1607_before_the_idle_timeout() {
    let (mut s, now) = fresh(Limits::default());
    let deadline = now + Limits::default().first_header_timeout;
    assert_eq!(s.poll_timeout(), Some(deadline));
    s.handle_timeout(deadline - Duration::from_millis(1));
    assert!(!s.is_closed());
    s.handle_timeout(deadline);
    assert!(s.is_closed());
    assert_eq!(last_code(&mut s), Some(1607));

    // Once a whole header is in, that deadline no longer applies.
    let (mut s, now) = fresh(Limits::default());
    let mut b = frame(ClientId([5; 16]), &packet(1, 1, 16, 1, &[0u8; 16]));
    let mut head = b.split_to(25);
    s.handle_input(&mut head, now).unwrap();
    let Some(ServerEvent::LookupClient { ticket, .. }) = s.poll_event() else {
        panic!("an 828 header is looked up at once");
    };
    let rec = ClientRecord {
        aes_key: Some(crypto::AesKey::from_slice(&[1; 32]).unwrap()),
        key_age: Duration::ZERO,
        suspended: None,
    };
    s.client_lookup(ticket, Some(rec)).unwrap();
    s.handle_timeout(deadline);
    assert!(!s.is_closed());
}

#[test]
fn an_828_header_from_a_client_without_a_key_is_refused_before_its_payload() {
    let (mut s, now) = fresh(Limits::default());
    let mut store = MemStore::default();
    // A 16 MiB packet declared; only the header and a few bytes sent.
    let content = vec![0u8; 16 << 20];
    let mut b = frame(ClientId([7; 16]), &packet(1, 1, 16 << 20, 1, &content));
    let mut head = b.split_to(40);
    drop(b);
    s.handle_input(&mut head, now).unwrap();
    assert_eq!(s.pending_question(), Some(QuestionKind::LookupClient));
    assert!(!s.wants_read(), "no payload is taken before the lookup");
    store.serve(&mut s);
    assert_eq!(last_code(&mut s), Some(1607));
    assert!(s.is_closed());
}

#[test]
fn buffered_input_counts_against_the_budget_shared_by_connections() {
    let budget = InputBudget::new(100);
    let now = Instant::now();
    let conn = |seed| {
        ServerConnection::new(
            ServerConfig::default(),
            ChaCha20Rng::seed_from_u64(seed),
            now,
        )
        .with_budget(budget.clone())
    };
    let (mut a, mut b) = (conn(1), conn(2));
    let name = FieldString::new("alice").unwrap();
    let mut reg = BytesMut::new();
    wire::encode_request(
        &mut reg,
        ClientId::ZERO,
        &Request::Register { name },
        Default::default(),
    );
    let whole = reg.clone();
    let mut part_a = reg.split_to(60);
    a.handle_input(&mut part_a, now).unwrap();
    assert_eq!(a.buffered_input(), 60);
    assert_eq!(budget.used(), 60);
    let mut part_b = BytesMut::from(&whole[..50]);
    assert_eq!(b.handle_input(&mut part_b, now), Err(PeerError::Busy));
    assert_eq!(last_code(&mut b), Some(1607));
    assert_eq!(budget.used(), 60, "the refused input is not counted");
    part_a.extend_from_slice(&reg);
    a.handle_input(&mut part_a, now).unwrap();
    assert_eq!(budget.used(), 0, "a whole frame is taken: nothing held");
    let mut rest = BytesMut::from(&[0u8; 30][..]);
    a.handle_input(&mut rest, now).ok();
    drop(a);
    drop(b);
    assert_eq!(budget.used(), 0, "released when the connections go");
}

#[test]
fn input_within_the_free_share_of_a_connection_is_never_refused_for_the_budget() {
    // A full budget refuses only the input past each connection's free share, so
    // that clients holding what honest ones do are served however many there are.
    let budget = InputBudget::new(10).with_free_per_connection(100);
    let now = Instant::now();
    let conn = |seed| {
        ServerConnection::new(
            ServerConfig::default(),
            ChaCha20Rng::seed_from_u64(seed),
            now,
        )
        .with_budget(budget.clone())
    };
    let mut reg = BytesMut::new();
    let name = FieldString::new("alice").unwrap();
    wire::encode_request(
        &mut reg,
        ClientId::ZERO,
        &Request::Register { name },
        Default::default(),
    );
    let mut conns: Vec<_> = (0..50).map(conn).collect();
    for c in conns.iter_mut() {
        let mut part = BytesMut::from(&reg[..90]); // a partial registration each
        c.handle_input(&mut part, now).unwrap();
    }
    assert_eq!(budget.used(), 0, "within the free share: nothing counted");
    let mut big = conn(99);
    let mut input = BytesMut::from(&reg[..105]);
    big.handle_input(&mut input, now).unwrap();
    assert_eq!(budget.used(), 5, "only what passes the free share counts");
    let mut bigger = conn(100);
    let mut input = BytesMut::from(&reg[..106]);
    assert_eq!(bigger.handle_input(&mut input, now), Err(PeerError::Busy));
    drop(big);
    assert_eq!(budget.used(), 0);
}

#[test]
fn backpressure_stops_reading_until_data_is_written() {
    let (mut s, _, id, aes, now) = session(Limits {
        max_unwritten: 1000,
        ..Limits::default()
    });
    let data = pattern(5000, 2);
    let ct = encrypt(&aes, &data);
    let mut input = BytesMut::new();
    for (i, chunk) in ct.chunks(1024).enumerate() {
        input.extend_from_slice(&frame(
            id,
            &packet(i as u16 + 1, 5, ct.len() as u32, 5000, chunk),
        ));
    }
    s.handle_input(&mut input, now).unwrap();
    assert!(!s.wants_read());
    assert!(
        !input.is_empty(),
        "later packets stay in the caller's buffer"
    );
    let mut got = Vec::new();
    while let Some(ev) = s.poll_event() {
        if let ServerEvent::UploadData { data, .. } = ev {
            got.extend_from_slice(&data);
        }
    }
    s.data_written(got.len()).unwrap();
    assert!(s.wants_read());
    while !input.is_empty() {
        s.handle_input(&mut input, now).unwrap();
        while let Some(ev) = s.poll_event() {
            if let ServerEvent::UploadData { data, .. } = ev {
                assert!(data.len() <= 1024);
                got.extend_from_slice(&data);
                s.data_written(data.len()).unwrap();
            }
        }
    }
    assert_eq!(got, data);
}

#[test]
fn a_refused_reconnect_deletes_nothing() {
    let (mut s, mut store, id, _, now) = session(Limits::default());
    let before = store.clients.clone();
    let mut b = frame(
        id,
        &Request::Reconnect {
            name: FieldString::new("mallory").unwrap(),
        },
    );
    s.handle_input(&mut b, now).unwrap();
    // (`Seen` was reported a moment ago for the same client, so not again now.)
    let ticket = match s.poll_event() {
        Some(ServerEvent::Reconnect { ticket, .. }) => ticket,
        other => panic!("{other:?}"),
    };
    // Answering it with another question's method, or twice, does not compile
    // (see the compile_fail examples of `protocol_core::server::question`).
    assert_eq!(ticket.kind(), QuestionKind::Reconnect);
    s.reconnect_lookup(ticket, None).unwrap();
    assert_eq!(last_code(&mut s), Some(1606));
    store.serve(&mut s);
    assert_eq!(store.clients.len(), before.len());
}

#[test]
fn a_failed_store_gets_1607_and_the_client_sends_again() {
    let file = pattern(3000, 5);
    let mut store = MemStore::default();
    store.faults.fail_finish = 2;
    let (events, _) = exchange(
        Dialect::default(),
        ServerDialect::default(),
        &file,
        &mut store,
    );
    let errors = events
        .iter()
        .filter(|e| matches!(e, ClientEvent::ServerError { .. }))
        .count();
    assert_eq!(errors, 2);
    assert!(matches!(
        events.last(),
        Some(ClientEvent::Finished(Outcome::Verified))
    ));
    assert_eq!(stored(&store).data, file);

    let mut store = MemStore::default();
    store.faults.fail_register = 3;
    let now = Instant::now();
    let mut c = client(Dialect::default(), &file, None);
    let mut s = ServerConnection::new(ServerConfig::default(), ChaCha20Rng::seed_from_u64(4), now);
    let (mut up, mut down) = (BytesMut::new(), BytesMut::new());
    let mut result = Ok(());
    for _ in 0..10 {
        c.poll_transmit(&mut up);
        s.handle_input(&mut up, now).unwrap();
        store.serve(&mut s);
        s.poll_transmit(&mut down);
        result = c.handle_input(&mut down);
        if result.is_err() {
            break;
        }
    }
    match result {
        Err(ClientFailure::ServerRefused {
            attempts: 3,
            request: RequestCode::Register,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
}
