//! The server's side of a secure session: one per TLS connection, held by the
//! [`ServerConnection`](crate::ServerConnection) once the transport calls
//! [`enter_secure`](crate::ServerConnection::enter_secure).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rand_core::CryptoRngCore;

use super::digest::UploadDigest;
use super::event::{Ask, AskKind, SecureEvent};
use super::frame::{self, Refusal, RequestLimits, SecureRequest, SecureResponse};
use super::keys::{self, KeyKind, StoredKey};
use super::SessionBinding;
use crate::error::PeerError;
use crate::frame::TLS_HANDSHAKE_START;
use crate::names;
use crate::wire::{ClientId, FieldString};

mod answer;

/// The secure session's own bounds (the connection's [`Limits`](crate::Limits)
/// give the timers and the file size).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecureLimits {
    /// Bytes of an upload between two [`SecureEvent::PutCheckpoint`]s. Default
    /// 16 MiB: a multiple of the S3 backend's part size, so a checkpoint falls on
    /// a part boundary.
    pub checkpoint_every: u64,
    /// Bytes of a download queued for the socket before the session asks for more.
    /// Default 1 MiB.
    pub download_window: usize,
}

impl Default for SecureLimits {
    fn default() -> Self {
        SecureLimits {
            checkpoint_every: 16 << 20,
            download_window: 1 << 20,
        }
    }
}

