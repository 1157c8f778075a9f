//! An in-memory server application: the storage half that the core asks questions of
//! (as protocol-core's own tests have it), for the fixture servers.
#![allow(dead_code)]

use std::collections::HashMap;

use protocol_core::crypto::AesKey;
use protocol_core::rand_core::CryptoRngCore;
use protocol_core::*;

#[derive(Debug)]
pub struct ClientRow {
    pub name: Vec<u8>,
    pub public_key: Option<Vec<u8>>,
    pub aes_key: Option<AesKey>,
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

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredFile {
    pub data: Vec<u8>,
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

#[derive(Debug, Default)]
pub struct MemStore {
    pub clients: HashMap<ClientId, ClientRow>,
    pub temp: HashMap<ClientId, (Vec<u8>, Vec<u8>)>,
    pub finished: HashMap<ClientId, (Vec<u8>, Vec<u8>)>,
    pub files: HashMap<(ClientId, Vec<u8>), StoredFile>,
    /// Suspended uploads as bytes, as a fleet of servers keeps them in a shared table:
    /// every suspension in these tests goes through the encoding.
    pub suspended: HashMap<ClientId, Vec<u8>>,
    pub faults: Faults,
    pub clock: u64,
    pub log: Vec<String>,
}

impl MemStore {
    /// Drains the connection's events, answering every question at once.
    pub fn serve<R: CryptoRngCore>(&mut self, conn: &mut ServerConnection<R>) {
        while let Some(ev) = conn.poll_event() {
            self.handle(conn, ev);
        }
    }

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
                    conn.fail(ticket).unwrap();
                } else if self.clients.values().any(|c| c.name == name.as_bytes())
                    || self.clients.contains_key(&client_id)
                {
                    conn.refuse_registration(ticket).unwrap();
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
                    conn.accept_registration(ticket).unwrap();
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
                    conn.succeed(ticket).unwrap();
                }
                _ => conn.fail(ticket).unwrap(),
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
                conn.reconnect_lookup(ticket, key.as_deref()).unwrap();
            }
            ServerEvent::StoreAesKey {
                ticket,
                client_id,
                aes_key,
            } => match self.clients.get_mut(&client_id) {
                Some(c) => {
                    c.aes_key = Some(aes_key);
                    conn.succeed(ticket).unwrap();
                }
                None => conn.fail(ticket).unwrap(),
            },
            ServerEvent::LookupClient { ticket, client_id } => {
                let suspended = self.suspended.remove(&client_id);
                let record = self.clients.get(&client_id).map(|c| ClientRecord {
                    aes_key: c.aes_key.as_ref().map(AesKey::duplicate),
                    key_age: std::time::Duration::ZERO,
                    suspended: suspended.zip(c.aes_key.as_ref()).and_then(|(bytes, key)| {
                        match SuspendedUpload::from_bytes(&bytes, key) {
                            Ok(up) => Some(up),
                            // A new key was issued since: the upload cannot go on.
                            Err(DecodeError::KeyMismatch) => None,
                            Err(_) => None,
                        }
                    }),
                });
                conn.client_lookup(ticket, record).unwrap();
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
                conn.data_written(data.len()).unwrap();
            }
            ServerEvent::UploadFinished {
                ticket, client_id, ..
            } => {
                if self.faults.fail_finish > 0 {
                    self.faults.fail_finish -= 1;
                    self.temp.remove(&client_id);
                    conn.fail(ticket).unwrap();
                } else if let Some(t) = self.temp.remove(&client_id) {
                    self.finished.insert(client_id, t);
                    conn.succeed(ticket).unwrap();
                } else {
                    conn.fail(ticket).unwrap();
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
                    conn.succeed(ticket).unwrap();
                }
                None => conn.fail(ticket).unwrap(),
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
        }
    }
}
