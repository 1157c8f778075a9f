//! The handler of one connection: what the server does for the events of one
//! client's connection, over the process-wide [`App`].

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use protocol_core::crypto::AesKey;
use protocol_core::rand_core::CryptoRngCore;
use protocol_core::{ClientId, ClientRecord, ServerConnection, ServerEvent, Verdict};
use tracing::{error, info, warn};
use transport_interface::{Conn, ConnectionHandler, HandlerFactory};

use crate::client_limits::{ClientLimits, Strain};
use crate::metrics::{Metrics, Outcome};
use crate::storage::commit::Finished;
use crate::storage::uploads::VerdictFrom;
use crate::storage::uploads::{ConnId, Handover, Resumed, UploadId};
use crate::storage::{new_upload_key, short_id, CommitOutcome, Storage, UploadSink};

use super::{App, Policy, PROGRESS_LOG_EVERY};

/// `Arc<App>` as a handler factory.
pub struct SharedApp(pub Arc<App>);

impl HandlerFactory for SharedApp {
    type Handler = Connection;
    fn connect(&self, peer: SocketAddr) -> Connection {
        self.0.metrics.connection_accepted();
        Connection {
            id: self.0.next_conn.fetch_add(1, Ordering::Relaxed),
            app: self.0.clone(),
            peer,
            upload: None,
            writer: None,
            last_touch: None,
            progress_log: crate::throttle::Throttle::new(PROGRESS_LOG_EVERY),
            failed: None,
            secure_io: super::secure_io::SecureIo::default(),
        }
    }

    fn refused(&self, _peer: SocketAddr) {
        self.0.metrics.connection_refused();
    }
}

/// The handler of one connection.
pub struct Connection {
    pub(super) id: ConnId,
    pub(super) app: Arc<App>,
    pub(super) peer: SocketAddr,
    /// The upload this connection is sending, or whose 1603 it received.
    pub(super) upload: Option<UploadId>,
    /// Where this connection's upload bytes go.
    pub(super) writer: Option<Box<dyn UploadSink>>,
    /// When LastSeen was last written for this connection's client: at most once a
    /// second, not once per packet.
    pub(super) last_touch: Option<(ClientId, Instant)>,
    /// Upload progress (828 packets) is logged at INFO at most this often, so that a
    /// long upload is visible without a line per second per connection.
    pub(crate) progress_log: crate::throttle::Throttle,
    /// This connection's upload failed (logged once): the data and end of it that the
    /// core had already queued are dropped without more lines.
    pub(super) failed: Option<Failed>,
    /// A secure session's upload and download (docs/PROTOCOL.md, section 10).
    pub(crate) secure_io: super::secure_io::SecureIo,
}

/// Why a verdict (900, 902) changed nothing.
#[derive(Debug, thiserror::Error)]
pub(crate) enum VerdictError {
    /// No upload of this connection awaits a verdict, and no upload of a connection
    /// per request may be handed over to it: a verdict belongs to the connection that
    /// received the 1603.
    #[error("no upload of this connection awaits a verdict")]
    NothingToDecide,
    /// The table or the commit failed.
    #[error(transparent)]
    Failed(anyhow::Error),
}

/// How the client learns of a failed upload (1607).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failed {
    /// Told at once (the core's `fail_upload`); the queued end of it needs no answer.
    Told,
    /// The last packet was in before the failure: the queued end gets the 1607.
    AtFinish,
}

impl Connection {
    /// Drops this connection's own upload, whatever its state.
    fn abort_upload(&mut self) {
        self.writer = None;
        if let Some(id) = self.upload.take() {
            self.app.remove_upload(id);
        }
    }

    fn write_data(&mut self, data: &[u8]) -> std::io::Result<()> {
        match &mut self.writer {
            Some(w) => w.write(data),
            None => Err(std::io::Error::other("no open upload on this connection")),
        }
    }

