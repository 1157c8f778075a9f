//! `server`: the file-storage server. Run with no arguments in a folder: it reads
//! `port.info` there, keeps `defensive.db`, `objects/` and `uploads/` there
//! (docs/STORAGE.md).
#![forbid(unsafe_code)]

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use protocol_core::crypto::{AesKeySize, ChecksumAlgorithm};
use protocol_core::{
    ByteOrder, EncryptionMode, Limits, PacketAck, ResponseOrder, ServerConfig, ServerDialect,
};
use tracing::{info, warn};
use transport_std::{RateLimit, ServerOptions, Shutdown};

use server_app::admin::{self, AdminError};
use server_app::app::{App, Policy, SharedApp};
use server_app::config::{Database, Files};
use server_app::metrics::http::{MetricsServer, Observed};
use server_app::metrics::Phase;

/// The port used when port.info is missing or unreadable.
const DEFAULT_PORT: u16 = 1256;

#[derive(Parser, Debug)]
#[command(
    version,
    about = "Secure file-storage server (protocol version 3)",
    long_about = "Secure file-storage server (protocol version 3). With no arguments it serves \
        clients from the current folder (--dir): port.info, defensive.db, objects/ (stored files) and uploads/ (uploads in progress) there. Options go \
        before or after the subcommand. Request and response codes in this help (825 register, \
        828 send file, 1603 file received, ...) are those of docs/PROTOCOL.md in the source \
        repository.",
    after_help = "Operator commands (list-clients, list-files, remove-client, delete-file, prune, \
        status) never create anything and may run while a server serves the folder. Their exit \
        codes: 0 done; 1 the database or the contents failed; 2 not a server folder (no \
        defensive.db) or not a server's database, a damaged, older or newer database, or a \
        bad argument; 3 no such client or file, \
        or an ambiguous id prefix; 4 a change not confirmed (stdin is not a terminal and no \
        --yes, or the answer was not yes)."
)]
struct Cli {
    /// Folder holding port.info, defensive.db, objects/ and uploads/.
    #[arg(long, global = true, default_value = ".")]
    dir: PathBuf,
    /// Port to listen on (overrides port.info).
    #[arg(long, global = true)]
    port: Option<u16>,
    /// Address to listen on.
    #[arg(long, global = true, default_value = "0.0.0.0")]
    bind: IpAddr,
    /// Socket driver.
    #[arg(long, global = true, value_enum, default_value_t = Transport::Tokio)]
    transport: Transport,
    /// Connections served at once. At the cap, a newcomer sheds a connection that
    /// has sent no whole request header (oldest first) or has been silent 5 s;
    /// only if there is none is it refused, with a 1607.
    #[arg(long, global = true, default_value_t = 1024)]
    max_connections: usize,
    /// Connections from one IP address at once (shedding as for --max-connections).
    #[arg(long, global = true, default_value_t = 1024)]
    max_connections_per_ip: usize,
    /// Bytes of request input all connections together may hold, beyond the first
    /// 512 KiB of each; a connection that would pass it is closed with a 1607.
    #[arg(long, global = true, default_value_t = protocol_core::DEFAULT_INPUT_BUDGET)]
    input_budget_bytes: usize,
    /// Registrations (825) one IP address may make at once; past it, a registration
    /// gets a 1607 until the bucket refills (--registrations-per-second).
    #[arg(long, global = true, default_value_t = 1024)]
    registrations_burst: u32,
    /// Registrations one IP address is given back per second.
    #[arg(long, global = true, default_value_t = 100.0)]
    registrations_per_second: f64,
    /// Connections closed for a protocol violation one IP address may have at once;
    /// past it, its new connections get a 1607 until the bucket refills.
    #[arg(long, global = true, default_value_t = 1024)]
    failures_burst: u32,
    /// Protocol violations one IP address is given back per second.
    #[arg(long, global = true, default_value_t = 100.0)]
    failures_per_second: f64,
    /// Largest content of one file packet (828, send file), in bytes.
    #[arg(long, global = true, default_value_t = 16 * 1024 * 1024)]
    max_packet_bytes: usize,
    /// Largest file accepted, in bytes.
    #[arg(long, global = true, default_value_t = u32::MAX as u64)]
    max_file_bytes: u64,
    /// Seconds a connection may stay silent.
    #[arg(long, global = true, default_value_t = 120)]
    idle_timeout: u64,
    /// Seconds a started request may take to arrive in full.
    #[arg(long, global = true, default_value_t = 60)]
    request_timeout: u64,
    /// Seconds an issued AES key may be used for new uploads.
    #[arg(long, global = true, default_value_t = 24 * 60 * 60)]
    key_lifetime: u64,
    /// Checksum sent back after an upload (1603, file received).
    #[arg(long, global = true, value_enum, default_value_t = Checksum::Cksum)]
    checksum: Checksum,
    /// AES key size sent to clients (1602 public key received, 1605 reconnect accepted).
    #[arg(long, global = true, value_enum, default_value_t = AesBits::B256)]
    aes_bits: AesBits,
    /// Byte order of responses (mirror: that of each request).
    #[arg(long, global = true, value_enum, default_value_t = Order::Little)]
    response_order: Order,
    /// Send the acknowledgement (1604) with an empty payload, as some deployed servers do.
    #[arg(long, global = true)]
    empty_ack: bool,
    /// How uploads are decrypted: one AES-CBC stream over the file, each packet on its
    /// own, or detect it from the first packet.
    #[arg(long, global = true, value_enum, default_value_t = Encryption::Detect)]
    encryption: Encryption,
    /// Which file packets (828) get an answer (1603, file received): detect, every packet
    /// (clients with a connection per request), or only the last.
    #[arg(long, global = true, value_enum, default_value_t = AckPackets::Detect)]
    ack_packets: AckPackets,
    /// Seconds an upload may stay without a connection (left between packets, or
    /// awaiting its verdict) before it is removed.
    #[arg(long, global = true, default_value_t = 300)]
    abandoned_upload_timeout: u64,
    /// Seconds a registration without a public key holds its name.
    #[arg(long, global = true, default_value_t = 600)]
    registration_hold: u64,
    /// Seconds a stop waits for uploads in progress to reach their verdict.
    #[arg(long, global = true, default_value_t = 30)]
    shutdown_grace: u64,
    /// Where clients, keys and file records are kept: sqlite:PATH, or a PostgreSQL URL
    /// (postgres://user@host:port/database) shared by several servers, which then also
    /// keeps the uploads in progress. Default: defensive.db in --dir.
    #[arg(long, global = true, value_name = "URL", value_parser = Database::parse)]
    database: Option<Database>,
    /// Where file contents are kept: a folder, or s3://bucket/prefix (endpoint and
    /// credentials from the AWS_* environment variables). Default: --dir.
    #[arg(long, global = true, value_name = "DIR|URL", value_parser = Files::parse)]
    files: Option<Files>,
    /// Serve `/metrics` (Prometheus) and `/healthz` (load balancer checks) over HTTP on
    /// this address, e.g. 127.0.0.1:9100. Off when not given. The server does not
    /// start if the address is taken.
    #[arg(long, global = true, value_name = "ADDR:PORT")]
    metrics: Option<SocketAddr>,
    /// Log lines as text or as JSON objects (one a line, for log collectors).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve clients (the default).
    Serve,
    /// List registered clients: id prefix, name, last seen, AES key age, files, bytes.
    ListClients {
        /// One JSON object on stdout (whole ids, sizes in bytes, ages in seconds).
        #[arg(long)]
        json: bool,
    },
    /// List stored files: client, name, size, verified, checksum, upload time.
    ListFiles {
        /// Only this client's files: its id, an id prefix, or its name.
        #[arg(long)]
        client: Option<String>,
        /// One JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Remove a client: its registration, its files and their contents; frees its name.
    RemoveClient {
        /// The client's id, an unambiguous id prefix, or its name.
        client: String,
        /// Do it without asking (needed when stdin is not a terminal).
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Delete one stored file of a client.
    DeleteFile {
        /// The client's id, an unambiguous id prefix, or its name.
        client: String,
        /// The file's name as listed by list-files.
        file: String,
        /// Do it without asking (needed when stdin is not a terminal).
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Delete unverified files (uploads that ended in 902, or never got a verdict).
    Prune {
        /// Only those not written for this long: 45s, 90m, 12h, 7d, 2w.
        #[arg(long, value_name = "DURATION")]
        unverified_older_than: String,
        /// Do it without asking (needed when stdin is not a terminal).
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// The folder, database health, what is stored, disk use, and whether a server runs.
    Status {
        /// One JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum LogFormat {
    Text,
    Json,
}
#[derive(ValueEnum, Clone, Copy, Debug)]
enum Transport {
    Std,
    Tokio,
    /// futures-io on smol (transport-futures).
    Smol,
}
#[derive(ValueEnum, Clone, Copy, Debug)]
enum Checksum {
    Cksum,
    Crc32,
}
#[derive(ValueEnum, Clone, Copy, Debug)]
enum AesBits {
    #[value(name = "256")]
    B256,
    #[value(name = "128")]
    B128,
}
#[derive(ValueEnum, Clone, Copy, Debug)]
enum Order {
    Little,
    Big,
    Mirror,
}
#[derive(ValueEnum, Clone, Copy, Debug)]
enum Encryption {
    Detect,
    Stream,
    PerPacket,
}
#[derive(ValueEnum, Clone, Copy, Debug)]
enum AckPackets {
    Detect,
    Every,
    Last,
}

impl Cli {
    fn server_options(&self) -> ServerOptions {
        let dialect = ServerDialect {
            checksum: match self.checksum {
                Checksum::Cksum => ChecksumAlgorithm::Cksum,
                Checksum::Crc32 => ChecksumAlgorithm::Crc32,
            },
            aes_key_size: match self.aes_bits {
                AesBits::B128 => AesKeySize::Aes128,
                AesBits::B256 => AesKeySize::Aes256,
            },
            response_order: match self.response_order {
                Order::Little => ResponseOrder::Fixed(ByteOrder::Little),
                Order::Big => ResponseOrder::Fixed(ByteOrder::Big),
                Order::Mirror => ResponseOrder::MirrorRequest,
            },
            empty_ack: self.empty_ack,
            encryption: match self.encryption {
                Encryption::Detect => EncryptionMode::Detect,
                Encryption::Stream => EncryptionMode::Stream,
                Encryption::PerPacket => EncryptionMode::PerPacket,
            },
            ack_every_packet: match self.ack_packets {
                AckPackets::Detect => PacketAck::Detect,
                AckPackets::Every => PacketAck::Every,
                AckPackets::Last => PacketAck::LastOnly,
            },
        };
        let limits = Limits {
            max_payload: self.max_packet_bytes + protocol_core::wire::FILE_PACKET_FIXED_LEN,
            max_file_size: self.max_file_bytes.min(u32::MAX as u64),
            idle_timeout: Duration::from_secs(self.idle_timeout),
            request_timeout: Duration::from_secs(self.request_timeout),
            key_lifetime: Duration::from_secs(self.key_lifetime),
            ..Limits::default()
        };
        ServerOptions {
            config: ServerConfig { limits, dialect },
            max_connections: self.max_connections,
            max_connections_per_ip: self.max_connections_per_ip,
            shutdown_grace: Duration::from_secs(self.shutdown_grace),
            input_budget: self.input_budget_bytes,
            registrations: RateLimit {
                burst: self.registrations_burst,
                per_second: self.registrations_per_second,
            },
            failures: RateLimit {
                burst: self.failures_burst,
                per_second: self.failures_per_second,
            },
            ..ServerOptions::default()
        }
    }
}

/// The port from `port.info`; 1256 with a one-line warning when the file is missing or
/// unreadable (docs/PROTOCOL.md). A file that holds anything but a port number is a
/// mistake to report, not a reason to listen somewhere the operator did not mean.
fn read_port(dir: &Path) -> Result<u16, String> {
    use std::io::Read;
    let path = dir.join("port.info");
    // A port is at most 5 digits: a little more than that is read, so that a huge or
    // endless file (a link to /dev/zero) is refused instead of read whole.
    let mut bytes = Vec::new();
    let read = std::fs::File::open(&path).and_then(|f| f.take(64).read_to_end(&mut bytes));
    if let Err(e) = read {
        warn!(
            "cannot read {} ({e}); using port {DEFAULT_PORT}",
            path.display()
        );
        return Ok(DEFAULT_PORT);
    }
    let text = String::from_utf8_lossy(&bytes);
    match text.trim().parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(format!(
            "{} holds {:?}, not a port number (1 to 65535): correct it, remove it to use \
             port {DEFAULT_PORT}, or give --port",
            path.display(),
            text.trim()
        )),
    }
}

fn main() {
    let cli = Cli::parse();
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        LogFormat::Json => logs.json().init(),
    }
    if let Some(command) = &cli.command {
        let stores = admin::Stores {
            dir: cli.dir.clone(),
            database: cli.database.clone(),
            files: cli.files.clone(),
        };
        if let Some(Err(e)) = run_admin(command, &stores) {
            eprintln!("Fatal: {e}");
            std::process::exit(e.exit_code());
        }
        if !matches!(command, Command::Serve) {
            return;
        }
    }
    let port = match cli.port.map_or_else(|| read_port(&cli.dir), Ok) {
        Ok(port) => port,
        Err(e) => {
            // A usage error, as a bad option would be (exit 2).
            eprintln!("Fatal: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(cli, port) {
        eprintln!("Fatal: {e:#}");
        std::process::exit(1);
    }
}

/// Runs an operator command; exits with its code on failure (see `--help`).
fn run_admin(command: &Command, dir: &admin::Stores) -> Option<Result<(), AdminError>> {
    let out = &mut std::io::stdout().lock();
    Some(match command {
        Command::Serve => return None,
        Command::ListClients { json } => admin::list_clients(dir, *json, out),
        Command::ListFiles { client, json } => {
            admin::list_files(dir, client.as_deref(), *json, out)
        }
        Command::RemoveClient { client, yes } => admin::remove_client(dir, client, *yes, out),
        Command::DeleteFile { client, file, yes } => {
            admin::delete_file(dir, client, file, *yes, out)
        }
        Command::Prune {
            unverified_older_than,
            yes,
        } => admin::parse_duration(unverified_older_than)
            .and_then(|age| admin::prune(dir, age, *yes, out)),
        Command::Status { json } => admin::status(dir, *json, out),
    })
}

fn run(cli: Cli, port: u16) -> anyhow::Result<()> {
    std::fs::create_dir_all(&cli.dir)
        .with_context(|| format!("cannot use the folder {}", cli.dir.display()))?;
    let policy = Policy {
        name_hold: Duration::from_secs(cli.registration_hold),
        abandoned_after: Duration::from_secs(cli.abandoned_upload_timeout),
        ..Policy::default()
    };
    let app = App::open_with(&cli.dir, cli.database.as_ref(), cli.files.as_ref(), policy)?;
    serve(&cli, app, port)
}

fn serve(cli: &Cli, app: App, port: u16) -> anyhow::Result<()> {
    let addr = SocketAddr::new(cli.bind, port);
    let options = cli.server_options();
    let app = Arc::new(app);
    let metrics = app.metrics().clone();
    // Before the protocol listener: `/healthz` says "starting" until clients are served.
    let metrics_server = match cli.metrics {
        Some(at) => {
            let observed = Observed {
                metrics: metrics.clone(),
                metadata: app.storage().meta.clone(),
            };
            let server = MetricsServer::start(at, observed)
                .with_context(|| format!("cannot serve metrics on {at}"))?;
            info!(
                "metrics listening on {} (/metrics, /healthz)",
                server.local_addr()
            );
            Some(server)
        }
        None => None,
    };
    let factory = Arc::new(SharedApp(app.clone()));
    let housekeeper = Housekeeper::start(app.clone())?;
    match cli.transport {
        Transport::Std => {
            let listener = std::net::TcpListener::bind(addr)
                .with_context(|| format!("cannot listen on {addr}"))?;
            info!("listening on {} (std transport)", listener.local_addr()?);
            let shutdown = Shutdown::new();
            let s = shutdown.clone();
            let m = metrics.clone();
            ctrlc::set_handler(move || {
                m.set_phase(Phase::Stopping);
                s.trigger()
            })
            .context("installing the signal handler")?;
            metrics.set_phase(Phase::Serving);
            transport_std::serve(listener, options, factory, shutdown)?;
        }
        Transport::Tokio => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the tokio runtime")?;
            rt.block_on(async {
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("cannot listen on {addr}"))?;
                info!("listening on {} (tokio transport)", listener.local_addr()?);
                metrics.set_phase(Phase::Serving);
                let stop = async {
                    shutdown_signal().await;
                    metrics.set_phase(Phase::Stopping);
                };
                transport_tokio::serve(listener, options, factory, stop).await?;
                anyhow::Ok(())
            })?;
        }
        Transport::Smol => {
            let listener = smol::Async::<std::net::TcpListener>::bind(addr)
                .with_context(|| format!("cannot listen on {addr}"))?;
            info!(
                "listening on {} (smol transport)",
                listener.get_ref().local_addr()?
            );
            let (stop_tx, stop_rx) = smol::channel::bounded::<()>(1);
            let m = metrics.clone();
            ctrlc::set_handler(move || {
                m.set_phase(Phase::Stopping);
                stop_tx.close();
            })
            .context("installing the signal handler")?;
            metrics.set_phase(Phase::Serving);
            let shutdown = async move {
                let _ = stop_rx.recv().await;
            };
            smol::block_on(transport_futures::serve_blocking(
                listener,
                options,
                factory,
                shutdown,
                |task| smol::spawn(task).detach(),
            ))?;
        }
    }
    housekeeper.stop();
    app.discard_uploads();
    if let Some(server) = metrics_server {
        server.stop();
    }
    info!("stopped; database closed");
    Ok(())
}

/// Runs [`App::housekeeping`] on a thread of its own while the server serves.
struct Housekeeper {
    stop: std::sync::mpsc::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl Housekeeper {
    fn start(app: Arc<App>) -> anyhow::Result<Housekeeper> {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let every = app.housekeeping_interval();
        let thread = std::thread::Builder::new()
            .name("housekeeping".into())
            .spawn(move || {
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(every)
                {
                    app.housekeeping(std::time::Instant::now());
                }
            })
            .context("starting the housekeeping thread")?;
        Ok(Housekeeper { stop, thread })
    }

    fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.thread.join();
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
    info!("signal received: shutting down");
}
