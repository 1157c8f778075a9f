//! A deterministic simulation: clients, a server, an in-memory store and a virtual
//! clock in one process, driven from a seed, with faults: a connection cut at any
//! byte, a flipped byte, a server restart that keeps the store, a slow store.
//!
//! Invariants, checked after every connection:
//! - a file is marked verified only if its bytes equal what its client sent under
//!   that name;
//! - a file once verified is never lost, and never replaced by unverified bytes;
//! - no connection hangs: every run ends (finished, failed, or cut) within a bound.
//!
//! `SIM_RUNS=n` sets the number of seeded runs (default 10,000); `SIM_SEED=s` replays
//! one. A failing run prints its seed.
#![allow(clippy::unwrap_used, clippy::expect_used)]
// test harness: a failure is a panic

// Tests are the caller: they own the clock that the core is handed.
#![allow(clippy::disallowed_methods)]

mod common;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use common::mem::MemStore;
use protocol_core::crypto::{ChecksumAlgorithm, PrivateKey};
use protocol_core::*;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;

fn key_pool() -> &'static Vec<PrivateKey> {
    static POOL: OnceLock<Vec<PrivateKey>> = OnceLock::new();
    POOL.get_or_init(|| {
        let mut rng = ChaCha20Rng::seed_from_u64(0xC0FFEE);
        (0..4)
            .map(|_| PrivateKey::generate(&mut rng).unwrap())
            .collect()
    })
}

#[derive(Clone, Copy, Debug)]
enum Fault {
    None,
    /// Cut the connection after this many bytes in the given direction.
    Cut {
        to_server: bool,
        at: usize,
    },
    /// Flip one bit of the byte at this offset in the given direction.
    Flip {
        to_server: bool,
        at: usize,
        bit: u8,
    },
    /// Kill the server (connection state lost, store kept) after this many steps.
    Restart {
        step: usize,
    },
}

struct SimClient {
    name: String,
    identity: Option<Identity>,
    key: PrivateKey,
    dialect: Dialect,
    /// Every content this client has tried to store under each file name.
    attempted: HashMap<String, Vec<Vec<u8>>>,
}

struct Sim {
    rng: ChaCha20Rng,
    store: MemStore,
    clock: Instant,
    /// Questions answered late (slow store): (connection steps to wait).
    slow_store: bool,
    ever_verified: HashSet<(ClientId, Vec<u8>)>,
    log: Vec<String>,
}

impl Sim {
    fn pick(&mut self, n: u64) -> u64 {
        self.rng.next_u64() % n.max(1)
    }

    fn random_dialect(&mut self) -> Dialect {
        let mut d = Dialect {
            packet_size: [16, 64, 100, 1000, 1024, 4096][self.pick(6) as usize],
            ..Dialect::default()
        };
        if self.pick(4) == 0 {
            d.byte_order = ByteOrder::Big;
        }
        if self.pick(4) == 0 {
            d.packet_fields = PacketFieldOrder::TotalFirst;
        }
        if self.pick(4) == 0 {
            d.per_packet_content_size = true;
        }
        if self.pick(4) == 0 {
            d.per_packet_encryption = true;
        }
        if self.pick(4) == 0 {
            d.crc_carries_client_name = true;
        }
        if self.pick(4) == 0 {
            d.one_request_per_write = true;
        }
        if !d.per_packet_encryption && !d.per_packet_content_size && self.pick(4) == 0 {
            d.pad_packets = true;
        }
        d
    }

    fn check_invariants(&mut self, clients: &[SimClient]) -> Result<(), String> {
        for ((id, name), f) in &self.store.files {
            if !f.verified {
                continue;
            }
            let owner = clients
                .iter()
                .find(|c| c.identity.as_ref().map(|i| i.client_id) == Some(*id))
                .ok_or_else(|| format!("verified file of unknown client {id}"))?;
            let tried = owner
                .attempted
                .get(std::str::from_utf8(name).unwrap_or(""))
                .ok_or("verified file under a name never sent")?;
            if !tried.contains(&f.data) {
                return Err(format!(
                    "verified file {:?} of {} holds bytes the client never sent ({} bytes)",
                    String::from_utf8_lossy(name),
                    owner.name,
                    f.data.len()
                ));
            }
            self.ever_verified.insert((*id, name.clone()));
        }
        for k in &self.ever_verified {
            match self.store.files.get(k) {
                Some(f) if f.verified => {}
                _ => return Err(format!("verified file {k:?} was lost or unverified")),
            }
        }
        Ok(())
    }

