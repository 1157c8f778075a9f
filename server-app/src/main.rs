//! `server`: the file-storage server. Run with no arguments in a folder: it reads
//! `port.info` there, keeps `defensive.db` and the `files/` folder there.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use protocol_core::crypto::{AesKeySize, ChecksumAlgorithm};
use protocol_core::{
    ByteOrder, ClientId, EncryptionMode, Limits, PacketAck, ResponseOrder, ServerConfig,
    ServerDialect,
};
use tracing::{info, warn};
use transport_std::{ServerOptions, Shutdown};

use server_app::app::{App, Policy, SharedApp, DB_FILE};
use server_app::storage::sqlite::SqliteMetadata;
use server_app::storage::Metadata;

/// The port used when port.info is missing or unreadable.
const DEFAULT_PORT: u16 = 1256;

#[derive(Parser, Debug)]
#[command(
    version,
    about = "Secure file-storage server (protocol version 3)",
    long_about = "Secure file-storage server (protocol version 3). With no arguments it serves \
        clients from the current folder: port.info, defensive.db and files/ there. Options go \
        before or after the subcommand. Request and response codes in this help (825 register, \
        828 send file, 1603 file received, ...) are those of docs/PROTOCOL.md in the source \
        repository."
)]
struct Cli {
    /// Folder holding port.info, defensive.db and files/.
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
    /// Connections served at once.
    #[arg(long, global = true, default_value_t = 1024)]
    max_connections: usize,
    /// Connections from one IP address at once.
    #[arg(long, global = true, default_value_t = 64)]
    max_connections_per_ip: usize,
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
    /// List registered clients.
    ListClients,
    /// List stored files, with verified state and size.
    ListFiles {
        /// Only this client's files (32 hex digits).
        #[arg(long)]
        client: Option<String>,
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
        }
    }
}

/// The port from `port.info`, or 1256 with a one-line warning.
fn read_port(dir: &Path) -> u16 {
    let path = dir.join("port.info");
    match std::fs::read_to_string(&path) {
        Ok(text) => match text.trim().parse::<u16>() {
            Ok(p) if p > 0 => p,
            _ => {
                warn!(
                    "{} does not hold a port number ({:?}); using port {DEFAULT_PORT}",
                    path.display(),
                    text.trim()
                );
                DEFAULT_PORT
            }
        },
        Err(e) => {
            warn!(
                "cannot read {} ({e}); using port {DEFAULT_PORT}",
                path.display()
            );
            DEFAULT_PORT
        }
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
    if let Err(e) = run(cli) {
        eprintln!("Fatal: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Some(Command::ListClients) => list_clients(&open_read_only(&cli.dir)?),
        Some(Command::ListFiles { ref client }) => {
            list_files(&open_read_only(&cli.dir)?, client.as_deref())
        }
        None | Some(Command::Serve) => {
            std::fs::create_dir_all(&cli.dir)
                .with_context(|| format!("cannot use the folder {}", cli.dir.display()))?;
            let policy = Policy {
                name_hold: Duration::from_secs(cli.registration_hold),
                abandoned_after: Duration::from_secs(cli.abandoned_upload_timeout),
            };
            let app = App::open(&cli.dir, policy)?;
            serve(&cli, app)
        }
    }
}

/// Listings read the database as it is: never create, lock or change anything.
fn open_read_only(dir: &Path) -> anyhow::Result<SqliteMetadata> {
    Ok(SqliteMetadata::open_read_only(&dir.join(DB_FILE))?)
}

fn list_clients(meta: &SqliteMetadata) -> anyhow::Result<()> {
    let rows = meta.clients()?;
    println!(
        "{:<32}  {:<8}  {:<19}  name",
        "id", "key", "last seen (UTC)"
    );
    for r in rows {
        let key = if r.has_key { "yes" } else { "no" };
        println!("{}  {key:<8}  {:<19}  {}", r.id, r.last_seen, r.name);
    }
    Ok(())
}

fn list_files(meta: &SqliteMetadata, client: Option<&str>) -> anyhow::Result<()> {
    let filter = match client {
        Some(hex) => Some(
            ClientId::from_hex(hex)
                .with_context(|| format!("{hex:?} is not a client id (32 hex digits)"))?,
        ),
        None => None,
    };
    let rows = meta.files(filter.as_ref())?;
    println!(
        "{:<32}  {:<8}  {:>12}  {:<8}  {:<19}  file (stored as)",
        "client", "verified", "bytes", "checksum", "updated (UTC)"
    );
    for r in rows {
        let v = if r.verified { "yes" } else { "no" };
        let sum = r
            .checksum
            .map(|c| format!("{c:08x}"))
            .unwrap_or_else(|| "-".into());
        let updated = if r.updated.is_empty() {
            "-"
        } else {
            &r.updated
        };
        println!(
            "{}  {v:<8}  {:>12}  {sum:<8}  {updated:<19}  {} ({})",
            r.client, r.size, r.file_name, r.object
        );
    }
    Ok(())
}

fn serve(cli: &Cli, app: App) -> anyhow::Result<()> {
    let port = cli.port.unwrap_or_else(|| read_port(&cli.dir));
    let addr = SocketAddr::new(cli.bind, port);
    let options = cli.server_options();
    let app = Arc::new(app);
    let factory = Arc::new(SharedApp(app.clone()));
    let housekeeper = Housekeeper::start(app.clone())?;
    match cli.transport {
        Transport::Std => {
            let listener = std::net::TcpListener::bind(addr)
                .with_context(|| format!("cannot listen on {addr}"))?;
            info!("listening on {} (std transport)", listener.local_addr()?);
            let shutdown = Shutdown::new();
            let s = shutdown.clone();
            ctrlc::set_handler(move || s.trigger()).context("installing the signal handler")?;
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
                transport_tokio::serve(listener, options, factory, shutdown_signal()).await?;
                anyhow::Ok(())
            })?;
        }
    }
    housekeeper.stop();
    app.discard_uploads();
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