#[derive(Debug)]
enum Waiting {
    SignIn {
        client_id: ClientId,
        kind: KeyKind,
        signature: Bytes,
    },
    Register {
        client_id: ClientId,
    },
    Done(DoneFor),
    PutBegin {
        name: String,
        size: u64,
    },
    List,
    Versions,
    Get {
        offset: u64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DoneFor {
    Plain,
    PutComplete,
}

#[derive(Debug)]
struct Upload {
    name: String,
    size: u64,
    digest: UploadDigest,
    since_checkpoint: u64,
}

#[derive(Debug)]
struct Download {
    remaining: u64,
    asked: bool,
}

/// The server's side of one secure session. Driven through
/// [`ServerConnection`](crate::ServerConnection): its `handle_*`, `poll_event`
/// (which wraps these events in [`ServerEvent::Secure`](crate::ServerEvent::Secure))
/// and `poll_transmit`; the answers are this type's methods, reached with
/// [`ServerConnection::secure`](crate::ServerConnection::secure).
#[derive(Debug)]
pub struct SecureServer {
    binding: SessionBinding,
    limits: SecureLimits,
    request_limits: RequestLimits,
    max_file_size: u64,
    max_unwritten: usize,
    pub(crate) out: BytesMut,
    events: VecDeque<SecureEvent>,
    pending: Option<(u64, Waiting, Instant)>,
    next_ask: u64,
    client: Option<ClientId>,
    upload: Option<Upload>,
    download: Option<Download>,
    unwritten: usize,
    closing: bool,
    /// The 2011 to send when the application has stored a complete upload.
    stored: Option<SecureResponse>,
}

pub(super) fn refused(reason: Refusal, message: impl Into<String>) -> SecureResponse {
    SecureResponse::Refused {
        reason,
        message: message.into(),
    }
}

impl SecureServer {
    pub(crate) fn new(
        binding: SessionBinding,
        limits: SecureLimits,
        max_file_size: u64,
        max_unwritten: usize,
    ) -> Self {
        SecureServer {
            binding,
            limits,
            request_limits: RequestLimits::default(),
            max_file_size,
            max_unwritten,
            out: BytesMut::new(),
            events: VecDeque::new(),
            pending: None,
            next_ask: 1,
            client: None,
            upload: None,
            download: None,
            unwritten: 0,
            closing: false,
            stored: None,
        }
    }

    /// The client this session signed in as.
    pub fn client_id(&self) -> Option<ClientId> {
        self.client
    }

    /// The session's binding.
    pub fn binding(&self) -> &SessionBinding {
        &self.binding
    }

    pub(crate) fn wants_read(&self) -> bool {
        !self.closing && self.pending.is_none() && self.unwritten < self.max_unwritten
    }

    pub(crate) fn is_closing(&self) -> bool {
        self.closing
    }

    /// No event queued and nothing left to send.
    pub(crate) fn is_drained(&self) -> bool {
        self.events.is_empty() && self.out.is_empty()
    }

    /// Whether a download is under way and waits for the application's bytes or
    /// for the socket: the transport keeps calling back without new input.
    /// Whether a download is under way and the application owes its next bytes.
    pub(crate) fn download_waits_on_app(&self) -> bool {
        self.download.as_ref().is_some_and(|d| d.asked)
    }

    pub(crate) fn is_sending(&self) -> bool {
        self.download
            .as_ref()
            .is_some_and(|d| !d.asked && d.remaining > 0)
    }

    pub(crate) fn answer_deadline(&self, timeout: Duration) -> Option<Instant> {
        self.pending.as_ref().map(|p| p.2 + timeout)
    }

    pub(crate) fn poll_event(&mut self) -> Option<SecureEvent> {
        if self.events.is_empty() {
            self.ask_for_download_bytes();
        }
        self.events.pop_front()
    }

    fn ask_for_download_bytes(&mut self) {
        let window = self.limits.download_window;
        if let Some(d) = &mut self.download {
            if !d.asked && d.remaining > 0 && self.out.len() < window {
                d.asked = true;
                let max = (window - self.out.len()).min(frame::MAX_DATA) as u64;
                self.events.push_back(SecureEvent::GetWants {
                    max: max.min(d.remaining) as usize,
                });
            }
        }
    }

    fn respond(&mut self, r: &SecureResponse) {
        frame::encode_response(&mut self.out, r);
    }

    fn ask<Q: AskKind>(&mut self, waiting: Waiting, now: Instant) -> Ask<Q> {
        let id = self.next_ask;
        self.next_ask += 1;
        self.pending = Some((id, waiting, now));
        Ask::new(id)
    }

    /// Refuses with `reason` and closes after the answer is sent.
    fn fatal(&mut self, reason: Refusal, e: PeerError) -> PeerError {
        self.respond(&refused(reason, e.to_string()));
        self.closing = true;
        self.upload = None;
        self.download = None;
        e
    }

    pub(crate) fn take_requests<R: CryptoRngCore>(
        &mut self,
        input: &mut BytesMut,
        now: Instant,
        rng: &mut R,
    ) -> Result<(), PeerError> {
        while self.wants_read() {
            let (id, req) = match frame::decode_request(input, &self.request_limits) {
                Ok(Some(x)) => x,
                Ok(None) => return Ok(()),
                Err(e) => return Err(self.fatal(Refusal::Malformed, e)),
            };
            self.request(id, req, now, rng)?;
        }
        Ok(())
    }

    fn signed_in(&mut self, id: ClientId, code: u16) -> Result<ClientId, PeerError> {
        match self.client {
            Some(c) if c == id => Ok(c),
            Some(_) => Err(self.fatal(
                Refusal::Malformed,
                PeerError::UnexpectedRequest {
                    code,
                    why: "the header's client id is not the one signed in",
                },
            )),
            None => Err(self.fatal(
                Refusal::NotSignedIn,
                PeerError::UnexpectedRequest {
                    code,
                    why: "sign in first",
                },
            )),
        }
    }

    fn check_name(&mut self, name: &str) -> bool {
        let ok = FieldString::new(name)
            .filter(|f| names::check_file_name(f).is_ok())
            .is_some();
        if !ok {
            self.respond(&refused(
                Refusal::InvalidName,
                "names are 1 to 254 bytes of printable ASCII",
            ));
        }
        ok
    }

    fn request<R: CryptoRngCore>(
        &mut self,
        id: ClientId,
        req: SecureRequest,
        now: Instant,
        rng: &mut R,
    ) -> Result<(), PeerError> {
        let code = req.code();
        let in_upload = self.upload.is_some();
        let data_request = matches!(
            req,
            SecureRequest::PutData { .. } | SecureRequest::PutEnd { .. }
        );
        if in_upload != data_request || self.download.is_some() {
            return Err(self.fatal(
                Refusal::Malformed,
                PeerError::UnexpectedRequest {
                    code,
                    why: if self.download.is_some() {
                        "a request during a download"
                    } else if in_upload {
                        "only upload content and its end until the upload ends"
                    } else {
                        "upload content without an upload"
                    },
                },
            ));
        }
        match req {
            SecureRequest::SignIn { kind, signature } => {
                if self.client.is_some() {
                    return Err(self.fatal(
                        Refusal::Malformed,
                        PeerError::UnexpectedRequest {
                            code,
                            why: "already signed in",
                        },
                    ));
                }
                let ask = self.ask(
                    Waiting::SignIn {
                        client_id: id,
                        kind,
                        signature,
                    },
                    now,
                );
                self.events
                    .push_back(SecureEvent::SignIn { ask, client_id: id });
            }
            SecureRequest::Register {
                name,
                kind,
                key,
                signature,
            } => {
                if self.client.is_some() {
                    return Err(self.fatal(
                        Refusal::Malformed,
                        PeerError::UnexpectedRequest {
                            code,
                            why: "already signed in",
                        },
                    ));
                }
                let name_ok = FieldString::new(&name)
                    .filter(|f| {
                        names::check_client_name(f).is_ok()
                            && name.len() <= names::MAX_CLIENT_NAME_LEN
                    })
                    .is_some();
                if !name_ok {
                    self.respond(&refused(
                        Refusal::InvalidName,
                        "client names are 1 to 100 bytes of printable ASCII",
                    ));
                    return Ok(());
                }
                if let Err(p) = keys::check_new_key(kind, &key) {
                    self.respond(&refused(Refusal::WeakKey, p.to_string()));
                    return Ok(());
                }
                let message = keys::register_message(&name, kind, &key, &self.binding);
                let stored = StoredKey {
                    kind,
                    key: key.to_vec(),
                };
                if keys::verify(&stored, &message, &signature).is_err() {
                    return Err(self.fatal(Refusal::BadSignature, PeerError::BadSignature));
                }
                let client_id = fresh_id(rng);
                let ask = self.ask(Waiting::Register { client_id }, now);
                self.events.push_back(SecureEvent::Register {
                    ask,
                    client_id,
                    name,
                    key: stored,
                });
            }
            SecureRequest::SetKey {
                kind,
                key,
                signature,
            } => {
                let client_id = self.signed_in(id, code)?;
                if let Err(p) = keys::check_new_key(kind, &key) {
                    self.respond(&refused(Refusal::WeakKey, p.to_string()));
                    return Ok(());
                }
                let message = keys::set_key_message(&client_id, kind, &key, &self.binding);
                let stored = StoredKey {
                    kind,
                    key: key.to_vec(),
                };
                if keys::verify(&stored, &message, &signature).is_err() {
                    return Err(self.fatal(Refusal::BadSignature, PeerError::BadSignature));
                }
                let ask = self.ask(Waiting::Done(DoneFor::Plain), now);
                self.events.push_back(SecureEvent::SetKey {
                    ask,
                    client_id,
                    key: stored,
                });
            }
            SecureRequest::KeepLegacy { keep } => {
                let client_id = self.signed_in(id, code)?;
                let ask = self.ask(Waiting::Done(DoneFor::Plain), now);
                self.events.push_back(SecureEvent::KeepLegacy {
                    ask,
                    client_id,
                    keep,
                });
            }
            SecureRequest::PutBegin { name, size } => {
                let client_id = self.signed_in(id, code)?;
                if !self.check_name(&name) {
                    return Ok(());
                }
                if size > self.max_file_size {
                    self.respond(&refused(
                        Refusal::TooLarge,
                        format!("files of at most {} bytes", self.max_file_size),
                    ));
                    return Ok(());
                }
                let ask = self.ask(
                    Waiting::PutBegin {
                        name: name.clone(),
                        size,
                    },
                    now,
                );
                self.events.push_back(SecureEvent::PutBegin {
                    ask,
                    client_id,
                    name,
                    size,
                });
            }
            SecureRequest::PutData { data } => {
                let client_id = self.signed_in(id, code)?;
                self.put_data(client_id, data)?;
            }
            SecureRequest::PutEnd { sha256 } => {
                let client_id = self.signed_in(id, code)?;
                self.put_end(client_id, sha256, now)?;
            }
            SecureRequest::List => {
                let client_id = self.signed_in(id, code)?;
                let ask = self.ask(Waiting::List, now);
                self.events.push_back(SecureEvent::List { ask, client_id });
            }
            SecureRequest::Versions { name } => {
                let client_id = self.signed_in(id, code)?;
                if !self.check_name(&name) {
                    return Ok(());
                }
                let ask = self.ask(Waiting::Versions, now);
                self.events.push_back(SecureEvent::Versions {
                    ask,
                    client_id,
                    name,
                });
            }
            SecureRequest::Get {
                name,
                version,
                offset,
                unverified_ok,
            } => {
                let client_id = self.signed_in(id, code)?;
                if !self.check_name(&name) {
                    return Ok(());
                }
                let ask = self.ask(Waiting::Get { offset }, now);
                self.events.push_back(SecureEvent::Get {
                    ask,
                    client_id,
                    name,
                    version,
                    offset,
                    unverified_ok,
                });
            }
            SecureRequest::Remove { name } => {
                let client_id = self.signed_in(id, code)?;
                if !self.check_name(&name) {
                    return Ok(());
                }
                let ask = self.ask(Waiting::Done(DoneFor::Plain), now);
                self.events.push_back(SecureEvent::Remove {
                    ask,
                    client_id,
                    name,
                });
            }
            SecureRequest::Restore { name, version } => {
                let client_id = self.signed_in(id, code)?;
                if !self.check_name(&name) {
                    return Ok(());
                }
                let ask = self.ask(Waiting::Done(DoneFor::Plain), now);
                self.events.push_back(SecureEvent::Restore {
                    ask,
                    client_id,
                    name,
                    version,
                });
            }
        }
        Ok(())
    }

    fn put_data(&mut self, client_id: ClientId, data: Bytes) -> Result<(), PeerError> {
        let Some(up) = &mut self.upload else {
            return Ok(());
        };
        let offset = up.digest.len();
        if data.len() as u64 > up.size - offset {
            return Err(self.fatal(
                Refusal::Malformed,
                PeerError::UploadTooLarge("more content than the size declared"),
            ));
        }
        up.digest.update(&data);
        up.since_checkpoint += data.len() as u64;
        self.unwritten += data.len();
        self.events.push_back(SecureEvent::PutData { offset, data });
        if up.since_checkpoint >= self.limits.checkpoint_every && up.digest.len() < up.size {
            up.since_checkpoint = 0;
            let ev = checkpoint(client_id, up);
            self.events.push_back(ev);
        }
        Ok(())
    }

    fn put_end(
        &mut self,
        client_id: ClientId,
        sha256: [u8; 32],
        now: Instant,
    ) -> Result<(), PeerError> {
        let Some(up) = self.upload.take() else {
            return Ok(());
        };
        if up.digest.len() != up.size {
            let received = up.digest.len();
            return Err(self.fatal(
                Refusal::Malformed,
                PeerError::SizeMismatch {
                    declared: up.size,
                    actual: received,
                },
            ));
        }
        if up.digest.sha256() != sha256 {
            self.events.push_back(SecureEvent::PutFailed {
                client_id,
                name: up.name,
            });
            self.respond(&refused(
                Refusal::HashMismatch,
                "the server's SHA-256 of the upload differs from the client's; the upload was discarded: send it again",
            ));
            return Ok(());
        }
        self.stored = Some(SecureResponse::Stored {
            size: up.size,
            cksum: up.digest.cksum(),
            sha256,
        });
        let ask = self.ask(Waiting::Done(DoneFor::PutComplete), now);
        self.events.push_back(SecureEvent::PutComplete {
            ask,
            client_id,
            name: up.name,
            size: up.size,
            sha256,
            cksum: up.digest.cksum(),
        });
        Ok(())
    }

    pub(crate) fn handle_eof(&mut self) {
        if let (Some(client_id), Some(up)) = (self.client, &self.upload) {
            if up.digest.len() < up.size && !up.digest.is_empty() {
                let ev = checkpoint(client_id, up);
                self.events.push_back(ev);
            }
        }
        self.upload = None;
        self.download = None;
        self.closing = true;
    }
}

fn checkpoint(client_id: ClientId, up: &Upload) -> SecureEvent {
    SecureEvent::PutCheckpoint {
        client_id,
        name: up.name.clone(),
        size: up.size,
        offset: up.digest.len(),
        state: up.digest.to_bytes(),
    }
}

/// A fresh client id (a version 4 UUID) that does not begin like a TLS record.
fn fresh_id<R: CryptoRngCore>(rng: &mut R) -> ClientId {
    loop {
        let mut b = [0u8; 16];
        rng.fill_bytes(&mut b);
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        if b[..2] != TLS_HANDSHAKE_START && b != [0; 16] {
            return ClientId(b);
        }
    }
}
