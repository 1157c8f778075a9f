//! The secure mode (docs/PROTOCOL.md, section 10): a TLS session whose server
//! identity is pinned (`secure_connect`), signed in with the client's key, and the
//! requests on the client's own files: `put` (resumed after a cut), `list`,
//! `versions`, `get`, `rm`, `restore`.
//!
//! Keys: a client registered in the legacy protocol signs its first secure session
//! with its RSA-1024 key (me.info), then registers an Ed25519 key (`secure.key`,
//! 0600) that alone signs in from then on. A new client registers in the secure mode
//! with an Ed25519 key directly.

mod fetch;
mod manage;
mod put;

use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use bytes::BytesMut;
use ed25519_dalek::SigningKey;
use protocol_core::crypto::PrivateKey;
use protocol_core::secure::frame::Refusal;
use protocol_core::secure::{SecureClient, SecureClientEvent, Signer};
use protocol_core::ClientId;
use zeroize::Zeroizing;

use crate::exit::{plain, Exit, Failure};
use crate::info::{self, key_files};
use crate::out::Out;
use crate::secure_connect::{self, Policy, Reached};
use transport_std::SecureConnection;

pub use fetch::{get, GetArgs};
pub use manage::{list, remove, restore, versions};
pub use put::{put, PutOutcome};

/// Where and as whom the secure requests run.
pub struct Target<'a> {
    /// The client's folder (me.info, secure.key, known_servers).
    pub dir: &'a Path,
    /// `host:port`.
    pub server: String,
    /// The client name (for a registration).
    pub name: String,
    /// The pins and `--legacy`.
    pub policy: Policy,
    /// Every wait, and how long a cut upload is retried.
    pub timeout: Duration,
    /// `--keep-legacy`: ask the server to keep serving legacy requests for this id.
    pub keep_legacy: bool,
}

/// A signed-in secure session.
pub struct Session {
    conn: SecureConnection,
    proto: SecureClient,
    input: BytesMut,
    out: BytesMut,
    chunk: Vec<u8>,
}

/// How a session ended early.
pub enum Broken {
    /// The connection was lost (or timed out): a retry may go on.
    Lost(String),
    /// The server refused, or broke the protocol.
    Failed(Failure),
}

impl From<Failure> for Broken {
    fn from(f: Failure) -> Broken {
        Broken::Failed(f)
    }
}

const SECURE_KEY: &str = "secure.key";

/// The server refused a request: exit 4, whatever the reason (the message says it).
fn refused(message: &str) -> Failure {
    Failure::new(Exit::Refused, format!("the server refused: {message}"))
}

impl Session {
    /// Sends what the protocol queued.
    pub fn flush(&mut self) -> Result<(), Broken> {
        self.proto.poll_transmit(&mut self.out);
        if self.out.is_empty() {
            return Ok(());
        }
        let r = self
            .conn
            .stream
            .write_all(&self.out)
            .and_then(|_| self.conn.stream.flush());
        self.out.clear();
        r.map_err(|e| Broken::Lost(plain(e)))
    }

    /// The next answer, reading as needed.
    pub fn next(&mut self) -> Result<SecureClientEvent, Broken> {
        self.flush()?;
        loop {
            if let Some(ev) = self.proto.poll_event() {
                return Ok(ev);
            }
            let n = match self.conn.stream.read(&mut self.chunk) {
                Ok(0) => return Err(Broken::Lost("the server closed the connection".into())),
                Ok(n) => n,
                Err(e) => return Err(Broken::Lost(plain(e))),
            };
            self.input.extend_from_slice(&self.chunk[..n]);
            self.proto.handle_input(&mut self.input).map_err(|e| {
                Broken::Failed(Failure::new(
                    Exit::Protocol,
                    format!("the server's answer breaks the secure protocol: {e}"),
                ))
            })?;
        }
    }

    /// The protocol, to queue requests.
    pub fn proto(&mut self) -> &mut SecureClient {
        &mut self.proto
    }

    /// Ends the session politely.
    pub fn close(self) {
        let _ = self.conn.close();
    }
}

/// What `open` found.
pub enum Opened {
    /// Signed in.
    Secure(Box<Session>),
    /// The server speaks only the legacy protocol (and is not pinned), or `--legacy`.
    Legacy,
}

/// Connects (pins checked), signs in (registering if this folder has no me.info),
/// and upgrades a legacy key to an Ed25519 one.
pub fn open(t: &Target<'_>, out: &Out) -> Result<Opened, Broken> {
    let reached = secure_connect::secure_connect(t.dir, &t.server, t.policy, t.timeout, out)
        .map_err(|f| {
            if f.exit == Exit::Unreachable {
                Broken::Lost(f.message)
            } else {
                Broken::Failed(f)
            }
        })?;
    let secure = match reached {
        Reached::Legacy => return Ok(Opened::Legacy),
        Reached::Secure(s) => s,
    };
    let binding = secure.connection.binding;
    let mut s = Session {
        conn: secure.connection,
        proto: SecureClient::new(binding),
        input: BytesMut::new(),
        out: BytesMut::new(),
        chunk: vec![0u8; 256 * 1024],
    };
    let me_path = t.dir.join("me.info");
    let strong = read_secure_key(t.dir).map_err(Broken::Failed)?;
    if !me_path.exists() {
        register(&mut s, t, out)?;
    } else {
        let (_, identity) = info::read_me(&me_path).map_err(|e| Broken::Failed(e.into()))?;
        let id = identity.client_id;
        let signer: &dyn Signer = match &strong {
            Some(k) => k,
            None => &identity.private_key,
        };
        sign_in(&mut s, id, signer)?;
        if strong.is_none() {
            upgrade_key(&mut s, t.dir, out)?;
        }
    }
    if t.keep_legacy {
        s.proto().keep_legacy(true).map_err(internal)?;
        expect_done(&mut s)?;
        out.note("the server keeps serving this client's legacy requests (--keep-legacy)");
    }
    Ok(Opened::Secure(Box::new(s)))
}

