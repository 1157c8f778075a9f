//! What failed with deployed peers (docs/PROTOCOL.md, variants 9, 11, 12, 13), as
//! byte-level checks on the client session and the server connection.
#![allow(clippy::unwrap_used, clippy::expect_used)]
// test harness: a failure is a panic

// Tests are the caller: they own the clock that the core is handed.
#![allow(clippy::disallowed_methods)]

mod common;

use std::time::Instant;

use bytes::{Bytes, BytesMut};
use common::mem::MemStore;
use common::pattern;
use protocol_core::crypto::{cksum, AesKey, AesKeySize, PrivateKey};
use protocol_core::wire::{self, RequestEncoding};
use protocol_core::*;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

fn key() -> PrivateKey {
    PrivateKey::from_base64(&common::rsa_field("private_pkcs8_b64")).unwrap()
}

fn client(dialect: Dialect, file_size: usize) -> ClientSession<ChaCha20Rng> {
    ClientSession::new(
        ClientConfig {
            name: FieldString::new("peer tester").unwrap(),
            file_name: FieldString::new("data.bin").unwrap(),
            file_size: file_size as u64,
            identity: None,
            registration_key: Some(key()),
            dialect,
        },
        ChaCha20Rng::seed_from_u64(5),
    )
    .unwrap()
}

/// Decodes `bytes` as whole requests; panics if anything is left over (a request
/// handed out in pieces).
fn whole_requests(bytes: &[u8]) -> Vec<Request> {
    let mut buf = BytesMut::from(bytes);
    let mut requests = Vec::new();
    while let Some(frame) = wire::decode_request(&mut buf, &Limits::default()).unwrap() {
        requests.push(frame.request);
    }
    assert!(
        buf.is_empty(),
        "{} bytes of a request handed out without the rest",
        buf.len()
    );
    requests
}

fn respond(response: Response) -> BytesMut {
    let mut b = BytesMut::new();
    wire::encode_response(&mut b, &response, Default::default());
    b
}

/// A scripted server's side of registration and key exchange: the client is left
/// wanting its file (after `SendFile`). Returns the AES key it was given.
fn register(c: &mut ClientSession<ChaCha20Rng>) -> (ClientId, AesKey) {
    let mut out = BytesMut::new();
    c.poll_transmit(&mut out);
    assert!(matches!(
        whole_requests(&out)[..],
        [Request::Register { .. }]
    ));
    let id = ClientId([7; 16]);
    c.handle_input(&mut respond(Response::Registered { client_id: id }))
        .unwrap();
    out.clear();
    c.poll_transmit(&mut out);
    let Request::SendPublicKey { public_key, .. } = &whole_requests(&out)[0] else {
        panic!("826 expected");
    };
    let public = crypto::PublicKey::from_field(public_key).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(8);
    let aes = AesKey::generate(AesKeySize::Aes256, &mut rng);
    let encrypted = public.encrypt_aes_key(&mut rng, &aes).unwrap();
    c.handle_input(&mut respond(Response::AesKey {
        client_id: id,
        encrypted_key: encrypted.into(),
    }))
    .unwrap();
    let mut asked = false;
    while let Some(ev) = c.poll_event() {
        asked |= matches!(ev, ClientEvent::SendFile { .. });
    }
    assert!(asked, "the client should ask for its file");
    (id, aes)
}

/// Feeds `file` in pieces of `piece` bytes, collecting every `poll_transmit` after
/// each piece and after the end of the file, each call's output on its own.
fn send_file(c: &mut ClientSession<ChaCha20Rng>, file: &[u8], piece: usize) -> Vec<BytesMut> {
    let mut writes = Vec::new();
    let mut poll = |c: &mut ClientSession<ChaCha20Rng>| loop {
        let mut out = BytesMut::new();
        c.poll_transmit(&mut out);
        if out.is_empty() {
            break;
        }
        writes.push(out);
    };
    for chunk in file.chunks(piece.max(1)) {
        c.push_file_data(chunk).unwrap();
        poll(c);
    }
    c.end_of_file().unwrap();
    poll(c);
    writes
}

/// Issue case 1: the last cipher block of an upload went out as a write of its own
/// (a 32-byte file as 322 bytes, then 16). Every output must be whole requests.
#[test]
fn a_request_never_leaves_in_pieces() {
    for (size, packet_size) in [
        (32, 64 * 1024),
        (0, 64 * 1024),
        (15, 1024),
        (16, 16),
        (1024, 1024),
        (5000, 1024),
        (5000, 100),
    ] {
        let file = pattern(size, 1);
        let mut c = client(
            Dialect {
                packet_size,
                ..Dialect::default()
            },
            size,
        );
        register(&mut c);
        let writes = send_file(&mut c, &file, 7);
        let mut packets = 0;
        for w in &writes {
            packets += whole_requests(w).len();
        }
        let ciphertext = (size / 16 + 1) * 16;
        let unit = packet_size.max(16).div_ceil(16) * 16;
        assert_eq!(
            packets,
            ciphertext.div_ceil(unit),
            "size {size}, packet size {packet_size}"
        );
    }
}

