//! The secure extension end to end in memory: a `SecureClient` against a
//! `ServerConnection` inside (imagined) TLS, with a small store in the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(clippy::disallowed_methods)] // a test may read the clock the core is given

use std::collections::HashMap;
use std::time::Instant;

use bytes::BytesMut;
use ed25519_dalek::SigningKey;
use protocol_core::crypto::PrivateKey;
use protocol_core::secure::frame::{Described, FileEntry, Refusal};
use protocol_core::secure::keys::StoredKey;
use protocol_core::secure::{
    ClientKeys, PutResume, SecureClient, SecureClientEvent, SecureEvent, SecureLimits,
    SessionBinding,
};
use protocol_core::{ClientId, ServerConfig, ServerConnection, ServerEvent};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use sha2::{Digest, Sha256};

#[derive(Default)]
struct Store {
    legacy: HashMap<ClientId, Vec<u8>>,
    strong: HashMap<ClientId, StoredKey>,
    names: HashMap<String, ClientId>,
    went_secure: Vec<ClientId>,
    partial: Option<(String, u64, Vec<u8>, Vec<u8>)>, // name, offset, state, bytes
    writing: Vec<u8>,
    files: HashMap<String, (Vec<u8>, [u8; 32], u32)>,
    checkpoints: u32,
}

struct Pair {
    client: SecureClient,
    server: ServerConnection<ChaCha20Rng>,
    now: Instant,
    to_server: BytesMut,
    to_client: BytesMut,
    split: usize,
}

fn pair(binding: [u8; 32], checkpoint_every: u64) -> Pair {
    let now = Instant::now();
    let config = ServerConfig {
        secure: SecureLimits {
            checkpoint_every,
            download_window: 4096,
        },
        ..ServerConfig::default()
    };
    let mut server =
        ServerConnection::new(config, ChaCha20Rng::seed_from_u64(binding[0] as u64), now);
    server.enter_secure(SessionBinding::new(binding));
    Pair {
        client: SecureClient::new(SessionBinding::new(binding)),
        server,
        now,
        to_server: BytesMut::new(),
        to_client: BytesMut::new(),
        split: usize::MAX,
    }
}

impl Pair {
    /// Moves bytes both ways and answers every server event from `store` until
    /// nothing moves; returns the client's events.
    fn run(&mut self, store: &mut Store) -> Vec<SecureClientEvent> {
        let mut got = Vec::new();
        loop {
            let mut moved = false;
            self.client.poll_transmit(&mut self.to_server);
            // Feed the server in pieces of `split` bytes (1 = a byte at a time).
            let mut fed = BytesMut::new();
            while !self.to_server.is_empty() || !fed.is_empty() {
                let n = self.split.min(self.to_server.len());
                fed.extend_from_slice(&self.to_server.split_to(n));
                let before = fed.len();
                let _ = self.server.handle_input(&mut fed, self.now);
                if fed.len() != before {
                    moved = true;
                }
                while let Some(ev) = self.server.poll_event() {
                    moved = true;
                    answer(&mut self.server, ev, store);
                }
                if self.to_server.is_empty() && fed.len() == before {
                    break;
                }
            }
            self.to_server = fed;
            while let Some(ev) = self.server.poll_event() {
                moved = true;
                answer(&mut self.server, ev, store);
            }
            self.server.poll_transmit(&mut self.to_client);
            if !self.to_client.is_empty() {
                moved = true;
                self.client.handle_input(&mut self.to_client).unwrap();
            }
            while let Some(ev) = self.client.poll_event() {
                got.push(ev);
            }
            if !moved {
                return got;
            }
        }
    }

    fn cut(&mut self, store: &mut Store) {
        self.server.handle_eof();
        while let Some(ev) = self.server.poll_event() {
            answer(&mut self.server, ev, store);
        }
    }
}

