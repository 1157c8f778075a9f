//! What a stranger who knows a client id (they travel in clear) can make the server
//! core do, and what an application that skips a step cannot make it say.
#![allow(clippy::unwrap_used, clippy::expect_used)]
// test harness: a failure is a panic

// Tests are the caller: they own the clock that the core is handed.
#![allow(clippy::disallowed_methods)]

mod common;

use std::time::Instant;

use bytes::BytesMut;
use common::mem::MemStore;
use common::pattern;
use protocol_core::crypto::{cksum, AesKey, PrivateKey};
use protocol_core::wire::{self, RequestEncoding};
use protocol_core::*;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

fn connection(dialect: ServerDialect, now: Instant) -> ServerConnection<ChaCha20Rng> {
    ServerConnection::new(
        ServerConfig {
            dialect,
            ..ServerConfig::default()
        },
        ChaCha20Rng::seed_from_u64(1),
        now,
    )
}

fn frame(id: ClientId, req: &Request) -> BytesMut {
    let mut b = BytesMut::new();
    wire::encode_request(&mut b, id, req, RequestEncoding::default());
    b
}

fn packet(number: u16, total: u16, content_size: u32, original: u32, content: &[u8]) -> Request {
    Request::SendFile(FilePacket {
        content_size,
        original_size: original,
        packet_number: number,
        total_packets: total,
        file_name: FieldString::new("thesis.pdf").unwrap(),
        content: content.to_vec().into(),
    })
}

fn encrypt(key: &AesKey, data: &[u8]) -> Vec<u8> {
    let mut e = protocol_core::crypto::CbcEncryptor::new(key);
    let mut out = BytesMut::new();
    e.update(data, &mut out);
    e.finish(&mut out);
    out.to_vec()
}

fn responses(s: &mut ServerConnection<ChaCha20Rng>) -> Vec<Response> {
    let mut out = BytesMut::new();
    s.poll_transmit(&mut out);
    let mut all = Vec::new();
    while let Ok(Some(r)) = wire::decode_response(&mut out) {
        all.push(r);
    }
    all
}

/// Registers "victim" (825, 826) on a connection of its own; its id and key.
fn registered(store: &mut MemStore, now: Instant) -> (ClientId, AesKey) {
    registered_on(&mut connection(ServerDialect::default(), now), store, now)
}

/// Registers "victim" (825, 826) on `s`; its id and key.
fn registered_on(
    s: &mut ServerConnection<ChaCha20Rng>,
    store: &mut MemStore,
    now: Instant,
) -> (ClientId, AesKey) {
    let name = FieldString::new("victim").unwrap();
    let mut b = frame(ClientId::ZERO, &Request::Register { name: name.clone() });
    s.handle_input(&mut b, now).unwrap();
    store.serve(s);
    let id = *store.clients.keys().next().unwrap();
    let key = PrivateKey::from_base64(&common::rsa_field("private_pkcs8_b64")).unwrap();
    let field = key.public_key().to_field().unwrap();
    let mut b = frame(
        id,
        &Request::SendPublicKey {
            name,
            public_key: field.to_vec().into(),
        },
    );
    s.handle_input(&mut b, now).unwrap();
    store.serve(s);
    let aes = store.clients[&id].aes_key.as_ref().unwrap().duplicate();
    (id, aes)
}

#[test]
fn a_strangers_junk_under_a_looked_up_key_does_not_revoke_it() {
    let now = Instant::now();
    let mut store = MemStore::default();
    let (id, _) = registered(&mut store, now);
    // A new connection that ran no 826/827 sends 16 random bytes under the id.
    let mut s = connection(ServerDialect::default(), now);
    let mut b = frame(id, &packet(1, 1, 16, 15, &[0x5a; 16]));
    let _ = s.handle_input(&mut b, now);
    let mut events = Vec::new();
    while let Some(ev) = s.poll_event() {
        events.push(format!("{ev:?}"));
        store.handle(&mut s, ev);
    }
    let _ = s.handle_input(&mut b, now);
    while let Some(ev) = s.poll_event() {
        events.push(format!("{ev:?}"));
        store.handle(&mut s, ev);
    }
    assert!(s.is_closed(), "the junk closes the stranger's connection");
    assert!(
        events.iter().any(|e| e.starts_with("DecryptionFailed")),
        "{events:?}"
    );
    assert!(
        !events.iter().any(|e| e.starts_with("RevokeKey")),
        "{events:?}"
    );
    assert!(
        store.clients[&id].aes_key.is_some(),
        "the victim keeps its key"
    );
}