    /// One connection of one client run. Returns the session's final state.
    fn connection(
        &mut self,
        client: &mut SimClient,
        file_name: &str,
        data: &[u8],
        fault: Fault,
    ) -> Result<Option<Result<Outcome, ClientFailure>>, String> {
        let config = ClientConfig {
            name: FieldString::new(&client.name).unwrap(),
            file_name: FieldString::new(file_name).unwrap(),
            file_size: data.len() as u64,
            identity: client.identity.clone(),
            registration_key: Some(client.key.clone()),
            dialect: client.dialect.clone(),
        };
        let mut session =
            ClientSession::new(config, ChaCha20Rng::seed_from_u64(self.rng.next_u64()))
                .map_err(|e| e.to_string())?;
        let server_config = ServerConfig {
            limits: Limits {
                max_unwritten: 4096,
                ..Limits::default()
            },
            dialect: ServerDialect {
                checksum: client.dialect.checksum,
                ..ServerDialect::default()
            },
            ..ServerConfig::default()
        };
        let mut server = ServerConnection::new(
            server_config,
            ChaCha20Rng::seed_from_u64(self.rng.next_u64()),
            self.clock,
        );
        let (mut c_out, mut s_in, mut s_out, mut c_in) = (
            BytesMut::new(),
            BytesMut::new(),
            BytesMut::new(),
            BytesMut::new(),
        );
        let (mut sent_to_server, mut sent_to_client) = (0usize, 0usize);
        let mut feeding: Option<usize> = None;
        let mut deferred: VecDeque<(u32, ServerEvent)> = VecDeque::new();
        let mut cut = false;
        let mut outcome = None;
        for step in 0..200_000usize {
            self.clock += Duration::from_millis(1);
            // Client side: events, file data, transmit.
            client_events(&mut session, client, &mut feeding, &mut outcome);
            if let Some(at) = feeding {
                if session.wants_file_data() {
                    let n = (1 + self.pick(3000) as usize).min(data.len() - at);
                    let n = session
                        .push_file_data(&data[at..at + n])
                        .map_err(|e| e.to_string())?;
                    if at + n == data.len() {
                        session.end_of_file().map_err(|e| e.to_string())?;
                        feeding = None;
                    } else {
                        feeding = Some(at + n);
                    }
                }
            }
            session.poll_transmit(&mut c_out);

            // The wire, client to server, with faults.
            let n = (1 + self.pick(5000) as usize).min(c_out.len());
            let mut chunk = c_out.split_to(n);
            if let Fault::Flip {
                to_server: true,
                at,
                bit,
            } = fault
            {
                if at >= sent_to_server && at < sent_to_server + chunk.len() {
                    chunk[at - sent_to_server] ^= 1 << bit;
                }
            }
            if let Fault::Cut {
                to_server: true,
                at,
            } = fault
            {
                if sent_to_server + chunk.len() > at {
                    chunk.truncate(at - sent_to_server);
                    cut = true;
                }
            }
            sent_to_server += chunk.len();
            s_in.extend_from_slice(&chunk);

            // Server side.
            let _ = server.handle_input(&mut s_in, self.clock);
            server.handle_timeout(self.clock);
            while let Some(ev) = server.poll_event() {
                let is_question = matches!(
                    ev,
                    ServerEvent::Register { .. }
                        | ServerEvent::StorePublicKey { .. }
                        | ServerEvent::Reconnect { .. }
                        | ServerEvent::StoreAesKey { .. }
                        | ServerEvent::LookupClient { .. }
                        | ServerEvent::UploadFinished { .. }
                        | ServerEvent::Confirm { .. }
                );
                if self.slow_store && is_question {
                    let wait = self.pick(5) as u32;
                    deferred.push_back((wait, ev));
                } else {
                    self.store.handle(&mut server, ev);
                }
            }
            if let Some((wait, _)) = deferred.front_mut() {
                if *wait == 0 {
                    let (_, ev) = deferred.pop_front().unwrap();
                    self.store.handle(&mut server, ev);
                    self.store.serve(&mut server);
                } else {
                    *wait -= 1;
                }
            }
            server.poll_transmit(&mut s_out);
            if let Fault::Restart { step: at } = fault {
                if step == at {
                    // Killed: connection state gone, store on disk kept, in-flight
                    // uploads (temporary files) lost.
                    self.store.temp.clear();
                    self.store.finished.clear();
                    self.store.suspended.clear();
                    cut = true;
                    s_out.clear();
                }
            }

            // The wire, server to client.
            let n = (1 + self.pick(500) as usize).min(s_out.len());
            let mut chunk = s_out.split_to(n);
            if let Fault::Flip {
                to_server: false,
                at,
                bit,
            } = fault
            {
                if at >= sent_to_client && at < sent_to_client + chunk.len() {
                    chunk[at - sent_to_client] ^= 1 << bit;
                }
            }
            if let Fault::Cut {
                to_server: false,
                at,
            } = fault
            {
                if sent_to_client + chunk.len() > at {
                    chunk.truncate(at - sent_to_client);
                    cut = true;
                }
            }
            sent_to_client += chunk.len();
            c_in.extend_from_slice(&chunk);
            if let Err(f) = session.handle_input(&mut c_in) {
                outcome.get_or_insert(Err(f));
            }
            client_events(&mut session, client, &mut feeding, &mut outcome);
            if server.is_closed() && s_out.is_empty() && !session.is_finished() {
                cut = true;
            }
            if session.is_finished() || cut {
                if !server.is_closed() {
                    // Answer whatever the store still owes, then the client hangs up.
                    while let Some((_, ev)) = deferred.pop_front() {
                        self.store.handle(&mut server, ev);
                    }
                    self.store.serve(&mut server);
                    let _ = server.handle_input(&mut s_in, self.clock);
                    self.store.serve(&mut server);
                    server.handle_eof();
                    self.store.serve(&mut server);
                }
                if let Some(e) = server.error() {
                    self.log.push(format!("server closed: {e}"));
                }
                if cut && !session.is_finished() {
                    if let Err(f) = session.handle_eof() {
                        outcome.get_or_insert(Err(f));
                    }
                }
                return Ok(outcome);
            }
        }
        Err(format!(
            "connection did not end in 200,000 steps (client finished: {}, server closed: {})",
            session.is_finished(),
            server.is_closed()
        ))
    }
}

