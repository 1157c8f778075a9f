//! A suspended upload as bytes (`SuspendedUpload::to_bytes` / `from_bytes`): an upload
//! left between two packets continues in another process from its encoding exactly as
//! it would have in the same process, and damaged or hostile bytes are refused without
//! a panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]
// test harness: a failure is a panic

// Tests are the caller: they own the clock that the core is handed.
#![allow(clippy::disallowed_methods)]

mod common;

use std::time::{Duration, Instant};

use bytes::BytesMut;
use common::mem::MemStore;
use common::pattern;
use proptest::prelude::*;
use protocol_core::crypto::{AesKey, CbcEncryptor, ChecksumAlgorithm, PrivateKey};
use protocol_core::wire::{self, RequestEncoding};
use protocol_core::*;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;

type Conn = ServerConnection<ChaCha20Rng>;

fn config(checksum: ChecksumAlgorithm) -> ServerConfig {
    ServerConfig {
        dialect: ServerDialect {
            checksum,
            ..ServerDialect::default()
        },
        ..ServerConfig::default()
    }
}

fn frame(id: ClientId, req: &Request) -> BytesMut {
    let mut b = BytesMut::new();
    wire::encode_request(&mut b, id, req, RequestEncoding::default());
    b
}

/// One frame per packet of an upload of `data`: one CBC stream cut into `unit`-byte
/// packets, or (`per_packet`) each `unit`-byte piece of the file encrypted on its own.
fn upload_frames(
    id: ClientId,
    aes: &AesKey,
    data: &[u8],
    unit: usize,
    per_packet: bool,
) -> Vec<BytesMut> {
    let encrypt = |plain: &[u8]| {
        let mut enc = CbcEncryptor::new(aes);
        let mut ct = BytesMut::new();
        enc.update(plain, &mut ct);
        enc.finish(&mut ct);
        ct.to_vec()
    };
    let contents: Vec<Vec<u8>> = if per_packet {
        data.chunks(unit).map(encrypt).collect()
    } else {
        encrypt(data).chunks(unit).map(<[u8]>::to_vec).collect()
    };
    let total_ct: usize = contents.iter().map(Vec::len).sum();
    let total = contents.len() as u16;
    contents
        .into_iter()
        .enumerate()
        .map(|(i, content)| {
            let content_size = if per_packet { content.len() } else { total_ct } as u32;
            frame(
                id,
                &Request::SendFile(FilePacket {
                    content_size,
                    original_size: data.len() as u32,
                    packet_number: i as u16 + 1,
                    total_packets: total,
                    file_name: FieldString::new("f.bin").unwrap(),
                    content: content.into(),
                }),
            )
        })
        .collect()
}

/// Feeds `frames` to `s`, answering every question (a lookup with `record`), and
/// returns the decrypted bytes released, the suspended upload if the connection ended
/// mid-upload, and the checksum of a 1603.
struct Fed {
    data: Vec<u8>,
    suspended: Option<SuspendedUpload>,
    checksum: Option<u32>,
}

fn feed(
    s: &mut Conn,
    frames: &[BytesMut],
    mut record: Option<ClientRecord>,
    eof: bool,
    now: Instant,
) -> Fed {
    let mut fed = Fed {
        data: Vec::new(),
        suspended: None,
        checksum: None,
    };
    for f in frames {
        // As a driver does: input left in the buffer (an 828 is looked up at its
        // header, before its payload is taken) is handed in again after the answers.
        let mut b = f.clone();
        loop {
            let before = b.len();
            let _ = s.handle_input(&mut b, now);
            let answered = drain(s, &mut record, &mut fed);
            if b.is_empty() || (b.len() == before && answered == 0) {
                break;
            }
        }
    }
    if eof {
        s.handle_eof();
        drain(s, &mut record, &mut fed);
    }
    fed
}

/// Answers every event; returns how many there were.
fn drain(s: &mut Conn, record: &mut Option<ClientRecord>, fed: &mut Fed) -> usize {
    let mut n = 0;
    while let Some(ev) = s.poll_event() {
        n += 1;
        match ev {
            ServerEvent::LookupClient { ticket, .. } => {
                let _ = s.client_lookup(ticket, record.take());
            }
            ServerEvent::UploadData { data, .. } => {
                fed.data.extend_from_slice(&data);
                let _ = s.data_written(data.len());
            }
            ServerEvent::UploadFinished {
                ticket, checksum, ..
            } => {
                fed.checksum = Some(checksum);
                let _ = s.succeed(ticket);
            }
            ServerEvent::UploadSuspended { upload, .. } => fed.suspended = Some(upload),
            _ => {}
        }
    }
    n
}

