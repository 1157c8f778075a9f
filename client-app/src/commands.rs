//! The commands other than sending a file (`list`, `get`, `rm`, `versions`,
//! `restore`), and what every secure request needs from the command line.

use std::path::PathBuf;
use std::time::Duration;

use crate::cli::{Cli, Command};
use crate::exit::Failure;
use crate::out::Out;
use crate::secure::{self, Target};
use crate::secure_connect::Policy;
use crate::summary::Summary;
use crate::{info, known_servers, server_record};

/// Whether a file is sent over TLS first: not with `--legacy`, nor when single
/// dialect options name a deployed legacy server, unless a pin says `server` (as
/// resolved from the options, transfer.info or me.server) is ours.
pub fn tries_secure(cli: &Cli, server: &str) -> bool {
    if cli.legacy {
        return false;
    }
    cli.auto() || cli.server_fingerprint.is_some() || !unpinned(cli, server)
}

/// Whether `known_servers` surely has no line for `server`: a file that cannot be
/// read counts as pinned, so the secure path reports it rather than fall back.
fn unpinned(cli: &Cli, server: &str) -> bool {
    matches!(known_servers::lookup(&cli.dir, server), Ok(None))
}

/// The target of secure requests as the command line gives it.
pub fn target_for(cli: &Cli, server: String, name: String) -> Target<'_> {
    Target {
        dir: &cli.dir,
        server,
        name,
        policy: Policy::from_cli(cli),
        timeout: Duration::from_secs(cli.timeout),
        keep_legacy: cli.keep_legacy,
    }
}

/// Server and client name without a file: the options, then transfer.info, then
/// what the folder recorded (me.server, me.info).
fn endpoint(cli: &Cli) -> Result<(String, String), Failure> {
    let transfer = info::read_transfer(&cli.dir.join("transfer.info")).ok();
    let recorded = server_record::read(&cli.dir).ok().flatten();
    let server = cli
        .server
        .clone()
        .or_else(|| transfer.as_ref().map(|t| t.server.clone()))
        .or(recorded)
        .ok_or_else(|| {
            Failure::usage("which server? give --server HOST:PORT (or a transfer.info in --dir)")
        })?;
    let me = cli.dir.join("me.info");
    let name = cli
        .name
        .clone()
        .or_else(|| info::read_me(&me).ok().map(|(n, _)| n))
        .or_else(|| transfer.map(|t| t.name))
        .unwrap_or_default();
    Ok((server, name))
}

/// Runs one of the file commands.
pub fn run(cli: &Cli, command: &Command, out: &Out, summary: &mut Summary) -> Result<(), Failure> {
    if cli.legacy {
        return Err(Failure::usage(
            "--legacy: listing, downloading, removing and restoring exist only in the secure mode",
        ));
    }
    let (server, name) = endpoint(cli)?;
    summary.server = Some(server.clone());
    summary.client_name = Some(name.clone());
    summary.mode = Some("secure".into());
    let t = target_for(cli, server, name);
    match command {
        Command::List => secure::list(&t, out, cli.json),
        Command::Versions { name } => secure::versions(&t, out, name, cli.json),
        Command::Rm { name } => secure::remove(&t, out, name),
        Command::Restore { name, version } => secure::restore(&t, out, name, *version),
        Command::Get {
            name,
            output,
            version,
            force,
            unverified,
        } => {
            let output: Option<PathBuf> = output.clone();
            let args = secure::GetArgs {
                name,
                output: output.as_deref(),
                version: *version,
                force: *force,
                unverified: *unverified,
            };
            secure::get(&t, &args, out, out.verbosity, summary)
        }
        Command::Put { .. } | Command::Completions { .. } | Command::Man => {
            Err(Failure::usage("internal: not a file command"))
        }
    }
}