#[test]
fn junk_under_a_key_issued_on_the_same_connection_revokes_it() {
    let now = Instant::now();
    let mut store = MemStore::default();
    let mut s = connection(ServerDialect::default(), now);
    let (id, _) = registered_on(&mut s, &mut store, now);
    let mut b = frame(id, &packet(1, 1, 16, 15, &[0x5a; 16]));
    assert_eq!(
        s.handle_input(&mut b, now),
        Err(PeerError::DecryptionFailed)
    );
    let mut revoked = false;
    while let Some(ev) = s.poll_event() {
        revoked |= matches!(ev, ServerEvent::RevokeKey { .. });
        store.handle(&mut s, ev);
    }
    assert!(revoked, "one guess per key issued here");
    assert!(store.clients[&id].aes_key.is_none());
}

#[test]
fn the_checksum_is_not_sent_for_bytes_never_reported_written() {
    let now = Instant::now();
    let mut store = MemStore::default();
    let (id, aes) = registered(&mut store, now);
    let mut s = connection(ServerDialect::default(), now);
    let data = pattern(100, 3);
    let ct = encrypt(&aes, &data);
    let mut b = frame(id, &packet(1, 1, ct.len() as u32, 100, &ct));
    let mut outcome = None;
    for _ in 0..4 {
        let _ = s.handle_input(&mut b, now);
        while let Some(ev) = s.poll_event() {
            match ev {
                // An embedder that ignores the data and says nothing of it...
                ServerEvent::UploadData { .. } | ServerEvent::UploadStarted { .. } => {}
                // ...and then reports the file stored.
                ServerEvent::UploadFinished { ticket, .. } => outcome = Some(s.succeed(ticket)),
                other => store.handle(&mut s, other),
            }
        }
    }
    assert_eq!(
        outcome,
        Some(Err(UsageError::Unwritten { outstanding: 100 }))
    );
    let answers = responses(&mut s);
    assert!(
        !answers
            .iter()
            .any(|r| matches!(r, Response::FileReceived { .. })),
        "no 1603: {answers:?}"
    );
    assert!(answers.contains(&Response::GeneralError), "{answers:?}");
}

#[test]
fn answers_to_parts_of_an_upload_carry_no_checksum() {
    let now = Instant::now();
    let mut store = MemStore::default();
    let (id, aes) = registered(&mut store, now);
    let dialect = ServerDialect {
        ack_every_packet: PacketAck::Every,
        ..ServerDialect::default()
    };
    let data = pattern(3000, 5);
    let ct = encrypt(&aes, &data);
    let parts: Vec<&[u8]> = ct.chunks(1024).collect();
    let total = parts.len() as u16;
    let mut answers = Vec::new();
    // A connection per request, as variant 7 clients do.
    for (i, part) in parts.iter().enumerate() {
        let mut s = connection(dialect.clone(), now);
        let mut b = frame(
            id,
            &packet(i as u16 + 1, total, ct.len() as u32, 3000, part),
        );
        for _ in 0..4 {
            let _ = s.handle_input(&mut b, now);
            store.serve(&mut s);
        }
        answers.extend(responses(&mut s));
        s.handle_eof();
        store.serve(&mut s);
    }
    let checksums: Vec<u32> = answers
        .iter()
        .filter_map(|r| match r {
            Response::FileReceived { checksum, .. } => Some(*checksum),
            _ => None,
        })
        .collect();
    assert_eq!(checksums.len(), parts.len(), "{answers:?}");
    let (last, rest) = checksums.split_last().unwrap();
    assert!(rest.iter().all(|c| *c == 0), "{checksums:?}");
    assert_eq!(*last, cksum(&data));
}
