//! How the client reaches a server: over TLS with the server's identity pinned, or
//! in the legacy protocol, and never the second for a server whose identity is known.
//!
//! The policy, OpenSSH's for host keys:
//!
//! - `--legacy`: the legacy protocol, no TLS attempted.
//! - A pin (`--server-fingerprint`, else the server's line in `known_servers`): TLS
//!   is required and the server must show the pinned certificate. A server that
//!   answers in the legacy protocol, closes, or fails the handshake is a failure,
//!   never a reason to speak the legacy protocol: an attacker in the middle can
//!   always make the TLS attempt fail, so falling back would throw the pin away.
//!   Another certificate stops the run before anything is sent ([`Exit::IdentityChanged`]).
//! - No pin: TLS is tried; a server that answers in the legacy protocol (or closes)
//!   gets the legacy protocol, and nothing is pinned; a TLS server is pinned on this
//!   first use, and said so on stderr.

use std::path::Path;
use std::time::Duration;

use transport_std::{connect_tls, ClientOptions, Fingerprint, SecureConnection, TlsConnectError};

use crate::exit::{plain, Exit, Failure};
use crate::known_servers;
use crate::out::Out;

/// How long an unpinned server has to answer a TLS hello before the client takes
/// it for a legacy server that waits in silence.
const UNPINNED_PROBE: Duration = Duration::from_secs(5);

/// Where a pin comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinSource {
    /// `--server-fingerprint`.
    CommandLine,
    /// A line of `known_servers` in the client's folder (its number, from 1).
    KnownServers {
        /// The line's number.
        line: usize,
    },
}

/// What the command line asks of the connection.
#[derive(Debug, Clone, Copy, Default)]
pub struct Policy {
    /// `--legacy`: no TLS.
    pub legacy: bool,
    /// `--server-fingerprint`: the identity the server must show, whatever
    /// `known_servers` says.
    pub fingerprint: Option<Fingerprint>,
}

impl Policy {
    /// The policy the options give.
    pub fn from_cli(cli: &crate::cli::Cli) -> Policy {
        Policy {
            legacy: cli.legacy,
            fingerprint: cli.server_fingerprint,
        }
    }
}

/// A TLS session with the server, its identity checked.
#[derive(Debug)]
pub struct Secure {
    /// The stream, the session's binding and the server's fingerprint.
    pub connection: SecureConnection,
    /// Where the fingerprint it showed was pinned; `None` when it was pinned by this
    /// connection (first use: its line was just added to `known_servers`). Only the
    /// tests read it so far.
    #[cfg_attr(not(test), allow(dead_code))]
    pub pinned_by: Option<PinSource>,
}

/// How to talk to the server.
#[derive(Debug)]
pub enum Reached {
    /// Over TLS: the secure protocol.
    Secure(Box<Secure>),
    /// The legacy protocol, on a connection of the caller's (the TLS attempt's
    /// connection, if any, is closed): `--legacy`, or a server with no pin that
    /// answered the ClientHello in the legacy protocol or closed.
    Legacy,
}

/// Reaches `server` (`host:port`) as `policy` and the pins in `dir` say (the module's
/// documentation has the rules). Nothing of the client's is sent before the server's
/// identity is checked; on first use its line is added to `dir`'s known_servers
/// (and a note printed on stderr) before this returns.
pub fn secure_connect(
    dir: &Path,
    server: &str,
    policy: Policy,
    timeout: Duration,
    out: &Out,
) -> Result<Reached, Failure> {
    if policy.legacy {
        return Ok(Reached::Legacy);
    }
    let pin = match policy.fingerprint {
        Some(fingerprint) => Some((fingerprint, PinSource::CommandLine)),
        None => known_servers::lookup(dir, server)
            .map_err(|e| {
                Failure::from(e).hint(format!(
                    "fix or remove that line of {} (each line is host:port SHA256:<hex>)",
                    known_servers::path(dir).display()
                ))
            })?
            .map(|pin| (pin.fingerprint, PinSource::KnownServers { line: pin.line })),
    };
    // An unpinned server is probed briefly: a deployed legacy server may answer a
    // ClientHello with silence (it waits for a whole request), and nothing is pinned
    // that a fallback could betray. A pinned one gets the whole timeout.
    let handshake_timeout = if pin.is_none() {
        timeout.min(UNPINNED_PROBE)
    } else {
        timeout
    };
    let options = ClientOptions {
        response_timeout: handshake_timeout,
        ..ClientOptions::default()
    };
    let connection = match connect_tls(server, pin.map(|(f, _)| f), &options) {
        Ok(connection) => connection,
        Err(TlsConnectError::NotTls) if pin.is_none() => return Ok(Reached::Legacy),
        Err(TlsConnectError::Timeout(_)) if pin.is_none() => {
            out.note_verbose(&format!(
                "{server} did not answer a TLS hello within {} s: sending in the legacy protocol",
                handshake_timeout.as_secs()
            ));
            return Ok(Reached::Legacy);
        }
        Err(e) => return Err(failure(dir, server, pin, timeout, e)),
    };
    // The session's waits are the run's, not the probe's.
    let _ = connection.stream.sock.set_read_timeout(Some(timeout));
    let _ = connection.stream.sock.set_write_timeout(Some(timeout));
    if let Some((_, source)) = pin {
        return Ok(Reached::Secure(Box::new(Secure {
            connection,
            pinned_by: Some(source),
        })));
    }
    let fingerprint = connection.fingerprint;
    if let Err(e) = known_servers::add(dir, server, fingerprint) {
        // Going on unpinned would make every later run a first use again.
        let _ = connection.close();
        return Err(Failure::usage(format!(
            "cannot record the identity of {server} ({fingerprint}): {}",
            plain(format!("{e:#}"))
        ))
        .hint(format!(
            "make {} writable, or give the server's identity with --server-fingerprint",
            dir.display()
        )));
    }
    out.note(&format!(
        "pinned {server} as {fingerprint} in {}",
        known_servers::path(dir).display()
    ));
    Ok(Reached::Secure(Box::new(Secure {
        connection,
        pinned_by: None,
    })))
}

