//! `server`: the file-storage server. Run with no arguments in a folder: it reads
//! `port.info` there, keeps `defensive.db`, `objects/` and `uploads/` there
//! (docs/STORAGE.md).
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use clap::parser::ValueSource;
use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use tracing::{info, warn};
use transport_async::runtime::{Smol, Tokio};
use transport_interface::Shutdown;

use server_app::admin::{self, AdminError};
use server_app::app::{App, SharedApp};
use server_app::config::{Database, Files};
use server_app::config_file;
use server_app::identity::{self, Identity, Source};
#[cfg(feature = "fleet")]
use server_app::metrics::http::{MetricsServer, Observed};
use server_app::metrics::Phase;
use server_app::options::{ServeArgs, Transport};

/// The port used when port.info is missing or unreadable.
const DEFAULT_PORT: u16 = 1256;

#[derive(Parser, Debug)]
#[command(
    name = "server",
    version,
    about = "Secure file-storage server (protocol version 3)",
    long_about = "Secure file-storage server (protocol version 3). With no arguments it serves \
        clients from the current folder (--dir): port.info, defensive.db, objects/ (stored files) and uploads/ (uploads in progress) there. --dir, \
        --database, --files and --log-format go before or after a subcommand; the serving \
        options go before `serve` or after it (not both), and `server help COMMAND` lists \
        a command's own. Request and response codes in this help (825 register, \
        828 send file, 1603 file received, ...) are those of docs/PROTOCOL.md in the source \
        repository.",
    after_help = "Operator commands (list-clients, list-files, list-versions, remove-client, \
        delete-file, restore, prune, status) never create anything and may run while a server serves the folder. Their exit \
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
    #[command(flatten)]
    serve: ServeArgs,
    /// Where clients, keys and file records are kept: sqlite:PATH, or a PostgreSQL URL
    /// (postgres://user@host:port/database) shared by several servers, which then also
    /// keeps the uploads in progress. Default: defensive.db in --dir.
    #[arg(long, global = true, value_name = "URL", value_parser = Database::parse)]
    database: Option<Database>,
    /// A file holding the PostgreSQL password (its first line), for a --database URL
    /// without one: a password in the arguments is readable by any local user (ps).
    /// PGPASSWORD in the environment also works, as with libpq.
    #[arg(long, global = true, value_name = "FILE")]
    database_password_file: Option<PathBuf>,
    /// The CA certificate(s), PEM, that issued the PostgreSQL server's certificate,
    /// for a --database URL without sslrootcert=. With it the default sslmode is
    /// verify-full (chain and host name checked); sslmode=verify-ca checks the chain
    /// only. PGSSLROOTCERT in the environment also works, as with libpq.
    #[arg(long, global = true, value_name = "FILE")]
    database_ca_file: Option<PathBuf>,
    /// Where file contents are kept: a folder, or s3://bucket/prefix (endpoint and
    /// credentials from the AWS_* environment variables). Default: --dir.
    #[arg(long, global = true, value_name = "DIR|URL", value_parser = Files::parse)]
    files: Option<Files>,
    /// Log lines as text or as JSON objects (one a line, for log collectors).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// A TOML file of options: `long-option-name = value` for the options of the whole
    /// program and of serving (e.g. `dir = "/var/lib/fileserver"`, `max-connections =
    /// 4096`); options on the command line override it.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve clients (the default).
    // Boxed: the serving options are most of the enum's size, and parsed once.
    Serve(Box<ServeArgs>),
    /// Print a completion script for a shell: e.g. `server completions bash >
    /// /etc/bash_completion.d/server`.
    Completions {
        /// bash, elvish, fish, powershell or zsh.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff): e.g. `server man > /usr/local/share/man/man1/server.1`.
    Man,
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
    /// Remove a client: its registration, its files, their versions and their contents;
    /// frees its name.
    RemoveClient {
        /// The client's id, an unambiguous id prefix, or its name.
        client: String,
        /// Do it without asking (needed when stdin is not a terminal).
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Delete one stored file of a client, with its versions.
    DeleteFile {
        /// The client's id, an unambiguous id prefix, or its name.
        client: String,
        /// The file's name as listed by list-files.
        file: String,
        /// Do it without asking (needed when stdin is not a terminal).
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// List the versions of a file: verified content a newer upload replaced, newest
    /// first (version, size, verified, checksum, upload time, when replaced).
    ListVersions {
        /// The client's id, an unambiguous id prefix, or its name.
        client: String,
        /// The file's name as listed by list-files.
        file: String,
        /// One JSON object on stdout (with each version's object key).
        #[arg(long)]
        json: bool,
    },
    /// Make a version of a file its current content again; the current content becomes
    /// a version (nothing is deleted: restoring that one undoes it).
    Restore {
        /// The client's id, an unambiguous id prefix, or its name.
        client: String,
        /// The file's name as listed by list-files.
        file: String,
        /// The version, as list-versions shows it.
        version: u64,
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
/// The command line. The serving options are parsed both before and after `serve`
/// (each subcommand's help lists only its own options), and those given are used.
fn parse_cli() -> Cli {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let mut command = Cli::command();
    if let Some(path) = config_file::config_path(&args) {
        command = config_file::read(&path)
            .and_then(|text| config_file::apply(command, &path, &text))
            .unwrap_or_else(|e| {
                eprintln!("Fatal: {e}");
                std::process::exit(2);
            });
    }
    let matches = command.get_matches_from(args);
    let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if let Some(("serve", after)) = matches.subcommand() {
        if serving_options_given(after) {
            if serving_options_given(&matches) {
                Cli::command()
                    .error(
                        clap::error::ErrorKind::ArgumentConflict,
                        "give the serving options before `serve` or after it, not both",
                    )
                    .exit();
            }
            if let Some(Command::Serve(args)) = cli.command.take() {
                cli.serve = *args;
                cli.command = Some(Command::Serve(Box::new(cli.serve.clone())));
            }
        }
    }
    cli
}

/// Whether `matches` holds a serving option given on the command line (not a default).
fn serving_options_given(matches: &ArgMatches) -> bool {
    ServeArgs::augment_args(clap::Command::new("serve"))
        .get_arguments()
        .any(|a| matches.value_source(a.get_id().as_str()) == Some(ValueSource::CommandLine))
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
    let cli = parse_cli();
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
    if let Err(e) = fleet_options_built(&cli) {
        eprintln!("Fatal: {e}");
        std::process::exit(2);
    }
    if let Err(e) = database_password(&cli) {
        eprintln!("Fatal: {e}");
        std::process::exit(2);
    }
    let identity = cli.serve.identity_source().unwrap_or_else(|e| {
        eprintln!("Fatal: {e}");
        std::process::exit(2);
    });
    if let Some(command) = &cli.command {
        let stores = admin::Stores {
            dir: cli.dir.clone(),
            database: cli.database.clone(),
            files: cli.files.clone(),
            identity: identity.clone(),
        };
        if let Some(Err(e)) = run_admin(command, &stores) {
            eprintln!("Fatal: {e}");
            std::process::exit(e.exit_code());
        }
        if !matches!(command, Command::Serve(_)) {
            return;
        }
    }
    let port = match cli.serve.port.map_or_else(|| read_port(&cli.dir), Ok) {
        Ok(port) => port,
        Err(e) => {
            // A usage error, as a bad option would be (exit 2).
            eprintln!("Fatal: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(cli, port, &identity) {
        eprintln!("Fatal: {e:#}");
        std::process::exit(1);
    }
}

/// Raises the descriptor limit where allowed and lowers the connection caps to what it
/// can hold, saying what it chose and why.
fn fit_to_descriptors(options: &mut transport_interface::ServerOptions) {
    let fitted = server_app::descriptors::raise_and_fit();
    let show = |l: Option<u64>| l.map_or("unlimited".to_string(), |n| n.to_string());
    let (soft, hard) = (show(fitted.soft), show(fitted.hard));
    if options.max_connections > fitted.connections {
        warn!(
            "descriptor limit {soft} (hard {hard}): --max-connections {} lowered to {}, \
             so that every connection can hold its socket and an upload file and the \
             listeners, storage and logs keep theirs (raise the limit, e.g. LimitNOFILE= \
             in a systemd unit, to serve more)",
            options.max_connections, fitted.connections
        );
        options.max_connections = fitted.connections;
    } else {
        info!(
            "descriptor limit {soft} (hard {hard}): room for {} connections, cap {}",
            fitted.connections, options.max_connections
        );
    }
    options.max_connections_per_ip = options.max_connections_per_ip.min(options.max_connections);
}

/// Says which limits apply to whom: the per-address cap, and with --proxy-protocol
/// the balancers whose headers name the clients.
fn log_limits(options: &transport_interface::ServerOptions, per_ip_given: bool) {
    info!(
        "per-address cap {} connections ({}), IPv6 counted by /{}",
        options.max_connections_per_ip,
        if per_ip_given {
            "--max-connections-per-ip"
        } else {
            "a quarter of --max-connections"
        },
        options.ipv6_prefix
    );
    if options.proxy_from.is_enabled() {
        let from: Vec<String> = options
            .proxy_from
            .networks()
            .iter()
            .map(|n| n.to_string())
            .collect();
        info!(
            "PROXY protocol v2 expected from {}: limits and logs use the client address it names",
            from.join(", ")
        );
    }
}

/// Refuses, as a usage error, an option whose backend this build leaves out.
fn fleet_options_built(cli: &Cli) -> Result<(), server_app::config::ConfigError> {
    use server_app::config::fleet_built;
    if let Some(Database::Postgres(_)) = &cli.database {
        fleet_built("--database postgres://")?;
    }
    if let Some(Files::S3 { .. }) = &cli.files {
        fleet_built("--files s3://")?;
    }
    if cli.database_password_file.is_some() {
        fleet_built("--database-password-file")?;
    }
    if cli.database_ca_file.is_some() {
        fleet_built("--database-ca-file")?;
    }
    if cli.serve.metrics.is_some() {
        fleet_built("--metrics")?;
    }
    Ok(())
}

/// Reads `--database-password-file`, takes `--database-ca-file`, and warns of a
/// password in the arguments.
fn database_password(cli: &Cli) -> Result<(), String> {
    if let Some(Database::Postgres(url)) = &cli.database {
        if url.has_password() {
            warn!(
                "the --database URL holds a password, which any local user can read in the \
                 process list: give it in PGPASSWORD or --database-password-file instead"
            );
        }
    }
    #[cfg(feature = "fleet")]
    if let Some(path) = &cli.database_ca_file {
        // Read when connecting (with the URL's sslmode), so that its errors say why.
        server_app::storage::postgres::use_ca_file(path.clone());
    }
    let Some(path) = &cli.database_password_file else {
        return Ok(());
    };
    let shown = path.display();
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| std::io::Read::read_to_string(&mut std::io::Read::take(f, 4096), &mut text))
        .map_err(|e| format!("--database-password-file {shown}: {e}"))?;
    let password = text.lines().next().unwrap_or("").to_string();
    if password.is_empty() {
        return Err(format!(
            "--database-password-file {shown}: the first line is empty"
        ));
    }
    #[cfg(feature = "fleet")]
    server_app::storage::postgres::use_password(password);
    #[cfg(not(feature = "fleet"))]
    {
        drop(password);
        server_app::config::fleet_built("--database-password-file").map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Serves `/metrics` and `/healthz` when `--metrics` asks for it.
#[cfg(feature = "fleet")]
fn start_metrics(at: Option<SocketAddr>, app: &App) -> anyhow::Result<Option<MetricsServer>> {
    let Some(at) = at else {
        return Ok(None);
    };
    let observed = Observed {
        metrics: app.metrics().clone(),
        metadata: app.storage().meta.clone(),
    };
    let server = MetricsServer::start(at, observed)
        .with_context(|| format!("cannot serve metrics on {at}"))?;
    info!(
        "metrics listening on {} (/metrics, /healthz)",
        server.local_addr()
    );
    Ok(Some(server))
}

/// This build has no metrics listener: `--metrics` is refused.
#[cfg(not(feature = "fleet"))]
fn start_metrics(at: Option<SocketAddr>, _app: &App) -> anyhow::Result<Option<NoMetrics>> {
    match at {
        Some(_) => Err(server_app::config::ConfigError::NotBuilt("--metrics").into()),
        None => Ok(None),
    }
}

/// The metrics listener a build without it never has.
#[cfg(not(feature = "fleet"))]
enum NoMetrics {}

#[cfg(not(feature = "fleet"))]
impl NoMetrics {
    fn stop(self) {
        match self {}
    }
}

/// Runs an operator command; exits with its code on failure (see `--help`).
fn run_admin(command: &Command, dir: &admin::Stores) -> Option<Result<(), AdminError>> {
    let out = &mut std::io::stdout().lock();
    Some(match command {
        Command::Serve(_) => return None,
        Command::Completions { shell } => {
            clap_complete::generate(*shell, &mut Cli::command(), "server", out);
            Ok(())
        }
        Command::Man => clap_mangen::Man::new(Cli::command())
            .render(out)
            .map_err(|e| AdminError::Failed(format!("cannot write the manual page: {e}"))),
        Command::ListClients { json } => admin::list_clients(dir, *json, out),
        Command::ListFiles { client, json } => {
            admin::list_files(dir, client.as_deref(), *json, out)
        }
        Command::RemoveClient { client, yes } => admin::remove_client(dir, client, *yes, out),
        Command::DeleteFile { client, file, yes } => {
            admin::delete_file(dir, client, file, *yes, out)
        }
        Command::ListVersions { client, file, json } => {
            admin::list_versions(dir, client, file, *json, out)
        }
        Command::Restore {
            client,
            file,
            version,
            yes,
        } => admin::restore(dir, client, file, *version, *yes, out),
        Command::Prune {
            unverified_older_than,
            yes,
        } => admin::parse_duration(unverified_older_than)
            .and_then(|age| admin::prune(dir, age, *yes, out)),
        Command::Status { json } => admin::status(dir, *json, out),
    })
}

fn run(cli: Cli, port: u16, source: &Source) -> anyhow::Result<()> {
    std::fs::create_dir_all(&cli.dir)
        .with_context(|| format!("cannot use the folder {}", cli.dir.display()))?;
    let policy = cli.serve.policy();
    let app = App::open_with(&cli.dir, cli.database.as_ref(), cli.files.as_ref(), policy)?;
    // Once the folder is the server's (App::open_with holds its lock): two servers
    // starting on one folder never both make an identity.
    let identity = identity::load_or_create(&cli.dir, source)?;
    serve(&cli, app, port, identity.as_ref())
}

/// Says which identity secure mode serves (or that it is off): the fingerprint
/// clients pin, as `openssl x509 -noout -fingerprint -sha256` prints it too.
/// What the listening line adds: `identity SHA256:...`, or legacy only.
fn log_identity(identity: Option<&Identity>) -> String {
    match identity {
        Some(id) => {
            info!(
                "TLS identity {} ({}{}): secure mode on the protocol port",
                id.fingerprint,
                id.cert.display(),
                if id.created { ", made now" } else { "" }
            );
            format!("identity {}", id.fingerprint)
        }
        None => {
            info!("TLS off (--no-tls): legacy protocol only");
            "legacy only".to_string()
        }
    }
}

fn serve(cli: &Cli, app: App, port: u16, identity: Option<&Identity>) -> anyhow::Result<()> {
    let addr = SocketAddr::new(cli.serve.bind, port);
    let mut options = cli.serve.server_options();
    options.tls = identity.map(|id| id.config.clone());
    let shown = log_identity(identity);
    fit_to_descriptors(&mut options);
    if cli.serve.max_connections_per_ip.is_none() {
        // The quarter of the cap as fitted to the descriptor limit.
        options.max_connections_per_ip =
            server_app::options::default_per_ip(options.max_connections);
    }
    log_limits(&options, cli.serve.max_connections_per_ip.is_some());
    let app = Arc::new(app);
    let metrics = app.metrics().clone();
    // Before the protocol listener: `/healthz` says "starting" until clients are served.
    let metrics_server = start_metrics(cli.serve.metrics, &app)?;
    let factory = Arc::new(SharedApp(app.clone()));
    let housekeeper = Housekeeper::start(app.clone())?;
    match cli.serve.transport {
        Transport::Std => {
            let listener = std::net::TcpListener::bind(addr)
                .with_context(|| format!("cannot listen on {addr}"))?;
            info!(
                "listening on {} (std transport), {shown}",
                listener.local_addr()?
            );
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
                info!(
                    "listening on {} (tokio transport), {shown}",
                    listener.local_addr()?
                );
                metrics.set_phase(Phase::Serving);
                let stop = async {
                    shutdown_signal().await;
                    metrics.set_phase(Phase::Stopping);
                };
                transport_async::serve(Tokio, listener, options, factory, stop).await?;
                anyhow::Ok(())
            })?;
        }
        Transport::Smol => {
            let listener = smol::Async::<std::net::TcpListener>::bind(addr)
                .with_context(|| format!("cannot listen on {addr}"))?;
            info!(
                "listening on {} (smol transport), {shown}",
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
            smol::block_on(transport_async::serve(
                Smol::new(),
                listener,
                options,
                factory,
                shutdown,
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
