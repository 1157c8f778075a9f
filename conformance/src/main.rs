//! `conformance`: runs the numbered cases against a server or a client of the
//! file-storage protocol and reports PASS / VARIANT / FAIL / INFO per case.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use conformance::client::launch::CommandLauncher;
use conformance::model::{CaseResult, Report};
use conformance::report;
use conformance::runner::RunOptions;

/// Exit code when a case FAILED.
const EXIT_FAILED: u8 = 1;
/// Exit code for a usage or setup error (nothing to connect to, a bad option).
const EXIT_SETUP: u8 = 2;

#[derive(Parser, Debug)]
#[command(
    name = "conformance",
    version,
    about = "Conformance suite for the file-storage protocol (docs/PROTOCOL.md)",
    after_help = "Exit status: 0 nothing FAILED, 1 at least one case FAILED, 2 usage or setup error."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Cases to run: ids (S5.07), groups (S5, upload), prefixes ending in * (S5.1*),
    /// comma-separated. Default: all.
    #[arg(long, global = true, value_name = "PATTERN")]
    cases: Option<String>,
    /// Write report.json and report.html into this folder.
    #[arg(long, global = true, value_name = "DIR")]
    report: Option<PathBuf>,
    /// Print the JSON report on stdout (the table goes to stderr).
    #[arg(long, global = true)]
    json: bool,
    /// Stop starting cases after this many seconds (the rest are SKIPPED).
    #[arg(long, global = true, default_value_t = 900)]
    budget: u64,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the server cases against a running server.
    Server {
        /// The server, as HOST:PORT.
        addr: String,
    },
    /// Play the server for a client: listen, and run one case per client run.
    Client {
        /// Address to listen on (the client under test connects there).
        #[arg(long, value_name = "ADDR")]
        listen: String,
        /// Command that starts the client under test. It runs with `sh -c` in a fresh
        /// folder holding the case's transfer.info (and me.info, for reconnect cases).
        /// Without it, each case waits for a client to be started by hand.
        #[arg(long, value_name = "COMMAND")]
        run: Option<String>,
        /// Seconds each case waits for the client (connecting, each request, its exit).
        #[arg(long, default_value_t = 10)]
        case_timeout: u64,
        /// Folder for the case folders (default: a new folder under the system's
        /// temporary folder).
        #[arg(long, value_name = "DIR")]
        work: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(EXIT_SETUP)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match run(cli) {
        Ok(report) if report.failed() => ExitCode::from(EXIT_FAILED),
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("conformance: {e:#}");
            ExitCode::from(EXIT_SETUP)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<Report> {
    let opts = RunOptions {
        pattern: cli.cases.clone(),
        budget: Duration::from_secs(cli.budget),
    };
    let json = cli.json;
    let mut progress = |r: &CaseResult| {
        let line = report::terminal::row(r);
        if json {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    };
    let report = match cli.command {
        Command::Server { addr } => conformance::runner::run_server(&addr, &opts, &mut progress)
            .with_context(|| format!("server cases against {addr}"))?,
        Command::Client {
            listen,
            run,
            case_timeout,
            work,
        } => {
            let work = match work {
                Some(w) => w,
                None => std::env::temp_dir().join(format!(
                    "conformance-{}",
                    conformance::runner::name_prefix()
                )),
            };
            std::fs::create_dir_all(&work)
                .with_context(|| format!("creating {}", work.display()))?;
            let launcher = CommandLauncher { command: run };
            conformance::client::run::run_client(
                &listen,
                &launcher,
                &work,
                Duration::from_secs(case_timeout),
                &opts,
                &mut progress,
            )
            .with_context(|| format!("client cases on {listen}"))?
        }
    };
    let summary = report::terminal::summary(&report);
    if json {
        eprint!("{summary}");
        println!("{}", report::json::render(&report)?);
    } else {
        print!("{summary}");
    }
    if let Some(dir) = &cli.report {
        let (j, h) = report::write_all(&report, dir)
            .with_context(|| format!("writing reports to {}", dir.display()))?;
        eprintln!("reports: {} {}", j.display(), h.display());
    }
    Ok(report)
}