/// Variant 13: in the small-packet mode each call hands out exactly one request,
/// however much is queued (the client had written ~100 requests in one write).
#[test]
fn one_request_per_write_hands_out_one_request_per_call() {
    let file = pattern(200_000, 2);
    let mut c = client(
        Dialect {
            packet_size: 1024,
            one_request_per_write: true,
            ..Dialect::default()
        },
        file.len(),
    );
    register(&mut c);
    let writes = send_file(&mut c, &file, 64 * 1024);
    for w in &writes {
        assert_eq!(whole_requests(w).len(), 1, "one request per write");
        assert!(w.len() <= wire::REQUEST_HEADER_LEN + 267 + 1024);
    }
    assert_eq!(writes.len(), (200_000usize + 16).div_ceil(1024));
}

/// Issue case 2: a final 1603 whose size field holds the plaintext size (variant 11)
/// was taken for an intermediate answer, and the client waited for its timeout.
#[test]
fn a_final_answer_with_the_plaintext_size_is_the_last() {
    for (size, packet_size) in [(32, 64 * 1024), (5000, 1024)] {
        let file = pattern(size, 3);
        let mut c = client(
            Dialect {
                packet_size,
                ..Dialect::default()
            },
            size,
        );
        let (id, _) = register(&mut c);
        send_file(&mut c, &file, 1000);
        c.handle_input(&mut respond(Response::FileReceived {
            client_id: id,
            content_size: size as u32, // the plaintext size, not the 48 of ciphertext
            file_name: FieldString::new("data.bin").unwrap(),
            checksum: cksum(&file),
        }))
        .unwrap();
        let mut out = BytesMut::new();
        c.poll_transmit(&mut out);
        assert!(
            matches!(whole_requests(&out)[..], [Request::CrcOk { .. }]),
            "size {size}: 900 expected after the only answer"
        );
    }
}

/// Variant 7 answers are counted against the packets sent: answers whose size
/// field happens to hold a whole-file size are not taken for the last one.
#[test]
fn every_packet_answered_ends_at_the_last_packet_by_count() {
    let file = pattern(5000, 4);
    let mut c = client(
        Dialect {
            packet_size: 1024,
            ..Dialect::default()
        },
        file.len(),
    );
    let (id, _) = register(&mut c);
    let writes = send_file(&mut c, &file, 5000);
    let packets: usize = writes.iter().map(|w| whole_requests(w).len()).sum();
    assert_eq!(packets, 5);
    let answer = |content_size: u32, checksum: u32| Response::FileReceived {
        client_id: id,
        content_size,
        file_name: FieldString::new("data.bin").unwrap(),
        checksum,
    };
    // The first answer has a running size: the server answers every packet.
    c.handle_input(&mut respond(answer(1024, 1))).unwrap();
    for _ in 2..5 {
        c.handle_input(&mut respond(answer(5000, 1))).unwrap();
        let mut out = BytesMut::new();
        c.poll_transmit(&mut out);
        assert!(out.is_empty(), "an intermediate answer needs no reply");
    }
    c.handle_input(&mut respond(answer(5000, cksum(&file))))
        .unwrap();
    let mut out = BytesMut::new();
    c.poll_transmit(&mut out);
    assert!(matches!(whole_requests(&out)[..], [Request::CrcOk { .. }]));
}

/// Runs a client in `dialect` against one server connection; returns the client's
/// events and the server connection (for what it detected).
fn exchange(
    dialect: Dialect,
    file: &[u8],
    store: &mut MemStore,
    reshape: impl Fn(Request) -> Request,
) -> (Vec<ClientEvent>, ServerConnection<ChaCha20Rng>) {
    let now = Instant::now();
    let mut c = client(dialect.clone(), file.len());
    let mut s = ServerConnection::new(ServerConfig::default(), ChaCha20Rng::seed_from_u64(4), now);
    let mut events = Vec::new();
    for _ in 0..10_000 {
        while let Some(ev) = c.poll_event() {
            if let ClientEvent::SendFile { .. } = ev {
                for chunk in file.chunks(333) {
                    c.push_file_data(chunk).unwrap();
                }
                c.end_of_file().unwrap();
            }
            events.push(ev);
        }
        if c.is_finished() {
            break;
        }
        let mut up = BytesMut::new();
        c.poll_transmit(&mut up);
        // Re-encode each request as the peer under test would shape it. The fields
        // go back in the order they were read: the decoder reads the wire's first
        // field as the packet number.
        let mut shaped = BytesMut::new();
        while let Some(frame) = wire::decode_request(&mut up, &Limits::default()).unwrap() {
            let enc = RequestEncoding {
                byte_order: frame.byte_order,
                packet_fields: PacketFieldOrder::NumberFirst,
            };
            wire::encode_request(&mut shaped, frame.client_id, &reshape(frame.request), enc);
        }
        s.handle_input(&mut shaped, now).unwrap();
        store.serve(&mut s);
        let mut down = BytesMut::new();
        s.poll_transmit(&mut down);
        c.handle_input(&mut down).unwrap();
    }
    assert!(c.is_finished(), "{events:?}");
    (events, s)
}