fn answer(conn: &mut ServerConnection<ChaCha20Rng>, ev: ServerEvent, store: &mut Store) {
    let ServerEvent::Secure(ev) = ev else {
        panic!("a legacy event on a secure connection: {ev:?}")
    };
    let s = conn.secure().unwrap();
    match ev {
        SecureEvent::SignIn { ask, client_id } => {
            let keys = (store.legacy.contains_key(&client_id)
                || store.strong.contains_key(&client_id))
            .then(|| ClientKeys {
                legacy: store.legacy.get(&client_id).cloned(),
                strong: store.strong.get(&client_id).cloned(),
                keep_legacy: false,
            });
            s.sign_in_keys(ask, keys).unwrap();
        }
        SecureEvent::SignedIn { client_id, .. } => store.went_secure.push(client_id),
        SecureEvent::Register {
            ask,
            client_id,
            name,
            key,
        } => {
            let free = !store.names.contains_key(&name);
            if free {
                store.names.insert(name, client_id);
                store.strong.insert(client_id, key);
            }
            s.registered(ask, free).unwrap();
        }
        SecureEvent::SetKey {
            ask,
            client_id,
            key,
        } => {
            store.strong.insert(client_id, key);
            s.done(ask).unwrap();
        }
        SecureEvent::PutBegin {
            ask, name, size, ..
        } => {
            let resume = match &store.partial {
                Some((n, offset, state, bytes)) if *n == name && bytes.len() as u64 <= size => {
                    store.writing = bytes.clone();
                    Some(PutResume {
                        offset: *offset,
                        state: state.clone(),
                    })
                }
                _ => {
                    store.writing.clear();
                    None
                }
            };
            s.put_from(ask, resume).unwrap();
        }
        SecureEvent::PutData { offset, data } => {
            assert_eq!(offset, store.writing.len() as u64);
            store.writing.extend_from_slice(&data);
            s.data_written(data.len()).unwrap();
        }
        SecureEvent::PutCheckpoint {
            name,
            offset,
            state,
            ..
        } => {
            store.checkpoints += 1;
            assert_eq!(offset, store.writing.len() as u64);
            store.partial = Some((name, offset, state, store.writing.clone()));
        }
        SecureEvent::PutComplete {
            ask,
            name,
            sha256,
            cksum,
            ..
        } => {
            store.partial = None;
            store
                .files
                .insert(name, (std::mem::take(&mut store.writing), sha256, cksum));
            s.done(ask).unwrap();
        }
        SecureEvent::PutFailed { .. } => {
            store.partial = None;
            store.writing.clear();
        }
        SecureEvent::List { ask, .. } => {
            let mut files: Vec<FileEntry> = store
                .files
                .iter()
                .map(|(name, (bytes, sha, cksum))| FileEntry {
                    name: name.clone(),
                    content: Described {
                        size: bytes.len() as u64,
                        verified: true,
                        sha256: Some(*sha),
                        cksum: Some(*cksum),
                        updated: "now".into(),
                    },
                    versions: 0,
                })
                .collect();
            files.sort_by(|a, b| a.name.cmp(&b.name));
            s.listing(ask, files).unwrap();
        }
        SecureEvent::Get { ask, name, .. } => match store.files.get(&name) {
            Some((bytes, sha, cksum)) => {
                let content = Described {
                    size: bytes.len() as u64,
                    verified: true,
                    sha256: Some(*sha),
                    cksum: Some(*cksum),
                    updated: "now".into(),
                };
                store.writing = bytes.clone();
                s.get_begin(ask, None, content).unwrap();
            }
            None => s.refuse(ask, Refusal::NotFound, "no such file").unwrap(),
        },
        SecureEvent::GetWants { max } => {
            // The test keeps the download's remaining bytes in `writing`.
            let n = max.min(store.writing.len());
            let chunk: Vec<u8> = store.writing.drain(..n).collect();
            s.get_data(&chunk).unwrap();
        }
        other => panic!("unexpected {other:?}"),
    }
}

fn legacy_client(store: &mut Store, seed: u64) -> (ClientId, PrivateKey) {
    let key = PrivateKey::generate(&mut ChaCha20Rng::seed_from_u64(seed)).unwrap();
    let id = ClientId([seed as u8 + 1; 16]);
    store
        .legacy
        .insert(id, key.public_key().to_field().unwrap().to_vec());
    (id, key)
}

