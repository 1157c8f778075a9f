//! One run: settle what to send where (checked before any network traffic), then
//! drive the session and say what happened.

use std::cell::RefCell;
use std::io::Seek;
use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use rand_core::RngCore;

use protocol_core::wire::{RequestCode, ResponseCode};
use protocol_core::{ClientConfig, ClientEvent, ClientSession, Outcome};
use transport_std::{run_client, ClientOptions};

use crate::auto;
use crate::checks;
use crate::cli::Cli;
use crate::dialect_presets::Preset;
use crate::exit::{plain, Exit, Failure};
use crate::explain::{
    explain, key_probably_expired, refused_as_busy, request_name, response_name, Context, Seen,
};
use crate::info;
use crate::out::Out;
use crate::probe;
use crate::progress::{summary_line, Progress};
use crate::server_record;
use crate::summary::Summary;

/// Server, name and file: options first, then `transfer.info`; a registered folder
/// (`me.info` and `me.server`) supplies the name and the server it was made with, so
/// that it can be run again with `--dir` and a file alone.
fn target(cli: &Cli) -> Result<(String, String, PathBuf), Failure> {
    let file_opt = cli.file_option().cloned();
    let registered = cli.dir.join("me.info").exists();
    let recorded = if registered && cli.server.is_none() {
        server_record::read(&cli.dir).map_err(|e| {
            Failure::from(e).hint(format!(
                "delete {} (it holds only host:port of the server; the next run writes it \
                 again) or give the server with --server HOST:PORT",
                server_record::path(&cli.dir).display()
            ))
        })?
    } else {
        None
    };
    let transfer_path = cli.dir.join("transfer.info");
    let name_known = cli.name.is_some() || registered;
    let server_known = cli.server.is_some() || recorded.is_some();
    // transfer.info says which server to use when it exists (the folder's me.server
    // only says which one me.info was made with); it is needed only for what nothing
    // else says.
    let complete = server_known && name_known && file_opt.is_some();
    let transfer = if complete && (cli.server.is_some() || !transfer_path.exists()) {
        None
    } else {
        Some(info::read_transfer(&transfer_path).map_err(|e| {
            let mut missing = Vec::new();
            if !server_known {
                missing.push("--server HOST:PORT");
            }
            if !name_known {
                missing.push("--name NAME");
            }
            if file_opt.is_none() {
                missing.push("FILE");
            }
            let hint = if complete || missing.is_empty() {
                "fix the line it names, or move the file away".to_string()
            } else {
                format!(
                    "or give what it would say on the command line: {}",
                    missing.join(" ")
                )
            };
            Failure::from(e).hint(hint)
        })?)
    };
    let server = cli
        .server
        .clone()
        .or_else(|| transfer.as_ref().map(|t| t.server.clone()))
        .or(recorded)
        .unwrap_or_default();
    check_server_address(&server)?;
    let name = cli
        .name
        .clone()
        .or_else(|| transfer.as_ref().map(|t| t.name.clone()))
        .unwrap_or_default();
    // A path on the command line is relative to the current folder (as with scp or
    // rsync); one in transfer.info to the folder holding transfer.info.
    let file = match (file_opt, transfer) {
        (Some(f), _) => f,
        (None, Some(t)) if t.file.is_relative() => cli.dir.join(t.file),
        (None, Some(t)) => t.file,
        (None, None) => PathBuf::new(),
    };
    Ok((server, name, file))
}

/// A server address must be `host:port` with a port number: without one, the run
/// would fail later as "cannot reach", which sends the user looking at the network.
fn check_server_address(server: &str) -> Result<(), Failure> {
    let why = match server.rsplit_once(':') {
        None => Some("has no port".to_string()),
        Some(("", _)) => Some("has no host".to_string()),
        Some((_, port)) => match port.parse::<u16>() {
            Ok(p) if p > 0 => None,
            _ => Some(format!("has no valid port ({port:?} is not 1 to 65535)")),
        },
    };
    match why {
        None => Ok(()),
        Some(why) => Err(Failure::usage(format!(
            "the server address {server:?} {why}; it must be host:port"
        ))
        .hint(
            "for example 127.0.0.1:1256 (the port is in the server's port.info): give it with \
             --server, or on line 1 of transfer.info",
        )),
    }
}

