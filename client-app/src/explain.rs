//! Turns what went wrong during a run into a [`Failure`]: what happened in the
//! user's terms, what to do, and the exit code.

use std::io::ErrorKind;
use std::path::Path;
use std::time::{Duration, Instant};

use protocol_core::wire::{RequestCode, ResponseCode};
use protocol_core::{ClientEvent, ClientFailure, PeerError};
use transport_std::ClientError;

use crate::exit::{plain, Exit, Failure};

/// What the run saw so far, to tell one failure from another.
#[derive(Debug, Default)]
pub struct Seen {
    /// Answers from the server.
    pub answers: u32,
    /// Of them, general errors (1607): what a busy server answers before it closes.
    pub refusals: u32,
    /// A send of the file began.
    pub uploading: bool,
    /// Bytes of the current send.
    pub sent: u64,
    /// The last answer was an error to a packet of the file.
    pub upload_error_last: bool,
    /// The last error answer: code and request.
    pub last_error: Option<(ResponseCode, RequestCode)>,
    /// Checksum mismatches.
    pub mismatches: u32,
    /// When the AES key arrived (1602 or 1605).
    pub key_at: Option<Instant>,
    /// How long after the key the first error answer to the file (828) came.
    pub file_refused_after_key: Option<Duration>,
}

impl Seen {
    pub fn on_event(&mut self, ev: &ClientEvent) {
        match ev {
            ClientEvent::SendFile { .. } => {
                self.uploading = true;
                self.sent = 0;
            }
            ClientEvent::Progress { sent, .. } => self.sent = *sent,
            ClientEvent::ServerError { code, request, .. } => {
                self.answers += 1;
                self.refusals += (*code == ResponseCode::GeneralError) as u32;
                self.last_error = Some((*code, *request));
                self.upload_error_last = *request == RequestCode::SendFile;
                if self.upload_error_last && self.file_refused_after_key.is_none() {
                    self.file_refused_after_key = self.key_at.map(|t| t.elapsed());
                }
            }
            ClientEvent::ChecksumMismatch { .. } => {
                self.answers += 1;
                self.mismatches += 1;
                self.upload_error_last = false;
            }
            ClientEvent::KeyExchanged { .. } => {
                self.answers += 1;
                self.upload_error_last = false;
                self.key_at = Some(Instant::now());
            }
            ClientEvent::Registered { .. }
            | ClientEvent::ReconnectRefused
            | ClientEvent::Finished(_) => {
                self.answers += 1;
                self.upload_error_last = false;
            }
            _ => {}
        }
    }
}

/// The shortest key lifetime a server can be given (its option counts seconds).
const SHORTEST_KEY_LIFETIME: Duration = Duration::from_secs(1);

/// Whether the run ended with the file refused (1607 to 828) at least a key
/// lifetime after the key arrived: the answer a server gives to a key that expired
/// between 827 and 828, which a new 827 renews. A refusal sooner cannot be that.
pub fn key_probably_expired(err: &ClientError, seen: &Seen) -> bool {
    let refused_file = match err {
        ClientError::Failure(ClientFailure::ServerRefused { request, .. }) => {
            *request == RequestCode::SendFile
        }
        ClientError::Io(_)
        | ClientError::Failure(ClientFailure::Peer(PeerError::UnexpectedEof)) => {
            seen.upload_error_last
        }
        _ => false,
    };
    refused_file
        && seen
            .file_refused_after_key
            .is_some_and(|after| after >= SHORTEST_KEY_LIFETIME)
}

/// What the run was about, for the messages.
pub struct Context<'a> {
    pub server: &'a str,
    pub name: &'a str,
    pub dir: &'a Path,
    pub file: &'a str,
    pub size: u64,
    /// The run started by reconnecting with `me.info`.
    pub reconnecting: bool,
    /// Why registering anew after a refused reconnect was not allowed.
    pub no_register_reason: Option<String>,
}

/// A request as the user knows it.
pub fn request_name(r: RequestCode) -> String {
    let what = match r {
        RequestCode::Register => "registration",
        RequestCode::SendPublicKey => "sending the public key",
        RequestCode::Reconnect => "reconnecting",
        RequestCode::SendFile => "sending the file",
        RequestCode::CrcOk => "confirming the checksum",
        RequestCode::CrcRetry => "announcing a re-send",
        RequestCode::CrcAbort => "abandoning the upload",
    };
    format!("{what} ({})", r as u16)
}

