//! The client's side of a secure session: requests out, typed events in.
//!
//! ```text
//!   new(binding) ─► sign_in / register ─► SignedIn / Registered
//!        then, one request at a time, each answered by its events:
//!        put_begin ─► PutOffset ─► put_data… ─► put_end ─► Stored
//!        list / versions ─► File… / Version… ─► ListEnd
//!        get ─► GetBegin ─► GetData… ─► GetEnd
//!        remove / restore / keep_legacy / set_key ─► Done
//!   any request ─► Refused { reason, message }
//! ```
//!
//! # Calling order
//!
//! 1. a request method (it checks the state and queues the frame);
//! 2. [`poll_transmit`](SecureClient::poll_transmit), and send the bytes;
//! 3. [`handle_input`](SecureClient::handle_input) with what arrived, then
//!    [`poll_event`](SecureClient::poll_event) until `None`;
//! 4. the next request once the answer is in ([`is_idle`](SecureClient::is_idle)).
//!
//! An upload's content goes between [`SecureEvent::PutOffset`](SecureClientEvent::PutOffset)
//! and `put_end`, in [`put_data`](SecureClient::put_data) calls of any size.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use super::frame::{
    self, Described, FileEntry, Refusal, SecureRequest, SecureResponse, VersionEntry,
};
use super::keys::{self, KeyKind};
use super::SessionBinding;
use crate::crypto::KeyError;
use crate::error::{PeerError, UsageError};
use crate::wire::ClientId;

/// Something that signs for a client: its key pair.
pub trait Signer {
    /// The key's kind.
    fn kind(&self) -> KeyKind;
    /// The public key as the server stores it.
    fn public_key(&self) -> Vec<u8>;
    /// A signature of `message`.
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError>;
}

impl Signer for ed25519_dalek::SigningKey {
    fn kind(&self) -> KeyKind {
        KeyKind::Ed25519
    }

    fn public_key(&self) -> Vec<u8> {
        self.verifying_key().to_bytes().to_vec()
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        Ok(ed25519_dalek::Signer::sign(self, message)
            .to_bytes()
            .to_vec())
    }
}

fn cannot_sign(_: KeyError) -> UsageError {
    UsageError::BadConfig("the key could not sign")
}

/// What the server answered.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SecureClientEvent {
    /// Signed in; `legacy_open`: legacy requests with this id are still served.
    SignedIn {
        /// Legacy still open.
        legacy_open: bool,
    },
    /// Registered under a new id, and signed in.
    Registered {
        /// The id to keep (me.info).
        client_id: ClientId,
    },
    /// The request was carried out.
    Done,
    /// Send the upload's content from this offset.
    PutOffset {
        /// Bytes the server holds already.
        offset: u64,
    },
    /// The upload is stored and verified.
    Stored {
        /// Size.
        size: u64,
        /// POSIX cksum.
        cksum: u32,
        /// SHA-256, equal to the one sent.
        sha256: [u8; 32],
    },
    /// One file of a listing.
    File(FileEntry),
    /// One version of a file.
    Version(VersionEntry),
    /// The end of a listing.
    ListEnd {
        /// Entries sent.
        count: u32,
    },
    /// A download begins.
    GetBegin {
        /// The version (`None`: current).
        version: Option<u64>,
        /// Its first byte.
        offset: u64,
        /// The whole content's description.
        content: Described,
    },
    /// The next bytes of the download.
    GetData(Bytes),
    /// The download is complete.
    GetEnd,
    /// The request was refused.
    Refused {
        /// Why.
        reason: Refusal,
        /// The server's words.
        message: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Nothing,
    SignedIn,
    Registered,
    Done,
    PutOffset { size: u64 },
    PutContent { remaining: u64 },
    Stored,
    Listing { files: bool },
    GetBegin,
    GetData { remaining: u64 },
}

/// The client's side of one secure session.
///
/// ```
/// use bytes::BytesMut;
/// use protocol_core::secure::{SecureClient, SecureClientEvent, SessionBinding};
/// use protocol_core::secure::frame::{decode_request, SecureRequest, RequestLimits};
/// let mut client = SecureClient::new(SessionBinding::new([1; 32]));
/// client.put_begin("a.txt", 3).unwrap();
/// let mut out = BytesMut::new();
/// client.poll_transmit(&mut out);
/// let (_, req) = decode_request(&mut out, &RequestLimits::default()).unwrap().unwrap();
/// assert_eq!(req, SecureRequest::PutBegin { name: "a.txt".into(), size: 3 });
/// ```
#[derive(Debug)]
pub struct SecureClient {
    binding: SessionBinding,
    client_id: ClientId,
    out: BytesMut,
    events: VecDeque<SecureClientEvent>,
    expect: Expect,
}