pub fn run(cli: &Cli, out: &Out, summary: &mut Summary) -> Result<(), Failure> {
    let (server, mut name, file_path) = target(cli)?;
    summary.server = Some(server.clone());
    let me_path = cli.dir.join("me.info");
    let identity = if me_path.exists() {
        let (me_name, identity) = info::read_me(&me_path).map_err(|e| {
            Failure::from(e).hint(format!(
                "if you have a copy of this folder's me.info (and priv.key), put it back; \
                 otherwise move me.info, priv.key and me.server away and run again to \
                 register anew (under another name if the server still holds {name:?})"
            ))
        })?;
        if me_name != name {
            if !name.is_empty() {
                out.note(&format!(
                    "note: {} is for {me_name:?}; reconnecting under that name, not {name:?}",
                    me_path.display()
                ));
            }
            name = me_name;
        }
        Some(identity)
    } else {
        None
    };
    summary.client_name = Some(name.clone());
    let name_field = checks::check_client_name(&name)?;
    let mut file = checks::file_to_send(&file_path)?;
    summary.file = Some(file_path.display().to_string());
    summary.bytes = Some(file.size);

    if crate::commands::tries_secure(cli, &server) {
        let target = crate::commands::target_for(cli, server.clone(), name.clone());
        let file_name = String::from_utf8_lossy(file.name.as_bytes()).into_owned();
        let verbosity = out.verbosity;
        match crate::secure::put(&target, &file_path, &file_name, out, verbosity, summary)? {
            crate::secure::PutOutcome::Stored => {
                if let Err(e) = server_record::write(&cli.dir, &server, None) {
                    out.note(&format!(
                        "note: could not record the server in me.server: {e:#}"
                    ));
                }
                return Ok(());
            }
            crate::secure::PutOutcome::Legacy => {
                summary.mode = Some("legacy".into());
                out.note_verbose(&format!(
                    "{server} does not offer the secure mode: sending in the legacy protocol"
                ));
            }
        }
    } else {
        summary.mode = Some("legacy".into());
    }

    let reconnecting = identity.is_some();
    if let Some(id) = &identity {
        summary.client_id = Some(id.client_id.to_hex());
    }
    // The preset that last worked with this server: auto tries it first, and every
    // run keeps it in me.server when it rewrites that file.
    let recorded_dialect = server_record::read_dialect(&cli.dir, &server);
    let auto = cli.auto();
    let mut preset = match (auto, recorded_dialect) {
        (true, Some(p)) => p,
        (true, None) => Preset::Spec,
        (false, _) => cli.preset,
    };
    if auto {
        if let Some(p) = recorded_dialect {
            out.note_verbose(&format!(
                "dialect {}: remembered in {} for {server}",
                p.name(),
                server_record::path(&cli.dir).display()
            ));
        }
    }
    let mut tried = vec![preset];
    let mut config = ClientConfig {
        name: name_field,
        file_name: file.name.clone(),
        file_size: file.size,
        identity,
        registration_key: None,
        dialect: cli.dialect_with(preset),
    };
    let new_session = |config: &ClientConfig| {
        ClientSession::new(config.clone(), rand_core::OsRng)
            .map_err(|e| Failure::usage(format!("{} cannot be sent: {e}", file_path.display())))
    };
    let mut session = new_session(&config)?;
    check_packet_size(cli, &config.dialect, &session, file.size, out)?;
    // A try under a dialect not known to work with this server waits only a short
    // while (server D answers a wrongly shaped 828 with silence); a known one, an
    // explicit choice and padded (what silence points to) wait --timeout.
    let full_timeout = Duration::from_secs(cli.timeout);
    let probing = |p: Preset| auto && recorded_dialect != Some(p) && p != Preset::Padded;
    let mut timeout = if probing(preset) {
        auto::probe_timeout(file.size, full_timeout)
    } else {
        full_timeout
    };

    // Registering writes me.info: the folder must take it, and a me.info made with
    // another server is replaced only when asked.
    let mut no_register_reason = None;
    if reconnecting {
        let recorded = server_record::read(&cli.dir).map_err(|e| {
            Failure::from(e).hint(format!(
                "delete {} (the next run writes it again)",
                server_record::path(&cli.dir).display()
            ))
        })?;
        if let Some(r) = recorded.filter(|r| *r != server && !cli.new_server) {
            no_register_reason = Some(format!(
                "me.info was made with the server {r}, and registering anew would replace it"
            ));
        } else if let Err(f) = checks::folder_writable(&cli.dir) {
            no_register_reason = Some(format!("registering anew is not possible: {}", f.message));
        }
    } else {
        checks::folder_writable(&cli.dir)?;
    }
    session.set_register_when_refused(no_register_reason.is_none());

    // A busy server refuses a connection with a 1607 (or closes it unanswered): try
    // again after a jittered pause that doubles, as long as --timeout allows.
    let busy_until = Instant::now() + Duration::from_secs(cli.timeout);
    let mut pause = Duration::from_millis(100);
    let mut tries = 0u32;
    let mut renewed = false;
    let mut first_registered = None;
    // The try whose failure pointed to the dialect being tried now.
    let mut pointing: Option<Attempt> = None;
    let (result, seen, save_error, registered_id, progress, removed) = loop {
        tries += 1;
        let how = Try {
            dialect: config.dialect.clone(),
            timeout,
            keep: recorded_dialect,
        };
        let attempt = match attempt(
            cli,
            out,
            (&server, &name, reconnecting, tries == 1),
            &how,
            &mut session,
            &mut file,
            &file_path,
        ) {
            Ok(a) => a,
            // A dialect retry that cannot even connect says nothing about the server's
            // dialect: the failure that led to it is the one to report.
            Err(f) => match pointing.take() {
                Some(prev) => break prev,
                None => return Err(f),
            },
        };
        if let (Some(id), None) = (attempt.3, &attempt.2) {
            // Registered on this try: any next try reconnects with the saved identity
            // (registering again would find the name taken).
            first_registered.get_or_insert(id);
            config.identity = Some(info::read_me(&me_path).map_err(Failure::from)?.1);
        }
        let busy = match &attempt.0 {
            Err(e) => refused_as_busy(e, &attempt.1),
            Ok(_) => false,
        };
        let expired = match &attempt.0 {
            Err(e) => !renewed && !attempt.5 && key_probably_expired(e, &attempt.1),
            Ok(_) => false,
        };
        let wait =
            pause.mul_f64(0.5 + 0.5 * (rand_core::OsRng.next_u32() as f64 / u32::MAX as f64));
        let switch = match &attempt.0 {
            Err(e) if auto && !busy && !expired && attempt.2.is_none() && !attempt.5 => {
                auto::next(e, &attempt.1, &tried)
            }
            _ => None,
        };
        // A probing try that timed out before the file began says nothing about the
        // dialect: the same dialect again, with the whole --timeout.
        let slow_start = matches!(&attempt.0, Err(transport_std::ClientError::Timeout(_)))
            && attempt.1.key_at.is_none()
            && timeout < full_timeout
            && pointing.is_none();
        if let Some((next, why)) = switch {
            out.note(&format!(
                "{why} under --dialect {}; trying --dialect {} on a new connection to the \
                 same server (try {} of at most {})",
                preset.name(),
                next.name(),
                tried.len() + 1,
                crate::dialect_presets::AUTO_CANDIDATES.len()
            ));
            preset = next;
            tried.push(next);
            pointing = Some(attempt);
            config.dialect = cli.dialect_with(next);
            timeout = if probing(next) {
                auto::probe_timeout(file.size, full_timeout)
            } else {
                full_timeout
            };
        } else if slow_start {
            out.note_verbose("no answer before the file began; trying again with --timeout");
            timeout = full_timeout;
        } else if expired {
            // A key that expired between 827 and 828 is renewed by a new 827, once:
            // a second refusal is the file's, and is reported as such.
            renewed = true;
            out.note(&format!(
                "the server refused the file {:.1} s after it issued the key: key expired, \
                 most likely; reconnecting for a new key",
                attempt
                    .1
                    .file_refused_after_key
                    .unwrap_or_default()
                    .as_secs_f64()
            ));
        } else if !busy || Instant::now() + wait >= busy_until {
            // A retry that failed in a way no dialect explains (the server went away,
            // say): report the failure that led to it, which says what happened.
            break match (pointing.take(), &attempt.0) {
                (Some(prev), Err(e)) if auto::symptom(e, &attempt.1).is_none() => prev,
                (_, _) => attempt,
            };
        } else {
            out.note_verbose(&format!(
                "the server is busy (refused the connection); trying again in {} ms",
                wait.as_millis()
            ));
            std::thread::sleep(wait);
            pause = (pause * 2).min(Duration::from_secs(2));
        }
        session = new_session(&config)?;
        session.set_register_when_refused(no_register_reason.is_none());
        file.file.rewind().map_err(|e| {
            Failure::usage(format!(
                "cannot read {}: {}",
                file_path.display(),
                plain(&e)
            ))
        })?;
    };
    if let Some(id) = registered_id.or(first_registered) {
        summary.client_id = Some(id.to_hex());
        summary.registered = true;
    }
    summary.dialect = Some(if auto || cli.preset != Preset::Auto {
        preset.name().to_string()
    } else {
        "options".to_string()
    });
    if removed {
        return Err(Failure::new(
            Exit::Refused,
            format!(
                "the server {server} no longer knows the client {name:?} (reconnect refused, \
                 1606, when asked after it refused to confirm the upload of {}): its operator \
                 removed it during the upload, or its database was reset; the file is not stored",
                file.name.display()
            ),
        )
        .hint(
            "ask the server's operator; to register anew, move me.info, priv.key and me.server \
             out of the folder and run again (with --name if the old name stays taken)",
        ));
    }
    summary.sends = seen_sends(&seen);
    summary.seconds = Some(progress.elapsed().as_secs_f64());
    summary.checksum = session.file_checksum();
    if let (Some(e), Some(id)) = (save_error, registered_id) {
        return Err(Failure::usage(format!(
            "registered as client {id}, but could not save {}: {e:#}; the name {name:?} is now \
             held on the server by an identity this folder does not have",
            me_path.display()
        ))
        .hint("ask the server's operator to remove that client, or register under another name"));
    }
    let shown = file.name.display();
    let ctx = Context {
        server: &server,
        name: &name,
        dir: &cli.dir,
        file: &shown,
        size: file.size,
        reconnecting,
        no_register_reason,
    };
    match result {
        Ok(Outcome::Verified) => {
            if auto {
                // Said on stderr: stdout keeps its one summary line (or the JSON).
                out.note(&format!(
                    "dialect: {}{}",
                    preset.name(),
                    if tried.len() > 1 {
                        " (recognised from the server's answers; remembered for the next run)"
                    } else if recorded_dialect == Some(preset) {
                        " (remembered from an earlier run)"
                    } else {
                        ""
                    }
                ));
                if recorded_dialect != Some(preset) {
                    write_record(&cli.dir, &server, Some(preset), &progress);
                }
            }
            out.say(&summary_line(
                &shown,
                file.size,
                progress.elapsed(),
                session.file_checksum(),
            ));
            Ok(())
        }
        Ok(Outcome::GaveUp) => Err(Failure::new(
            Exit::Checksum,
            format!(
                "the server's checksum of {shown} differed from ours four times; the upload was \
                 abandoned and the file is not verified on the server"
            ),
        )
        .hint(
            "the data is being damaged on the way or the server computes another checksum \
             (--checksum crc32 for servers that use zlib CRC-32)",
        )),
        Err(e) => {
            let failure = explain(&e, &ctx, &seen);
            // The upload failed as a dialect does: name the presets. Silence is said
            // to be a dialect's, not overload; other failures keep their own hint too.
            match (auto, auto::symptom(&e, &seen)) {
                (true, Some((Preset::Padded, _))) => {
                    Err(failure.hint(auto::presets_to_try(&tried)))
                }
                (true, Some(_)) => {
                    let own = failure.hint.clone().unwrap_or_default();
                    let presets = auto::presets_to_try(&tried);
                    Err(failure.hint(if own.is_empty() {
                        presets
                    } else {
                        format!("{own}; {presets}")
                    }))
                }
                _ => Err(failure),
            }
        }
    }
}

