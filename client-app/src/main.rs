//! `client`: sends one file to the server. Run with no arguments in a folder that
//! holds `transfer.info`; it registers (writing `me.info` and `priv.key`) or, if
//! `me.info` exists, reconnects. `client --help` lists the options and exit codes.

#![forbid(unsafe_code)]

mod auto;
mod checks;
mod cli;
mod commands;
mod dialect_presets;
mod exit;
mod explain;
mod info;
// The secure upload (coming) calls these; until then only their tests do.
mod known_servers;
mod out;
mod probe;
mod progress;
mod run;
mod secure;
mod secure_connect;
mod server_record;
mod summary;

use std::sync::atomic::{AtomicBool, Ordering};

use clap::Parser;

use crate::cli::Cli;
use crate::exit::{Exit, Failure};
use crate::out::Out;
use crate::progress::Verbosity;
use crate::summary::Summary;

/// `--json` was given (read by the Ctrl-C handler).
static JSON: AtomicBool = AtomicBool::new(false);

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version exit 0; usage errors exit 2, as the table says.
            let _ = e.print();
            std::process::exit(if e.use_stderr() {
                Exit::Usage.code()
            } else {
                0
            });
        }
    };
    if let Some(command @ (cli::Command::Completions { .. } | cli::Command::Man)) = &cli.command {
        std::process::exit(print_companion(command));
    }
    JSON.store(cli.json, Ordering::SeqCst);
    let _ = ctrlc::set_handler(|| {
        let failure = Failure::new(
            Exit::Interrupted,
            "interrupted: the upload was not completed, and the server keeps no unconfirmed part",
        )
        .hint("run again to send the file");
        eprintln!("\nFatal: {failure}");
        if JSON.load(Ordering::SeqCst) {
            println!("{}", Summary::default().to_json(Some(&failure)));
        }
        std::process::exit(Exit::Interrupted.code());
    });
    let out = Out {
        verbosity: if cli.quiet {
            Verbosity::Quiet
        } else if cli.verbose {
            Verbosity::Verbose
        } else {
            Verbosity::Normal
        },
        json: cli.json,
    };
    let mut summary = Summary::default();
    let result = match &cli.command {
        None | Some(cli::Command::Put { .. }) => run::run(&cli, &out, &mut summary),
        Some(command) => commands::run(&cli, command, &out, &mut summary),
    };
    // A listing that succeeded is the one JSON document on stdout; a summary after
    // it would make stdout two documents that a JSON parser refuses.
    let listed = matches!(
        cli.command,
        Some(cli::Command::List | cli::Command::Versions { .. })
    ) && result.is_ok();
    if cli.json && !listed {
        println!("{}", summary.to_json(result.as_ref().err()));
    }
    if let Err(failure) = result {
        eprintln!("Fatal: {failure}");
        std::process::exit(failure.exit.code());
    }
}

/// Prints a completion script or the manual page; the exit code.
fn print_companion(command: &cli::Command) -> i32 {
    use clap::CommandFactory;
    let out = &mut std::io::stdout().lock();
    match command {
        cli::Command::Completions { shell } => {
            clap_complete::generate(*shell, &mut Cli::command(), "client", out);
            0
        }
        cli::Command::Man => match clap_mangen::Man::new(Cli::command()).render(out) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("Fatal: cannot write the manual page: {e}");
                Exit::Internal.code()
            }
        },
        _ => Exit::Internal.code(),
    }
}