impl SecureClient {
    /// A session over a TLS connection whose exported value is `binding`.
    pub fn new(binding: SessionBinding) -> Self {
        SecureClient {
            binding,
            client_id: ClientId::ZERO,
            out: BytesMut::new(),
            events: VecDeque::new(),
            expect: Expect::Nothing,
        }
    }

    /// The id the session speaks for (zero before signing in or registering).
    pub fn client_id(&self) -> ClientId {
        self.client_id
    }

    /// Whether no request is waiting for its answer (the next one may be sent).
    pub fn is_idle(&self) -> bool {
        self.expect == Expect::Nothing
    }

    fn send(&mut self, request: SecureRequest, then: Expect) -> Result<(), UsageError> {
        if self.expect != Expect::Nothing {
            return Err(UsageError::NotNow("a request is waiting for its answer"));
        }
        frame::encode_request(&mut self.out, self.client_id, &request);
        self.expect = then;
        Ok(())
    }

    /// Signs in as `client_id` with `key`.
    pub fn sign_in(&mut self, client_id: ClientId, key: &dyn Signer) -> Result<(), UsageError> {
        let signature = key
            .sign(&keys::sign_in_message(&client_id, &self.binding))
            .map_err(cannot_sign)?;
        let prev = self.client_id;
        self.client_id = client_id;
        let r = self.send(
            SecureRequest::SignIn {
                kind: key.kind(),
                signature: signature.into(),
            },
            Expect::SignedIn,
        );
        if r.is_err() {
            self.client_id = prev;
        }
        r
    }

    /// Registers a new client `name` with `key` (Ed25519, or RSA of 3072 bits or more).
    pub fn register(&mut self, name: &str, key: &dyn Signer) -> Result<(), UsageError> {
        let public = key.public_key();
        let signature = key
            .sign(&keys::register_message(
                name,
                key.kind(),
                &public,
                &self.binding,
            ))
            .map_err(cannot_sign)?;
        self.send(
            SecureRequest::Register {
                name: name.to_string(),
                kind: key.kind(),
                key: public.into(),
                signature: signature.into(),
            },
            Expect::Registered,
        )
    }

    /// Makes `key` the key this client signs in with from now on.
    pub fn set_key(&mut self, key: &dyn Signer) -> Result<(), UsageError> {
        let public = key.public_key();
        let message = keys::set_key_message(&self.client_id, key.kind(), &public, &self.binding);
        let signature = key.sign(&message).map_err(cannot_sign)?;
        self.send(
            SecureRequest::SetKey {
                kind: key.kind(),
                key: public.into(),
                signature: signature.into(),
            },
            Expect::Done,
        )
    }

    /// Keeps (or stops) legacy requests with this client's id being served.
    pub fn keep_legacy(&mut self, keep: bool) -> Result<(), UsageError> {
        self.send(SecureRequest::KeepLegacy { keep }, Expect::Done)
    }

    /// Begins an upload of `size` bytes as `name`.
    pub fn put_begin(&mut self, name: &str, size: u64) -> Result<(), UsageError> {
        self.send(
            SecureRequest::PutBegin {
                name: name.to_string(),
                size,
            },
            Expect::PutOffset { size },
        )
    }

    /// Queues upload content (after [`SecureClientEvent::PutOffset`]); split into
    /// frames of at most [`frame::MAX_DATA`] bytes.
    pub fn put_data(&mut self, data: &[u8]) -> Result<(), UsageError> {
        let Expect::PutContent { remaining } = self.expect else {
            return Err(UsageError::NotSendingFile);
        };
        if data.len() as u64 > remaining {
            return Err(UsageError::FileLonger { size: remaining });
        }
        for chunk in data.chunks(frame::MAX_DATA) {
            frame::encode_request(
                &mut self.out,
                self.client_id,
                &SecureRequest::PutData {
                    data: Bytes::copy_from_slice(chunk),
                },
            );
        }
        self.expect = Expect::PutContent {
            remaining: remaining - data.len() as u64,
        };
        Ok(())
    }

    /// Ends the upload with the SHA-256 of the whole file.
    pub fn put_end(&mut self, sha256: [u8; 32]) -> Result<(), UsageError> {
        match self.expect {
            Expect::PutContent { remaining: 0 } => {
                self.expect = Expect::Nothing;
                self.send(SecureRequest::PutEnd { sha256 }, Expect::Stored)
            }
            Expect::PutContent { remaining } => Err(UsageError::FileShorter {
                fed: 0,
                size: remaining,
            }),
            _ => Err(UsageError::NotSendingFile),
        }
    }

    /// Asks for the client's files.
    pub fn list(&mut self) -> Result<(), UsageError> {
        self.send(SecureRequest::List, Expect::Listing { files: true })
    }

    /// Asks for the kept versions of `name`.
    pub fn versions(&mut self, name: &str) -> Result<(), UsageError> {
        self.send(
            SecureRequest::Versions {
                name: name.to_string(),
            },
            Expect::Listing { files: false },
        )
    }