/// How one try talks: the dialect, the longest wait, and the preset to keep in
/// `me.server` when the try rewrites it.
struct Try {
    dialect: protocol_core::Dialect,
    timeout: Duration,
    keep: Option<Preset>,
}

/// What one connection's run gave: the outcome, what was seen, a failure to save
/// me.info, the id registered, the progress display, and whether the server turned
/// out not to know the client any more (removed mid-upload).
type Attempt = (
    Result<Outcome, transport_std::ClientError>,
    Seen,
    Option<anyhow::Error>,
    Option<protocol_core::ClientId>,
    Progress,
    bool,
);

/// Connects and runs the session over one connection.
fn attempt<R: rand_core::CryptoRngCore>(
    cli: &Cli,
    out: &Out,
    (server, name, reconnecting, first): (&str, &str, bool, bool),
    how: &Try,
    session: &mut ClientSession<R>,
    file: &mut checks::FileToSend,
    file_path: &std::path::Path,
) -> Result<Attempt, Failure> {
    let shown = file.name.display();
    let mut stream = connect(server, Duration::from_secs(cli.timeout))?;
    if first {
        out.say(&format!(
            "{} {server} as {name:?}; sending {} ({} bytes)",
            if reconnecting {
                "reconnecting to"
            } else {
                "registering with"
            },
            file_path.display(),
            file.size
        ));
        out.note_verbose(&format!(
            "packets of {} bytes; checksum {}",
            session.packet_unit(),
            cli.checksum.name()
        ));
    }

    let progress = Progress::new(&shown, file.size, out.verbosity);
    let seen = RefCell::new(Seen::default());
    let mut save_error = None;
    let mut registered_id = None;
    let options = ClientOptions {
        response_timeout: how.timeout,
        ..ClientOptions::default()
    };
    // Ends the run from the callback when retrying cannot help (a removed client).
    let control = stream.try_clone().ok();
    let mut current_id = session.client_id();
    let mut removed = false;
    let dialect = &how.dialect;
    let result = run_client(session, &mut stream, &mut file.file, &options, |ev| {
        seen.borrow_mut().on_event(ev);
        on_event(ev, &progress, out, &seen.borrow());
        match ev {
            ClientEvent::ServerError {
                code: ResponseCode::GeneralError,
                request: RequestCode::CrcOk,
                attempt: 1,
            } => {
                // A store that failed may succeed when asked again; a removed client
                // never will: ask the server which (see `probe`).
                let field = protocol_core::FieldString::new(name);
                let gone = field.is_some_and(|f| {
                    probe::still_known(server, current_id, &f, dialect, options.response_timeout)
                        == Some(false)
                });
                if gone {
                    removed = true;
                    if let Some(c) = &control {
                        let _ = c.shutdown(std::net::Shutdown::Both);
                    }
                }
            }
            ClientEvent::Registered {
                client_id,
                private_key,
            } => {
                out.say(&format!("registered: client id {client_id}"));
                registered_id = Some(*client_id);
                current_id = *client_id;
                match info::write_me(&cli.dir, name, client_id, private_key) {
                    Ok(()) => write_record(&cli.dir, server, how.keep, &progress),
                    Err(e) => save_error = Some(e),
                }
            }
            ClientEvent::KeyExchanged { .. } => write_record(&cli.dir, server, how.keep, &progress),
            _ => {}
        }
    });
    progress.clear();
    let seen = seen.into_inner();
    Ok((result, seen, save_error, registered_id, progress, removed))
}

