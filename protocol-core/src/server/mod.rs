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
//!   any question unanswered for Limits::answer_timeout ──► 1607, then closed
//!   a protocol violation ──► 1607, then closed
//!   a decryption failure ──► RevokeKey (key issued on this connection) or
//!                            DecryptionFailed (key looked up), 1607, then closed
//! ```
//!
//! # Calling order
//!
//! Methods fall into four groups, called in this order each time something happens
//! (bytes arrive, the application answers, a timer fires):
//!
//! 1. [`handle_input`](ServerConnection::handle_input) (and
//!    [`handle_eof`](ServerConnection::handle_eof),
//!    [`handle_timeout`](ServerConnection::handle_timeout)) feed what happened;
//! 2. [`poll_event`](ServerConnection::poll_event) until `None`, answering each
//!    question (a [`ServerEvent`] carrying a typed [`Ticket`]) through the answer
//!    methods its type allows
//!    ([`accept_registration`](ServerConnection::accept_registration),
//!    [`succeed`](ServerConnection::succeed), [`fail`](ServerConnection::fail), …),
//!    now or later, and reporting [`data_written`](ServerConnection::data_written)
//!    for [`ServerEvent::UploadData`];
//! 3. **after any answer or `data_written`, back to step 1**: `handle_input` with the
//!    same buffer, since input that arrived while the connection waited is still
//!    there and no new bytes will announce it;
//! 4. [`poll_transmit`](ServerConnection::poll_transmit) to collect the bytes to send;
//! 5. the getters ([`wants_read`](ServerConnection::wants_read),
//!    [`is_finished`](ServerConnection::is_finished),
//!    [`poll_timeout`](ServerConnection::poll_timeout)) to decide what to wait for:
//!    stop when `is_finished`; read the socket only while `wants_read`; and always
//!    wake at `poll_timeout` to call `handle_timeout`.
//!
//! Time is monotonic: every `now` given is at or after the previous one.
//!
//! At most one question is outstanding at a time; while it is, input stays in the
//! caller's buffer. [`pending_question`](ServerConnection::pending_question) says which.
//! Neither an unanswered question nor a missing `data_written` can hold a connection
//! forever: both have a deadline, [`Limits::answer_timeout`](crate::Limits::answer_timeout),
//! that [`poll_timeout`](ServerConnection::poll_timeout) reports.
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

mod answer;
mod budget;
mod event;
mod getters;
pub mod question;
mod secure_link;
mod session;
mod suspended;
mod upload;

use std::collections::VecDeque;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use rand_core::CryptoRngCore;

use crate::crypto::{AesKey, PublicKey};
use crate::dialect::{DetectedDialect, PacketAck, ResponseOrder};
use crate::error::PeerError;
use crate::names;
use crate::wire::{
    self, ByteOrder, ClientId, FieldString, FilePacket, Request, RequestCode, RequestFrame,
    Response, ResponseEncoding,
};
pub use budget::{InputBudget, DEFAULT_FREE_PER_CONNECTION, DEFAULT_INPUT_BUDGET};
pub use event::{ClientRecord, ServerConfig, ServerEvent, Verdict};
use question::Question;
pub use question::{QuestionKind, Ticket};
use session::{KeySource, Session};
pub use suspended::DecodeError;
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
    /// Asked at the header of an 828 (before any of its payload is taken); the
    /// packet is `None` then, `Some` only for a packet decoded before the lookup.
    Lookup {
        client_id: ClientId,
        packet: Option<FilePacket>,
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

impl Pending {
    fn kind(&self) -> QuestionKind {
        match self {
            Pending::Register { .. } => QuestionKind::Register,
            Pending::StorePublicKey { .. } => QuestionKind::StorePublicKey,
            Pending::ReconnectLookup { .. } => QuestionKind::Reconnect,
            Pending::StoreAesKey { .. } => QuestionKind::StoreAesKey,
            Pending::Lookup { .. } => QuestionKind::LookupClient,
            Pending::UploadFinished { .. } => QuestionKind::UploadFinished,
            Pending::Confirm { .. } => QuestionKind::Confirm,
        }
    }
}

/// The question a connection waits on, its ticket number and when it was asked.
#[derive(Debug)]
struct Asked {
    id: u64,
    question: Pending,
    since: Instant,
}

/// The server side of one connection. See the [module docs](self) for the order
/// in which to call its methods; the crate docs run a whole exchange with the
/// driver loop that answers every event.
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
    pending: Option<Asked>,
    /// The number of the next question: a counter of this connection (no state is
    /// shared between connections); it influences nothing that is sent.
    next_ticket: u64,
    /// The client this connection speaks for, and its key.
    session: Option<Session>,
    /// The `now` of the latest `handle_input`.
    now: Instant,
    upload: Option<Upload>,
    /// 1603 was sent and no 900/902 has come yet.
    verdict_due: bool,
    /// A failed upload's remaining packets are skipped until a packet 1 starts anew.
    skipping_failed_upload: bool,
    requests_seen: u64,
    unwritten: usize,
    /// Since when reading has been paused by `max_unwritten`.
    paused_since: Option<Instant>,
    /// The last `Seen` reported: for whom and when.
    last_seen: Option<(ClientId, Instant)>,
    last_order: ByteOrder,
    closed: bool,
    error: Option<PeerError>,
    last_progress: Instant,
    partial_since: Option<Instant>,
    detected: DetectedDialect,
    /// When the connection was accepted, and whether a whole request header has
    /// arrived since (a connection must show one within
    /// [`Limits::first_header_timeout`](crate::Limits::first_header_timeout)).
    accepted_at: Instant,
    header_seen: bool,
    /// The client an 828 header was looked up for, so that its frame is not looked
    /// up again once it is whole.
    looked_up: Option<ClientId>,
    /// The server-wide input budget and this connection's share of it.
    budget: Option<InputBudget>,
    held: usize,
    /// Inside TLS: the secure extension's session (docs/PROTOCOL.md, section 10).
    secure: Option<Box<crate::secure::SecureServer>>,
}

