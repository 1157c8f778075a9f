//! `client`: sends one file to the server. Run with no arguments in a folder that
//! holds `transfer.info`; it registers (writing `me.info` and `priv.key`) or, if
//! `me.info` exists, reconnects.

mod dialect_presets;
mod info;

use std::io::IsTerminal;
use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use protocol_core::{ClientConfig, ClientEvent, ClientSession, FieldString, Outcome};
use transport_std::{run_client, ClientOptions};

#[derive(Parser, Debug)]
#[command(version, about = "Secure file-storage client (protocol version 3)")]
struct Cli {
    /// Folder holding transfer.info, me.info and priv.key.
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// Server as host:port (overrides transfer.info line 1).
    #[arg(long)]
    server: Option<String>,
    /// Client name (overrides transfer.info line 2).
    #[arg(long)]
    name: Option<String>,
    /// File to send (overrides transfer.info line 3).
    #[arg(long)]
    file: Option<PathBuf>,
    /// How to speak to the server (a preset, and single variants on top).
    #[command(flatten)]
    dialect: dialect_presets::DialectArgs,
    /// Seconds any wait may last: connecting, each write, each answer.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    timeout: u64,
}

fn main() {
    match run(Cli::parse()) {
        Ok(()) => {}
        Err(e) => {
            eprintln!("Fatal: {e:#}");
            std::process::exit(1);
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let transfer_path = cli.dir.join("transfer.info");
    let transfer = if cli.server.is_some() && cli.name.is_some() && cli.file.is_some() {
        None
    } else {
        Some(info::read_transfer(&transfer_path)?)
    };
    let server = cli
        .server
        .clone()
        .or_else(|| transfer.as_ref().map(|t| t.server.clone()))
        .unwrap_or_default();
    let mut name = cli
        .name
        .clone()
        .or_else(|| transfer.as_ref().map(|t| t.name.clone()))
        .unwrap_or_default();
    let file_path = cli
        .file
        .clone()
        .or_else(|| transfer.as_ref().map(|t| t.file.clone()))
        .unwrap_or_default();
    let file_path = if file_path.is_relative() {
        cli.dir.join(file_path)
    } else {
        file_path
    };

    let me_path = cli.dir.join("me.info");
    let identity = if me_path.exists() {
        let (me_name, identity) = info::read_me(&me_path)?;
        if me_name != name {
            eprintln!(
                "note: me.info is for {me_name:?}; reconnecting under that name, not {name:?}"
            );
            name = me_name;
        }
        Some(identity)
    } else {
        None
    };
    info::check_name(&name)?;

    let mut file = std::fs::File::open(&file_path)
        .with_context(|| format!("cannot open the file to send, {}", file_path.display()))?;
    let size = file
        .metadata()
        .with_context(|| format!("cannot read {}", file_path.display()))?
        .len();
    if size > u32::MAX as u64 - 16 {
        bail!(
            "{} is {size} bytes; the protocol carries files up to 4 GiB - 17 bytes",
            file_path.display()
        );
    }
    let base = file_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    let file_name = FieldString::new(&base)
        .with_context(|| format!("the file name {base:?} is longer than 254 bytes"))?;

    let dialect = cli.dialect.dialect();
    let reconnecting = identity.is_some();
    let config = ClientConfig {
        name: FieldString::new(&name).context("the client name does not fit the protocol")?,
        file_name,
        file_size: size,
        identity,
        registration_key: None,
        dialect,
    };
    let mut session =
        ClientSession::new(config, rand_core::OsRng).map_err(|e| anyhow::anyhow!("{e}"))?;

    let addr = server
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve the server address {server:?}"))?
        .next()
        .with_context(|| format!("the server address {server:?} resolves to nothing"))?;
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(cli.timeout))
        .with_context(|| format!("cannot connect to {server} (is the server running?)"))?;
    println!(
        "{} {server} as {name:?}; sending {} ({size} bytes)",
        if reconnecting {
            "reconnecting to"
        } else {
            "registering with"
        },
        file_path.display()
    );

    let progress = Progress::new(size);
    let dir = cli.dir.clone();
    let mut save_error = None;
    let options = ClientOptions {
        response_timeout: Duration::from_secs(cli.timeout),
        ..ClientOptions::default()
    };
    let result = run_client(
        &mut session,
        &mut stream,
        &mut file,
        &options,
        |ev| match ev {
            ClientEvent::Registered {
                client_id,
                private_key,
            } => {
                println!("registered: client id {client_id}");
                if let Err(e) = info::write_me(&dir, &name, client_id, private_key) {
                    save_error = Some(e);
                }
            }
            ClientEvent::ReconnectRefused => {
                println!("the server does not know this client any more (1606); registering anew")
            }
            ClientEvent::KeyExchanged { .. } | ClientEvent::NewConnection => {}
            ClientEvent::SendFile { attempt } => progress.start(*attempt),
            ClientEvent::Progress { sent, .. } => progress.update(*sent),
            ClientEvent::ServerError {
                code,
                request,
                attempt,
            } => {
                progress.suspend(|| {
                    eprintln!(
                        "server responded with an error ({} to request {}, attempt {attempt} of 3)",
                        *code as u16, *request as u16
                    )
                });
            }
            ClientEvent::ChecksumMismatch {
                ours,
                theirs,
                resends_left,
            } => progress.suspend(|| {
                eprintln!(
                    "checksum mismatch: ours {ours}, server's {theirs}; {}",
                    if *resends_left > 0 {
                        format!("sending again ({resends_left} re-sends left)")
                    } else {
                        "giving up".to_string()
                    }
                )
            }),
            ClientEvent::Finished(_) => progress.finish(),
        },
    );
    progress.finish();
    if let Some(e) = save_error {
        return Err(e.context("registered, but could not save me.info"));
    }
    match result {
        Ok(Outcome::Verified) => {
            println!("done: {base} stored and verified by checksum");
            Ok(())
        }
        Ok(Outcome::GaveUp) => {
            bail!("the server's checksum differed 4 times; gave up (902 sent), the file is not verified")
        }
        Err(e) => Err(anyhow::anyhow!("{e}")),
    }
}

/// A progress bar on a terminal, plain lines otherwise.
struct Progress {
    bar: Option<ProgressBar>,
    total: u64,
    last_tenth: std::cell::Cell<u64>,
}

impl Progress {
    fn new(total: u64) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = ProgressBar::new(total);
            b.set_style(
                ProgressStyle::with_template(
                    "{bar:40} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            b
        });
        Progress {
            bar,
            total,
            last_tenth: std::cell::Cell::new(0),
        }
    }
    fn start(&self, attempt: u32) {
        if attempt > 1 {
            self.suspend(|| eprintln!("sending the file again (attempt {attempt})"));
        }
        self.last_tenth.set(0);
        if let Some(b) = &self.bar {
            b.set_position(0);
        }
    }
    fn update(&self, sent: u64) {
        match &self.bar {
            Some(b) => b.set_position(sent),
            None => {
                let tenth = (sent * 10).checked_div(self.total).unwrap_or(10);
                if tenth > self.last_tenth.get() {
                    self.last_tenth.set(tenth);
                    eprintln!("sent {sent} of {} bytes", self.total);
                }
            }
        }
    }
    fn suspend(&self, f: impl FnOnce()) {
        match &self.bar {
            Some(b) => b.suspend(f),
            None => f(),
        }
    }
    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}