    fn finish_upload(
        &mut self,
        size: u64,
        checksum: u32,
        handover: Handover,
    ) -> std::io::Result<()> {
        let writer = self
            .writer
            .take()
            .ok_or_else(|| std::io::Error::other("no open upload"))?;
        writer.finish()?;
        let id = self
            .upload
            .ok_or_else(|| std::io::Error::other("no upload on this connection"))?;
        if !self
            .app
            .uploads
            .finish(id, size, checksum, handover)
            .map_err(std::io::Error::other)?
        {
            return Err(std::io::Error::other("upload lost"));
        }
        Ok(())
    }

    fn verdict_from(&mut self, fresh: bool) -> VerdictFrom {
        VerdictFrom {
            conn: self.id,
            own: self.upload.take(),
            fresh,
            window: self.app.policy.verdict_window,
        }
    }

    fn confirm(
        &mut self,
        client: &ClientId,
        verdict: Verdict,
        fresh: bool,
    ) -> Result<CommitOutcome, VerdictError> {
        let from = self.verdict_from(fresh);
        let up = self
            .app
            .uploads
            .take_for_verdict(from, client)
            .map_err(|e| VerdictError::Failed(e.into()))?
            .ok_or(VerdictError::NothingToDecide)?;
        let outcome = self
            .app
            .storage
            .commit(Finished {
                client,
                file_name: &up.file_name,
                upload: &up.key,
                verified: verdict == Verdict::Verified,
                size: up.size,
                checksum: up.checksum,
                sha256: None,
            })
            .map_err(|e| VerdictError::Failed(e.into()))?;
        Ok(outcome)
    }

    fn lookup(&mut self, client_id: ClientId) -> Option<ClientRecord> {
        let key = match self.app.storage.meta.aes_key(&client_id) {
            Ok(k) => k.and_then(|(k, age)| Some((AesKey::from_slice(&k)?, age))),
            Err(e) => {
                error!(peer = %self.peer, "828 lookup failed: {e}");
                self.app.metrics.request(828, Outcome::Error);
                return None;
            }
        };
        let Some((aes_key, age)) = key else {
            // Unknown, or no usable key: the core answers 1607.
            self.app.metrics.request(828, Outcome::Refused);
            return None;
        };
        let suspended = match self.app.uploads.resume(self.id, &client_id, &aes_key) {
            Ok(Some(r)) => self.reopen(r),
            Ok(None) => None,
            Err(e) => {
                warn!(peer = %self.peer, "could not look for a suspended upload: {e}");
                // A shared table hands over an upload before decoding it: one that
                // cannot go on (the client re-keyed since) is this connection's now.
                // Dropped here, not at the close, or the client's next connection
                // (a connection per request) finds it held and its packet 2 refused.
                // This connection holds no upload of its own yet: it has no key.
                self.app.release(self.id);
                None
            }
        };
        Some(ClientRecord {
            aes_key: Some(aes_key),
            key_age: Duration::from_secs(age),
            suspended,
        })
    }
}

impl Connection {
    /// Reopens the contents of a suspended upload taken over by this connection. The
    /// contents must hold exactly the bytes the state accounts for: more means a
    /// suspension flushed them and then failed to save its state (or its server died
    /// between the two); less, that bytes were lost. Either way the upload is dropped
    /// and the client starts the file again, rather than continue into bytes that do
    /// not match its state.
    fn reopen(&mut self, r: Resumed) -> Option<protocol_core::SuspendedUpload> {
        let expected = r.upload.bytes_so_far();
        let failure = match self.app.storage.contents.reopen_upload(&r.key) {
            Ok(w) => match w.bytes_written() {
                Some(held) if held != expected => {
                    format!("its contents hold {held} bytes, its state {expected}")
                }
                _ => {
                    self.writer = Some(w);
                    self.upload = Some(r.id);
                    return Some(r.upload);
                }
            },
            Err(e) => e.to_string(),
        };
        warn!(peer = %self.peer, "could not resume an upload, dropped (the client starts it again): {failure}");
        self.app.remove_upload(r.id);
        self.app.storage.drop_upload(&r.key);
        None
    }
}

