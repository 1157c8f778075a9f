//! The server application: answers the protocol core's questions from SQLite and the
//! file folder. One [`App`] per process, one [`Connection`] handler per connection.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use protocol_core::crypto::AesKey;
use protocol_core::{ClientId, ClientRecord, FieldString, ServerEvent, SuspendedUpload, Verdict};
use tracing::{error, info, warn};
use transport_std::{Conn, ConnectionHandler, HandlerFactory};

use crate::files::{safe_file_name, FileStore};
use crate::store::{Registration, Store};
use crate::upload_writer::UploadWriter;

/// An upload between its first packet and the client's verdict.
struct Slot {
    temp: PathBuf,
    file_name: String,
    size: u64,
    finished: bool,
    suspended: Option<SuspendedUpload>,
}

/// Shared state of the server process.
pub struct App {
    store: Store,
    files: FileStore,
    uploads: Mutex<HashMap<ClientId, Slot>>,
    /// Fault injection for tests: upload bytes that may still be written before
    /// every write fails as on a full disk.
    write_budget: Option<std::sync::atomic::AtomicU64>,
}

impl App {
    /// Opens `defensive.db` and the file folder inside `dir`.
    pub fn open(dir: &Path) -> anyhow::Result<App> {
        let store = Store::open(&dir.join("defensive.db"))?;
        for name in ["defensive.db", "defensive.db-wal", "defensive.db-shm"] {
            restrict_permissions(&dir.join(name));
        }
        let files = FileStore::open(&dir.join("files"))?;
        Ok(App {
            store,
            files,
            uploads: Mutex::new(HashMap::new()),
            write_budget: None,
        })
    }

    /// Makes every write of upload data fail, as on a full disk, once `bytes` have
    /// been written (fault tests drive the server through this).
    pub fn inject_write_failure_after(&mut self, bytes: u64) {
        self.write_budget = Some(std::sync::atomic::AtomicU64::new(bytes));
    }

    fn charge_write(&self, n: usize) -> std::io::Result<()> {
        use std::sync::atomic::Ordering;
        let Some(budget) = &self.write_budget else {
            return Ok(());
        };
        let left = budget.load(Ordering::SeqCst);
        if (n as u64) > left {
            budget.store(0, Ordering::SeqCst);
            return Err(std::io::Error::new(
                std::io::ErrorKind::StorageFull,
                "injected fault: no space left on device",
            ));
        }
        budget.fetch_sub(n as u64, Ordering::SeqCst);
        Ok(())
    }

    /// The database (for listings).
    pub fn store(&self) -> &Store {
        &self.store
    }

    fn uploads(&self) -> std::sync::MutexGuard<'_, HashMap<ClientId, Slot>> {
        self.uploads.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn restrict_permissions(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if !path.exists() {
        return;
    }
    if let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)) {
        warn!("could not restrict {}: {e}", path.display());
    }
}

/// `Arc<App>` as a handler factory.
pub struct SharedApp(pub Arc<App>);

impl HandlerFactory for SharedApp {
    type Handler = Connection;
    fn connect(&self, peer: SocketAddr) -> Connection {
        Connection {
            app: self.0.clone(),
            peer,
            writer: None,
            last_touch: None,
        }
    }
}

/// The handler of one connection.
pub struct Connection {
    app: Arc<App>,
    peer: SocketAddr,
    /// The open temporary file of this connection's upload.
    writer: Option<(ClientId, UploadWriter)>,
    /// When LastSeen was last written for this connection's client: at most once a
    /// second, not once per packet (a database write per packet would cost more than
    /// the packet).
    last_touch: Option<(ClientId, std::time::Instant)>,
}

fn text(name: &FieldString) -> String {
    // Names are checked printable ASCII by the core before they get here.
    String::from_utf8_lossy(name.as_bytes()).into_owned()
}

impl Connection {
    fn abort_upload(&mut self, id: &ClientId) {
        if matches!(&self.writer, Some((w, _)) if w == id) {
            self.writer = None;
        }
        if let Some(slot) = self.app.uploads().remove(id) {
            self.app.files.discard(&slot.temp);
        }
    }

    fn write_data(&mut self, id: &ClientId, data: &[u8]) -> std::io::Result<()> {
        match &mut self.writer {
            Some((w, f)) if w == id => {
                self.app.charge_write(data.len())?;
                f.write(data)
            }
            _ => Err(std::io::Error::other("no open upload for this client")),
        }
    }

    fn finish_upload(&mut self, id: &ClientId, size: u64) -> std::io::Result<()> {
        let Some((_, file)) = self.writer.take() else {
            return Err(std::io::Error::other("no open upload"));
        };
        file.finish()?;
        let mut uploads = self.app.uploads();
        let slot = uploads
            .get_mut(id)
            .ok_or_else(|| std::io::Error::other("upload slot lost"))?;
        slot.finished = true;
        slot.size = size;
        Ok(())
    }

