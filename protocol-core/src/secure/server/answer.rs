//! The application's answers to the secure session's questions.

use bytes::Bytes;

use super::{refused, DoneFor, Download, SecureServer, Upload, Waiting};
use crate::error::UsageError;
use crate::secure::digest::UploadDigest;
use crate::secure::event::{kind, Ask, AskKind, ClientKeys, PutResume, SecureEvent};
use crate::secure::frame::{self, Described, FileEntry, Refusal, SecureResponse, VersionEntry};
use crate::secure::keys::{self, KeyKind, KeyProblem, StoredKey};

impl SecureServer {
    // ---- answers ----

    fn take<Q: AskKind>(&mut self, ask: &Ask<Q>) -> Result<Waiting, UsageError> {
        match &self.pending {
            Some((id, ..)) if *id == ask.id => {}
            _ => return Err(UsageError::UnknownTicket(ask.id)),
        }
        self.pending
            .take()
            .map(|p| p.1)
            .ok_or(UsageError::UnknownTicket(ask.id))
    }

    /// Answers [`SecureEvent::SignIn`] with the keys on file (`None`: no such
    /// client). The session verifies the signature and answers 2001, or refuses
    /// and closes.
    pub fn sign_in_keys(
        &mut self,
        ask: Ask<kind::SignIn>,
        keys: Option<ClientKeys>,
    ) -> Result<(), UsageError> {
        let Waiting::SignIn {
            client_id,
            kind,
            signature,
        } = self.take(&ask)?
        else {
            return Err(UsageError::UnknownTicket(ask.id));
        };
        let Some(keys) = keys else {
            self.respond(&refused(Refusal::UnknownClient, "no client has this id"));
            self.closing = true;
            return Ok(());
        };
        let key = match (&keys.strong, kind) {
            (Some(strong), k) if k == strong.kind => strong.clone(),
            (Some(_), KeyKind::LegacyRsa) => {
                self.respond(&refused(
                    Refusal::KeyRetired,
                    "this client registered a stronger key; sign in with it",
                ));
                self.closing = true;
                return Ok(());
            }
            (None, KeyKind::LegacyRsa) if keys.legacy.is_some() => StoredKey {
                kind: KeyKind::LegacyRsa,
                key: keys.legacy.clone().unwrap_or_default(),
            },
            _ => {
                self.respond(&refused(
                    Refusal::UnknownClient,
                    "no key of this kind is on file for this client",
                ));
                self.closing = true;
                return Ok(());
            }
        };
        let message = keys::sign_in_message(&client_id, &self.binding);
        match keys::verify(&key, &message, &signature) {
            Ok(()) => {
                self.client = Some(client_id);
                self.events.push_back(SecureEvent::SignedIn {
                    client_id,
                    key: kind,
                });
                self.respond(&SecureResponse::SignedIn {
                    legacy_open: keys.keep_legacy,
                });
            }
            Err(KeyProblem::BadSignature) | Err(_) => {
                self.respond(&refused(
                    Refusal::BadSignature,
                    "the signature does not verify for this session",
                ));
                self.closing = true;
            }
        }
        Ok(())
    }

    /// Answers [`SecureEvent::Register`]: stored (`true`, 2002 and signed in), or the
    /// name is taken (`false`).
    pub fn registered(&mut self, ask: Ask<kind::Register>, stored: bool) -> Result<(), UsageError> {
        let Waiting::Register { client_id } = self.take(&ask)? else {
            return Err(UsageError::UnknownTicket(ask.id));
        };
        if stored {
            self.client = Some(client_id);
            self.respond(&SecureResponse::Registered { client_id });
        } else {
            self.respond(&refused(Refusal::NameTaken, "the name is taken"));
        }
        Ok(())
    }

    /// Answers a [`kind::Done`] question: carried out (2000, or 2011 for
    /// [`SecureEvent::PutComplete`]).
    pub fn done(&mut self, ask: Ask<kind::Done>) -> Result<(), UsageError> {
        let Waiting::Done(what) = self.take(&ask)? else {
            return Err(UsageError::UnknownTicket(ask.id));
        };
        match what {
            DoneFor::Plain => self.respond(&SecureResponse::Done),
            DoneFor::PutComplete => {
                if let Some(stored) = self.stored.take() {
                    self.respond(&stored);
                }
            }
        }
        Ok(())
    }

