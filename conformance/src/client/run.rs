//! The client suite's run: a fresh folder per case with its `transfer.info` (and
//! `me.info` for reconnects), the client started in it, the scripted server serving
//! it, the case judged.

use std::net::TcpListener;
use std::path::Path;
use std::time::{Duration, Instant};

use protocol_core::crypto::PrivateKey;
use protocol_core::rand_core::{OsRng, RngCore};

use super::cases::{client_cases, Setup};
use super::judge::Observed;
use super::launch::Launcher;
use super::server::{serve, Script};
use crate::evidence::Evidence;
use crate::model::{CaseResult, Report, Side};
use crate::runner::{name_prefix, selected, skipped, unix_now, RunError, RunOptions};

fn write_folder(
    dir: &Path,
    addr: &str,
    name: &str,
    file: &[u8],
    setup: &Setup,
) -> Result<Script, RunError> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(
        dir.join("transfer.info"),
        format!("{addr}\n{name}\ndata.bin\n"),
    )?;
    std::fs::write(dir.join("data.bin"), file)?;
    let mut script = setup.script.clone();
    if setup.known {
        let key = PrivateKey::generate(&mut OsRng).map_err(|e| RunError::Keys(e.to_string()))?;
        let mut id = [0u8; 16];
        OsRng.fill_bytes(&mut id);
        let b64 = key.to_base64().map_err(|e| RunError::Keys(e.to_string()))?;
        let text: String = if setup.wrapped {
            b64.as_bytes()
                .chunks(64)
                .map(|c| String::from_utf8_lossy(c).into_owned() + "\n")
                .collect()
        } else {
            format!("{}\n", b64.as_str())
        };
        let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
        std::fs::write(dir.join("me.info"), format!("{name}\n{hex}\n{text}"))?;
        std::fs::write(dir.join("priv.key"), format!("{}\n", b64.as_str()))?;
        // They hold a private key: clients refuse files others can read.
        use std::os::unix::fs::PermissionsExt;
        for f in ["me.info", "priv.key"] {
            std::fs::set_permissions(dir.join(f), std::fs::Permissions::from_mode(0o600))?;
        }
        let known_id = if setup.stranger { [0xee; 16] } else { id };
        script.known = Some((known_id, name.to_string(), key.public_key()));
    }
    Ok(script)
}

/// Runs the client cases: listens on `listen`, starts the client with `launcher`
/// for each case in a folder under `work`, each case bounded by `case_timeout`.
pub fn run_client(
    listen: &str,
    launcher: &dyn Launcher,
    work: &Path,
    case_timeout: Duration,
    opts: &RunOptions,
    progress: &mut dyn FnMut(&CaseResult),
) -> Result<Report, RunError> {
    let start = Instant::now();
    let listener = TcpListener::bind(listen).map_err(|err| RunError::Listen {
        addr: listen.into(),
        err,
    })?;
    let local = listener.local_addr()?;
    let addr = if local.ip().is_unspecified() {
        format!("127.0.0.1:{}", local.port())
    } else {
        local.to_string()
    };
    let prefix = name_prefix();
    let mut names = Vec::new();
    let mut results = Vec::new();
    for (i, (meta, c)) in client_cases().into_iter().enumerate() {
        if !selected(opts.pattern.as_deref(), &meta) {
            continue;
        }
        if start.elapsed() > opts.budget {
            let r = skipped(meta, "the run's time budget was spent");
            progress(&r);
            results.push(r);
            continue;
        }
        let t0 = Instant::now();
        let mut name = format!("{prefix}-{i}");
        if let Some(len) = c.setup.name_len {
            name = format!("{prefix}{i}")
                .chars()
                .chain(std::iter::repeat('n'))
                .take(len)
                .collect();
        }
        names.push(name.clone());
        let file = crate::session::data(c.setup.file_size, i as u32 + 1);
        let dir = work.join(&meta.id);
        let mut ev = Evidence::default();
        let script = write_folder(&dir, &addr, &name, &file, &c.setup)?;
        let r = match launcher.launch(&dir, &meta.id) {
            Err(e) => crate::runner::finish(
                meta,
                Err(crate::probe::CaseError::Setup(e.to_string())),
                ev,
                t0,
            ),
            Ok(mut running) => {
                let (t, exit) = serve(
                    &listener,
                    &script,
                    running.as_mut(),
                    Instant::now() + case_timeout,
                    &mut ev,
                );
                if exit.is_none() {
                    running.stop();
                }
                let output = running.output();
                ev.note(match exit {
                    None => "still running at the case's end: stopped".to_string(),
                    Some(Some(c)) => format!("the client exited with {c}"),
                    Some(None) => "the client's exit code is unknown".to_string(),
                });
                for l in output.lines().rev().take(2) {
                    ev.note(format!("client: {l}"));
                }
                for n in &t.notes {
                    ev.note(n.clone());
                }
                let o = Observed {
                    t: &t,
                    exit,
                    file: &file,
                    name: &name,
                    file_name: "data.bin",
                    output: &output,
                    knows_exit: launcher.knows_exit(),
                };
                // A client that never connected tested nothing: the case did not run.
                let j = if t.connections == 0 {
                    Err(crate::probe::CaseError::Setup(format!(
                        "the client never connected ({})",
                        o.exit_text()
                    )))
                } else {
                    Ok((c.judge)(&o))
                };
                crate::runner::finish(meta, j, ev, t0)
            }
        };
        progress(&r);
        results.push(r);
    }
    let verdict = crate::verdict::client_verdict(&results);
    Ok(Report {
        side: Side::Client,
        target: launcher.describe(),
        started_unix: unix_now().saturating_sub(start.elapsed().as_secs()),
        millis: start.elapsed().as_millis() as u64,
        results,
        registered_names: names,
        notes: vec![format!(
            "the scripted server listened on {addr}; case folders in {}",
            work.display()
        )],
        verdict,
    })
}
