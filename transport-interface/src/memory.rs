//! An in-memory application: clients and files in RAM, for tests, demos and
//! embedding where nothing has to survive the process. One store for the whole
//! workspace: [`MemoryStore`] answers a connection's questions (protocol-core's own
//! tests drive it directly, with faults and a clock), [`MemoryApp`] shares one
//! between the connections of a transport.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use protocol_core::crypto::AesKey;
use protocol_core::rand_core::CryptoRngCore;
use protocol_core::{
    ClientId, ClientRecord, ServerConnection, ServerEvent, SuspendedUpload, Verdict,
};

use crate::{Conn, ConnectionHandler, HandlerFactory};

/// A registered client.
#[derive(Debug)]
pub struct ClientRow {
    /// Its name, as sent.
    pub name: Vec<u8>,
    /// Its public key field (826), once stored.
    pub public_key: Option<Vec<u8>>,
    /// Its AES key, once issued.
    pub aes_key: Option<AesKey>,
    /// [`MemoryStore::clock`] at its last request.
    pub last_seen: u64,
}

// `AesKey` is not `Clone`: tests that snapshot the store copy the key on purpose.
impl Clone for ClientRow {
    fn clone(&self) -> Self {
        ClientRow {
            name: self.name.clone(),
            public_key: self.public_key.clone(),
            aes_key: self.aes_key.as_ref().map(AesKey::duplicate),
            last_seen: self.last_seen,
        }
    }
}

/// A stored file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredFile {
    /// Its bytes.
    pub data: Vec<u8>,
    /// Whether its client confirmed the checksum (900).
    pub verified: bool,
}

/// Faults the store can be told to produce.
#[derive(Debug, Default, Clone)]
pub struct Faults {
    /// Fail the next N UploadFinished questions (disk full at flush).
    pub fail_finish: u32,
    /// Fail the next N registrations (database down).
    pub fail_register: u32,
}

/// Clients, uploads and files in memory, answering a connection's questions at once:
/// the storage half of a server for tests, demos and the transports' examples
/// ([`MemoryApp`] shares one between connections). Its fields are open so that a
/// test can look at, or arrange, what it holds.
#[derive(Debug, Default)]
pub struct MemoryStore {
    /// Registered clients.
    pub clients: HashMap<ClientId, ClientRow>,
    /// Uploads in progress: (file name, bytes so far).
    pub temp: HashMap<ClientId, (Vec<u8>, Vec<u8>)>,
    /// Uploads whose 1603 went out, awaiting the verdict.
    pub finished: HashMap<ClientId, (Vec<u8>, Vec<u8>)>,
    /// Stored files by (client, file name).
    pub files: HashMap<(ClientId, Vec<u8>), StoredFile>,
    /// Suspended uploads as bytes, as a fleet of servers keeps them in a shared table:
    /// every suspension in these tests goes through the encoding.
    pub suspended: HashMap<ClientId, Vec<u8>>,
    /// Failures to produce on request.
    pub faults: Faults,
    /// A logical clock the caller advances; stamped into `last_seen`.
    pub clock: u64,
    /// What happened that answers do not show (aborted uploads, revoked keys).
    pub log: Vec<String>,
    /// Connections of a [`MemoryApp`] that ended in secure mode (inside TLS),
    /// counted as they close: how a test sees that the transport entered it.
    pub secure_closed: usize,
}

impl MemoryStore {
    /// Drains the connection's events, answering every question at once.
    pub fn serve<R: CryptoRngCore>(&mut self, conn: &mut ServerConnection<R>) {
        while let Some(ev) = conn.poll_event() {
            self.handle(conn, ev);
        }
    }

