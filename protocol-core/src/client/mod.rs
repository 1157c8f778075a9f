//! The client role: one [`ClientSession`] for a whole run.
//!
//! ```text
//!  no identity ─► 825 ─ 1600 ─► Registered ─► 826 ─ 1602 ─┐
//!  identity ────► 827 ─ 1605 ─────────────────────────────┤
//!                    └ 1606 ─► ReconnectRefused ─► 825 …  │
//!                                                         ▼
//!          SendFile ─► push_file_data…/end_of_file ─► 828 × n ─ 1603
//!               ▲                                           │
//!               └──── ChecksumMismatch ◄─ 901 ◄── differs ──┤ (at most 3 re-sends)
//!                        902 ◄─ 4th mismatch ───────────────┤
//!                        900 ◄─ equal ──────────────────────┘
//!                         └─ 1604 ─► Finished
//!  an error response ─► ServerError, the same request again (3 attempts in all)
//!  1601 ─► ServerError, then ServerRefused at once (a refused name stays refused)
//! ```
//!
//! # Calling order
//!
//! 1. [`handle_input`](ClientSession::handle_input) (and
//!    [`handle_eof`](ClientSession::handle_eof)) with what the server sent;
//! 2. [`poll_event`](ClientSession::poll_event) until `None`; on
//!    [`ClientEvent::SendFile`] the application feeds the file from its start;
//! 3. while [`wants_file_data`](ClientSession::wants_file_data), feed it with
//!    [`push_file_data`](ClientSession::push_file_data) (it returns how much it took)
//!    and finally [`end_of_file`](ClientSession::end_of_file);
//! 4. [`poll_transmit`](ClientSession::poll_transmit) until it appends nothing, writing
//!    what each call appended with one write;
//! 5. before waiting on the socket, [`handle_timeout`](ClientSession::handle_timeout)
//!    with the current time, then wait for input no later than
//!    [`poll_timeout`](ClientSession::poll_timeout) and call `handle_timeout` when
//!    it passes: a silent server fails the run with `PeerError::Timeout` after
//!    [`DEFAULT_ANSWER_TIMEOUT`] (or [`set_answer_timeout`](ClientSession::set_answer_timeout)).
//!
//! Stop when [`is_finished`](ClientSession::is_finished). Time is monotonic: every
//! `now` given is at or after the previous one. The session never reads the file
//! itself.
//!
//! # Whole requests, and which 1603 is the last
//!
//! [`poll_transmit`](ClientSession::poll_transmit) hands out whole requests only: a
//! packet whose last cipher block is still inside the encryptor stays queued until
//! [`end_of_file`](ClientSession::end_of_file) completes it. With
//! [`Dialect::one_request_per_write`](crate::Dialect::one_request_per_write) it hands
//! out one request per call, for servers that read a request with one `recv`.
//!
//! A server may answer every 828 (variant 7) or only the last; and the last answer's
//! size field may hold the ciphertext total or the plaintext size (variant 11). The
//! session counts the 1603s of a send against its packets: the answer that makes
//! the count reach the number of packets is the last. Before that, an answer is
//! taken for an intermediate one when the server is known to answer every packet
//! (a connection per request, or an answer that came before the file had all gone,
//! or an earlier intermediate answer); otherwise, only when its size field is below
//! the file's plaintext size (a running total). The one case this cannot tell: two
//! packets, the first exactly as long as the plaintext, sent to a server that answers
//! every packet on one connection; its first answer is taken for the last, and the
//! checksum comparison then asks for the file again.

mod event;
mod getters;
mod layout;
mod outbox;
mod timer;

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};
use rand_core::CryptoRngCore;

use crate::crypto::{AesKey, CbcEncryptor, Checksum, PrivateKey};
use crate::error::{PeerError, UsageError};
use crate::wire::{
    self, ClientId, FieldString, FilePacket, Request, RequestCode, RequestEncoding, Response,
    ResponseCode,
};

