//! The server role: one [`ServerConnection`] per TCP connection.
//!
//! ```text
//!             825 ──► Register ─────────────── accept ──► 1600 / refuse ──► 1601
//!             826 ──► StorePublicKey ───────── succeed ─► 1602
//!   Idle ──►  827 ──► Reconnect ── found key ► StoreAesKey ─ succeed ─► 1605
//!                                 └ none ────► 1606
//!             828 ──► (LookupClient, if the connection has no key yet)
//!                     UploadStarted, UploadData…, UploadFinished ─ succeed ─► 1603
//!             900 ──► Confirm(Verified) ─── succeed ─► 1604
//!             901 ──► RetryAnnounced (no answer; packets follow again)
//!             902 ──► Confirm(GaveUp) ──── succeed ─► 1604
//!   any question ── fail ──► 1607 (connection stays open)
//!   a protocol violation ──► 1607, then closed
//!   a decryption failure ──► RevokeKey, 1607, then closed (one guess per key)
//! ```
//!
//! # Calling order
//!
//! Methods fall into four groups, called in this order each time input arrives:
//!
//! 1. [`handle_input`](ServerConnection::handle_input) (and
//!    [`handle_eof`](ServerConnection::handle_eof),
//!    [`handle_timeout`](ServerConnection::handle_timeout)) feed what happened;
//! 2. [`poll_event`](ServerConnection::poll_event) until `None`, answering each
//!    question event (those with a [`Ticket`]) through the answer methods
//!    ([`accept_registration`](ServerConnection::accept_registration),
//!    [`succeed`](ServerConnection::succeed), [`fail`](ServerConnection::fail), …),
//!    now or later;
//! 3. [`poll_transmit`](ServerConnection::poll_transmit) to collect the bytes to send;
//! 4. the getters ([`wants_read`](ServerConnection::wants_read),
//!    [`is_closed`](ServerConnection::is_closed),
//!    [`poll_timeout`](ServerConnection::poll_timeout)) to decide what to wait for.
//!
//! At most one question is outstanding at a time; while it is, input stays in the
//! caller's buffer. After answering, call `handle_input` again with the same buffer.
//!
//! # Variants accepted without configuration
//!
//! Byte order of each request header; packet number and total in either order (the
//! field that is 1 in the first packet is the number); content size per packet or in
//! total; names in 900-902; a connection per request, with the upload carried across
//! connections through [`SuspendedUpload`]; per-packet encryption, recognised by the
//! total size (one stream is exactly the padded original size) or, where the sizes
//! cannot tell (content size per packet, or few packets), by the last blocks of up to
//! three packets all ending in the same valid padding, and at the last packet by the
//! declared original size.

mod event;
mod upload;

use std::collections::VecDeque;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use rand_core::CryptoRngCore;

use crate::crypto::{AesKey, PublicKey};
use crate::dialect::{DetectedDialect, PacketAck, ResponseOrder};
use crate::error::{PeerError, UsageError};
use crate::names;
use crate::wire::{
    self, ByteOrder, ClientId, FieldString, FilePacket, Request, RequestCode, RequestFrame,
    Response, ResponseEncoding,
};
pub use event::{ClientRecord, ServerConfig, ServerEvent, Ticket, Verdict};
pub use upload::SuspendedUpload;
use upload::Upload;

#[derive(Debug)]
enum Pending {
    Register {
        client_id: ClientId,
    },
    StorePublicKey {
        client_id: ClientId,
        aes_key: AesKey,
        encrypted: Bytes,
    },
    ReconnectLookup {
        client_id: ClientId,
    },
    StoreAesKey {
        client_id: ClientId,
        aes_key: AesKey,
        encrypted: Bytes,
    },
    Lookup {
        client_id: ClientId,
        packet: FilePacket,
    },
    UploadFinished {
        client_id: ClientId,
        content_size: u32,
        file_name: FieldString,
        checksum: u32,
    },
    Confirm {
        client_id: ClientId,
    },
}

