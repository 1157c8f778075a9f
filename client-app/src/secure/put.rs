//! `client put FILE` in the secure mode: from the offset the server holds, hashing
//! the whole file, and resumed by itself after a cut (a new connection, possibly to
//! another server of a fleet behind the same address) for as long as `--timeout`
//! allows between two pieces of progress.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::time::{Duration, Instant};

use protocol_core::secure::SecureClientEvent;
use sha2::{Digest, Sha256};

use super::{hex, open, refused, unexpected, Broken, Opened, Session, Target};
use crate::exit::{plain, Exit, Failure};
use crate::out::Out;
use crate::progress::{summary_line, Progress, Verbosity};
use crate::summary::Summary;

/// What a secure put did, for the caller's summary.
pub enum PutOutcome {
    /// Stored and verified.
    Stored,
    /// The server speaks only the legacy protocol: the caller sends it that way.
    Legacy,
}

const CHUNK: usize = 1 << 20;

/// Uploads `path` as `name`.
pub fn put(
    t: &Target<'_>,
    path: &Path,
    name: &str,
    out: &Out,
    verbosity: Verbosity,
    summary: &mut Summary,
) -> Result<PutOutcome, Failure> {
    let mut file = File::open(path)
        .map_err(|e| Failure::usage(format!("cannot read {}: {}", path.display(), plain(e))))?;
    let size = file
        .metadata()
        .map_err(|e| Failure::usage(format!("cannot read {}: {}", path.display(), plain(e))))?
        .len();
    let progress = Progress::new(name, size, verbosity);
    let mut last_progress = Instant::now();
    let mut attempt = 0u32;
    let mut pause = Duration::from_millis(200);
    loop {
        attempt += 1;
        let session = match open(t, out) {
            Ok(Opened::Secure(s)) => s,
            Ok(Opened::Legacy) if attempt == 1 => return Ok(PutOutcome::Legacy),
            Ok(Opened::Legacy) => {
                return Err(Failure::new(
                    Exit::Protocol,
                    "the server answered in the legacy protocol on a reconnect; the upload was not finished",
                ))
            }
            Err(Broken::Failed(f)) => return Err(f),
            Err(Broken::Lost(why)) => {
                if attempt == 1 || last_progress.elapsed() > t.timeout {
                    return Err(Failure::new(Exit::Unreachable, format!("cannot reach {}: {why}", t.server)));
                }
                progress.note(&format!("reconnecting to {} ({why})", t.server));
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        summary.server = Some(t.server.clone());
        progress.start(1);
        match send(
            session,
            &mut file,
            name,
            size,
            &progress,
            &mut last_progress,
            attempt > 1,
        ) {
            Ok((cksum, sha)) => {
                progress.clear();
                out.say(&format!(
                    "{}, SHA-256 {} verified by the server (secure mode)",
                    summary_line(name, size, progress.elapsed(), Some(cksum)),
                    hex(&sha)
                ));
                summary.checksum = Some(cksum);
                summary.sha256 = Some(hex(&sha));
                summary.mode = Some("secure".into());
                summary.bytes = Some(size);
                summary.seconds = Some(progress.elapsed().as_secs_f64());
                summary.sends = attempt;
                return Ok(PutOutcome::Stored);
            }
            Err(Broken::Failed(f)) => {
                progress.clear();
                return Err(f);
            }
            Err(Broken::Lost(why)) => {
                if last_progress.elapsed() > t.timeout {
                    progress.clear();
                    return Err(Failure::new(
                        Exit::ConnectionLost,
                        format!(
                            "the connection was lost and could not be resumed within {} s: {why}",
                            t.timeout.as_secs()
                        ),
                    )
                    .hint("run again: the upload resumes where the server's copy ends"));
                }
                progress.note(&format!("connection lost ({why}); resuming"));
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// One session's share of the upload: from the server's offset to the end.
/// `reconnected`: a session after a cut, which the server may still be holding.
fn send(
    mut s: Box<Session>,
    file: &mut File,
    name: &str,
    size: u64,
    progress: &Progress,
    last_progress: &mut Instant,
    reconnected: bool,
) -> Result<(u32, [u8; 32]), Broken> {
    s.proto().put_begin(name, size).map_err(super::internal)?;
    let offset = match s.next()? {
        SecureClientEvent::PutOffset { offset } => offset,
        // After a cut the server may not have seen the old connection end yet: it
        // refuses the file as busy until it does. Tried again within --timeout.
        SecureClientEvent::Refused {
            reason: protocol_core::secure::frame::Refusal::Storage,
            message,
        } if reconnected => {
            s.close();
            return Err(Broken::Lost(format!(
                "the server refused for now: {message}"
            )));
        }
        SecureClientEvent::Refused { message, .. } => return Err(refused(&message).into()),
        other => return Err(unexpected(other)),
    };
    *last_progress = Instant::now();
    let mut sha = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let read_err = |e: std::io::Error| {
        Broken::Failed(Failure::usage(format!("reading the file: {}", plain(e))))
    };
    file.seek(SeekFrom::Start(0)).map_err(read_err)?;
    if offset > 0 {
        progress.note(&format!(
            "resuming at byte {offset} of {size} (the server's copy)"
        ));
        // The part not sent is hashed from the local copy: the final comparison
        // covers every byte.
        let mut left = offset;
        while left > 0 {
            let n = (left.min(CHUNK as u64)) as usize;
            file.read_exact(&mut buf[..n]).map_err(read_err)?;
            sha.update(&buf[..n]);
            left -= n as u64;
        }
    }
    let mut sent = offset;
    progress.update(sent);
    while sent < size {
        let want = ((size - sent).min(CHUNK as u64)) as usize;
        let n = file.read(&mut buf[..want]).map_err(read_err)?;
        if n == 0 {
            return Err(Broken::Failed(Failure::usage(format!(
                "the file shrank while it was sent ({sent} of {size} bytes)"
            ))));
        }
        sha.update(&buf[..n]);
        s.proto().put_data(&buf[..n]).map_err(super::internal)?;
        s.flush()?;
        sent += n as u64;
        *last_progress = Instant::now();
        progress.update(sent);
    }
    let digest: [u8; 32] = sha.finalize().into();
    s.proto().put_end(digest).map_err(super::internal)?;
    match s.next()? {
        SecureClientEvent::Stored {
            cksum,
            sha256,
            size: stored,
        } if sha256 == digest && stored == size => {
            s.close();
            Ok((cksum, sha256))
        }
        SecureClientEvent::Stored { .. } => Err(Broken::Failed(Failure::new(
            Exit::Checksum,
            "the server stored a different file than the one sent",
        ))),
        SecureClientEvent::Refused { reason, message } => {
            let f = refused(&message);
            Err(Broken::Failed(
                if reason == protocol_core::secure::frame::Refusal::HashMismatch {
                    Failure::new(Exit::Checksum, f.message)
                    .hint("the file changed while it was sent, or was damaged: run again to send it whole")
                } else {
                    f
                },
            ))
        }
        other => Err(unexpected(other)),
    }
}