/// A connection whose session already holds the client's key (it registered on it).
fn connection_with_session(checksum: ChecksumAlgorithm) -> (Conn, ClientId, AesKey) {
    let now = Instant::now();
    let mut s = Conn::new(config(checksum), ChaCha20Rng::seed_from_u64(2), now);
    let mut store = MemStore::default();
    let name = FieldString::new("bob").unwrap();
    let mut b = frame(ClientId::ZERO, &Request::Register { name: name.clone() });
    s.handle_input(&mut b, now).unwrap();
    store.serve(&mut s);
    let id = *store.clients.keys().next().unwrap();
    let key = PrivateKey::from_base64(&common::rsa_field("private_pkcs8_b64")).unwrap();
    let public_key = key.public_key().to_field().unwrap().to_vec().into();
    let mut b = frame(id, &Request::SendPublicKey { name, public_key });
    s.handle_input(&mut b, now).unwrap();
    store.serve(&mut s);
    let aes = store.clients[&id].aes_key.as_ref().unwrap().duplicate();
    let mut out = BytesMut::new();
    s.poll_transmit(&mut out);
    (s, id, aes)
}

/// Uploads `data`, suspending after packet `split` and then sending each remaining
/// packet on a connection of its own (a connection per request), every one continuing
/// from the bytes the previous one left; returns the first encoding, the bytes released
/// and the 1603 checksum.
fn split_upload(
    data: &[u8],
    unit: usize,
    per_packet: bool,
    checksum: ChecksumAlgorithm,
    split: usize,
) -> (Vec<u8>, Vec<u8>, Option<u32>) {
    let now = Instant::now();
    let (mut s, id, aes) = connection_with_session(checksum);
    let frames = upload_frames(id, &aes, data, unit, per_packet);
    let first = feed(&mut s, &frames[..split], None, true, now);
    let up = first.suspended.expect("suspended at the connection's end");
    let first_bytes = up.to_bytes();
    let mut bytes = first_bytes.clone();
    let mut all = first.data;
    let mut sum = None;
    for (i, f) in frames[split..].iter().enumerate() {
        let back = SuspendedUpload::from_bytes(&bytes, &aes).expect("decodes");
        assert_eq!(back.to_bytes(), bytes, "the encoding is stable");
        assert_eq!(back.client_id(), id);
        let mut t = Conn::new(config(checksum), ChaCha20Rng::seed_from_u64(3), now);
        let record = ClientRecord {
            aes_key: Some(aes.duplicate()),
            key_age: Duration::ZERO,
            suspended: Some(back),
        };
        let fed = feed(&mut t, std::slice::from_ref(f), Some(record), true, now);
        all.extend_from_slice(&fed.data);
        sum = fed.checksum;
        match fed.suspended {
            Some(up) => bytes = up.to_bytes(),
            None => assert_eq!(split + i + 1, frames.len(), "suspended until the last"),
        }
    }
    (first_bytes, all, sum)
}

#[test]
fn an_upload_continues_from_its_bytes_at_every_packet_in_every_mode() {
    let data = pattern(5_000, 7);
    for (unit, per_packet) in [(1024, false), (256, false), (1000, true), (96, false)] {
        for checksum in [ChecksumAlgorithm::Cksum, ChecksumAlgorithm::Crc32] {
            let packets = upload_frames(
                ClientId::ZERO,
                &AesKey::from_slice(&[0; 32]).unwrap(),
                &data,
                unit,
                per_packet,
            )
            .len();
            for split in 1..packets {
                let (_, got, sum) = split_upload(&data, unit, per_packet, checksum, split);
                assert!(
                    got == data,
                    "bytes differ: unit {unit}, per packet {per_packet}, split {split}: {} of {}, {sum:?}",
                    got.len(),
                    data.len()
                );
                let mut expected = protocol_core::crypto::Checksum::new(checksum);
                expected.update(&data);
                assert_eq!(sum, Some(expected.value()), "unit {unit}, split {split}");
            }
        }
    }
}

#[test]
fn a_packet_cut_mid_block_continues_from_its_bytes() {
    // 1000-byte packets of one stream: every suspension leaves a partial block.
    let data = pattern(20_000, 9);
    for split in [1, 2, 7, 19] {
        let (bytes, got, _) = split_upload(&data, 1000, false, ChecksumAlgorithm::Cksum, split);
        assert!(got == data, "split {split}");
        assert!(
            bytes.len() < 200,
            "no ciphertext is held once the mode is known"
        );
    }
}