/// How many times a request is sent in all when the server answers with an error.
pub const MAX_ATTEMPTS: u32 = 3;
/// How many times the file is sent again after a checksum mismatch.
pub const MAX_RESENDS: u32 = 3;

pub use event::{ClientConfig, ClientEvent, ClientFailure, Identity, Outcome};
use layout::Layout;
use outbox::Outbox;
use timer::AnswerTimer;
pub use timer::DEFAULT_ANSWER_TIMEOUT;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    AwaitRegistered,
    AwaitAesKey,
    AwaitReconnect,
    Uploading,
    AwaitChecksum,
    AwaitAck(Outcome),
    Done,
    Failed,
}

/// The client side of a run. See the [module docs](self); the crate docs run a
/// whole exchange.
///
/// ```
/// use bytes::BytesMut;
/// use protocol_core::{wire, ClientConfig, ClientSession, Dialect, FieldString, Request};
/// use rand_chacha::{ChaCha20Rng, rand_core::SeedableRng};
///
/// let mut session = ClientSession::new(ClientConfig {
///     name: FieldString::new("alice").unwrap(),
///     file_name: FieldString::new("notes.txt").unwrap(),
///     file_size: 5,
///     identity: None, // no me.info: register
///     registration_key: None,
///     dialect: Dialect::default(),
/// }, ChaCha20Rng::seed_from_u64(0)).unwrap();
/// let mut out = BytesMut::new();
/// session.poll_transmit(&mut out);
/// let frame = wire::decode_request(&mut out, &Default::default()).unwrap().unwrap();
/// assert!(matches!(frame.request, Request::Register { .. }));
/// ```
pub struct ClientSession<R> {
    config: ClientConfig,
    rng: R,
    state: State,
    client_id: ClientId,
    private_key: Option<PrivateKey>,
    aes_key: Option<AesKey>,
    events: VecDeque<ClientEvent>,
    out: Outbox,
    /// Sends of the current request that the server answered with an error.
    attempts: u32,
    /// File sends after the first (901s).
    resends: u32,
    send: Option<FileSend>,
    failure: Option<ClientFailure>,
    /// Variant 7: a released request awaits its answer on the current connection.
    in_flight: bool,
    /// Variant 7: the current connection is used up.
    need_connection: bool,
    timer: AnswerTimer,
    /// On 1606, register anew (the specification) or fail with
    /// [`ClientFailure::ReconnectRefused`].
    register_when_refused: bool,
    /// Our checksum of the last complete send.
    file_checksum: Option<u32>,
}

/// One pass over the file: encryption, packetising, checksum.
struct FileSend {
    encryptor: CbcEncryptor,
    checksum: Checksum,
    pending: BytesMut,
    /// Plaintext fed in this send.
    fed: u64,
    /// Plaintext fed into the current per-packet chunk (variant 4).
    chunk_fed: u64,
    /// Ciphertext still to come in the packet whose header is already queued.
    room: u64,
    next_packet: u16,
    layout: Layout,
    /// Zero bytes that follow the last packet's content (variant 12).
    pad_tail: u64,
    /// 1603s received for this send.
    answers: u32,
    /// The server answers every packet, not only the last.
    every_packet_answered: bool,
}

impl<R: CryptoRngCore> ClientSession<R> {
    /// Starts a run: the first request (825 or 827) is queued at once.
    pub fn new(config: ClientConfig, rng: R) -> Result<Self, UsageError> {
        if config.file_size > u32::MAX as u64 {
            return Err(UsageError::BadConfig("file larger than 4 GiB - 1"));
        }
        Layout::new(config.file_size, &config.dialect)?;
        let mut s = ClientSession {
            rng,
            state: State::Done,
            client_id: ClientId::ZERO,
            private_key: None,
            aes_key: None,
            events: VecDeque::new(),
            out: Outbox::default(),
            attempts: 0,
            resends: 0,
            send: None,
            failure: None,
            in_flight: false,
            need_connection: false,
            timer: AnswerTimer::default(),
            register_when_refused: true,
            file_checksum: None,
            config,
        };
        match s.config.identity.clone() {
            Some(id) => {
                s.client_id = id.client_id;
                s.private_key = Some(id.private_key);
                s.state = State::AwaitReconnect;
                s.send_request(Request::Reconnect {
                    name: s.config.name.clone(),
                });
            }
            None => s.register(),
        }
        Ok(s)
    }