fn file(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
}

fn sha(b: &[u8]) -> [u8; 32] {
    Sha256::digest(b).into()
}

#[test]
fn a_legacy_client_signs_in_with_its_rsa_key() {
    let mut store = Store::default();
    let (id, key) = legacy_client(&mut store, 1);
    let mut p = pair([1; 32], 1 << 20);
    p.client.sign_in(id, &key).unwrap();
    assert_eq!(
        p.run(&mut store),
        vec![SecureClientEvent::SignedIn { legacy_open: false }]
    );
    assert_eq!(store.went_secure, vec![id]);
    assert_eq!(p.server.client_id(), Some(id));
}

#[test]
fn a_signature_from_another_session_is_refused() {
    let mut store = Store::default();
    let (id, key) = legacy_client(&mut store, 2);
    // Captured on session A: a sign-in frame signed over A's binding.
    let mut a = SecureClient::new(SessionBinding::new([0xaa; 32]));
    a.sign_in(id, &key).unwrap();
    let mut captured = BytesMut::new();
    a.poll_transmit(&mut captured);
    // Replayed on session B.
    let mut p = pair([0xbb; 32], 1 << 20);
    p.server.handle_input(&mut captured, p.now).unwrap();
    while let Some(ev) = p.server.poll_event() {
        answer(&mut p.server, ev, &mut store);
    }
    let mut out = BytesMut::new();
    p.server.poll_transmit(&mut out);
    let resp = protocol_core::secure::frame::decode_response(&mut out)
        .unwrap()
        .unwrap();
    assert!(
        matches!(
            resp,
            protocol_core::secure::frame::SecureResponse::Refused {
                reason: Refusal::BadSignature,
                ..
            }
        ),
        "{resp:?}"
    );
    assert!(p.server.is_finished());
    assert!(store.went_secure.is_empty());
    assert_eq!(p.server.client_id(), None);
}

#[test]
fn nothing_is_served_before_signing_in() {
    let mut store = Store::default();
    let mut p = pair([3; 32], 1 << 20);
    p.client.list().unwrap();
    let got = p.run(&mut store);
    assert!(matches!(
        got.as_slice(),
        [SecureClientEvent::Refused {
            reason: Refusal::NotSignedIn,
            ..
        }]
    ));
    assert!(p.server.is_finished());
}

#[test]
fn an_upload_cut_resumes_from_the_servers_offset_and_ends_verified() {
    for split in [usize::MAX, 4093, 1] {
        let mut store = Store::default();
        let (id, key) = legacy_client(&mut store, 4);
        let data = file(if split == 1 { 20_000 } else { 300_000 });
        let mut p = pair([4; 32], 8192);
        p.split = split;
        p.client.sign_in(id, &key).unwrap();
        p.run(&mut store);
        p.client.put_begin("big.bin", data.len() as u64).unwrap();
        assert_eq!(
            p.run(&mut store),
            vec![SecureClientEvent::PutOffset { offset: 0 }]
        );
        let cut_at = data.len() / 2 + 17;
        p.client.put_data(&data[..cut_at]).unwrap();
        p.run(&mut store);
        p.cut(&mut store);
        let (_, offset, _, _) = store.partial.clone().unwrap();
        assert_eq!(offset, cut_at as u64, "the cut saves the place");

        let mut p = pair([5; 32], 8192);
        p.client.sign_in(id, &key).unwrap();
        p.run(&mut store);
        p.client.put_begin("big.bin", data.len() as u64).unwrap();
        assert_eq!(
            p.run(&mut store),
            vec![SecureClientEvent::PutOffset { offset }]
        );
        p.client.put_data(&data[offset as usize..]).unwrap();
        p.client.put_end(sha(&data)).unwrap();
        let got = p.run(&mut store);
        assert_eq!(
            got,
            vec![SecureClientEvent::Stored {
                size: data.len() as u64,
                cksum: protocol_core::crypto::cksum(&data),
                sha256: sha(&data),
            }]
        );
        assert_eq!(store.files["big.bin"].0, data);
        assert!(store.checkpoints >= 2, "{}", store.checkpoints);
    }
}