/// The server side of one connection. See the [module docs](self) for the order
/// in which to call its methods; the crate docs run a whole exchange.
///
/// ```
/// use std::time::Instant;
/// use bytes::BytesMut;
/// use protocol_core::{wire, ClientId, FieldString, Request, ServerConfig, ServerConnection, ServerEvent};
/// use rand_chacha::{ChaCha20Rng, rand_core::SeedableRng};
///
/// let now = Instant::now();
/// let mut conn = ServerConnection::new(ServerConfig::default(), ChaCha20Rng::seed_from_u64(0), now);
/// let mut input = BytesMut::new();
/// let name = FieldString::new("alice").unwrap();
/// wire::encode_request(&mut input, ClientId::ZERO, &Request::Register { name }, Default::default());
/// conn.handle_input(&mut input, now).unwrap();
/// let Some(ServerEvent::Register { ticket, client_id, .. }) = conn.poll_event() else { panic!() };
/// conn.accept_registration(ticket).unwrap(); // the name was free: store the client, answer 1600
/// let mut out = BytesMut::new();
/// conn.poll_transmit(&mut out);
/// assert_eq!(wire::decode_response(&mut out).unwrap(),
///            Some(protocol_core::Response::Registered { client_id }));
/// ```
pub struct ServerConnection<R> {
    config: ServerConfig,
    rng: R,
    out: BytesMut,
    plain: BytesMut,
    events: VecDeque<ServerEvent>,
    pending: Option<(Ticket, Pending)>,
    next_ticket: u64,
    /// The client this connection speaks for, its current key, and when that key was
    /// issued (by the clock of `handle_input`).
    session: Option<(ClientId, AesKey, Instant)>,
    /// The `now` of the latest `handle_input`.
    now: Instant,
    upload: Option<Upload>,
    /// 1603 was sent and no 900/902 has come yet.
    verdict_due: bool,
    /// A failed upload's remaining packets are skipped until a packet 1 starts anew.
    skipping_failed_upload: bool,
    requests_seen: u64,
    unwritten: usize,
    last_order: ByteOrder,
    closed: bool,
    error: Option<PeerError>,
    last_progress: Instant,
    partial_since: Option<Instant>,
    detected: DetectedDialect,
}

impl<R: CryptoRngCore> ServerConnection<R> {
    /// A connection that has just been accepted at `now`, drawing ids and keys from `rng`.
    pub fn new(config: ServerConfig, rng: R, now: Instant) -> Self {
        ServerConnection {
            detected: DetectedDialect::default(),
            config,
            rng,
            out: BytesMut::new(),
            plain: BytesMut::new(),
            events: VecDeque::new(),
            pending: None,
            next_ticket: 0,
            session: None,
            upload: None,
            verdict_due: false,
            skipping_failed_upload: false,
            requests_seen: 0,
            unwritten: 0,
            last_order: ByteOrder::Little,
            closed: false,
            error: None,
            last_progress: now,
            partial_since: None,
            now,
        }
    }

    // ---- getters ----

    /// Whether the connection will take more input now: false while a question is
    /// outstanding, while too much decrypted data is unwritten, and once closed.
    pub fn wants_read(&self) -> bool {
        !self.closed && self.pending.is_none() && self.unwritten < self.config.limits.max_unwritten
    }

    /// Whether the connection is finished: send what [`poll_transmit`](Self::poll_transmit)
    /// gives, then close the socket.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// The protocol violation that closed the connection, if one did.
    pub fn error(&self) -> Option<&PeerError> {
        self.error.as_ref()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called, if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.closed || self.pending.is_some() {
            return None;
        }
        let limits = &self.config.limits;
        Some(match self.partial_since {
            Some(t) => t + limits.request_timeout,
            None => self.last_progress + limits.idle_timeout,
        })
    }