    /// Whether a refused reconnect (1606) makes the session register anew, as the
    /// specification says (the default), or fail with
    /// [`ClientFailure::ReconnectRefused`]. An application turns it off when a new
    /// identity would replace one that belongs to another server. Call it before the
    /// first [`handle_input`](Self::handle_input).
    ///
    /// ```
    /// use protocol_core::{ClientConfig, ClientSession, Dialect, FieldString};
    /// use rand_chacha::{ChaCha20Rng, rand_core::SeedableRng};
    ///
    /// let mut session = ClientSession::new(ClientConfig {
    ///     name: FieldString::new("alice").unwrap(),
    ///     file_name: FieldString::new("notes.txt").unwrap(),
    ///     file_size: 5,
    ///     identity: None,
    ///     registration_key: None,
    ///     dialect: Dialect::default(),
    /// }, ChaCha20Rng::seed_from_u64(0)).unwrap();
    /// session.set_register_when_refused(false);
    /// ```
    pub fn set_register_when_refused(&mut self, register: bool) {
        self.register_when_refused = register;
    }

    // ---- handle_* ----

    /// Processes every whole response at the front of `input`.
    pub fn handle_input(&mut self, input: &mut BytesMut) -> Result<(), ClientFailure> {
        while !self.is_finished() {
            let response = match wire::decode_response(input) {
                Ok(Some(r)) => r,
                Ok(None) => break,
                Err(e) => return Err(self.fail(e.into())),
            };
            self.timer.since = None;
            if let Err(f) = self.on_response(response) {
                return Err(self.fail(f));
            }
        }
        Ok(())
    }

    /// The server closed the connection. Fails the run unless it was over.
    pub fn handle_eof(&mut self) -> Result<(), ClientFailure> {
        if self.is_finished() {
            return Ok(());
        }
        Err(self.fail(PeerError::UnexpectedEof.into()))
    }