/// Records the server `me.info` belongs to (a warning if it cannot).
fn write_record(dir: &std::path::Path, server: &str, dialect: Option<Preset>, progress: &Progress) {
    if let Err(e) = server_record::write(dir, server, dialect) {
        progress.note(&format!(
            "warning: cannot write {}: {}",
            server_record::path(dir).display(),
            plain(format!("{e:#}"))
        ));
    }
}

/// Sends of the file this run began.
fn seen_sends(seen: &Seen) -> u32 {
    if seen.uploading {
        seen.mismatches + 1
    } else {
        0
    }
}

fn on_event(ev: &ClientEvent, progress: &Progress, out: &Out, seen: &Seen) {
    match ev {
        ClientEvent::ReconnectRefused => out.say(
            "the server does not know this client any more (reconnect refused, 1606); \
             registering anew",
        ),
        ClientEvent::SendFile { attempt } => progress.start(*attempt),
        ClientEvent::Progress { sent, .. } => progress.update(*sent),
        // A refused name is not retried: the final message says it all.
        ClientEvent::ServerError {
            code,
            request,
            attempt,
        } if *code != protocol_core::wire::ResponseCode::RegistrationFailed => {
            progress.note(&format!(
                "server responded with an error: {} to {} (attempt {attempt} of {})",
                response_name(*code),
                request_name(*request),
                protocol_core::client::MAX_ATTEMPTS
            ));
        }
        ClientEvent::ChecksumMismatch { ours, theirs, .. } => {
            let n = seen.mismatches;
            let last = n > protocol_core::client::MAX_RESENDS;
            progress.note(&format!(
                "checksum mismatch ({n} of {}): ours {ours}, the server's {theirs}; {}",
                protocol_core::client::MAX_RESENDS + 1,
                if last {
                    "giving up (the upload is abandoned)"
                } else {
                    "sending the file again"
                }
            ));
        }
        ClientEvent::KeyExchanged { reconnected } => progress.detail(if *reconnected {
            "reconnected: the server sent a new AES key (1605)"
        } else {
            "public key accepted: the server sent an AES key (1602)"
        }),
        _ => {}
    }
}