impl App {
    /// Removes an upload from the table and deletes its contents.
    fn remove_upload(&self, id: UploadId) {
        match self.uploads.remove(id) {
            Ok(Some(key)) => self.storage.drop_upload(&key),
            Ok(None) => {}
            Err(e) => warn!("an upload stays in the table until it expires: {e}"),
        }
    }

    /// Keys of uploads of a connection that closed, to delete.
    fn release(&self, conn: ConnId) {
        match self.uploads.release(conn) {
            Ok(keys) => {
                for key in keys {
                    self.storage.drop_upload(&key);
                }
            }
            Err(e) => warn!("uploads of a closed connection stay until they expire: {e}"),
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        // An upload still receiving when its connection goes without the core having
        // ended it (a shutdown past its grace closes connections): said, not silent.
        if let Some(writer) = self.writer.take() {
            let client = self
                .last_touch
                .map(|(id, _)| short_id(&id))
                .unwrap_or_default();
            let what = "upload in progress dropped with its connection";
            match writer.bytes_written() {
                Some(bytes) => info!(peer = %self.peer, %client, bytes_so_far = bytes, "{what}"),
                None => info!(peer = %self.peer, %client, "{what}"),
            }
        }
        self.secure_io.abandon_put(&self.app.active_puts);
        self.app.release(self.id);
        self.app.metrics.connection_closed();
    }
}

impl ConnectionHandler for Connection {
    fn on_close(&mut self, conn: &Conn) {
        self.closed(conn);
    }

    fn on_event(&mut self, conn: &mut Conn, event: ServerEvent) {
        self.handle_event(conn, event);
    }
}

/// The handler over a connection with any random generator: the transports drive it
/// through [`ConnectionHandler`] (with the OS generator); a seeded simulation of the
/// whole server calls these directly, so that its runs replay.
impl Connection {
    /// Answers one event of `conn` (every question before returning).
    pub fn handle_event<R: CryptoRngCore>(
        &mut self,
        conn: &mut ServerConnection<R>,
        event: ServerEvent,
    ) {
        crate::events::handle(self, conn, event);
    }

    /// The connection ended: records the dialect its client was seen using.
    pub fn closed<R: CryptoRngCore>(&mut self, conn: &ServerConnection<R>) {
        // Once per connection: which variants this peer speaks (docs/PROTOCOL.md).
        let seen = conn.detected();
        if seen.byte_order.is_some() {
            // Client ids are credentials: a prefix only.
            let id = conn.client_id();
            let client = id.map(|c| short_id(&c)).unwrap_or_default();
            info!(peer = %self.peer, %client, dialect = %seen, "dialect seen");
            // And for `list-clients`: the last dialect each client was seen using.
            if let Some(id) = id {
                if let Err(e) = self.app.storage.meta.set_dialect(&id, &seen.to_string()) {
                    warn!(peer = %self.peer, %client, "cannot record the dialect seen: {e}");
                }
            }
        }
    }
}

/// What the event handlers in [`crate::events`] may reach.
impl Connection {
    pub(crate) fn peer(&self) -> SocketAddr {
        self.peer
    }
    /// The storage and the files this server's secure uploads write, owned: for
    /// calls that also borrow the connection's secure transfers.
    pub(crate) fn storage_and_puts(&self) -> (Storage, Arc<super::secure_io::ActivePuts>) {
        (self.app.storage.clone(), self.app.active_puts.clone())
    }

