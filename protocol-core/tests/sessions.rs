//! The two whole-session transcripts of `tests/vectors/`, byte for byte, for
//! both roles; every frame fed whole, split at every offset, and a byte at a time.
#![allow(clippy::unwrap_used, clippy::expect_used)]
// test harness: a failure is a panic

// Tests are the caller: they own the clock that the core is handed.
#![allow(clippy::disallowed_methods)]

mod common;

use std::time::Instant;

use bytes::BytesMut;
use common::mem::MemStore;
use common::*;
use protocol_core::crypto::PrivateKey;
use protocol_core::*;
use rand_chacha::rand_core::{CryptoRng, RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;

const NAME: &str = "Michael Jackson";
const FILE_NAME: &str = "New_product_spec.docx";
const TRANSCRIPT_ID: &str = "64f3f63985f04beb81a0e43321880182";

fn file() -> Vec<u8> {
    pattern(3000, 42)
}

fn private_key() -> PrivateKey {
    PrivateKey::from_base64(&rsa_field("private_pkcs8_b64")).unwrap()
}

fn client_config(reconnect: bool) -> ClientConfig {
    let key = private_key();
    ClientConfig {
        name: FieldString::new(NAME).unwrap(),
        file_name: FieldString::new(FILE_NAME).unwrap(),
        file_size: 3000,
        identity: reconnect.then(|| Identity {
            client_id: ClientId::from_hex(TRANSCRIPT_ID).unwrap(),
            private_key: key.clone(),
        }),
        registration_key: (!reconnect).then_some(key),
        dialect: Dialect {
            packet_size: 1024,
            ..Dialect::default()
        },
    }
}

/// How the frames of one side are cut when fed.
#[derive(Clone, Copy, Debug)]
enum Cut {
    Whole,
    /// Frame number `frame` (counting only the fed side) split at `at`.
    SplitOne {
        frame: usize,
        at: usize,
    },
    ByteAtATime,
}

fn pieces(bytes: &[u8], index: usize, cut: Cut) -> Vec<&[u8]> {
    match cut {
        Cut::Whole => vec![bytes],
        Cut::SplitOne { frame, at } if frame == index => vec![&bytes[..at], &bytes[at..]],
        Cut::SplitOne { .. } => vec![bytes],
        Cut::ByteAtATime => bytes.chunks(1).collect(),
    }
}

fn drain_client<R: rand_chacha::rand_core::CryptoRngCore>(
    client: &mut ClientSession<R>,
    produced: &mut BytesMut,
    events: &mut Vec<String>,
) {
    while let Some(ev) = client.poll_event() {
        events.push(format!("{ev:?}"));
        if let ClientEvent::SendFile { .. } = ev {
            for chunk in file().chunks(1000) {
                assert_eq!(client.push_file_data(chunk).unwrap(), chunk.len());
            }
            client.end_of_file().unwrap();
        }
    }
    client.poll_transmit(produced);
}

/// Feeds the `S>` frames to a client; returns everything it sent and its events.
fn run_client(transcript: &str, reconnect: bool, cut: Cut) -> (Vec<u8>, Vec<u8>, Vec<String>) {
    let frames = session(transcript);
    let mut client =
        ClientSession::new(client_config(reconnect), ChaCha20Rng::seed_from_u64(3)).unwrap();
    let mut produced = BytesMut::new();
    let mut expected = Vec::new();
    let mut events = Vec::new();
    let mut input = BytesMut::new();
    let mut s_index = 0;
    for f in &frames {
        match f {
            Frame::C(b) => expected.extend_from_slice(b),
            Frame::S(b) => {
                drain_client(&mut client, &mut produced, &mut events);
                for piece in pieces(b, s_index, cut) {
                    input.extend_from_slice(piece);
                    client.handle_input(&mut input).unwrap();
                    drain_client(&mut client, &mut produced, &mut events);
                }
                s_index += 1;
            }
        }
    }
    drain_client(&mut client, &mut produced, &mut events);
    assert!(
        client.is_finished(),
        "{cut:?}: client not finished: {events:?}"
    );
    (produced.to_vec(), expected, events)
}

fn s_frame_lens(transcript: &str) -> Vec<usize> {
    session(transcript)
        .iter()
        .filter_map(|f| match f {
            Frame::S(b) => Some(b.len()),
            _ => None,
        })
        .collect()
}

fn check_client_transcript(transcript: &str, reconnect: bool) {
    let (produced, expected, events) = run_client(transcript, reconnect, Cut::Whole);
    assert_eq!(hex::encode(&produced), hex::encode(&expected));
    assert!(
        events.last().unwrap().contains("Finished(Verified)"),
        "{events:?}"
    );
    let (p, _, e) = run_client(transcript, reconnect, Cut::ByteAtATime);
    assert_eq!(p, expected, "a byte at a time");
    assert_eq!(e, events, "a byte at a time gives the same events");
    for (i, len) in s_frame_lens(transcript).into_iter().enumerate() {
        for at in 0..=len {
            let cut = Cut::SplitOne { frame: i, at };
            let (p, _, e) = run_client(transcript, reconnect, cut);
            assert_eq!(p, expected, "{cut:?}");
            assert_eq!(e, events, "{cut:?}");
        }
    }
}

#[test]
fn client_reproduces_the_register_transcript() {
    check_client_transcript("session-register.txt", false);
}

#[test]
fn client_reproduces_the_reconnect_transcript_with_one_resend() {
    check_client_transcript("session-reconnect.txt", true);
    let (_, _, events) = run_client("session-reconnect.txt", true, Cut::Whole);
    assert!(events.iter().any(|e| e.contains("ChecksumMismatch")));
    assert_eq!(events.iter().filter(|e| e.contains("SendFile")).count(), 2);
}

/// An RNG that hands out the transcript's client id for 16-byte requests and its AES
/// key for 32-byte requests, so a server fed the `C>` frames can decrypt them.
struct ScriptedRng(ChaCha20Rng);

impl RngCore for ScriptedRng {
    fn next_u32(&mut self) -> u32 {
        self.0.next_u32()
    }
    fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        match dest.len() {
            16 => dest.copy_from_slice(&hex::decode(TRANSCRIPT_ID).unwrap()),
            32 => dest.copy_from_slice(&hex::decode(rsa_field("aes_key_hex")).unwrap()),
            _ => self.0.fill_bytes(dest),
        }
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_chacha::rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}
impl CryptoRng for ScriptedRng {}

fn seeded_store(reconnect: bool) -> MemStore {
    let mut store = MemStore::default();
    if reconnect {
        let id = ClientId::from_hex(TRANSCRIPT_ID).unwrap();
        store.clients.insert(
            id,
            mem::ClientRow {
                name: NAME.as_bytes().to_vec(),
                public_key: Some(hex::decode(rsa_field("public_spki_hex")).unwrap()),
                aes_key: None,
                last_seen: 0,
            },
        );
    }
    store
}

/// Feeds the `C>` frames to a server; returns its responses and the store.
fn run_server(transcript: &str, reconnect: bool, cut: Cut) -> (Vec<u8>, MemStore) {
    let now = Instant::now();
    let mut server = ServerConnection::new(
        ServerConfig::default(),
        ScriptedRng(ChaCha20Rng::seed_from_u64(5)),
        now,
    );
    let mut store = seeded_store(reconnect);
    let mut input = BytesMut::new();
    let mut out = BytesMut::new();
    let mut c_index = 0;
    for f in session(transcript) {
        if let Frame::C(b) = f {
            for piece in pieces(&b, c_index, cut) {
                input.extend_from_slice(piece);
                loop {
                    server.handle_input(&mut input, now).unwrap();
                    let before = store.log.len();
                    let had_events = {
                        let mut any = false;
                        while let Some(ev) = server.poll_event() {
                            any = true;
                            store.handle(&mut server, ev);
                        }
                        any
                    };
                    if !had_events && store.log.len() == before {
                        break;
                    }
                }
            }
            c_index += 1;
        }
    }
    server.poll_transmit(&mut out);
    assert!(
        input.is_empty(),
        "{cut:?}: server left {} bytes",
        input.len()
    );
    (out.to_vec(), store)
}

/// Splits a response stream into frames (7-byte header, little-endian size).
fn response_frames(mut b: &[u8]) -> Vec<Vec<u8>> {
    let mut v = Vec::new();
    while b.len() >= 7 {
        let n = 7 + u32::from_le_bytes([b[3], b[4], b[5], b[6]]) as usize;
        v.push(b[..n].to_vec());
        b = &b[n..];
    }
    assert!(b.is_empty());
    v
}

fn check_server_transcript(transcript: &str, reconnect: bool) {
    let expected: Vec<Vec<u8>> = session(transcript)
        .into_iter()
        .filter_map(|f| match f {
            Frame::S(b) => Some(b),
            _ => None,
        })
        .collect();
    let (out, store) = run_server(transcript, reconnect, Cut::Whole);
    let got = response_frames(&out);
    assert_eq!(got.len(), expected.len());
    let key = private_key();
    let good_cksum = 2689833030u32.to_le_bytes();
    for (g, e) in got.iter().zip(&expected) {
        assert_eq!(g[..3], e[..3], "same code");
        let code = u16::from_le_bytes([g[1], g[2]]);
        match code {
            // OAEP is randomised: decrypt ours, expect the (scripted) key.
            1602 | 1605 => {
                assert_eq!(g[7..23], e[7..23]);
                let aes = key.decrypt_aes_key(&g[23..]).unwrap();
                assert_eq!(
                    aes.as_bytes(),
                    hex::decode(rsa_field("aes_key_hex")).unwrap()
                );
            }
            // The reconnect transcript's first checksum is wrong on purpose; ours is right.
            1603 => {
                assert_eq!(g[..g.len() - 4], e[..e.len() - 4]);
                assert_eq!(g[g.len() - 4..], good_cksum);
            }
            _ => assert_eq!(g, e),
        }
    }
    let id = ClientId::from_hex(TRANSCRIPT_ID).unwrap();
    let stored = &store.files[&(id, FILE_NAME.as_bytes().to_vec())];
    assert!(stored.verified);
    assert_eq!(stored.data, file());

    let (o, s) = run_server(transcript, reconnect, Cut::ByteAtATime);
    assert_eq!(response_frames(&o).len(), expected.len());
    assert_eq!(s.files, store.files);
    let c_lens: Vec<usize> = session(transcript)
        .iter()
        .filter_map(|f| match f {
            Frame::C(b) => Some(b.len()),
            _ => None,
        })
        .collect();
    for (i, len) in c_lens.into_iter().enumerate() {
        for at in (0..=len)
            .step_by(if len > 300 { 7 } else { 1 })
            .chain([len])
        {
            let cut = Cut::SplitOne { frame: i, at };
            let (o, s) = run_server(transcript, reconnect, cut);
            assert_eq!(response_frames(&o).len(), expected.len(), "{cut:?}");
            assert_eq!(s.files, store.files, "{cut:?}");
        }
    }
}

#[test]
fn server_accepts_the_register_transcript() {
    check_server_transcript("session-register.txt", false);
}

#[test]
fn server_accepts_the_reconnect_transcript() {
    check_server_transcript("session-reconnect.txt", true);
}