    /// What this connection's peer has shown of its dialect so far: byte order,
    /// packet fields, sizes, encryption, zero-padded packets, and the checksum sent.
    /// For the operator's log, once the connection ends
    /// ([`DetectedDialect`]'s `Display` is one line).
    ///
    /// ```
    /// use std::time::Instant;
    /// use protocol_core::{ServerConfig, ServerConnection};
    /// use rand_chacha::{ChaCha20Rng, rand_core::SeedableRng};
    /// let conn = ServerConnection::new(ServerConfig::default(), ChaCha20Rng::seed_from_u64(0), Instant::now());
    /// assert_eq!(conn.detected().to_string(), "nothing seen");
    /// ```
    pub fn detected(&self) -> &DetectedDialect {
        &self.detected
    }

    /// Whether an upload is between its first and last packet on this connection.
    pub fn is_uploading(&self) -> bool {
        self.upload.is_some()
    }

    /// Whether this connection sent a 1603 and waits for the client's 900 or 902: a
    /// graceful stop keeps the connection open until then (or its grace runs out).
    ///
    /// ```
    /// # use std::time::Instant;
    /// # use protocol_core::{ServerConfig, ServerConnection};
    /// # use rand_chacha::{ChaCha20Rng, rand_core::SeedableRng};
    /// let conn = ServerConnection::new(ServerConfig::default(), ChaCha20Rng::seed_from_u64(0), Instant::now());
    /// assert!(!conn.awaits_verdict());
    /// ```
    pub fn awaits_verdict(&self) -> bool {
        self.verdict_due && !self.closed
    }

    /// The client this connection has identified, if any.
    pub fn client_id(&self) -> Option<ClientId> {
        self.session.as_ref().map(|s| s.0)
    }

    // ---- handle_* ----

    /// Processes as many whole requests from the front of `input` as the state
    /// allows, leaving any partial frame (and anything after an outstanding
    /// question) in place. A protocol violation queues a 1607, closes the connection
    /// and is returned; the same error is then available from [`error`](Self::error).
    pub fn handle_input(&mut self, input: &mut BytesMut, now: Instant) -> Result<(), PeerError> {
        if self.closed {
            return Ok(());
        }
        self.now = now;
        while self.wants_read() {
            let frame = match wire::decode_request(input, &self.config.limits) {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(e) => return Err(self.fatal(e)),
            };
            self.last_progress = now;
            self.partial_since = None;
            self.requests_seen += 1;
            if let Err(e) = self.on_request(frame) {
                return Err(self.fatal(e));
            }
        }
        if input.is_empty() {
            self.partial_since = None;
        } else if self.partial_since.is_none() && self.wants_read() {
            self.partial_since = Some(now);
        }
        Ok(())
    }

    /// The peer closed its side. An upload between packets is handed to the
    /// application as [`ServerEvent::UploadSuspended`]; the connection closes.
    pub fn handle_eof(&mut self) {
        if self.closed {
            return;
        }
        if let Some(up) = self.upload.take() {
            self.events.push_back(ServerEvent::UploadSuspended {
                client_id: up.client_id,
                upload: SuspendedUpload(Box::new(up)),
            });
        }
        self.closed = true;
    }

    /// Checks the timers at `now`: a request left unfinished for
    /// [`Limits::request_timeout`](crate::Limits::request_timeout) gets a 1607 and closes the connection; a
    /// connection with nothing for [`Limits::idle_timeout`](crate::Limits::idle_timeout) closes quietly.
    pub fn handle_timeout(&mut self, now: Instant) {
        let Some(deadline) = self.poll_timeout() else {
            return;
        };
        if now < deadline {
            return;
        }
        if self.partial_since.is_some() {
            self.fatal(PeerError::Timeout("request not finished in time"));
        } else {
            self.handle_eof();
            self.error = Some(PeerError::Timeout("idle"));
        }
    }