impl<R> Drop for ServerConnection<R> {
    fn drop(&mut self) {
        if let Some(b) = &self.budget {
            b.resize(self.held, 0);
        }
    }
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
            next_ticket: 1,
            session: None,
            upload: None,
            verdict_due: false,
            skipping_failed_upload: false,
            requests_seen: 0,
            unwritten: 0,
            paused_since: None,
            last_seen: None,
            last_order: ByteOrder::Little,
            closed: false,
            error: None,
            last_progress: now,
            partial_since: None,
            accepted_at: now,
            header_seen: false,
            looked_up: None,
            budget: None,
            held: 0,
            secure: None,
            now,
        }
    }

    // ---- handle_* ----

    /// Processes as many whole requests from the front of `input` as the state
    /// allows, leaving any partial frame (and anything after an outstanding
    /// question) in place. A protocol violation queues a 1607, closes the connection
    /// and is returned; the same error is then available from [`error`](Self::error).
    /// Once closed, every call returns an error again (the one that closed it, or
    /// [`PeerError::Closed`]) and consumes nothing.
    pub fn handle_input(&mut self, input: &mut BytesMut, now: Instant) -> Result<(), PeerError> {
        if self.closed {
            return Err(self.error.clone().unwrap_or(PeerError::Closed));
        }
        self.now = now;
        let result = if self.secure.is_some() {
            self.take_secure(input, now)
        } else {
            self.take_requests(input, now)
        };
        let held = if self.closed { 0 } else { input.len() };
        if let Some(budget) = &self.budget {
            if !budget.resize(self.held, held) {
                budget.resize(self.held, 0);
                self.held = 0;
                return Err(self.fatal(PeerError::Busy));
            }
        }
        self.held = held;
        result
    }

    fn take_requests(&mut self, input: &mut BytesMut, now: Instant) -> Result<(), PeerError> {
        while self.wants_read() {
            if let Err(e) = self.check_header(input) {
                return Err(self.fatal(e));
            }
            if !self.wants_read() {
                break; // the header asked who the client is
            }
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
        if self.closed {
            // Closed by this input without a violation (a refused lookup).
            return Err(self.error.clone().unwrap_or(PeerError::Closed));
        }
        Ok(())
    }

    /// The peer closed its side. An upload between packets is handed to the
    /// application as [`ServerEvent::UploadSuspended`]; the connection closes (and
    /// is [finished](Self::is_finished) once its events are polled).
    pub fn handle_eof(&mut self) {
        if self.closed {
            return;
        }
        if let Some(s) = &mut self.secure {
            s.handle_eof();
            self.closed = true;
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

    /// Checks the timers at `now` (extra calls are harmless):
    /// - a question unanswered, or `data_written` missing, for
    ///   [`Limits::answer_timeout`](crate::Limits::answer_timeout): 1607 and closed;
    /// - a request left unfinished for
    ///   [`Limits::request_timeout`](crate::Limits::request_timeout): 1607 and closed;
    /// - nothing for [`Limits::idle_timeout`](crate::Limits::idle_timeout): closed quietly.
    pub fn handle_timeout(&mut self, now: Instant) {
        let Some(deadline) = self.poll_timeout() else {
            return;
        };
        if now < deadline {
            return;
        }
        if self.secure.is_some() {
            return self.secure_timeout();
        }
        if let Some(p) = self.pending.take() {
            self.abandon_quietly(p.question);
            self.fatal(PeerError::Timeout(
                "the application did not answer the question in time",
            ));
        } else if self.paused_since.is_some() {
            self.fatal(PeerError::Timeout(
                "the application did not report data_written in time",
            ));
        } else if !self.header_seen
            && now >= self.accepted_at + self.config.limits.first_header_timeout
        {
            self.fatal(PeerError::Timeout("no request header in time"));
        } else if self.partial_since.is_some() {
            self.fatal(PeerError::Timeout("request not finished in time"));
        } else {
            self.handle_eof();
            self.error = Some(PeerError::Timeout("idle"));
        }
    }

    // ---- poll_* ----

    /// The next event, if any. Poll after every `handle_*` call and every answer.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        if let Some(ev) = self.events.pop_front() {
            return Some(ev);
        }
        self.secure
            .as_mut()
            .and_then(|s| s.poll_event())
            .map(ServerEvent::Secure)
    }

    /// Appends every byte the connection has to send to `out`. Poll after every
    /// `handle_*` call and every answer.
    pub fn poll_transmit(&mut self, out: &mut BytesMut) {
        if out.is_empty() {
            std::mem::swap(out, &mut self.out);
        } else {
            out.extend_from_slice(&self.out);
            self.out.clear();
        }
        if let Some(s) = &mut self.secure {
            if out.is_empty() {
                std::mem::swap(out, &mut s.out);
            } else {
                out.extend_from_slice(&s.out);
                s.out.clear();
            }
            if s.is_closing() {
                self.closed = true;
            }
        }
    }

    // ---- internals ----

    fn ask<Q: Question>(&mut self, question: Pending) -> Ticket<Q> {
        let id = self.next_ticket;
        self.next_ticket = self.next_ticket.wrapping_add(1);
        self.pending = Some(Asked {
            id,
            question,
            since: self.now,
        });
        Ticket::new(id)
    }

    /// A question was answered: the answer deadline no longer runs, and the idle
    /// deadline counts from the answer (the application's time is not the peer's).
    fn on_answered(&mut self) {
        self.last_progress = self.last_progress.max(self.now);
    }

    /// The question will not be answered: what its asking started is undone.
    fn abandon_quietly(&mut self, question: Pending) {
        if let Pending::UploadFinished { client_id, .. } = question {
            self.events.push_back(ServerEvent::UploadAborted {
                client_id,
                reason: "the application failed to store it".into(),
            });
        }
    }

    /// The question failed: 1607; a failed lookup also closes the connection.
    fn abandon(&mut self, question: Pending) {
        let closes = matches!(question, Pending::Lookup { .. });
        self.abandon_quietly(question);
        self.respond(Response::GeneralError);
        if closes {
            self.closed = true;
        }
    }

    fn set_unwritten(&mut self, n: usize) {
        self.unwritten = n;
        if n < self.config.limits.max_unwritten {
            self.paused_since = None;
        } else if self.paused_since.is_none() {
            self.paused_since = Some(self.now);
        }
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
            if let Some(session) = self.session.take() {
                let client_id = session.client_id;
                self.events.push_back(match session.source {
                    KeySource::IssuedHere => ServerEvent::RevokeKey { client_id },
                    KeySource::LookedUp => ServerEvent::DecryptionFailed { client_id },
                });
            }
        }
        if let Some(up) = self.upload.take() {
            self.events.push_back(ServerEvent::UploadAborted {
                client_id: up.client_id,
                reason: e.to_string(),
            });
        }
        if let Some(p) = self.pending.take() {
            self.abandon_quietly(p.question);
        }
        self.respond(Response::GeneralError);
        self.closed = true;
        self.error = Some(e.clone());
        e
    }

    /// Looks at the header at the front of `input` before any payload is taken: its
    /// size is checked, and an 828 from a client this connection has no key for is
    /// looked up at once (refused with 1607 if the application has no key for it),
    /// so an unknown peer cannot make the server hold a large frame.
    fn check_header(&mut self, input: &BytesMut) -> Result<(), PeerError> {
        let Some((_, code, size)) = wire::peek_request_header(input)? else {
            return Ok(());
        };
        self.header_seen = true;
        wire::check_request_size(code, size as usize, &self.config.limits)?;
        let mut id = [0u8; 16];
        id.copy_from_slice(&input[..16]);
        let client_id = ClientId(id);
        // 825 needs no id; an 827 without one is refused with 1606 (section 7).
        let needs_id = !matches!(code, RequestCode::Register | RequestCode::Reconnect);
        if needs_id && client_id == ClientId::ZERO {
            return Err(PeerError::UnexpectedRequest {
                code: code as u16,
                why: "a client id is required",
            });
        }
        if code != RequestCode::SendFile {
            return Ok(());
        }
        let known = self.session.as_ref().is_some_and(|s| s.is(client_id));
        if known || self.looked_up == Some(client_id) {
            return Ok(());
        }
        self.looked_up = Some(client_id);
        let ticket = self.ask(Pending::Lookup {
            client_id,
            packet: None,
        });
        self.events
            .push_back(ServerEvent::LookupClient { ticket, client_id });
        Ok(())
    }

    fn on_request(&mut self, frame: RequestFrame) -> Result<(), PeerError> {
        self.last_order = frame.byte_order;
        self.detected.byte_order = Some(frame.byte_order);
        let client_id = frame.client_id;
        let code = frame.request.code();
        if let Some(refusal) = answer::refused_outright(&frame.request, client_id) {
            // Refusals section 7 gives without asking storage; the connection stays.
            self.respond(refusal);
            return Ok(());
        }
        if code != RequestCode::Register {
            if client_id == ClientId::ZERO {
                return Err(PeerError::UnexpectedRequest {
                    code: code as u16,
                    why: "a client id is required",
                });
            }
            self.report_seen(client_id, code);
        }
        match frame.request {
            Request::Register { name } => {
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
                let ticket = self.ask(Pending::ReconnectLookup { client_id });
                self.events.push_back(ServerEvent::Reconnect {
                    ticket,
                    client_id,
                    name,
                });
            }
            Request::SendFile(packet) => {
                let known = self.session.as_ref().is_some_and(|s| s.is(client_id));
                // A packet that continues an upload this connection does not hold was
                // handed to the application earlier (a connection per packet): ask for it.
                // (Unless its header was just looked up: the answer carried the upload.)
                let looked_up = self.looked_up.take() == Some(client_id);
                let continues_elsewhere = !self.skipping_failed_upload
                    && self.upload.is_none()
                    && !looked_up
                    && upload::detect_field_order(&packet).is_none();
                if known && !continues_elsewhere {
                    self.on_packet(client_id, packet)?;
                } else {
                    let ticket = self.ask(Pending::Lookup {
                        client_id,
                        packet: Some(packet),
                    });
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

    /// `Seen`, at most once per `seen_interval` for the same client.
    fn report_seen(&mut self, client_id: ClientId, code: RequestCode) {
        let due = match self.last_seen {
            Some((id, at)) if id == client_id => {
                self.now.saturating_duration_since(at) >= self.config.limits.seen_interval
            }
            _ => true,
        };
        if due {
            self.last_seen = Some((client_id, self.now));
            self.events.push_back(ServerEvent::Seen { client_id, code });
        }
    }

    /// A random (version 4) id that never begins like a TLS record, so that one
    /// port can serve legacy requests and TLS ([`crate::frame::begins_like_tls`]).
    fn fresh_client_id(&mut self) -> ClientId {
        loop {
            let mut bytes = [0u8; 16];
            self.rng.fill_bytes(&mut bytes);
            let id = *uuid::Builder::from_random_bytes(bytes).as_uuid().as_bytes();
            if !crate::frame::begins_like_tls(&id) {
                return ClientId(id);
            }
        }
    }

    fn on_packet(&mut self, client_id: ClientId, packet: FilePacket) -> Result<(), PeerError> {
        let Some(Session { key, issued, .. }) = &self.session else {
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
            if self.unwritten >= self.config.limits.max_unwritten && self.paused_since.is_none() {
                self.paused_since = Some(self.now);
            }
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
            // The checksum of a part is worth nothing to the client (it compares
            // the whole file's) and, to a stranger who sends chosen ciphertext under
            // the client's id, it is 32 bits of the plaintext per packet: a part's
            // answer carries 0. Only the last packet's answer, counted by the
            // application per key, carries a checksum.
            let response = Response::FileReceived {
                client_id,
                content_size,
                file_name: up.file_name.clone(),
                checksum: 0,
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