/// An answer as the user knows it.
pub fn response_name(r: ResponseCode) -> String {
    let what = match r {
        ResponseCode::RegistrationFailed => "registration refused",
        ResponseCode::GeneralError => "general error",
        ResponseCode::ReconnectRefused => "reconnect refused",
        _ => "answer",
    };
    format!("{what} ({})", r as u16)
}

/// Whether the run ended the way a busy server ends a connection it will not serve:
/// closed with no answer, or with general errors (1607) only, before any file data
/// went out. The client tries again a little later (within `--timeout`).
pub fn refused_as_busy(err: &ClientError, seen: &Seen) -> bool {
    if seen.uploading || seen.answers != seen.refusals {
        return false;
    }
    match err {
        ClientError::Io(_) => true,
        ClientError::Failure(ClientFailure::Peer(PeerError::UnexpectedEof)) => true,
        ClientError::Failure(ClientFailure::ServerRefused {
            request,
            last: ResponseCode::GeneralError,
            ..
        }) => matches!(request, RequestCode::Register | RequestCode::Reconnect),
        _ => false,
    }
}

/// The failure of a run the server would not serve (see [`refused_as_busy`]).
fn busy(ctx: &Context, seen: &Seen, why: &str) -> Failure {
    let what = if seen.answers == 0 {
        format!("closed the connection before answering ({why})")
    } else {
        format!(
            "answered only general error (1607) and closed the connection ({} time(s); {why})",
            seen.refusals
        )
    };
    Failure::new(
        Exit::Unreachable,
        format!(
            "the server at {} {what}: the server is busy or refused the connection",
            ctx.server
        ),
    )
    .hint(
        "try again later, or wait longer with --timeout SECONDS; if it persists, ask the \
         server's operator (its log says why)",
    )
}

fn lost(ctx: &Context, seen: &Seen, why: &str) -> Failure {
    if !seen.uploading && seen.answers == seen.refusals {
        return busy(ctx, seen, why);
    }
    if seen.upload_error_last {
        return Failure::new(
            Exit::Refused,
            format!(
                "the server refused the file {} ({} bytes) with a general error (1607) and \
                 closed the connection",
                ctx.file, ctx.size
            ),
        )
        .hint(
            "the file may be larger than the server accepts, or the server could not store it; \
             the server's log says why",
        );
    }
    if seen.uploading {
        return Failure::new(
            Exit::ConnectionLost,
            format!(
                "the connection to the server was lost during the upload of {} \
                 ({} of {} bytes sent; {why})",
                ctx.file, seen.sent, ctx.size
            ),
        )
        .hint("run again to retry; the server keeps no part of an unconfirmed upload");
    }
    Failure::new(
        Exit::ConnectionLost,
        format!(
            "the connection to the server {} was lost ({why})",
            ctx.server
        ),
    )
    .hint("run again to retry")
}

/// The failure for a run that ended with `err`.
pub fn explain(err: &ClientError, ctx: &Context, seen: &Seen) -> Failure {
    match err {
        ClientError::Io(e) => {
            let why = match e.kind() {
                ErrorKind::ConnectionReset => "connection reset".to_string(),
                ErrorKind::BrokenPipe => "the server closed its side".to_string(),
                ErrorKind::ConnectionAborted => "connection aborted".to_string(),
                ErrorKind::UnexpectedEof => "connection closed".to_string(),
                _ => plain(e),
            };
            lost(ctx, seen, &why)
        }
        ClientError::Timeout(d) if seen.uploading && seen.sent < ctx.size => Failure::new(
            Exit::Unreachable,
            format!(
                "the server {} stopped taking the upload of {} ({} of {} bytes sent) and did \
                 not answer within {} s",
                ctx.server,
                ctx.file,
                seen.sent,
                ctx.size,
                d.as_secs()
            ),
        )
        .hint(
            "the server or the network is overloaded or stalled; run again later, or wait \
             longer with --timeout SECONDS",
        ),
        ClientError::Timeout(d) => Failure::new(
            Exit::Unreachable,
            format!(
                "the server {} did not answer within {} s",
                ctx.server,
                d.as_secs()
            ),
        )
        .hint("it may be overloaded; run again later, or wait longer with --timeout SECONDS"),
        ClientError::File(e) => Failure::usage(format!(
            "{} changed while it was being sent ({e})",
            ctx.file
        ))
        .hint("send it again when nothing is writing to it"),
        ClientError::Failure(f) => explain_failure(f, ctx, seen),
    }
}