    fn confirm(&mut self, id: &ClientId, verdict: Verdict) -> anyhow::Result<()> {
        let slot = self
            .app
            .uploads()
            .remove(id)
            .filter(|s| s.finished)
            .ok_or_else(|| anyhow::anyhow!("no finished upload to confirm"))?;
        let keep_verified =
            verdict == Verdict::GaveUp && self.app.store.is_verified(id, &slot.file_name)?;
        if keep_verified {
            // A verified file is never replaced by bytes the client did not confirm.
            self.app.files.discard(&slot.temp);
            return Ok(());
        }
        let safe = safe_file_name(slot.file_name.as_bytes());
        let placed = self.app.files.commit(id, &slot.temp, &safe)?;
        let recorded = self.app.store.record_file(
            id,
            &slot.file_name,
            &placed.relative,
            verdict == Verdict::Verified,
            slot.size,
        );
        match recorded {
            Ok(()) => {
                placed.keep();
                Ok(())
            }
            Err(e) => {
                // Disk and database must agree: the earlier file comes back.
                if let Err(undo) = placed.undo() {
                    error!("could not restore the earlier file: {undo}");
                }
                Err(e.into())
            }
        }
    }
}

impl ConnectionHandler for Connection {
    fn on_close(&mut self, conn: &Conn) {
        // Once per connection: which variants this peer speaks (docs/PROTOCOL.md).
        let seen = conn.detected();
        if seen.byte_order.is_some() {
            let client = conn.client_id().map(|c| c.to_string()).unwrap_or_default();
            info!(peer = %self.peer, client, dialect = %seen, "dialect seen");
        }
    }