/// Pads an 828's content field with `fill` bytes to 1,024 (variant 12's shape).
fn padded_to_1024(fill: u8) -> impl Fn(Request) -> Request {
    move |r| match r {
        Request::SendFile(mut p) => {
            let mut content = p.content.to_vec();
            content.resize(1024, fill);
            p.content = Bytes::from(content);
            Request::SendFile(p)
        }
        other => other,
    }
}

/// Issue case 3: a client that pads every 828 to a fixed 1,024-byte content field
/// (the content size field holds the true total) was refused with "more content than
/// the declared sizes".
#[test]
fn the_server_accepts_a_zero_padded_fixed_content_field() {
    for size in [32, 1000, 3000, 5000] {
        let file = pattern(size, 5);
        let mut store = MemStore::default();
        let dialect = Dialect {
            packet_size: 1024,
            ..Dialect::default()
        };
        let (events, _) = exchange(dialect, &file, &mut store, padded_to_1024(0));
        assert!(
            matches!(
                events.last(),
                Some(ClientEvent::Finished(Outcome::Verified))
            ),
            "size {size}: {events:?}"
        );
        let stored = store.files.values().next().unwrap();
        assert_eq!(stored.data, file);
    }
}

/// Padding that is not zeros is still more content than declared.
#[test]
fn the_server_refuses_padding_that_is_not_zeros() {
    let file = pattern(1000, 6);
    let now = Instant::now();
    let mut s = ServerConnection::new(ServerConfig::default(), ChaCha20Rng::seed_from_u64(4), now);
    let mut store = MemStore::default();
    let mut c = client(
        Dialect {
            packet_size: 1024,
            ..Dialect::default()
        },
        file.len(),
    );
    let mut refused = None;
    for _ in 0..100 {
        while let Some(ev) = c.poll_event() {
            if let ClientEvent::SendFile { .. } = ev {
                c.push_file_data(&file).unwrap();
                c.end_of_file().unwrap();
            }
        }
        let mut up = BytesMut::new();
        c.poll_transmit(&mut up);
        let mut shaped = BytesMut::new();
        while let Some(frame) = wire::decode_request(&mut up, &Limits::default()).unwrap() {
            let request = padded_to_1024(1)(frame.request);
            wire::encode_request(&mut shaped, frame.client_id, &request, Default::default());
        }
        if let Err(e) = s.handle_input(&mut shaped, now) {
            refused = Some(e);
            break;
        }
        store.serve(&mut s);
        let mut down = BytesMut::new();
        s.poll_transmit(&mut down);
        c.handle_input(&mut down).unwrap();
    }
    assert_eq!(
        refused,
        Some(PeerError::BadPacket("more content than the declared sizes"))
    );
}

/// The client's own `pad_packets` produces variant 12's exact shape, and the server
/// takes it back byte for byte and says it saw zero-padded packets.
#[test]
fn the_client_pads_packets_and_the_server_detects_it() {
    for size in [0, 32, 1024, 3000] {
        let file = pattern(size, 7);
        let dialect = Dialect {
            packet_size: 1024,
            pad_packets: true,
            one_request_per_write: true,
            ..Dialect::default()
        };
        let mut c = client(dialect.clone(), size);
        register(&mut c);
        let writes = send_file(&mut c, &file, 500);
        for w in &writes {
            assert_eq!(w.len(), wire::REQUEST_HEADER_LEN + 1291, "size {size}");
            let [Request::SendFile(p)] = &whole_requests(w)[..] else {
                panic!("one 828 per write");
            };
            assert_eq!(p.content_size as usize, (size / 16 + 1) * 16);
        }
        let mut store = MemStore::default();
        let (events, s) = exchange(dialect, &file, &mut store, |r| r);
        assert!(matches!(
            events.last(),
            Some(ClientEvent::Finished(Outcome::Verified))
        ));
        assert_eq!(store.files.values().next().unwrap().data, file);
        let seen = s.detected();
        assert_eq!(seen.padded_packets, Some(true));
    }
}

/// Issue case 5: the server says which variants it saw.
#[test]
fn the_server_reports_the_dialect_it_detected() {
    let file = pattern(5000, 8);
    let mut store = MemStore::default();
    let dialect = Dialect {
        packet_size: 1024,
        byte_order: ByteOrder::Big,
        packet_fields: PacketFieldOrder::TotalFirst,
        per_packet_encryption: true,
        ..Dialect::default()
    };
    let (_, s) = exchange(dialect, &file, &mut store, |r| r);
    let seen = s.detected();
    assert_eq!(seen.byte_order, Some(ByteOrder::Big));
    assert_eq!(seen.packet_fields, Some(PacketFieldOrder::TotalFirst));
    assert_eq!(seen.encryption, Some(EncryptionMode::PerPacket));
    assert_eq!(seen.per_packet_content_size, Some(false));
    assert_eq!(seen.padded_packets, Some(false));
    assert_eq!(
        seen.to_string(),
        "requests big-endian, total packets first, total size, per-packet encryption, cksum"
    );
}