#[test]
fn a_hash_that_differs_discards_the_upload() {
    let mut store = Store::default();
    let (id, key) = legacy_client(&mut store, 6);
    let data = file(5000);
    let mut p = pair([6; 32], 1 << 20);
    p.client.sign_in(id, &key).unwrap();
    p.run(&mut store);
    p.client.put_begin("f", data.len() as u64).unwrap();
    p.run(&mut store);
    p.client.put_data(&data).unwrap();
    p.client.put_end([0; 32]).unwrap();
    let got = p.run(&mut store);
    assert!(matches!(
        got.as_slice(),
        [SecureClientEvent::Refused {
            reason: Refusal::HashMismatch,
            ..
        }]
    ));
    assert!(store.files.is_empty());
    assert!(store.partial.is_none());
}

#[test]
fn a_new_client_registers_a_strong_key_and_a_download_streams_back() {
    let mut store = Store::default();
    let sk = SigningKey::from_bytes(&[7; 32]);
    let mut p = pair([7; 32], 1 << 20);
    p.client.register("carol", &sk).unwrap();
    let got = p.run(&mut store);
    let [SecureClientEvent::Registered { client_id }] = got.as_slice() else {
        panic!("{got:?}")
    };
    assert_ne!(client_id.0[..2], [0x16, 0x03]);
    let data = file(50_000);
    p.client.put_begin("x", data.len() as u64).unwrap();
    p.run(&mut store);
    p.client.put_data(&data).unwrap();
    p.client.put_end(sha(&data)).unwrap();
    p.run(&mut store);
    p.client.list().unwrap();
    let got = p.run(&mut store);
    assert!(
        matches!(&got[..], [SecureClientEvent::File(f), SecureClientEvent::ListEnd { count: 1 }] if f.name == "x")
    );
    p.client.get("x", None, 0, false).unwrap();
    let got = p.run(&mut store);
    let mut back = Vec::new();
    let mut frames = 0;
    for ev in &got {
        if let SecureClientEvent::GetData(d) = ev {
            back.extend_from_slice(d);
            frames += 1;
        }
    }
    assert_eq!(back, data);
    assert!(
        frames > 5,
        "the window of 4096 bytes splits the download: {frames}"
    );
    assert_eq!(got.last(), Some(&SecureClientEvent::GetEnd));

    // The name is taken now; the key signs in on another session.
    let mut q = pair([8; 32], 1 << 20);
    q.client
        .register("carol", &SigningKey::from_bytes(&[9; 32]))
        .unwrap();
    assert!(matches!(
        q.run(&mut store).as_slice(),
        [SecureClientEvent::Refused {
            reason: Refusal::NameTaken,
            ..
        }]
    ));
    let mut r = pair([10; 32], 1 << 20);
    r.client.sign_in(*client_id, &sk).unwrap();
    assert_eq!(
        r.run(&mut store),
        vec![SecureClientEvent::SignedIn { legacy_open: false }]
    );
}

#[test]
fn after_a_stronger_key_the_legacy_key_no_longer_signs_in() {
    let mut store = Store::default();
    let (id, key) = legacy_client(&mut store, 11);
    let mut p = pair([11; 32], 1 << 20);
    p.client.sign_in(id, &key).unwrap();
    p.run(&mut store);
    let strong = SigningKey::from_bytes(&[12; 32]);
    p.client.set_key(&strong).unwrap();
    assert_eq!(p.run(&mut store), vec![SecureClientEvent::Done]);

    let mut q = pair([12; 32], 1 << 20);
    q.client.sign_in(id, &key).unwrap();
    assert!(matches!(
        q.run(&mut store).as_slice(),
        [SecureClientEvent::Refused {
            reason: Refusal::KeyRetired,
            ..
        }]
    ));
    let mut r = pair([13; 32], 1 << 20);
    r.client.sign_in(id, &strong).unwrap();
    assert_eq!(
        r.run(&mut store),
        vec![SecureClientEvent::SignedIn { legacy_open: false }]
    );
}