/// `--packet-size` is never overridden silently: a file that needs more than 65,535
/// packets of the asked size is refused; the default grows with a note.
fn check_packet_size<R: rand_core::CryptoRngCore>(
    cli: &Cli,
    dialect: &protocol_core::Dialect,
    session: &ClientSession<R>,
    size: u64,
    out: &Out,
) -> Result<(), Failure> {
    let asked = dialect.packet_size as u64;
    let unit = session.packet_unit();
    if unit <= asked.div_ceil(16) * 16 {
        return Ok(());
    }
    // A size asked for, by the option or a preset, is never changed behind the user's back.
    if cli.packet_size.is_some() || !matches!(cli.preset, Preset::Spec | Preset::Auto) {
        return Err(Failure::usage(format!(
            "--packet-size {asked} would cut this {size}-byte file into more than 65,535 packets, \
             the protocol's limit; it needs packets of at least {unit} bytes"
        ))
        .hint(format!(
            "use --packet-size {unit} or more, or leave the option out"
        )));
    }
    out.note(&format!(
        "note: this file needs packets of {unit} bytes (at most 65,535 packets per file)"
    ));
    Ok(())
}

fn connect(server: &str, timeout: Duration) -> Result<TcpStream, Failure> {
    let addr = server
        .to_socket_addrs()
        .map_err(|e| {
            Failure::new(
                Exit::Unreachable,
                format!("cannot find the server {server:?}: {}", plain(&e)),
            )
            .hint("check the address (transfer.info line 1, or --server host:port)")
        })?
        .next()
        .ok_or_else(|| {
            Failure::new(
                Exit::Unreachable,
                format!("the server address {server:?} resolves to nothing"),
            )
        })?;
    TcpStream::connect_timeout(&addr, timeout).map_err(|e| {
        let why = match e.kind() {
            std::io::ErrorKind::ConnectionRefused => {
                "the server is busy or refused the connection (is it running on this port?)"
                    .to_string()
            }
            std::io::ErrorKind::TimedOut => format!("no answer within {} s", timeout.as_secs()),
            _ => plain(&e),
        };
        Failure::new(
            Exit::Unreachable,
            format!("cannot connect to {server}: {why}"),
        )
        .hint("start the server, or check the address (transfer.info line 1, or --server)")
    })
}