    /// Feeds the next piece of the file (after [`ClientEvent::SendFile`]) and returns
    /// how many bytes of `data` it took, like `std::io::Write::write`: at most what
    /// keeps the queued output within the bound of
    /// [`wants_file_data`](Self::wants_file_data), so however much is pushed at once,
    /// one `poll_transmit` gives out a bounded amount. Feed the rest after
    /// `poll_transmit`. With nothing queued room, non-empty `data` is refused with
    /// [`UsageError::SendBufferFull`].
    pub fn push_file_data(&mut self, data: &[u8]) -> Result<usize, UsageError> {
        let client_id = self.client_id;
        let enc = self.encoding();
        let file_size = self.config.file_size;
        let (Some(send), State::Uploading) = (self.send.as_mut(), self.state) else {
            return Err(UsageError::NotSendingFile);
        };
        if send.fed + data.len() as u64 > file_size {
            return Err(UsageError::FileLonger { size: file_size });
        }
        let bound = (2 * send.layout.unit + 64 * 1024) as usize;
        let room = bound.saturating_sub(self.out.len() + send.pending.len());
        if room == 0 && !data.is_empty() {
            return Err(UsageError::SendBufferFull);
        }
        let data = &data[..room.min(data.len())];
        let taken = data.len();
        send.checksum.update(data);
        if self.config.dialect.per_packet_encryption {
            let mut data = data;
            while !data.is_empty() {
                let room = (send.layout.unit - send.chunk_fed) as usize;
                let take = room.min(data.len());
                send.encryptor.update(&data[..take], &mut send.pending);
                send.chunk_fed += take as u64;
                send.fed += take as u64;
                data = &data[take..];
                if send.chunk_fed == send.layout.unit && send.fed < file_size {
                    send.encryptor.finish(&mut send.pending);
                    send.chunk_fed = 0;
                    let content = send.pending.split().freeze();
                    Self::emit_packet(&self.config, client_id, enc, send, content, &mut self.out);
                    self.out.mark_whole_file(send.fed);
                    self.events.push_back(ClientEvent::Progress {
                        sent: send.fed,
                        total: file_size,
                    });
                }
            }
        } else {
            let mut data = data;
            while !data.is_empty() {
                if send.room == 0 {
                    Self::open_packet(&self.config, client_id, enc, send, &mut self.out.buf);
                }
                // Encrypt straight into the frame; a packet before the last takes
                // exactly `room` bytes of ciphertext (the encryptor keeps < 16 back).
                let last = send.next_packet == send.layout.total_packets;
                let take = if last {
                    data.len()
                } else {
                    (send.room as usize + 15 - send.encryptor.buffered()).min(data.len())
                };
                let before = self.out.len();
                send.encryptor.update(&data[..take], &mut self.out.buf);
                send.room -= (self.out.len() - before) as u64;
                send.fed += take as u64;
                data = &data[take..];
                if send.room == 0 && !last {
                    // A packet before the last is whole; the last waits for `end_of_file`.
                    self.out.mark_whole_file(send.fed);
                    self.events.push_back(ClientEvent::Progress {
                        sent: send.fed,
                        total: file_size,
                    });
                }
            }
        }
        Ok(taken)
    }

    /// The whole file has been fed: the last packet goes out and the session waits
    /// for the server's checksum.
    pub fn end_of_file(&mut self) -> Result<(), UsageError> {
        let client_id = self.client_id;
        let enc = self.encoding();
        let file_size = self.config.file_size;
        let (Some(send), State::Uploading) = (self.send.as_mut(), self.state) else {
            return Err(UsageError::NotSendingFile);
        };
        if send.fed != file_size {
            return Err(UsageError::FileShorter {
                fed: send.fed,
                size: file_size,
            });
        }
        if self.config.dialect.per_packet_encryption {
            send.encryptor.finish(&mut send.pending);
            let content = send.pending.split().freeze();
            Self::emit_packet(&self.config, client_id, enc, send, content, &mut self.out);
        } else {
            if send.room == 0 {
                Self::open_packet(&self.config, client_id, enc, send, &mut self.out.buf);
            }
            send.encryptor.finish(&mut self.out.buf);
            send.room = send.room.saturating_sub(16);
            let padded = self.out.buf.len() + send.pad_tail as usize;
            self.out.buf.resize(padded, 0);
        }
        // The last packet is whole only now: its last cipher block came from `finish`.
        self.out.mark_whole_file(send.fed);
        self.events.push_back(ClientEvent::Progress {
            sent: send.fed,
            total: file_size,
        });
        self.state = State::AwaitChecksum;
        Ok(())
    }

    // ---- internals ----

    fn encoding(&self) -> RequestEncoding {
        RequestEncoding {
            byte_order: self.config.dialect.byte_order,
            packet_fields: self.config.dialect.packet_fields,
        }
    }

