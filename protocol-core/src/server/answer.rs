//! The answer methods: each consumes the typed ticket of the question it answers.

use rand_core::CryptoRngCore;

use super::question::{kind, Question, Succeed, Ticket};
use super::session::{KeySource, Session};
use super::{ClientRecord, Pending, ServerConnection, ServerEvent};
use crate::crypto::{AesKey, PublicKey};
use crate::error::UsageError;
use crate::names;
use crate::wire::{ClientId, Request, Response};

impl<R: CryptoRngCore> ServerConnection<R> {
    /// Answer to [`ServerEvent::Register`]: stored; sends 1600.
    pub fn accept_registration(
        &mut self,
        ticket: Ticket<kind::Register>,
    ) -> Result<(), UsageError> {
        match self.take_pending(ticket)? {
            Pending::Register { client_id } => self.respond(Response::Registered { client_id }),
            other => return self.mismatch(other),
        }
        Ok(())
    }

    /// Answer to [`ServerEvent::Register`]: the name is taken; sends 1601.
    pub fn refuse_registration(
        &mut self,
        ticket: Ticket<kind::Register>,
    ) -> Result<(), UsageError> {
        match self.take_pending(ticket)? {
            Pending::Register { .. } => self.respond(Response::RegistrationFailed),
            other => return self.mismatch(other),
        }
        Ok(())
    }