    /// Answers [`SecureEvent::PutBegin`]: continue from a saved place, or start at 0
    /// (`None`, or a saved state that does not fit this upload).
    pub fn put_from(
        &mut self,
        ask: Ask<kind::PutBegin>,
        resume: Option<PutResume>,
    ) -> Result<(), UsageError> {
        let Waiting::PutBegin { name, size } = self.take(&ask)? else {
            return Err(UsageError::UnknownTicket(ask.id));
        };
        let digest = resume
            .and_then(|r| {
                UploadDigest::from_bytes(&r.state)
                    .filter(|d| d.len() == r.offset && r.offset <= size)
            })
            .unwrap_or_default();
        let offset = digest.len();
        self.upload = Some(Upload {
            name,
            size,
            digest,
            since_checkpoint: 0,
        });
        self.respond(&SecureResponse::PutOffset { offset });
        Ok(())
    }

    /// Reports that `n` bytes of [`SecureEvent::PutData`] are written.
    pub fn data_written(&mut self, n: usize) -> Result<(), UsageError> {
        if n > self.unwritten {
            return Err(UsageError::WrittenTooMuch {
                reported: n,
                outstanding: self.unwritten,
            });
        }
        self.unwritten -= n;
        Ok(())
    }

    /// Answers [`SecureEvent::List`].
    pub fn listing(
        &mut self,
        ask: Ask<kind::List>,
        files: Vec<FileEntry>,
    ) -> Result<(), UsageError> {
        self.take(&ask)?;
        let count = files.len() as u32;
        for f in files {
            self.respond(&SecureResponse::FileEntry(f));
        }
        self.respond(&SecureResponse::ListEnd { count });
        Ok(())
    }

    /// Answers [`SecureEvent::Versions`].
    pub fn version_listing(
        &mut self,
        ask: Ask<kind::Versions>,
        versions: Vec<VersionEntry>,
    ) -> Result<(), UsageError> {
        self.take(&ask)?;
        let count = versions.len() as u32;
        for v in versions {
            self.respond(&SecureResponse::VersionEntry(v));
        }
        self.respond(&SecureResponse::ListEnd { count });
        Ok(())
    }

    /// Answers [`SecureEvent::Get`]: the content found, whole (`content.size` is the
    /// whole size); the session then asks for its bytes from the offset with
    /// [`SecureEvent::GetWants`]. An offset past the end is refused here.
    pub fn get_begin(
        &mut self,
        ask: Ask<kind::Get>,
        version: Option<u64>,
        content: Described,
    ) -> Result<(), UsageError> {
        let Waiting::Get { offset } = self.take(&ask)? else {
            return Err(UsageError::UnknownTicket(ask.id));
        };
        if offset > content.size {
            self.respond(&refused(
                Refusal::NotFound,
                format!("offset {offset} is past the end ({} bytes)", content.size),
            ));
            return Ok(());
        }
        let remaining = content.size - offset;
        self.respond(&SecureResponse::GetBegin {
            version,
            offset,
            content,
        });
        if remaining == 0 {
            self.respond(&SecureResponse::GetEnd);
        } else {
            self.download = Some(Download {
                remaining,
                asked: false,
            });
        }
        Ok(())
    }

    /// Answers [`SecureEvent::GetWants`] with the next bytes (at most its `max`). An
    /// empty `data` means the content ended early (it changed or broke): the
    /// connection closes without the end frame, and the client sees a cut download.
    pub fn get_data(&mut self, data: &[u8]) -> Result<(), UsageError> {
        let Some(d) = &mut self.download else {
            return Err(UsageError::NotNow("no download is asking for bytes"));
        };
        if !d.asked {
            return Err(UsageError::NotNow("no GetWants is outstanding"));
        }
        if data.len() as u64 > d.remaining {
            return Err(UsageError::WrittenTooMuch {
                reported: data.len(),
                outstanding: d.remaining as usize,
            });
        }
        d.asked = false;
        if data.is_empty() {
            self.download = None;
            self.closing = true;
            return Ok(());
        }
        d.remaining -= data.len() as u64;
        let done = d.remaining == 0;
        for chunk in data.chunks(frame::MAX_DATA) {
            self.respond(&SecureResponse::GetData {
                data: Bytes::copy_from_slice(chunk),
            });
        }
        if done {
            self.download = None;
            self.respond(&SecureResponse::GetEnd);
        }
        Ok(())
    }

    /// Answers any question with a refusal: `reason` and a message for the client.
    /// A [`SecureEvent::PutComplete`] refused leaves the upload not stored.
    pub fn refuse<Q: AskKind>(
        &mut self,
        ask: Ask<Q>,
        reason: Refusal,
        message: &str,
    ) -> Result<(), UsageError> {
        self.take(&ask)?;
        self.stored = None;
        self.respond(&refused(reason, message));
        Ok(())
    }

    pub(crate) fn timed_out(&mut self) -> bool {
        if self.pending.take().is_some() {
            self.respond(&refused(
                Refusal::Storage,
                "the server did not answer in time",
            ));
            self.closing = true;
            return true;
        }
        false
    }
}