    /// Queues the header of the next packet of a stream-encrypted file; its content
    /// is then encrypted straight into `out` behind it.
    fn open_packet(
        config: &ClientConfig,
        client_id: ClientId,
        enc: RequestEncoding,
        send: &mut FileSend,
        out: &mut BytesMut,
    ) {
        let layout = send.layout;
        let len = if send.next_packet + 1 == layout.total_packets {
            layout.content_size - (layout.total_packets as u64 - 1) * layout.unit
        } else {
            layout.unit
        };
        send.next_packet += 1;
        send.room = len;
        // Variant 12: every content field is a whole unit; the last one zero-filled.
        send.pad_tail = if config.dialect.pad_packets {
            layout.unit - len
        } else {
            0
        };
        let packet = FilePacket {
            content_size: if config.dialect.per_packet_content_size {
                len as u32
            } else {
                layout.content_size as u32
            },
            original_size: config.file_size as u32,
            packet_number: send.next_packet,
            total_packets: layout.total_packets,
            file_name: config.file_name.clone(),
            content: Bytes::new(),
        };
        wire::encode_packet_frame_head(
            out,
            client_id,
            &packet,
            (len + send.pad_tail) as usize,
            enc,
        );
    }

    fn emit_packet(
        config: &ClientConfig,
        client_id: ClientId,
        enc: RequestEncoding,
        send: &mut FileSend,
        content: Bytes,
        out: &mut Outbox,
    ) {
        let out = &mut out.buf;
        send.next_packet += 1;
        let content_size = if config.dialect.per_packet_content_size {
            content.len() as u32
        } else {
            send.layout.content_size as u32
        };
        let packet = FilePacket {
            content_size,
            original_size: config.file_size as u32,
            packet_number: send.next_packet,
            total_packets: send.layout.total_packets,
            file_name: config.file_name.clone(),
            content: Bytes::new(),
        };
        wire::encode_packet_frame_head(out, client_id, &packet, content.len(), enc);
        out.extend_from_slice(&content);
    }

    fn send_request(&mut self, request: Request) {
        let enc = self.encoding();
        wire::encode_request(&mut self.out.buf, self.client_id, &request, enc);
        self.out.mark_whole();
    }

    fn fail(&mut self, f: ClientFailure) -> ClientFailure {
        self.state = State::Failed;
        self.send = None;
        self.failure = Some(f.clone());
        f
    }

    fn register(&mut self) {
        self.client_id = ClientId::ZERO;
        self.state = State::AwaitRegistered;
        self.attempts = 0;
        self.send_request(Request::Register {
            name: self.config.name.clone(),
        });
    }

    fn crc_name(&self) -> FieldString {
        if self.config.dialect.crc_carries_client_name {
            self.config.name.clone()
        } else {
            self.config.file_name.clone()
        }
    }

    fn start_file(&mut self) -> Result<(), ClientFailure> {
        let key = self
            .aes_key
            .as_ref()
            .ok_or(ClientFailure::Key("no AES key".into()))?;
        let layout = Layout::new(self.config.file_size, &self.config.dialect)
            .map_err(|e| ClientFailure::Key(e.to_string()))?;
        // A packet of an earlier send that was still being built never left.
        self.out.drop_unfinished();
        self.out.handed = 0;
        self.send = Some(FileSend {
            encryptor: CbcEncryptor::new(key),
            checksum: Checksum::new(self.config.dialect.checksum),
            pending: BytesMut::new(),
            fed: 0,
            chunk_fed: 0,
            room: 0,
            next_packet: 0,
            layout,
            pad_tail: 0,
            answers: 0,
            every_packet_answered: false,
        });
        self.state = State::Uploading;
        self.events.push_back(ClientEvent::SendFile {
            attempt: self.resends + 1,
        });
        Ok(())
    }

    /// Counts a 1603 received after the whole file went out and says whether it
    /// answers the last packet (see "Whole requests, and which 1603 is the last" in
    /// the module docs).
    fn count_answer(&mut self, size_field: u32) -> bool {
        let per_request = self.config.dialect.connection_per_request;
        let per_packet_size = self.config.dialect.per_packet_content_size;
        let file_size = self.config.file_size;
        let Some(send) = self.send.as_mut() else {
            return true;
        };
        send.answers += 1;
        if send.answers >= send.layout.total_packets as u32 {
            return true;
        }
        if per_request || send.every_packet_answered {
            return false;
        }
        // Sizes per packet say nothing about the whole: the only answer is the last.
        // Otherwise a whole-file size (ciphertext, or plaintext for variant 11) ends
        // the upload, and anything below the plaintext size is a running total.
        if per_packet_size || size_field as u64 >= file_size {
            return true;
        }
        send.every_packet_answered = true;
        false
    }