    /// Acts on one event, answering its question (if any) at once.
    pub fn handle<R: CryptoRngCore>(&mut self, conn: &mut ServerConnection<R>, ev: ServerEvent) {
        match ev {
            ServerEvent::Seen { client_id, .. } => {
                if let Some(c) = self.clients.get_mut(&client_id) {
                    c.last_seen = self.clock;
                }
            }
            ServerEvent::Register {
                ticket,
                client_id,
                name,
            } => {
                if self.faults.fail_register > 0 {
                    self.faults.fail_register -= 1;
                    let _ = conn.fail(ticket);
                } else if self.clients.values().any(|c| c.name == name.as_bytes())
                    || self.clients.contains_key(&client_id)
                {
                    let _ = conn.refuse_registration(ticket);
                } else {
                    self.clients.insert(
                        client_id,
                        ClientRow {
                            name: name.as_bytes().to_vec(),
                            public_key: None,
                            aes_key: None,
                            last_seen: self.clock,
                        },
                    );
                    let _ = conn.accept_registration(ticket);
                }
            }
            ServerEvent::StorePublicKey {
                ticket,
                client_id,
                name,
                public_key,
                aes_key,
            } => match self.clients.get_mut(&client_id) {
                Some(c) if c.name == name.as_bytes() => {
                    c.public_key = Some(public_key.to_vec());
                    c.aes_key = Some(aes_key);
                    let _ = conn.succeed(ticket);
                }
                _ => {
                    let _ = conn.fail(ticket);
                }
            },
            ServerEvent::Reconnect {
                ticket,
                client_id,
                name,
            } => {
                let key = self
                    .clients
                    .get(&client_id)
                    .filter(|c| c.name == name.as_bytes())
                    .and_then(|c| c.public_key.clone());
                let _ = conn.reconnect_lookup(ticket, key.as_deref());
            }
            ServerEvent::StoreAesKey {
                ticket,
                client_id,
                aes_key,
            } => match self.clients.get_mut(&client_id) {
                Some(c) => {
                    c.aes_key = Some(aes_key);
                    let _ = conn.succeed(ticket);
                }
                None => {
                    let _ = conn.fail(ticket);
                }
            },
            ServerEvent::LookupClient { ticket, client_id } => {
                let suspended = self.suspended.remove(&client_id);
                let record = self.clients.get(&client_id).map(|c| ClientRecord {
                    aes_key: c.aes_key.as_ref().map(AesKey::duplicate),
                    key_age: std::time::Duration::ZERO,
                    // A new key issued since (or bytes that do not decode): the
                    // upload cannot go on, and is dropped.
                    suspended: suspended
                        .zip(c.aes_key.as_ref())
                        .and_then(|(bytes, key)| SuspendedUpload::from_bytes(&bytes, key).ok()),
                });
                let _ = conn.client_lookup(ticket, record);
            }
            ServerEvent::UploadStarted {
                client_id,
                file_name,
                ..
            } => {
                self.suspended.remove(&client_id);
                self.temp
                    .insert(client_id, (file_name.as_bytes().to_vec(), Vec::new()));
            }
            ServerEvent::UploadData { client_id, data } => {
                if let Some((_, buf)) = self.temp.get_mut(&client_id) {
                    buf.extend_from_slice(&data);
                }
                let _ = conn.data_written(data.len());
            }
            ServerEvent::UploadFinished {
                ticket, client_id, ..
            } => {
                if self.faults.fail_finish > 0 {
                    self.faults.fail_finish -= 1;
                    self.temp.remove(&client_id);
                    let _ = conn.fail(ticket);
                } else if let Some(t) = self.temp.remove(&client_id) {
                    self.finished.insert(client_id, t);
                    let _ = conn.succeed(ticket);
                } else {
                    let _ = conn.fail(ticket);
                }
            }
            ServerEvent::UploadAborted { client_id, reason } => {
                self.log.push(format!("aborted {client_id}: {reason}"));
                self.temp.remove(&client_id);
            }
            ServerEvent::UploadSuspended { client_id, upload } => {
                let bytes = upload.to_bytes();
                self.suspended.insert(client_id, bytes);
            }
            ServerEvent::Confirm {
                ticket,
                client_id,
                verdict,
                ..
            } => match self.finished.remove(&client_id) {
                Some((name, data)) => {
                    let key = (client_id, name);
                    match verdict {
                        Verdict::Verified => {
                            self.files.insert(
                                key,
                                StoredFile {
                                    data,
                                    verified: true,
                                },
                            );
                        }
                        Verdict::GaveUp => {
                            // A verified file is never replaced by unverified bytes.
                            let keep = self.files.get(&key).is_some_and(|f| f.verified);
                            if !keep {
                                self.files.insert(
                                    key,
                                    StoredFile {
                                        data,
                                        verified: false,
                                    },
                                );
                            }
                        }
                    }
                    let _ = conn.succeed(ticket);
                }
                None => {
                    let _ = conn.fail(ticket);
                }
            },
            ServerEvent::RevokeKey { client_id } => {
                self.log.push(format!("revoked {client_id}"));
                if let Some(c) = self.clients.get_mut(&client_id) {
                    c.aes_key = None;
                }
            }
            ServerEvent::RetryAnnounced { client_id, .. } => {
                self.finished.remove(&client_id);
            }
            ServerEvent::DecryptionFailed { client_id } => {
                self.log.push(format!("decryption failed {client_id}"));
            }
            // Notices this store does not act on (and any added later).
            _ => {}
        }
    }
}

/// A [`MemoryStore`] shared by every connection of a server: the application of the
/// transports' examples and tests.
#[derive(Clone, Default)]
pub struct MemoryApp(Arc<Mutex<MemoryStore>>);

impl MemoryApp {
    /// An empty store.
    pub fn new() -> MemoryApp {
        MemoryApp::default()
    }

    /// The stored files: (client, file name) -> (bytes, verified).
    pub fn files(&self) -> HashMap<(ClientId, Vec<u8>), (Vec<u8>, bool)> {
        self.store()
            .files
            .iter()
            .map(|(k, f)| (k.clone(), (f.data.clone(), f.verified)))
            .collect()
    }

    /// The store itself, locked.
    pub fn store(&self) -> std::sync::MutexGuard<'_, MemoryStore> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl HandlerFactory for MemoryApp {
    type Handler = MemoryApp;
    fn connect(&self, _peer: SocketAddr) -> MemoryApp {
        self.clone()
    }
}

impl ConnectionHandler for MemoryApp {
    fn on_event(&mut self, conn: &mut Conn, event: ServerEvent) {
        self.store().handle(conn, event);
    }

    fn on_close(&mut self, conn: &Conn) {
        if conn.is_secure() {
            self.store().secure_closed += 1;
        }
    }
}