fn internal(e: impl std::fmt::Display) -> Broken {
    Broken::Failed(Failure::new(Exit::Internal, format!("internal: {e}")))
}

fn expect_done(s: &mut Session) -> Result<(), Broken> {
    match s.next()? {
        SecureClientEvent::Done => Ok(()),
        SecureClientEvent::Refused { message, .. } => Err(refused(&message).into()),
        other => Err(unexpected(other)),
    }
}

fn unexpected(ev: SecureClientEvent) -> Broken {
    Broken::Failed(Failure::new(
        Exit::Protocol,
        format!("unexpected answer from the server: {ev:?}"),
    ))
}

fn sign_in(s: &mut Session, id: ClientId, key: &dyn Signer) -> Result<(), Broken> {
    s.proto().sign_in(id, key).map_err(internal)?;
    match s.next()? {
        SecureClientEvent::SignedIn { .. } => Ok(()),
        SecureClientEvent::Refused { reason, message } => Err(Broken::Failed(
            refused(&message).hint(match reason {
                Refusal::UnknownClient => {
                    "this folder's me.info is not known to this server: use the folder you \
                     registered with, or move me.info, priv.key and secure.key away to register anew"
                }
                Refusal::KeyRetired => {
                    "this client registered a stronger key (secure.key) that this folder lacks: \
                     copy secure.key from the folder that has it"
                }
                _ => "check that me.info and secure.key belong to this client",
            }),
        )),
        other => Err(unexpected(other)),
    }
}

fn register(s: &mut Session, t: &Target<'_>, out: &Out) -> Result<(), Broken> {
    if t.name.is_empty() {
        return Err(Broken::Failed(Failure::usage(
            "registering needs a client name: give --name or transfer.info line 2",
        )));
    }
    crate::checks::folder_writable(t.dir)?;
    let key = new_secure_key(t.dir)?;
    s.proto().register(&t.name, &key).map_err(internal)?;
    let id = match s.next()? {
        SecureClientEvent::Registered { client_id } => client_id,
        SecureClientEvent::Refused { message, .. } => {
            let _ = std::fs::remove_file(t.dir.join(SECURE_KEY));
            return Err(refused(&message)
                .hint("choose another name (--name), then run again")
                .into());
        }
        other => return Err(unexpected(other)),
    };
    // me.info keeps its usual three lines for tools that read it; its RSA key is on
    // no server (this client signs in with secure.key).
    let legacy = PrivateKey::generate(&mut rand_core::OsRng).map_err(internal)?;
    info::write_me(t.dir, &t.name, &id, &legacy).map_err(|e| Broken::Failed(e.into()))?;
    out.note(&format!(
        "registered {:?} in the secure mode; me.info and secure.key written in {}",
        t.name,
        t.dir.display()
    ));
    Ok(())
}

/// After a sign-in with the legacy key: an Ed25519 key, saved first, then registered.
fn upgrade_key(s: &mut Session, dir: &Path, out: &Out) -> Result<(), Broken> {
    let key = new_secure_key(dir)?;
    s.proto().set_key(&key).map_err(internal)?;
    expect_done(s)?;
    out.note_verbose(&format!(
        "registered an Ed25519 key ({}): the RSA-1024 key of me.info no longer signs in",
        dir.join(SECURE_KEY).display()
    ));
    Ok(())
}

fn new_secure_key(dir: &Path) -> Result<SigningKey, Broken> {
    let key = SigningKey::generate(&mut rand_core::OsRng);
    let text = Zeroizing::new(format!("{}\n", hex(key.as_bytes())));
    key_files::write_secret(&dir.join(SECURE_KEY), text.as_bytes())
        .map_err(|e| Broken::Failed(e.into()))?;
    Ok(key)
}

fn read_secure_key(dir: &Path) -> Result<Option<SigningKey>, Failure> {
    let path = dir.join(SECURE_KEY);
    if !path.exists() {
        return Ok(None);
    }
    let text = key_files::read_secret(&path).map_err(Failure::from)?;
    let bytes = unhex(text.trim())
        .filter(|b| b.len() == 32)
        .ok_or_else(|| {
            Failure::usage(format!(
                "{} is not an Ed25519 key (64 hex digits)",
                path.display()
            ))
        })?;
    let mut seed = Zeroizing::new([0u8; 32]);
    seed.copy_from_slice(&bytes);
    Ok(Some(SigningKey::from_bytes(&seed)))
}

pub(crate) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Option<Zeroizing<Vec<u8>>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let mut v = Zeroizing::new(Vec::with_capacity(s.len() / 2));
    for pair in s.as_bytes().chunks(2) {
        let p = std::str::from_utf8(pair).ok()?;
        v.push(u8::from_str_radix(p, 16).ok()?);
    }
    Some(v)
}

/// Opens a session for a request that exists only in the secure mode.
pub fn open_required(t: &Target<'_>, out: &Out, what: &str) -> Result<Box<Session>, Failure> {
    match open(t, out) {
        Ok(Opened::Secure(s)) => Ok(s),
        Ok(Opened::Legacy) => Err(Failure::new(
            Exit::Refused,
            format!(
                "{what} needs the secure mode, and {} speaks only the legacy protocol",
                t.server
            ),
        )
        .hint("ask the server's operator to enable TLS (the default of our server)")),
        Err(Broken::Lost(why)) => Err(Failure::new(
            Exit::Unreachable,
            format!("cannot reach {}: {why}", t.server),
        )),
        Err(Broken::Failed(f)) => Err(f),
    }
}