    fn check_id(&self, id: Option<ClientId>) -> Result<(), ClientFailure> {
        match id {
            Some(id) if id != self.client_id => Err(PeerError::WrongClientId.into()),
            _ => Ok(()),
        }
    }

    fn unexpected(code: ResponseCode, why: &'static str) -> ClientFailure {
        PeerError::UnexpectedResponse {
            code: code as u16,
            why,
        }
        .into()
    }

    /// An error response: the same request again, up to [`MAX_ATTEMPTS`] in all.
    fn retry(&mut self, code: ResponseCode) -> Result<(), ClientFailure> {
        let request = match self.state {
            State::AwaitRegistered => RequestCode::Register,
            State::AwaitAesKey => RequestCode::SendPublicKey,
            State::AwaitReconnect => RequestCode::Reconnect,
            State::Uploading | State::AwaitChecksum => RequestCode::SendFile,
            State::AwaitAck(Outcome::Verified) => RequestCode::CrcOk,
            State::AwaitAck(Outcome::GaveUp) => RequestCode::CrcAbort,
            State::Done | State::Failed => return Ok(()),
        };
        self.attempts += 1;
        self.events.push_back(ClientEvent::ServerError {
            code,
            request,
            attempt: self.attempts,
        });
        if self.attempts >= MAX_ATTEMPTS {
            return Err(ClientFailure::ServerRefused {
                request,
                last: code,
                attempts: self.attempts,
            });
        }
        match request {
            RequestCode::Register => self.send_request(Request::Register {
                name: self.config.name.clone(),
            }),
            RequestCode::SendPublicKey => self.send_public_key()?,
            RequestCode::Reconnect => self.send_request(Request::Reconnect {
                name: self.config.name.clone(),
            }),
            RequestCode::SendFile => self.start_file()?,
            RequestCode::CrcOk => self.send_request(Request::CrcOk {
                file_name: self.crc_name(),
            }),
            _ => self.send_request(Request::CrcAbort {
                file_name: self.crc_name(),
            }),
        }
        Ok(())
    }

    fn send_public_key(&mut self) -> Result<(), ClientFailure> {
        let key = self
            .private_key
            .as_ref()
            .ok_or(ClientFailure::Key("no private key".into()))?;
        let field = key
            .public_key()
            .to_field()
            .map_err(|e| ClientFailure::Key(e.to_string()))?;
        self.send_request(Request::SendPublicKey {
            name: self.config.name.clone(),
            public_key: Bytes::copy_from_slice(&field),
        });
        Ok(())
    }

    fn on_response(&mut self, response: Response) -> Result<(), ClientFailure> {
        self.on_response_inner(response)?;
        if self.config.dialect.connection_per_request && !self.is_finished() {
            self.in_flight = false;
            self.need_connection = true;
            self.events.push_back(ClientEvent::NewConnection);
        }
        Ok(())
    }