fn explain_failure(f: &ClientFailure, ctx: &Context, seen: &Seen) -> Failure {
    match f {
        ClientFailure::ServerRefused {
            request: RequestCode::Register,
            last: ResponseCode::RegistrationFailed,
            ..
        } => Failure::new(
            Exit::Refused,
            format!(
                "the server refused the name {:?} (registration refused, 1601): another client \
                 has registered it, or the server does not accept it",
                ctx.name
            ),
        )
        .hint(
            "choose another name (transfer.info line 2, or --name); if the name is yours, run in \
             the folder that holds its me.info (--dir)",
        ),
        ClientFailure::ServerRefused {
            request: RequestCode::SendFile,
            last,
            attempts,
        } => Failure::new(
            Exit::Refused,
            format!(
                "the server could not store {}: it answered {} to all {attempts} attempts",
                ctx.file,
                response_name(*last)
            ),
        )
        .hint(
            "its disk may be full or its storage failing; tell the server's operator, then run \
             again",
        ),
        ClientFailure::ServerRefused {
            request: RequestCode::Register | RequestCode::Reconnect,
            last: ResponseCode::GeneralError,
            attempts,
        } if seen.answers == seen.refusals => busy(
            ctx,
            seen,
            &format!("{attempts} attempt(s) on one connection"),
        ),
        ClientFailure::ServerRefused {
            request,
            last,
            attempts,
        } => Failure::new(
            Exit::Refused,
            format!(
                "the server answered {} to {} {attempts} time(s)",
                response_name(*last),
                request_name(*request)
            ),
        )
        .hint("the server's log says why; run again later"),
        ClientFailure::ReconnectRefused => {
            let reason = ctx
                .no_register_reason
                .clone()
                .unwrap_or_else(|| "registering anew is not allowed".into());
            Failure::new(
                Exit::Refused,
                format!(
                    "the server {} does not know the client {:?} of {} (reconnect refused, 1606); \
                     {reason}",
                    ctx.server,
                    ctx.name,
                    ctx.dir.join("me.info").display()
                ),
            )
            .hint(
                "to register with this server and replace me.info, run again with --new-server \
                 (keep a copy of me.info and priv.key to go back); or use another folder (--dir)",
            )
        }
        ClientFailure::Peer(PeerError::BadAesKey(_)) if ctx.reconnecting => {
            Failure::usage(format!(
            "the server's key does not decrypt with the private key in {}: me.info and priv.key \
             there do not belong to the client {:?} on the server {}",
            ctx.dir.join("me.info").display(),
            ctx.name,
            ctx.server
        ))
            .hint(
                "use the folder that holds this client's own me.info (--dir), or move me.info and \
             priv.key away to register as a new client under another name",
            )
        }
        ClientFailure::Peer(PeerError::UnexpectedEof) => lost(ctx, seen, "connection closed"),
        ClientFailure::Peer(PeerError::Timeout(why)) => Failure::new(
            Exit::Unreachable,
            format!("no answer from the server: {why}"),
        )
        .hint("run again later, or wait longer with --timeout SECONDS"),
        ClientFailure::Peer(e) if seen.answers == 0 => Failure::new(
            Exit::Protocol,
            format!(
                "the first answer from {} is not this protocol ({e}): another kind of server \
                 (a web server, for example) listens on that port",
                ctx.server
            ),
        )
        .hint(
            "check the port (the server's port.info; transfer.info line 1 or --server); if \
             it is a file-storage server of another implementation, see the dialect options \
             (client --help)",
        ),
        ClientFailure::Peer(e) => Failure::new(
            Exit::Protocol,
            format!(
                "the server's answer does not follow the protocol as this client speaks it ({e})"
            ),
        )
        .hint(
            "if the server is another implementation, try the dialect options (client --help); \
             docs/PROTOCOL.md lists the deployed variants",
        ),
        ClientFailure::Key(e) => Failure::new(Exit::Internal, format!("key error: {e}")),
        // A failure a newer core added: its own words, as a protocol failure.
        other => Failure::new(Exit::Protocol, other.to_string()),
    }
}