    /// Downloads `name` (a version, or the current content) from `offset`.
    pub fn get(
        &mut self,
        name: &str,
        version: Option<u64>,
        offset: u64,
        unverified_ok: bool,
    ) -> Result<(), UsageError> {
        self.send(
            SecureRequest::Get {
                name: name.to_string(),
                version,
                offset,
                unverified_ok,
            },
            Expect::GetBegin,
        )
    }

    /// Makes the current content of `name` a version (the file is no longer listed).
    pub fn remove(&mut self, name: &str) -> Result<(), UsageError> {
        self.send(
            SecureRequest::Remove {
                name: name.to_string(),
            },
            Expect::Done,
        )
    }

    /// Makes version `version` of `name` the current content.
    pub fn restore(&mut self, name: &str, version: u64) -> Result<(), UsageError> {
        self.send(
            SecureRequest::Restore {
                name: name.to_string(),
                version,
            },
            Expect::Done,
        )
    }

    /// Appends the bytes to send to `out`.
    pub fn poll_transmit(&mut self, out: &mut BytesMut) {
        if out.is_empty() {
            std::mem::swap(out, &mut self.out);
        } else {
            out.extend_from_slice(&self.out);
            self.out.clear();
        }
    }

    /// Bytes queued and not yet taken by [`poll_transmit`](Self::poll_transmit).
    pub fn queued(&self) -> usize {
        self.out.len()
    }

    /// The next answer, if any.
    pub fn poll_event(&mut self) -> Option<SecureClientEvent> {
        self.events.pop_front()
    }

    /// Takes every whole response from the front of `input`. A response that does
    /// not fit the request is an error (the session is then unusable).
    pub fn handle_input(&mut self, input: &mut BytesMut) -> Result<(), PeerError> {
        while let Some(r) = frame::decode_response(input)? {
            self.response(r)?;
        }
        Ok(())
    }

    fn unexpected(&self, code: u16) -> PeerError {
        PeerError::UnexpectedResponse {
            code,
            why: "it does not answer the request sent",
        }
    }

    fn response(&mut self, r: SecureResponse) -> Result<(), PeerError> {
        use SecureResponse as R;
        let ev = match (self.expect, r) {
            (Expect::Nothing, r) => return Err(self.unexpected(r.code())),
            (_, R::Refused { reason, message }) => {
                self.expect = Expect::Nothing;
                SecureClientEvent::Refused { reason, message }
            }
            (Expect::SignedIn, R::SignedIn { legacy_open }) => {
                self.expect = Expect::Nothing;
                SecureClientEvent::SignedIn { legacy_open }
            }
            (Expect::Registered, R::Registered { client_id }) => {
                self.expect = Expect::Nothing;
                self.client_id = client_id;
                SecureClientEvent::Registered { client_id }
            }
            (Expect::Done, R::Done) => {
                self.expect = Expect::Nothing;
                SecureClientEvent::Done
            }
            (Expect::PutOffset { size }, R::PutOffset { offset }) => {
                if offset > size {
                    return Err(self.unexpected(frame::code::PUT_OFFSET));
                }
                self.expect = Expect::PutContent {
                    remaining: size - offset,
                };
                SecureClientEvent::PutOffset { offset }
            }
            (
                Expect::Stored,
                R::Stored {
                    size,
                    cksum,
                    sha256,
                },
            ) => {
                self.expect = Expect::Nothing;
                SecureClientEvent::Stored {
                    size,
                    cksum,
                    sha256,
                }
            }
            (Expect::Listing { files: true }, R::FileEntry(e)) => SecureClientEvent::File(e),
            (Expect::Listing { files: false }, R::VersionEntry(v)) => SecureClientEvent::Version(v),
            (Expect::Listing { .. }, R::ListEnd { count }) => {
                self.expect = Expect::Nothing;
                SecureClientEvent::ListEnd { count }
            }
            (
                Expect::GetBegin,
                R::GetBegin {
                    version,
                    offset,
                    content,
                },
            ) => {
                if offset > content.size {
                    return Err(self.unexpected(frame::code::GET_BEGIN));
                }
                self.expect = Expect::GetData {
                    remaining: content.size - offset,
                };
                SecureClientEvent::GetBegin {
                    version,
                    offset,
                    content,
                }
            }
            (Expect::GetData { remaining }, R::GetData { data }) => {
                if data.len() as u64 > remaining {
                    return Err(PeerError::UploadTooLarge(
                        "the download is longer than its announced size",
                    ));
                }
                self.expect = Expect::GetData {
                    remaining: remaining - data.len() as u64,
                };
                SecureClientEvent::GetData(data)
            }
            (Expect::GetData { remaining: 0 }, R::GetEnd) => {
                self.expect = Expect::Nothing;
                SecureClientEvent::GetEnd
            }
            (_, r) => return Err(self.unexpected(r.code())),
        };
        self.events.push_back(ev);
        Ok(())
    }
}