    fn on_response_inner(&mut self, response: Response) -> Result<(), ClientFailure> {
        let code = response.code();
        match (self.state, response) {
            (_, Response::GeneralError) => self.retry(code)?,
            (State::AwaitRegistered, Response::RegistrationFailed) => {
                // The name is taken or refused: asking again cannot change that.
                self.attempts += 1;
                self.events.push_back(ClientEvent::ServerError {
                    code,
                    request: RequestCode::Register,
                    attempt: self.attempts,
                });
                return Err(ClientFailure::ServerRefused {
                    request: RequestCode::Register,
                    last: code,
                    attempts: self.attempts,
                });
            }
            (State::AwaitRegistered, Response::Registered { client_id }) => {
                self.client_id = client_id;
                self.attempts = 0;
                let key = match self.config.registration_key.take() {
                    Some(k) => k,
                    None => PrivateKey::generate(&mut self.rng)
                        .map_err(|e| ClientFailure::Key(e.to_string()))?,
                };
                self.private_key = Some(key.clone());
                self.events.push_back(ClientEvent::Registered {
                    client_id,
                    private_key: Box::new(key),
                });
                self.state = State::AwaitAesKey;
                self.send_public_key()?;
            }
            (
                State::AwaitAesKey,
                Response::AesKey {
                    client_id,
                    encrypted_key,
                },
            )
            | (
                State::AwaitReconnect,
                Response::Reconnected {
                    client_id,
                    encrypted_key,
                },
            ) => {
                self.check_id(Some(client_id))?;
                let key = self
                    .private_key
                    .as_ref()
                    .ok_or(ClientFailure::Key("no private key".into()))?;
                self.aes_key = Some(key.decrypt_aes_key(&encrypted_key)?);
                self.events.push_back(ClientEvent::KeyExchanged {
                    reconnected: code == ResponseCode::Reconnected,
                });
                self.attempts = 0;
                self.start_file()?;
            }
            (State::AwaitReconnect, Response::ReconnectRefused { client_id }) => {
                self.check_id(client_id)?;
                if !self.register_when_refused {
                    return Err(ClientFailure::ReconnectRefused);
                }
                self.events.push_back(ClientEvent::ReconnectRefused);
                self.config.registration_key = None;
                self.register();
            }
            (State::Uploading, Response::FileReceived { .. }) => {
                // An answer before the file has all gone: this server answers every
                // packet (variant 7); only the last answer counts.
                if let Some(send) = self.send.as_mut() {
                    send.answers += 1;
                    send.every_packet_answered = true;
                }
            }
            (State::AwaitChecksum, Response::FileReceived { content_size, .. })
                if !self.count_answer(content_size) => {}
            (
                State::AwaitChecksum,
                Response::FileReceived {
                    client_id,
                    checksum,
                    file_name,
                    ..
                },
            ) => {
                self.check_id(Some(client_id))?;
                let send = self
                    .send
                    .take()
                    .ok_or(Self::unexpected(code, "no file sent"))?;
                let ours = send.checksum.value();
                self.file_checksum = Some(ours);
                self.attempts = 0;
                // The name is outside the checksum: a server that stored the bytes
                // under another name has not stored our file.
                if ours == checksum && file_name == self.config.file_name {
                    self.state = State::AwaitAck(Outcome::Verified);
                    self.send_request(Request::CrcOk {
                        file_name: self.crc_name(),
                    });
                } else if self.resends < MAX_RESENDS {
                    self.resends += 1;
                    self.events.push_back(ClientEvent::ChecksumMismatch {
                        ours,
                        theirs: checksum,
                        resends_left: MAX_RESENDS - self.resends,
                    });
                    self.send_request(Request::CrcRetry {
                        file_name: self.crc_name(),
                    });
                    self.start_file()?;
                } else {
                    self.events.push_back(ClientEvent::ChecksumMismatch {
                        ours,
                        theirs: checksum,
                        resends_left: 0,
                    });
                    self.state = State::AwaitAck(Outcome::GaveUp);
                    self.send_request(Request::CrcAbort {
                        file_name: self.crc_name(),
                    });
                }
            }
            (State::AwaitAck(outcome), Response::Ack { client_id }) => {
                self.check_id(client_id)?;
                self.state = State::Done;
                self.events.push_back(ClientEvent::Finished(outcome));
            }
            (_, _) => {
                return Err(Self::unexpected(
                    code,
                    "the response does not answer the request sent",
                ))
            }
        }
        Ok(())
    }
}