    pub(crate) fn storage(&self) -> &Storage {
        &self.app.storage
    }
    pub(crate) fn metrics(&self) -> &Metrics {
        &self.app.metrics
    }
    pub(crate) fn policy(&self) -> Policy {
        self.app.policy
    }
    /// Whether LastSeen of `client` is due an update (at most once a second).
    pub(crate) fn touch_due(&mut self, client: ClientId, now: Instant) -> bool {
        let recent = matches!(self.last_touch, Some((id, t))
            if id == client && now.duration_since(t) < Duration::from_secs(1));
        if !recent {
            self.last_touch = Some((client, now));
        }
        !recent
    }
    pub(crate) fn start_upload(
        &mut self,
        client: ClientId,
        file_name: String,
        per_request: bool,
    ) -> std::io::Result<()> {
        self.abort_upload();
        self.failed = None;
        let stale = self
            .app
            .uploads
            .supersede(&client, &file_name, per_request)
            .map_err(std::io::Error::other)?;
        for stale in stale {
            self.app.storage.drop_upload(&stale);
        }
        let key = new_upload_key();
        let writer = self.app.storage.contents.create_upload(&key)?;
        match self.app.uploads.start(self.id, client, &file_name, &key) {
            Ok(id) => {
                self.writer = Some(writer);
                self.upload = Some(id);
                Ok(())
            }
            Err(e) => {
                drop(writer);
                self.app.storage.drop_upload(&key);
                Err(std::io::Error::other(e))
            }
        }
    }
    pub(crate) fn data(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.write_data(data)
    }
    pub(crate) fn finished(
        &mut self,
        size: u64,
        checksum: u32,
        handover: Handover,
    ) -> std::io::Result<()> {
        self.finish_upload(size, checksum, handover)
    }
    pub(crate) fn abort(&mut self) {
        self.abort_upload()
    }
    /// Drops the upload after a failure that was logged: what the core queued of it
    /// before hearing so is skipped (no more lines) until the next upload starts.
    pub(crate) fn fail(&mut self, how: Failed) {
        self.abort_upload();
        self.failed = Some(how);
    }
    /// Whether this connection's upload failed, and how the client learns of it.
    pub(crate) fn failed(&self) -> Option<Failed> {
        self.failed
    }
    pub(crate) fn suspend(
        &mut self,
        upload: protocol_core::SuspendedUpload,
    ) -> std::io::Result<()> {
        // The checkpoint rule: what is buffered must be in the contents before the
        // state is saved (another connection, perhaps on another server, resumes from
        // the contents' end), so a saved state never claims bytes the contents lack.
        let flushed = match self.writer.take() {
            Some(mut w) => w.flush(),
            None => Ok(()),
        };
        let Some(id) = self.upload.take() else {
            return flushed;
        };
        let saved = flushed.and_then(|()| {
            self.app
                .uploads
                .suspend(id, upload)
                .map_err(std::io::Error::other)
        });
        if saved.is_err() {
            self.app.remove_upload(id);
        }
        saved
    }
    pub(crate) fn verdict(
        &mut self,
        client: &ClientId,
        verdict: Verdict,
        fresh: bool,
    ) -> Result<CommitOutcome, VerdictError> {
        self.confirm(client, verdict, fresh)
    }
    /// A 901: the upload it is about is dropped (the file follows again). True when
    /// there was one for this connection to decide.
    pub(crate) fn retry_announced(&mut self, client: &ClientId, fresh: bool) -> bool {
        let from = self.verdict_from(fresh);
        let own = from.own;
        self.writer = None;
        match self.app.uploads.remove_for_retry(from, client) {
            Ok(Some(key)) => {
                self.app.storage.drop_upload(&key);
                true
            }
            Ok(None) => {
                if let Some(id) = own {
                    self.app.remove_upload(id);
                }
                own.is_some()
            }
            Err(e) => {
                warn!("a retried upload stays until it expires: {e}");
                true
            }
        }
    }
    pub(crate) fn limits(&self) -> &ClientLimits {
        &self.app.limits
    }
    /// Logs (at most once a minute per client) and counts a request under `client`
    /// that was refused or counted against it.
    pub(crate) fn strain(&self, client: ClientId, strain: Strain, what: &str) {
        let prefix = short_id(&client);
        self.app.metrics.client_strain(&prefix, strain.label());
        if self.app.limits.warn_due(client, Instant::now()) {
            warn!(peer = %self.peer, client = %prefix, reason = strain.label(),
                  "{what} (requests under this client id are limited: docs/SECURITY.md; \
                   further lines for this client within a minute are not logged)");
        }
    }
    pub(crate) fn lookup_client(&mut self, client: ClientId) -> Option<ClientRecord> {
        self.lookup(client)
    }
}
