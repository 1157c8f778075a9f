//! An in-memory application: clients and files in RAM. For tests, demos and
//! embedding where nothing has to survive the process.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use protocol_core::crypto::AesKey;
use protocol_core::{ClientId, ClientRecord, ServerEvent, Verdict};

use crate::{Conn, ConnectionHandler, HandlerFactory};

/// A client: name, public key field, AES key.
type Client = (Vec<u8>, Option<Vec<u8>>, Option<AesKey>);

#[derive(Default)]
struct State {
    clients: HashMap<ClientId, Client>,
    uploads: HashMap<ClientId, (Vec<u8>, Vec<u8>)>,
    suspended: HashMap<ClientId, protocol_core::SuspendedUpload>,
    files: HashMap<(ClientId, Vec<u8>), (Vec<u8>, bool)>,
}

/// Clients and files held in memory, shared by every connection.
#[derive(Clone, Default)]
pub struct MemoryApp(Arc<Mutex<State>>);

impl MemoryApp {
    /// An empty store.
    pub fn new() -> MemoryApp {
        MemoryApp::default()
    }

    /// The stored files: (client, file name) -> (bytes, verified).
    pub fn files(&self) -> HashMap<(ClientId, Vec<u8>), (Vec<u8>, bool)> {
        self.state().files.clone()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
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
        let mut st = self.state();
        // Answers to the core cannot fail here: each answers the event just received.
        let _ = match event {
            ServerEvent::Register {
                ticket,
                client_id,
                name,
            } => {
                if st.clients.values().any(|c| c.0 == name.as_bytes()) {
                    conn.refuse_registration(ticket)
                } else {
                    st.clients
                        .insert(client_id, (name.as_bytes().to_vec(), None, None));
                    conn.accept_registration(ticket)
                }
            }
            ServerEvent::StorePublicKey {
                ticket,
                client_id,
                name,
                public_key,
                aes_key,
            } => match st.clients.get_mut(&client_id) {
                Some(c) if c.0 == name.as_bytes() => {
                    c.1 = Some(public_key.to_vec());
                    c.2 = Some(aes_key);
                    conn.succeed(ticket)
                }
                _ => conn.fail(ticket),
            },
            ServerEvent::Reconnect {
                ticket,
                client_id,
                name,
            } => {
                let key = st
                    .clients
                    .get(&client_id)
                    .filter(|c| c.0 == name.as_bytes())
                    .and_then(|c| c.1.clone());
                conn.reconnect_lookup(ticket, key.as_deref())
            }
            ServerEvent::StoreAesKey {
                ticket,
                client_id,
                aes_key,
            } => match st.clients.get_mut(&client_id) {
                Some(c) => {
                    c.2 = Some(aes_key);
                    conn.succeed(ticket)
                }
                None => conn.fail(ticket),
            },
            ServerEvent::LookupClient { ticket, client_id } => {
                let record = st.clients.get(&client_id).map(|c| ClientRecord {
                    aes_key: c.2.as_ref().map(AesKey::duplicate),
                    key_age: std::time::Duration::ZERO,
                    suspended: None,
                });
                let record = record.map(|mut r| {
                    r.suspended = st.suspended.remove(&client_id);
                    r
                });
                conn.client_lookup(ticket, record)
            }
            ServerEvent::UploadStarted {
                client_id,
                file_name,
                ..
            } => {
                st.uploads
                    .insert(client_id, (file_name.as_bytes().to_vec(), Vec::new()));
                Ok(())
            }
            ServerEvent::UploadData { client_id, data } => {
                if let Some(u) = st.uploads.get_mut(&client_id) {
                    u.1.extend_from_slice(&data);
                }
                conn.data_written(data.len())
            }
            ServerEvent::UploadFinished { ticket, .. } => conn.succeed(ticket),
            ServerEvent::Confirm {
                ticket,
                client_id,
                verdict,
                ..
            } => match st.uploads.remove(&client_id) {
                Some((name, data)) => {
                    let key = (client_id, name);
                    let keep = st.files.get(&key).is_some_and(|f| f.1);
                    if verdict == Verdict::Verified || !keep {
                        st.files.insert(key, (data, verdict == Verdict::Verified));
                    }
                    conn.succeed(ticket)
                }
                None => conn.fail(ticket),
            },
            ServerEvent::UploadAborted { client_id, .. }
            | ServerEvent::RetryAnnounced { client_id, .. } => {
                st.uploads.remove(&client_id);
                Ok(())
            }
            ServerEvent::RevokeKey { client_id } => {
                if let Some(c) = st.clients.get_mut(&client_id) {
                    c.2 = None;
                }
                Ok(())
            }
            ServerEvent::UploadSuspended { client_id, upload } => {
                st.suspended.insert(client_id, upload);
                Ok(())
            }
            ServerEvent::DecryptionFailed { .. } | ServerEvent::Seen { .. } => Ok(()),
            // Notices this application does not act on (and any added later).
            _ => Ok(()),
        };
    }
}