    // ---- poll_* ----

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        self.events.pop_front()
    }

    /// Appends every byte the connection has to send to `out`.
    pub fn poll_transmit(&mut self, out: &mut BytesMut) {
        if out.is_empty() {
            std::mem::swap(out, &mut self.out);
        } else {
            out.extend_from_slice(&self.out);
            self.out.clear();
        }
    }

    // ---- answers ----

    /// Answer to [`ServerEvent::Register`]: stored; sends 1600.
    pub fn accept_registration(&mut self, ticket: Ticket) -> Result<(), UsageError> {
        match self.take_pending(ticket)? {
            Pending::Register { client_id } => {
                self.respond(Response::Registered { client_id });
                Ok(())
            }
            other => self.wrong_answer(ticket, other, "accept_registration answers Register"),
        }
    }

    /// Answer to [`ServerEvent::Register`]: the name is taken; sends 1601.
    pub fn refuse_registration(&mut self, ticket: Ticket) -> Result<(), UsageError> {
        match self.take_pending(ticket)? {
            Pending::Register { .. } => {
                self.respond(Response::RegistrationFailed);
                Ok(())
            }
            other => self.wrong_answer(ticket, other, "refuse_registration answers Register"),
        }
    }

    /// Answer to [`ServerEvent::Reconnect`]: the stored public key field, or `None`
    /// if the client is unknown, the name differs or no key is on file (1606).
    pub fn reconnect_lookup(
        &mut self,
        ticket: Ticket,
        stored_public_key: Option<&[u8]>,
    ) -> Result<(), UsageError> {
        let client_id = match self.take_pending(ticket)? {
            Pending::ReconnectLookup { client_id } => client_id,
            other => return self.wrong_answer(ticket, other, "reconnect_lookup answers Reconnect"),
        };
        let key = stored_public_key.and_then(|k| PublicKey::from_field(k).ok());
        let Some(key) = key else {
            self.respond(Response::ReconnectRefused {
                client_id: Some(client_id),
            });
            return Ok(());
        };
        let aes_key = AesKey::generate(self.config.dialect.aes_key_size, &mut self.rng);
        match key.encrypt_aes_key(&mut self.rng, &aes_key) {
            Ok(encrypted) => {
                let t = self.ask(Pending::StoreAesKey {
                    client_id,
                    aes_key: aes_key.duplicate(),
                    encrypted: encrypted.into(),
                });
                self.events.push_back(ServerEvent::StoreAesKey {
                    ticket: t,
                    client_id,
                    aes_key,
                });
            }
            Err(_) => self.respond(Response::ReconnectRefused {
                client_id: Some(client_id),
            }),
        }
        Ok(())
    }

    /// Answer to [`ServerEvent::LookupClient`]: `None` if the client is unknown (1607).
    pub fn client_lookup(
        &mut self,
        ticket: Ticket,
        record: Option<ClientRecord>,
    ) -> Result<(), UsageError> {
        let (client_id, packet) = match self.take_pending(ticket)? {
            Pending::Lookup { client_id, packet } => (client_id, packet),
            other => return self.wrong_answer(ticket, other, "client_lookup answers LookupClient"),
        };
        let lifetime = self.config.limits.key_lifetime;
        let Some(ClientRecord {
            aes_key: Some(key),
            key_age,
            suspended,
        }) = record.filter(|r| r.key_age < lifetime)
        else {
            // Unknown client, no key, or an expired key: refused, and the connection
            // closes rather than look the client up again for every packet that follows.
            self.respond(Response::GeneralError);
            self.closed = true;
            return Ok(());
        };
        let issued = self.now.checked_sub(key_age).unwrap_or(self.now);
        self.session = Some((client_id, key, issued));
        self.upload = suspended
            .map(|s| *s.0)
            .filter(|u| u.client_id == client_id)
            .map(|mut u| {
                u.resumed = true;
                u
            });
        if let Err(e) = self.on_packet(client_id, packet) {
            self.fatal(e);
        }
        Ok(())
    }

    /// Answer to [`ServerEvent::StorePublicKey`], [`ServerEvent::StoreAesKey`],
    /// [`ServerEvent::UploadFinished`] and [`ServerEvent::Confirm`]: done; sends
    /// 1602, 1605, 1603 or 1604.
    pub fn succeed(&mut self, ticket: Ticket) -> Result<(), UsageError> {
        match self.take_pending(ticket)? {
            Pending::StorePublicKey {
                client_id,
                aes_key,
                encrypted,
            } => {
                self.session = Some((client_id, aes_key, self.now));
                self.respond(Response::AesKey {
                    client_id,
                    encrypted_key: encrypted,
                });
            }
            Pending::StoreAesKey {
                client_id,
                aes_key,
                encrypted,
            } => {
                self.session = Some((client_id, aes_key, self.now));
                self.respond(Response::Reconnected {
                    client_id,
                    encrypted_key: encrypted,
                });
            }
            Pending::UploadFinished {
                client_id,
                content_size,
                file_name,
                checksum,
            } => {
                self.verdict_due = true;
                self.respond(Response::FileReceived {
                    client_id,
                    content_size,
                    file_name,
                    checksum,
                })
            }
            Pending::Confirm { client_id } => self.respond(Response::Ack {
                client_id: Some(client_id),
            }),
            other => return self.wrong_answer(ticket, other, "succeed does not answer this"),
        }
        Ok(())
    }

    /// Answer to any question: the application could not do it (database or disk
    /// failure, unknown client, ...); sends 1607 and keeps the connection open.
    pub fn fail(&mut self, ticket: Ticket) -> Result<(), UsageError> {
        let pending = self.take_pending(ticket)?;
        if let Pending::UploadFinished { client_id, .. } = pending {
            self.events.push_back(ServerEvent::UploadAborted {
                client_id,
                reason: "the application failed to store it".into(),
            });
        }
        self.respond(Response::GeneralError);
        if let Pending::Lookup { .. } = pending {
            self.closed = true;
        }
        Ok(())
    }

    /// The application could not write the upload's data (disk full, ...): sends
    /// 1607, drops the upload and skips its remaining packets until the client starts
    /// again with a packet 1.
    pub fn fail_upload(&mut self) -> Result<(), UsageError> {
        let Some(up) = self.upload.take() else {
            return Err(UsageError::NotNow("no upload in progress"));
        };
        self.events.push_back(ServerEvent::UploadAborted {
            client_id: up.client_id,
            reason: "the application failed to write it".into(),
        });
        self.skipping_failed_upload = true;
        self.unwritten = 0;
        if let Some((_, Pending::UploadFinished { .. })) = self.pending {
            self.pending = None;
        }
        self.respond(Response::GeneralError);
        Ok(())
    }

    /// Reports that `n` bytes of [`ServerEvent::UploadData`] are written (backpressure).
    pub fn data_written(&mut self, n: usize) {
        self.unwritten = self.unwritten.saturating_sub(n);
    }

    // ---- internals ----

    fn take_pending(&mut self, ticket: Ticket) -> Result<Pending, UsageError> {
        match self.pending.take() {
            Some((t, p)) if t == ticket => Ok(p),
            other => {
                self.pending = other;
                Err(UsageError::UnknownTicket(ticket.0))
            }
        }
    }

    fn wrong_answer(
        &mut self,
        ticket: Ticket,
        pending: Pending,
        why: &'static str,
    ) -> Result<(), UsageError> {
        self.pending = Some((ticket, pending));
        Err(UsageError::WrongAnswer(why))
    }

    fn ask(&mut self, pending: Pending) -> Ticket {
        self.next_ticket += 1;
        let t = Ticket(self.next_ticket);
        self.pending = Some((t, pending));
        t
    }

    fn respond(&mut self, response: Response) {
        let byte_order = match self.config.dialect.response_order {
            ResponseOrder::Fixed(o) => o,
            ResponseOrder::MirrorRequest => self.last_order,
        };
        let enc = ResponseEncoding {
            byte_order,
            empty_ack: self.config.dialect.empty_ack,
        };
        wire::encode_response(&mut self.out, &response, enc);
    }

    fn fatal(&mut self, e: PeerError) -> PeerError {
        if matches!(
            e,
            PeerError::DecryptionFailed | PeerError::SizeMismatch { .. }
        ) {
            if let Some((client_id, ..)) = self.session.take() {
                self.events.push_back(ServerEvent::RevokeKey { client_id });
            }
        }
        if let Some(up) = self.upload.take() {
            self.events.push_back(ServerEvent::UploadAborted {
                client_id: up.client_id,
                reason: e.to_string(),
            });
        }
        self.pending = None;
        self.respond(Response::GeneralError);
        self.closed = true;
        self.error = Some(e.clone());
        e
    }

    fn on_request(&mut self, frame: RequestFrame) -> Result<(), PeerError> {
        self.last_order = frame.byte_order;
        self.detected.byte_order = Some(frame.byte_order);
        let client_id = frame.client_id;
        let code = frame.request.code();
        if code != RequestCode::Register {
            if client_id == ClientId::ZERO {
                return Err(PeerError::UnexpectedRequest {
                    code: code as u16,
                    why: "a client id is required",
                });
            }
            self.events.push_back(ServerEvent::Seen { client_id, code });
        }
        match frame.request {
            Request::Register { name } => {
                names::check_client_name(&name)?;
                let client_id = self.fresh_client_id();
                let ticket = self.ask(Pending::Register { client_id });
                self.events.push_back(ServerEvent::Register {
                    ticket,
                    client_id,
                    name,
                });
            }
            Request::SendPublicKey { name, public_key } => {
                names::check_client_name(&name)?;
                let key = PublicKey::from_field(&public_key)?;
                let aes_key = AesKey::generate(self.config.dialect.aes_key_size, &mut self.rng);
                let encrypted = key.encrypt_aes_key(&mut self.rng, &aes_key)?;
                let ticket = self.ask(Pending::StorePublicKey {
                    client_id,
                    aes_key: aes_key.duplicate(),
                    encrypted: encrypted.into(),
                });
                self.events.push_back(ServerEvent::StorePublicKey {
                    ticket,
                    client_id,
                    name,
                    public_key,
                    aes_key,
                });
            }
            Request::Reconnect { name } => {
                names::check_client_name(&name)?;
                let ticket = self.ask(Pending::ReconnectLookup { client_id });
                self.events.push_back(ServerEvent::Reconnect {
                    ticket,
                    client_id,
                    name,
                });
            }
            Request::SendFile(packet) => {
                let known = matches!(&self.session, Some((id, ..)) if *id == client_id);
                // A packet that continues an upload this connection does not hold was
                // handed to the application earlier (a connection per packet): ask for it.
                let continues_elsewhere = !self.skipping_failed_upload
                    && self.upload.is_none()
                    && upload::detect_field_order(&packet).is_none();
                if known && !continues_elsewhere {
                    self.on_packet(client_id, packet)?;
                } else {
                    let ticket = self.ask(Pending::Lookup { client_id, packet });
                    self.events
                        .push_back(ServerEvent::LookupClient { ticket, client_id });
                }
            }
            Request::CrcOk { file_name } | Request::CrcAbort { file_name } => {
                let verdict = if code == RequestCode::CrcOk {
                    Verdict::Verified
                } else {
                    Verdict::GaveUp
                };
                self.upload = None;
                self.verdict_due = false;
                let ticket = self.ask(Pending::Confirm { client_id });
                self.events.push_back(ServerEvent::Confirm {
                    ticket,
                    client_id,
                    file_name,
                    verdict,
                });
            }
            Request::CrcRetry { file_name } => {
                self.upload = None;
                self.events.push_back(ServerEvent::RetryAnnounced {
                    client_id,
                    file_name,
                });
            }
        }
        Ok(())
    }

    fn fresh_client_id(&mut self) -> ClientId {
        let mut bytes = [0u8; 16];
        self.rng.fill_bytes(&mut bytes);
        ClientId(*uuid::Builder::from_random_bytes(bytes).as_uuid().as_bytes())
    }

    fn on_packet(&mut self, client_id: ClientId, packet: FilePacket) -> Result<(), PeerError> {
        let Some((_, key, issued)) = &self.session else {
            return Err(PeerError::UnexpectedRequest {
                code: RequestCode::SendFile as u16,
                why: "no key exchanged",
            });
        };
        let key_expired =
            self.now.saturating_duration_since(*issued) >= self.config.limits.key_lifetime;
        names::check_file_name(&packet.file_name)?;
        let continuing = match &self.upload {
            // Only a client that left on another connection may start again unannounced;
            // here, starting again needs a 901 first.
            Some(up) if up.number_of(&packet) == 1 && !up.resumed => {
                return Err(PeerError::BadPacket("packet 1 repeated mid-upload"))
            }
            Some(up) => up.number_of(&packet) != 1,
            None => false,
        };
        if !continuing {
            if key_expired {
                // The client reconnects (827) for a fresh key.
                return Err(PeerError::KeyExpired);
            }
            if upload::detect_field_order(&packet).is_none() {
                if self.skipping_failed_upload {
                    return Ok(());
                }
                return Err(PeerError::BadPacket("upload does not start with packet 1"));
            }
            let dialect = &self.config.dialect;
            let mut up = Upload::start(
                client_id,
                key,
                &packet,
                &self.config.limits,
                dialect.checksum,
                dialect.encryption,
            )?;
            up.ack_every = match dialect.ack_every_packet {
                PacketAck::LastOnly => false,
                PacketAck::Every => true,
                // Decided below, packet by packet.
                PacketAck::Detect => false,
            };
            self.skipping_failed_upload = false;
            self.events.push_back(ServerEvent::UploadStarted {
                client_id,
                file_name: up.file_name.clone(),
                original_size: up.original_size,
                total_packets: up.total,
            });
            self.upload = Some(up);
        }
        let Some(up) = self.upload.as_mut() else {
            return Ok(());
        };
        // A packet as the first request of its connection: a connection per request.
        if self.requests_seen == 1 && self.config.dialect.ack_every_packet == PacketAck::Detect {
            up.ack_every = true;
        }
        let outcome = up.accept(&packet, &mut self.plain)?;
        up.report(&mut self.detected);
        self.detected.checksum = Some(self.config.dialect.checksum);
        if !outcome.data.is_empty() {
            self.unwritten += outcome.data.len();
            self.events.push_back(ServerEvent::UploadData {
                client_id,
                data: outcome.data,
            });
        }
        let content_size = up.ciphertext_len.min(u32::MAX as u64) as u32;
        if outcome.finished {
            let up = self
                .upload
                .take()
                .ok_or(PeerError::BadPacket("no upload"))?;
            let checksum = up.checksum.value();
            let ticket = self.ask(Pending::UploadFinished {
                client_id,
                content_size,
                file_name: up.file_name.clone(),
                checksum,
            });
            self.events.push_back(ServerEvent::UploadFinished {
                ticket,
                client_id,
                file_name: up.file_name,
                size: up.plaintext_len,
                checksum,
            });
        } else if up.ack_every {
            let response = Response::FileReceived {
                client_id,
                content_size,
                file_name: up.file_name.clone(),
                checksum: up.checksum.value(),
            };
            self.respond(response);
            // The next packet will come on another connection, which may be looked up
            // before this one sees its end: hand the upload over now, not at EOF.
            if let Some(up) = self.upload.take() {
                self.events.push_back(ServerEvent::UploadSuspended {
                    client_id,
                    upload: SuspendedUpload(Box::new(up)),
                });
            }
        }
        Ok(())
    }
}