#[test]
fn a_weak_new_key_is_refused() {
    let mut store = Store::default();
    let (_, legacy) = legacy_client(&mut store, 14);
    let mut p = pair([14; 32], 1 << 20);
    // The legacy RSA-1024 key is not acceptable as a new key.
    p.client.register("dave", &legacy).unwrap();
    assert!(matches!(
        p.run(&mut store).as_slice(),
        [SecureClientEvent::Refused {
            reason: Refusal::WeakKey,
            ..
        }]
    ));
    assert!(store.names.is_empty());
}

/// The seeded simulation of cut-and-resume: for each seed, a file of random size is
/// uploaded through sessions cut at random bytes (the server saving its place at
/// random checkpoint intervals and at each cut), each new session resuming from
/// the server's offset; now and then a byte is flipped on the way, which the final
/// hash comparison must catch (the upload is then discarded and sent again whole).
/// Invariant: a file is stored only with exactly the client's bytes, verified.
/// A failing seed replays exactly (`SEED=n cargo test -p protocol-core --test secure`).
#[test]
fn seeded_cuts_and_resumes_store_exactly_the_clients_bytes() {
    use rand_chacha::rand_core::RngCore;
    let seeds: Vec<u64> = match std::env::var("SEED") {
        Ok(s) => vec![s.parse().unwrap()],
        Err(_) => (0..150).collect(),
    };
    for seed in seeds {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let mut store = Store::default();
        let (id, key) = legacy_client(&mut store, 20 + (seed % 5));
        let size = (rng.next_u32() % 200_000) as usize + 1;
        let data = file(size);
        let checkpoint = 1 + (rng.next_u32() % 50_000) as u64;
        let mut sessions = 0;
        let flip_once = rng.next_u32() % 4 == 0;
        let mut flipped = false;
        loop {
            sessions += 1;
            assert!(sessions < 100, "seed {seed}: no progress");
            let mut p = pair([sessions as u8; 32], checkpoint);
            p.split = 1 + (rng.next_u32() % 9000) as usize;
            p.client.sign_in(id, &key).unwrap();
            p.run(&mut store);
            p.client.put_begin("f", size as u64).unwrap();
            let got = p.run(&mut store);
            let [SecureClientEvent::PutOffset { offset }] = got.as_slice() else {
                panic!("seed {seed}: {got:?}")
            };
            let offset = *offset as usize;
            // The client's rest of the file, maybe cut, maybe with a flipped byte.
            let mut rest = data[offset..].to_vec();
            if flip_once && !flipped && !rest.is_empty() && rng.next_u32() % 2 == 0 {
                let at = (rng.next_u32() as usize) % rest.len();
                rest[at] ^= 0x40;
                flipped = true;
            }
            let cut = rng.next_u32() % 3 == 0 && rest.len() > 1;
            if cut {
                let at = 1 + (rng.next_u32() as usize) % (rest.len() - 1);
                p.client.put_data(&rest[..at]).unwrap();
                p.run(&mut store);
                p.cut(&mut store);
                continue;
            }
            p.client.put_data(&rest).unwrap();
            p.client.put_end(sha(&data)).unwrap();
            match p.run(&mut store).as_slice() {
                [SecureClientEvent::Stored { sha256, .. }] => {
                    assert_eq!(*sha256, sha(&data), "seed {seed}");
                    break;
                }
                [SecureClientEvent::Refused {
                    reason: Refusal::HashMismatch,
                    ..
                }] => {
                    assert!(flipped, "seed {seed}: a mismatch with no flipped byte");
                    assert!(store.partial.is_none() && store.files.is_empty());
                }
                other => panic!("seed {seed}: {other:?}"),
            }
        }
        assert_eq!(store.files["f"].0, data, "seed {seed}");
        assert_eq!(store.files["f"].1, sha(&data), "seed {seed}");
    }
}