#[test]
fn another_key_is_refused() {
    let data = pattern(5_000, 1);
    let (bytes, _, _) = split_upload(&data, 1024, false, ChecksumAlgorithm::Cksum, 2);
    let other = AesKey::from_slice(&[9u8; 32]).unwrap();
    assert_eq!(
        SuspendedUpload::from_bytes(&bytes, &other).unwrap_err(),
        DecodeError::KeyMismatch
    );
    let short = AesKey::from_slice(&[9u8; 16]).unwrap();
    assert!(SuspendedUpload::from_bytes(&bytes, &short).is_err());
}

#[test]
fn every_truncation_and_any_trailing_byte_is_refused() {
    let (bytes2, aes, _) = sample();
    for n in 0..bytes2.len() {
        assert!(
            SuspendedUpload::from_bytes(&bytes2[..n], &aes).is_err(),
            "cut at {n}"
        );
    }
    let mut longer = bytes2.clone();
    longer.push(0);
    assert_eq!(
        SuspendedUpload::from_bytes(&longer, &aes).unwrap_err(),
        DecodeError::TrailingBytes
    );
}

/// A valid encoding (an upload suspended after packet 2 of 5, mode still probing) and
/// the frames that would follow it.
fn sample() -> (Vec<u8>, AesKey, Vec<BytesMut>) {
    let now = Instant::now();
    let data = pattern(5_000, 4);
    let (mut s, id, aes) = connection_with_session(ChecksumAlgorithm::Cksum);
    let frames = upload_frames(id, &aes, &data, 1024, false);
    let up = feed(&mut s, &frames[..2], None, true, now)
        .suspended
        .unwrap();
    (up.to_bytes(), aes, frames[2..].to_vec())
}

/// Decodes `bytes`; if they decode, continues the upload with `rest` on a fresh
/// connection. Neither may panic.
fn decode_and_continue(bytes: &[u8], aes: &AesKey, rest: &[BytesMut]) {
    if let Ok(up) = SuspendedUpload::from_bytes(bytes, aes) {
        let now = Instant::now();
        let mut t = Conn::new(ServerConfig::default(), ChaCha20Rng::seed_from_u64(5), now);
        let record = ClientRecord {
            aes_key: Some(aes.duplicate()),
            key_age: Duration::ZERO,
            suspended: Some(up),
        };
        feed(&mut t, rest, Some(record), true, now);
    }
}

#[test]
fn fuzz_mutated_encodings_never_panic() {
    // Deterministic fuzzing: 20 000 mutants of a valid encoding (bytes overwritten,
    // inserted, removed, lengths cut), each decoded and, if it decodes, continued.
    let (bytes, aes, rest) = sample();
    let mut rng = ChaCha20Rng::seed_from_u64(14);
    let mut decoded = 0;
    for _ in 0..20_000 {
        let mut m = bytes.clone();
        for _ in 0..=(rng.next_u32() % 4) {
            let at = rng.next_u32() as usize % (m.len() + 1);
            match rng.next_u32() % 4 {
                0 if at < m.len() => m[at] = rng.next_u32() as u8,
                1 => m.insert(at, rng.next_u32() as u8),
                2 if at < m.len() => {
                    m.remove(at);
                }
                _ => m.truncate(at),
            }
        }
        if SuspendedUpload::from_bytes(&m, &aes).is_ok() {
            decoded += 1;
        }
        decode_and_continue(&m, &aes, &rest);
    }
    // Some mutants (a counter or a flag changed) are still uploads: they went on.
    assert!(decoded > 0);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let aes = AesKey::from_slice(&[3u8; 32]).unwrap();
        let _ = SuspendedUpload::from_bytes(&bytes, &aes);
        let mut prefixed = b"SUSP\x01".to_vec();
        prefixed.extend_from_slice(&bytes);
        let _ = SuspendedUpload::from_bytes(&prefixed, &aes);
    }

    #[test]
    fn any_byte_of_a_valid_encoding_changed_never_panics(
        at in any::<prop::sample::Index>(),
        value in any::<u8>(),
    ) {
        let (mut bytes, aes, rest) = sample();
        let i = at.index(bytes.len());
        bytes[i] = value;
        decode_and_continue(&bytes, &aes, &rest);
    }
}