/// The client application's part: remember the identity (me.info), start feeding
/// the file when asked, note the outcome.
fn client_events(
    session: &mut ClientSession<ChaCha20Rng>,
    client: &mut SimClient,
    feeding: &mut Option<usize>,
    outcome: &mut Option<Result<Outcome, ClientFailure>>,
) {
    while let Some(ev) = session.poll_event() {
        match ev {
            ClientEvent::Registered {
                client_id,
                private_key,
            } => {
                client.identity = Some(Identity {
                    client_id,
                    private_key: *private_key,
                })
            }
            ClientEvent::SendFile { .. } => *feeding = Some(0),
            ClientEvent::Finished(o) => *outcome = Some(Ok(o)),
            _ => {}
        }
    }
}

fn run_seed(seed: u64) -> Result<(), String> {
    let mut sim = Sim {
        rng: ChaCha20Rng::seed_from_u64(seed),
        store: MemStore::default(),
        clock: Instant::now(),
        slow_store: false,
        ever_verified: HashSet::new(),
        log: Vec::new(),
    };
    sim.slow_store = sim.pick(3) == 0;
    let n_clients = 1 + sim.pick(2) as usize;
    let pool = key_pool();
    let mut clients: Vec<SimClient> = (0..n_clients)
        .map(|i| {
            let dialect = sim.random_dialect();
            SimClient {
                name: format!("client {i} of seed {seed}"),
                identity: None,
                key: pool[(seed as usize + i) % pool.len()].clone(),
                dialect,
                attempted: HashMap::new(),
            }
        })
        .collect();
    if sim.pick(5) == 0 {
        for c in &mut clients {
            c.dialect.checksum = ChecksumAlgorithm::Crc32;
        }
        // The server's checksum is set per connection from the client's dialect.
    }
    // Each client makes up to three runs; a run is up to four connections.
    for run in 0..3 {
        for ci in 0..clients.len() {
            let size = match sim.pick(4) {
                0 => sim.pick(20) as usize,
                1 => sim.pick(300) as usize,
                _ => sim.pick(6000) as usize,
            };
            let mut data = vec![0u8; size];
            sim.rng.fill_bytes(&mut data);
            let file_name = format!("file{}.bin", sim.pick(2));
            clients[ci]
                .attempted
                .entry(file_name.clone())
                .or_default()
                .push(data.clone());
            for conn in 0..4 {
                let fault = match sim.pick(6) {
                    0 => Fault::Cut {
                        to_server: sim.pick(2) == 0,
                        at: sim.pick(size as u64 + 800) as usize,
                    },
                    1 => Fault::Flip {
                        to_server: sim.pick(2) == 0,
                        at: sim.pick(size as u64 + 800) as usize,
                        bit: sim.pick(8) as u8,
                    },
                    2 => Fault::Restart {
                        step: sim.pick(40) as usize,
                    },
                    _ => Fault::None,
                };
                let outcome = sim
                    .connection(&mut clients[ci], &file_name, &data, fault)
                    .map_err(|e| format!("run {run} client {ci} conn {conn} {fault:?}: {e}"))?;
                sim.check_invariants(&clients)
                    .map_err(|e| format!("run {run} client {ci} conn {conn} {fault:?}: {e}"))?;
                sim.log
                    .push(format!("{run}/{ci}/{conn} {fault:?} -> {outcome:?}"));
                match outcome {
                    Some(Ok(_)) => break,
                    // A refusal is final for this run (the real client exits with Fatal).
                    Some(Err(ClientFailure::ServerRefused { .. })) => break,
                    _ => {}
                }
            }
        }
    }
    // Without faults, the clean path must verify: one more fault-free run per client.
    for ci in 0..clients.len() {
        let mut data = vec![0u8; sim.pick(5000) as usize];
        sim.rng.fill_bytes(&mut data);
        let name = "final.bin".to_string();
        clients[ci]
            .attempted
            .entry(name.clone())
            .or_default()
            .push(data.clone());
        let registered = clients[ci].identity.is_some();
        let outcome = sim.connection(&mut clients[ci], &name, &data, Fault::None)?;
        sim.check_invariants(&clients)?;
        // A client whose 826 never reached the server is refused (1606) and cannot
        // register its name again (1601); one whose key arrived with a flipped bit
        // that still parses gets AES keys it cannot decrypt. Both are dead ends of a
        // protocol without integrity protection, not of this implementation.
        let key_field = clients[ci].key.public_key().to_field().unwrap().to_vec();
        let known_to_server = clients[ci].identity.as_ref().is_some_and(|i| {
            sim.store
                .clients
                .get(&i.client_id)
                .is_some_and(|c| c.public_key.as_ref() == Some(&key_field))
        });
        if registered && known_to_server {
            match outcome {
                Some(Ok(Outcome::Verified)) => {}
                other => {
                    return Err(format!(
                        "fault-free run of client {ci} did not verify: {other:?}\n{}",
                        sim.log.join("\n")
                    ))
                }
            }
        }
    }
    Ok(())
}

#[test]
fn seeded_simulation_keeps_verified_files_correct_and_safe() {
    if let Ok(seed) = std::env::var("SIM_SEED") {
        let seed: u64 = seed.parse().expect("SIM_SEED is a number");
        if let Err(e) = run_seed(seed) {
            panic!("seed {seed}: {e}");
        }
        return;
    }
    let runs: u64 = std::env::var("SIM_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    let mut failures = Vec::new();
    for seed in 0..runs {
        if let Err(e) = run_seed(seed) {
            eprintln!("seed {seed} failed (replay with SIM_SEED={seed}): {e}");
            failures.push(seed);
            if failures.len() >= 5 {
                break;
            }
        }
    }
    assert!(failures.is_empty(), "failing seeds: {failures:?}");
    eprintln!("{runs} seeded runs passed");
}