/// Where a pin is, in words.
fn pin_place(dir: &Path, source: PinSource) -> String {
    match source {
        PinSource::CommandLine => "--server-fingerprint".to_string(),
        PinSource::KnownServers { line } => {
            format!("{}, line {line}", known_servers::path(dir).display())
        }
    }
}

/// The failure a TLS attempt ends the run with.
fn failure(
    dir: &Path,
    server: &str,
    pin: Option<(Fingerprint, PinSource)>,
    timeout: Duration,
    e: TlsConnectError,
) -> Failure {
    let legacy_hint = "if the server has no secure mode (a deployed server of the legacy \
                       protocol), run with --legacy";
    match (e, pin) {
        (TlsConnectError::IdentityChanged { expected, seen }, Some((_, source))) => {
            identity_changed(dir, server, expected, seen, source)
        }
        (TlsConnectError::KeyNotHeld { seen }, pin) => {
            let shown = match pin {
                Some((_, source)) => format!(
                    "the certificate pinned for it ({seen}, {})",
                    pin_place(dir, source)
                ),
                None => format!("a certificate ({seen})"),
            };
            Failure::new(
                // Pinned, this is an impostor at the pinned identity.
                if pin.is_some() {
                    Exit::IdentityChanged
                } else {
                    Exit::Unreachable
                },
                format!(
                    "the server at {server} showed {shown} but could not sign with its key: \
                     whoever answered holds a copy of the certificate, not the server's key, \
                     so someone may be impersonating the server; nothing was sent"
                ),
            )
            .hint(
                "keep the pin; tell the server's operator, and check the network between \
                 you and the server",
            )
        }
        (TlsConnectError::NotTls, Some((expected, source))) => Failure::new(
            Exit::Unreachable,
            format!(
                "the server at {server} answered without TLS (in the legacy protocol, or by \
                 closing the connection), but its identity is pinned as {expected} ({}): the \
                 client does not fall back to the legacy protocol for a pinned server, since \
                 anyone between it and the server could force that; nothing was sent",
                pin_place(dir, source)
            ),
        )
        .hint(
            "ask the server's operator whether its secure mode was turned off; run with \
             --legacy only if you accept an unchecked, unencrypted connection to it",
        ),
        (TlsConnectError::Timeout(_), pin) => Failure::new(
            Exit::Unreachable,
            format!(
                "the server {server} did not answer the TLS handshake within {} s",
                timeout.as_secs()
            ),
        )
        .hint(if pin.is_some() {
            "run again later, or with a longer --timeout"
        } else {
            legacy_hint
        }),
        (TlsConnectError::Unreachable(e), _) => {
            let why = match e.kind() {
                std::io::ErrorKind::ConnectionRefused => {
                    "the server is busy or refused the connection (is it running on this port?)"
                        .to_string()
                }
                _ => plain(&e),
            };
            Failure::new(
                Exit::Unreachable,
                format!("cannot connect to {server}: {why}"),
            )
            .hint("start the server, or check the address (transfer.info line 1, or --server)")
        }
        (e, pin) => {
            let failure = Failure::new(
                Exit::Unreachable,
                format!(
                    "the TLS connection to {server} failed: {}; nothing was sent",
                    plain(&e)
                ),
            );
            if pin.is_some() {
                failure.hint("run again; if it keeps failing, tell the server's operator")
            } else {
                failure.hint(legacy_hint)
            }
        }
    }
}

/// The message of a server that showed another certificate: OpenSSH's "REMOTE HOST
/// IDENTIFICATION HAS CHANGED", with both fingerprints and what to remove.
fn identity_changed(
    dir: &Path,
    server: &str,
    expected: Fingerprint,
    seen: Fingerprint,
    source: PinSource,
) -> Failure {
    let message = format!(
        "THE SERVER'S IDENTITY HAS CHANGED: {server} showed a certificate other than the one \
         pinned for it, and nothing was sent to it.\n\
         \x20 pinned:  {expected} ({})\n\
         \x20 showed:  {seen}\n\
         Someone may be intercepting the connection (a machine in the middle), or the \
         server's operator may have given it a new identity.",
        pin_place(dir, source)
    );
    let hint = match source {
        PinSource::KnownServers { line } => format!(
            "ask the server's operator for its fingerprint by another channel; only if it is \
             {seen}, remove line {line} of {} (the next run pins the new one) or run with \
             --server-fingerprint {seen}",
            known_servers::path(dir).display()
        ),
        PinSource::CommandLine => format!(
            "check the fingerprint given with --server-fingerprint with the server's \
             operator; only if it is {seen}, give that one"
        ),
    };
    Failure::new(Exit::IdentityChanged, message).hint(hint)
}

#[cfg(test)]
mod tests;