    fn on_event(&mut self, conn: &mut Conn, event: ServerEvent) {
        let peer = self.peer;
        match event {
            ServerEvent::Seen { client_id, code } => {
                let now = std::time::Instant::now();
                let recent = matches!(self.last_touch, Some((id, t))
                    if id == client_id && now.duration_since(t) < std::time::Duration::from_secs(1));
                if code != protocol_core::RequestCode::SendFile || !recent {
                    info!(%peer, client = %client_id, code = code as u16, "request");
                }
                if !recent {
                    self.last_touch = Some((client_id, now));
                    if let Err(e) = self.app.store.touch(&client_id) {
                        warn!("{e}");
                    }
                }
            }
            ServerEvent::Register {
                ticket,
                client_id,
                name,
            } => {
                let name = text(&name);
                let answer = match self.app.store.register(&client_id, &name) {
                    Ok(Registration::Registered) => {
                        info!(%peer, client = %client_id, name, "825 registered");
                        conn.accept_registration(ticket)
                    }
                    Ok(Registration::NameTaken) => {
                        info!(%peer, name, "825 refused: name taken");
                        conn.refuse_registration(ticket)
                    }
                    Err(e) => {
                        error!(%peer, name, "825 failed: {e}");
                        conn.fail(ticket)
                    }
                };
                log_usage(answer);
            }
            ServerEvent::StorePublicKey {
                ticket,
                client_id,
                name,
                public_key,
                aes_key,
            } => {
                let answer = match self.app.store.store_keys(
                    &client_id,
                    &text(&name),
                    &public_key,
                    aes_key.as_bytes(),
                ) {
                    Ok(true) => {
                        info!(%peer, client = %client_id, "826 key stored");
                        conn.succeed(ticket)
                    }
                    Ok(false) => {
                        info!(%peer, client = %client_id, "826 refused: unknown id or name");
                        conn.fail(ticket)
                    }
                    Err(e) => {
                        error!(%peer, "826 failed: {e}");
                        conn.fail(ticket)
                    }
                };
                log_usage(answer);
            }
            ServerEvent::Reconnect {
                ticket,
                client_id,
                name,
            } => {
                let key = match self.app.store.public_key(&client_id, &text(&name)) {
                    Ok(k) => k,
                    Err(e) => {
                        error!(%peer, "827 failed: {e}");
                        log_usage(conn.fail(ticket));
                        return;
                    }
                };
                if key.is_none() {
                    info!(%peer, client = %client_id, "827 refused: unknown, or no key on file");
                }
                log_usage(conn.reconnect_lookup(ticket, key.as_deref()));
            }
            ServerEvent::StoreAesKey {
                ticket,
                client_id,
                aes_key,
            } => {
                let answer = match self.app.store.store_aes_key(&client_id, aes_key.as_bytes()) {
                    Ok(true) => {
                        info!(%peer, client = %client_id, "827 reconnected");
                        conn.succeed(ticket)
                    }
                    Ok(false) => conn.fail(ticket),
                    Err(e) => {
                        error!(%peer, "827 failed: {e}");
                        conn.fail(ticket)
                    }
                };
                log_usage(answer);
            }
            ServerEvent::LookupClient { ticket, client_id } => {
                let key = match self.app.store.aes_key(&client_id) {
                    Ok(k) => k.and_then(|(k, age)| Some((AesKey::from_slice(&k)?, age))),
                    Err(e) => {
                        error!(%peer, "828 lookup failed: {e}");
                        None
                    }
                };
                let suspended = self
                    .app
                    .uploads()
                    .get_mut(&client_id)
                    .and_then(|s| s.suspended.take().map(|u| (s.temp.clone(), u)));
                let suspended = match suspended {
                    Some((temp, upload)) => match self.app.files.reopen_temp(&temp) {
                        Ok(f) => {
                            self.writer = Some((client_id, f));
                            Some(upload)
                        }
                        Err(e) => {
                            warn!(%peer, "could not resume an upload: {e}");
                            None
                        }
                    },
                    None => None,
                };
                let record = key.map(|(k, age)| ClientRecord {
                    aes_key: Some(k),
                    key_age: std::time::Duration::from_secs(age),
                    suspended,
                });
                log_usage(conn.client_lookup(ticket, record));
            }
            ServerEvent::UploadStarted {
                client_id,
                file_name,
                original_size,
                total_packets,
            } => {
                self.abort_upload(&client_id);
                match self.app.files.create_temp(&client_id) {
                    Ok((temp, file)) => {
                        info!(%peer, client = %client_id, file = %file_name.display(),
                              size = original_size, packets = total_packets, "828 upload started");
                        self.writer = Some((client_id, file));
                        self.app.uploads().insert(
                            client_id,
                            Slot {
                                temp,
                                file_name: text(&file_name),
                                size: 0,
                                finished: false,
                                suspended: None,
                            },
                        );
                    }
                    Err(e) => {
                        error!(%peer, client = %client_id, "cannot store an upload: {e}");
                        log_usage(conn.fail_upload());
                    }
                }
            }
            ServerEvent::UploadData { client_id, data } => {
                let n = data.len();
                if let Err(e) = self.write_data(&client_id, &data) {
                    error!(%peer, client = %client_id, "writing an upload failed: {e}");
                    self.abort_upload(&client_id);
                    log_usage(conn.fail_upload());
                }
                conn.data_written(n);
            }
            ServerEvent::UploadFinished {
                ticket,
                client_id,
                file_name,
                size,
                checksum,
            } => match self.finish_upload(&client_id, size) {
                Ok(()) => {
                    info!(%peer, client = %client_id, file = %file_name.display(), size, checksum,
                          "828 upload received");
                    log_usage(conn.succeed(ticket));
                }
                Err(e) => {
                    error!(%peer, client = %client_id, "finishing an upload failed: {e}");
                    self.abort_upload(&client_id);
                    log_usage(conn.fail(ticket));
                }
            },
            ServerEvent::UploadAborted { client_id, reason } => {
                info!(%peer, client = %client_id, "upload abandoned: {reason}");
                self.abort_upload(&client_id);
            }
            ServerEvent::UploadSuspended { client_id, upload } => {
                // What is buffered must be in the file before another connection
                // resumes the upload from the file's end.
                let flushed = match self.writer.take() {
                    Some((id, mut w)) if id == client_id => w.flush(),
                    _ => Ok(()),
                };
                match flushed {
                    Ok(()) => {
                        if let Some(slot) = self.app.uploads().get_mut(&client_id) {
                            slot.suspended = Some(upload);
                        }
                    }
                    Err(e) => {
                        error!(%peer, client = %client_id, "writing a suspended upload failed: {e}");
                        self.abort_upload(&client_id);
                    }
                }
            }
            ServerEvent::Confirm {
                ticket,
                client_id,
                verdict,
                ..
            } => match self.confirm(&client_id, verdict) {
                Ok(()) => {
                    info!(%peer, client = %client_id, ?verdict, "upload confirmed");
                    log_usage(conn.succeed(ticket));
                }
                Err(e) => {
                    error!(%peer, client = %client_id, "confirming an upload failed: {e}");
                    self.abort_upload(&client_id);
                    log_usage(conn.fail(ticket));
                }
            },
            ServerEvent::RevokeKey { client_id } => {
                warn!(%peer, client = %client_id, "AES key revoked after a decryption failure");
                if let Err(e) = self.app.store.revoke_aes_key(&client_id) {
                    error!(%peer, "{e}");
                }
            }
            ServerEvent::RetryAnnounced { client_id, .. } => {
                info!(%peer, client = %client_id, "901 checksum mismatch, file follows again");
                self.abort_upload(&client_id);
            }
        }
    }
}

fn log_usage(r: Result<(), protocol_core::UsageError>) {
    if let Err(e) = r {
        error!("internal: {e}");
    }
}