    /// Answer to [`ServerEvent::Reconnect`]: the stored public key field, or `None`
    /// if the client is unknown, the name differs or no key is on file (1606).
    /// A key is followed by the question [`ServerEvent::StoreAesKey`].
    pub fn reconnect_lookup(
        &mut self,
        ticket: Ticket<kind::Reconnect>,
        stored_public_key: Option<&[u8]>,
    ) -> Result<(), UsageError> {
        let client_id = match self.take_pending(ticket)? {
            Pending::ReconnectLookup { client_id } => client_id,
            other => return self.mismatch(other),
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
                let ticket = self.ask(Pending::StoreAesKey {
                    client_id,
                    aes_key: aes_key.duplicate(),
                    encrypted: encrypted.into(),
                });
                self.events.push_back(ServerEvent::StoreAesKey {
                    ticket,
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

    /// Answer to [`ServerEvent::LookupClient`]: `None` if the client is unknown (1607,
    /// and the connection closes).
    pub fn client_lookup(
        &mut self,
        ticket: Ticket<kind::LookupClient>,
        record: Option<ClientRecord>,
    ) -> Result<(), UsageError> {
        let (client_id, packet) = match self.take_pending(ticket)? {
            Pending::Lookup { client_id, packet } => (client_id, packet),
            other => return self.mismatch(other),
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
        self.session = Some(Session {
            client_id,
            key,
            issued,
            source: KeySource::LookedUp,
        });
        self.upload = suspended
            .map(|s| *s.0)
            .filter(|u| u.client_id == client_id)
            .map(|mut u| {
                u.resumed = true;
                u
            });
        // Looked up at the header: the frame is decoded when it is whole.
        if let Some(packet) = packet {
            if let Err(e) = self.on_packet(client_id, packet) {
                self.fatal(e);
            }
        }
        Ok(())
    }

    /// Answer to [`ServerEvent::StorePublicKey`], [`ServerEvent::StoreAesKey`],
    /// [`ServerEvent::UploadFinished`] and [`ServerEvent::Confirm`] (the questions
    /// whose type implements [`Succeed`]): done; sends 1602, 1605, 1603 or 1604.
    pub fn succeed<Q: Succeed>(&mut self, ticket: Ticket<Q>) -> Result<(), UsageError> {
        match self.take_pending(ticket)? {
            Pending::StorePublicKey {
                client_id,
                aes_key,
                encrypted,
            } => {
                self.session = Some(Session {
                    client_id,
                    key: aes_key,
                    issued: self.now,
                    source: KeySource::IssuedHere,
                });
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
                self.session = Some(Session {
                    client_id,
                    key: aes_key,
                    issued: self.now,
                    source: KeySource::IssuedHere,
                });
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
                if self.unwritten > 0 {
                    // The 1603 would confirm bytes the application never said it
                    // stored: refused, as if the application had failed it.
                    let outstanding = self.unwritten;
                    self.abandon(Pending::UploadFinished {
                        client_id,
                        content_size,
                        file_name,
                        checksum,
                    });
                    self.set_unwritten(0);
                    return Err(UsageError::Unwritten { outstanding });
                }
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
            other => return self.mismatch(other),
        }
        Ok(())
    }

    /// Answer to any question: the application could not do it (database or disk
    /// failure, unknown client, ...); sends 1607 and keeps the connection open
    /// (except after [`ServerEvent::LookupClient`], which has nothing to go on with).
    pub fn fail<Q: Question>(&mut self, ticket: Ticket<Q>) -> Result<(), UsageError> {
        let pending = self.take_pending(ticket)?;
        self.abandon(pending);
        Ok(())
    }

    /// The application could not write the upload's data (disk full, ...): sends
    /// 1607, drops the upload and skips its remaining packets until the client starts
    /// again with a packet 1. Any unreported [`data_written`](Self::data_written)
    /// count is forgotten.
    pub fn fail_upload(&mut self) -> Result<(), UsageError> {
        let Some(up) = self.upload.take() else {
            return Err(UsageError::NoUpload);
        };
        self.events.push_back(ServerEvent::UploadAborted {
            client_id: up.client_id,
            reason: "the application failed to write it".into(),
        });
        self.skipping_failed_upload = true;
        self.set_unwritten(0);
        self.respond(crate::wire::Response::GeneralError);
        Ok(())
    }

    /// Reports that `n` bytes of [`ServerEvent::UploadData`] are written
    /// (backpressure). `n` may not exceed the bytes handed out and not yet reported:
    /// a larger count is refused with [`UsageError::WrittenTooMuch`] and changes
    /// nothing.
    ///
    /// Reading may resume after this call ([`wants_read`](Self::wants_read) turns
    /// true again), and input already in the caller's buffer is **not** processed by
    /// it: call [`handle_input`](Self::handle_input) again with the same buffer
    /// before waiting on the socket, as the driver loop in the crate docs does.
    pub fn data_written(&mut self, n: usize) -> Result<(), UsageError> {
        if let Some(s) = &mut self.secure {
            return s.data_written(n);
        }
        if n > self.unwritten {
            return Err(UsageError::WrittenTooMuch {
                reported: n,
                outstanding: self.unwritten,
            });
        }
        self.set_unwritten(self.unwritten - n);
        Ok(())
    }

    fn take_pending<Q: Question>(&mut self, ticket: Ticket<Q>) -> Result<Pending, UsageError> {
        match self.pending.take() {
            Some(p) if p.id == ticket.id && p.question.kind() == Q::KIND => {
                self.on_answered();
                Ok(p.question)
            }
            other => {
                self.pending = other;
                Err(UsageError::UnknownTicket(ticket.id))
            }
        }
    }

    /// Unreachable: `take_pending` checked the kind. Kept as an error, not a panic.
    fn mismatch(&mut self, pending: Pending) -> Result<(), UsageError> {
        self.abandon(pending);
        Err(UsageError::NotNow(
            "the ticket's kind did not match its question",
        ))
    }
}

/// The answer section 7 gives at once, without asking the application: 1601 to an
/// 825 whose name is not valid, 1606 to an 827 with the zero id or a name that is
/// not valid (no client can have either).
pub(super) fn refused_outright(request: &Request, client_id: ClientId) -> Option<Response> {
    match request {
        Request::Register { name } if names::check_client_name(name).is_err() => {
            Some(Response::RegistrationFailed)
        }
        Request::Reconnect { name }
            if client_id == ClientId::ZERO || names::check_client_name(name).is_err() =>
        {
            Some(Response::ReconnectRefused {
                client_id: Some(client_id),
            })
        }
        _ => None,
    }
}
