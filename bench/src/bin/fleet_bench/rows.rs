//! One row of the table, run once: its backends made fresh (a new server folder, or a
//! new PostgreSQL database and S3 prefix), its servers started one after the other,
//! the balancer in front if the row has one, then the batch of clients (the only
//! timed part), then what the servers recorded as verified.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use object_store::aws::AmazonS3Builder;
use server_app::storage::local::LocalContents;
use server_app::storage::postgres::PostgresMetadata;
use server_app::storage::s3::{S3Contents, S3Options};
use server_app::storage::{Contents, Metadata};

use crate::bench_common::{client_folder, run_clients_at_once, Bins};
use crate::cpu;
use crate::services::{free_port, Postgres, SeaweedFs};
use test_kit::haproxy::{Backend, HaProxy, Settings};

/// Where a row's servers keep their state.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Backends {
    /// The defaults: SQLite `defensive.db` and the folder, in the server's `--dir`.
    SqliteDisk,
    /// `--database postgres://...` and `--files s3://bucket/prefix`.
    PostgresS3,
}

/// What a row measures.
pub struct RowSpec {
    /// Its letter in the table and in `FLEET_ROWS`.
    pub key: char,
    pub backends: Backends,
    pub servers: usize,
    pub balancer: bool,
}

impl RowSpec {
    pub fn label(&self) -> String {
        let store = match self.backends {
            Backends::SqliteDisk => "SQLite + folder",
            Backends::PostgresS3 => "PostgreSQL + S3",
        };
        let servers = if self.servers == 1 {
            "1 server".to_string()
        } else {
            format!("{} servers", self.servers)
        };
        let path = if self.balancer {
            "behind HAProxy"
        } else {
            "clients direct"
        };
        format!("({}) {store}, {servers}, {path}", self.key)
    }
}

/// The shared components, started once for the whole run.
pub struct Shared {
    pub pg: Option<Postgres>,
    pub s3: Option<SeaweedFs>,
}

/// What one run of a row saw.
pub struct RunResult {
    pub seconds: f64,
    /// Clients that exited 0 (the client exits 0 once the server confirmed its file).
    pub succeeded: usize,
    /// Files `server list-files` reports verified afterwards.
    pub listed_verified: usize,
    /// Bytes of the verified files it lists.
    pub listed_bytes: u64,
    /// Files of any name recorded verified (with those sent when registering).
    pub all_verified: usize,
    /// Objects in the contents store afterwards.
    pub objects: usize,
    /// Clients that registered (and sent a small file) before the batch.
    pub registered: usize,
    /// Uploads each server counted verified (`/metrics`), when they serve it.
    pub per_server: Vec<u64>,
    /// CPU seconds spent during the batch, by process.
    pub cpu: CpuUse,
    /// One line for each client that failed: its folder and the end of its output.
    pub failures: Vec<String>,
    /// Warning and error lines the servers logged.
    pub server_log_lines: usize,
}

/// CPU seconds by kind of process (0 where a row has none).
#[derive(Clone, Copy, Default)]
pub struct CpuUse {
    pub clients: f64,
    pub servers: f64,
    pub haproxy: f64,
    pub postgres: f64,
    pub seaweedfs: f64,
}

impl CpuUse {
    fn minus(&self, before: &CpuUse) -> CpuUse {
        CpuUse {
            clients: self.clients - before.clients,
            servers: self.servers - before.servers,
            haproxy: self.haproxy - before.haproxy,
            postgres: self.postgres - before.postgres,
            seaweedfs: self.seaweedfs - before.seaweedfs,
        }
    }

    pub fn total(&self) -> f64 {
        self.clients + self.servers + self.haproxy + self.postgres + self.seaweedfs
    }
}

impl RunResult {
    /// Uploads counted verified: the client said so AND the server lists it.
    pub fn verified(&self) -> usize {
        self.succeeded.min(self.listed_verified)
    }
}

/// A `server` process (killed on drop).
struct Server {
    child: Child,
    port: u16,
    metrics_port: Option<u16>,
    dir: PathBuf,
}

impl Server {
    /// Starts it in `dir` with the backend `args`, and `--metrics` when `metrics`;
    /// returns once its ports accept connections.
    fn start(
        bins: &Bins,
        dir: &Path,
        args: &[String],
        env: &[(String, String)],
        metrics: bool,
    ) -> anyhow::Result<Server> {
        std::fs::create_dir_all(dir)?;
        // A free port can be taken before the server binds it: then try others.
        for _ in 0..5 {
            let port = free_port()?;
            let metrics_port = if metrics { Some(free_port()?) } else { None };
            let mut cmd = Command::new(&bins.server);
            cmd.args(["--bind", "127.0.0.1", "--port", &port.to_string()])
                .args([
                    "--max-connections",
                    "5000",
                    "--max-connections-per-ip",
                    "5000",
                ])
                .args(args);
            if let Some(m) = metrics_port {
                cmd.args(["--metrics", &format!("127.0.0.1:{m}")]);
            }
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join("server.log"))?;
            let child = cmd
                .envs(env.iter().map(|(k, v)| (k, v)))
                .env("RUST_LOG", "warn")
                .current_dir(dir)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .context("starting the server")?;
            let mut server = Server {
                child,
                port,
                metrics_port,
                dir: dir.to_path_buf(),
            };
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let up = |p: u16| TcpStream::connect(("127.0.0.1", p)).is_ok();
                if up(port) && metrics_port.is_none_or(up) {
                    return Ok(server);
                }
                if let Ok(Some(_)) = server.child.try_wait() {
                    break; // perhaps a port was taken: try others
                }
                if Instant::now() > deadline {
                    bail!("the server did not start: {}", server.log());
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        bail!(
            "the server did not start: {}",
            std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
        )
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    /// Uploads it counted verified, from its `/metrics`.
    fn verified_uploads(&self) -> Option<u64> {
        let body = http_get(self.metrics_port?, "/metrics").ok()?;
        body.lines()
            .filter(|l| l.starts_with("fileserver_uploads_total{"))
            .find(|l| l.contains("result=\"verified\""))
            .and_then(|l| l.split_whitespace().last())
            .and_then(|v| v.parse::<f64>().ok())
            .map(|v| v as u64)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The body of `GET path` from 127.0.0.1:`port`.
fn http_get(port: u16, path: &str) -> anyhow::Result<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    Ok(text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default())
}

/// The files the clients send.
pub struct Files<'a> {
    /// The timed upload.
    pub upload: &'a Path,
    /// Sent first, untimed, when the clients register before the batch.
    pub hello: Option<&'a Path>,
}

/// Runs `spec` once: `n` clients each sending `files.upload`, in `dir`; `run` names
/// its database and prefix.
pub fn run_row(
    bins: &Bins,
    shared: &Shared,
    spec: &RowSpec,
    dir: &Path,
    n: usize,
    files: &Files,
    run: &str,
) -> anyhow::Result<RunResult> {
    let (args, env, store) = match spec.backends {
        Backends::SqliteDisk => (Vec::new(), Vec::new(), None),
        Backends::PostgresS3 => {
            let (Some(pg), Some(s3)) = (&shared.pg, &shared.s3) else {
                bail!("row {} needs PostgreSQL and SeaweedFS", spec.key);
            };
            let url = pg.create_database(run)?;
            let files = format!("s3://{}/{run}", s3.bucket);
            let args = vec![
                "--database".into(),
                url.clone(),
                "--files".into(),
                files.clone(),
            ];
            (args, s3.env.clone(), Some((url, files, s3.env.clone())))
        }
    };
    // One at a time: a starting server resolves the commit intents it finds.
    let servers: Vec<Server> = (0..spec.servers)
        .map(|i| {
            Server::start(
                bins,
                &dir.join(format!("server{i}")),
                &args,
                &env,
                spec.balancer,
            )
        })
        .collect::<Result<_, _>>()?;
    let lb = if spec.balancer {
        let backends: Vec<Backend> = servers
            .iter()
            .enumerate()
            .map(|(i, s)| Backend {
                name: format!("s{i}"),
                port: s.port,
                check_port: s.metrics_port.unwrap_or(s.port),
                send_proxy: false,
            })
            .collect();
        let settings = Settings {
            maxconn: 8192,
            check_every: Duration::from_secs(1),
        };
        let lb = HaProxy::try_start(&dir.join("lb"), &backends, &settings)?;
        lb.wait_all_up(backends.len())?;
        Some(lb)
    } else {
        None
    };
    let port = lb.as_ref().map_or(servers[0].port, |lb| lb.port);
    let folders: Vec<PathBuf> = (0..n)
        .map(|i| client_folder(&dir.join("clients"), &format!("c{i}"), port, files.upload))
        .collect::<Result<_, _>>()?;
    // Registered beforehand (untimed): the batch is then reconnections and uploads,
    // without the clients' RSA key generation.
    let registered = match files.hello {
        Some(hello) => {
            let path = hello
                .to_str()
                .context("a temporary path that is not UTF-8")?;
            run_clients_at_once(&bins.client, &folders, &[path])?.succeeded
        }
        None => 0,
    };

    let cpu_of = || CpuUse {
        clients: cpu::reaped_children(),
        servers: servers.iter().map(|s| cpu::process(s.child.id())).sum(),
        haproxy: lb.as_ref().map_or(0.0, |lb| cpu::process(lb.pid())),
        postgres: store
            .as_ref()
            .and(shared.pg.as_ref())
            .and_then(Postgres::pid)
            .map_or(0.0, cpu::tree),
        seaweedfs: store
            .as_ref()
            .and(shared.s3.as_ref())
            .and_then(SeaweedFs::pid)
            .map_or(0.0, cpu::tree),
    };
    let verified_before: Vec<u64> = servers
        .iter()
        .map(|s| s.verified_uploads().unwrap_or(0))
        .collect();
    let before = cpu_of();
    let batch = run_clients_at_once(&bins.client, &folders, &[])?;
    let cpu = cpu_of().minus(&before);

    // Counted during the batch (not the registrations before it).
    let per_server: Vec<u64> = servers
        .iter()
        .zip(&verified_before)
        .filter_map(|(s, b)| Some(s.verified_uploads()?.saturating_sub(*b)))
        .collect();
    let name = files
        .upload
        .file_name()
        .and_then(|n| n.to_str())
        .context("an upload file without a name")?;
    let stored = match &store {
        None => list_files(bins, &servers[0].dir, name)?,
        Some((url, files_url, env)) => stored_in_fleet(url, files_url, env, name)?,
    };
    let failures = batch
        .failed
        .iter()
        .map(|f| {
            let err = std::fs::read_to_string(f.join("client.err")).unwrap_or_default();
            let lines: Vec<&str> = err.lines().collect();
            let tail = &lines[lines.len().saturating_sub(2)..];
            format!("{}: {}", f.display(), tail.join(" / "))
        })
        .collect();
    let server_log_lines = servers.iter().map(|s| s.log().lines().count()).sum();
    drop(lb);
    drop(servers);
    Ok(RunResult {
        seconds: batch.seconds,
        succeeded: batch.succeeded,
        listed_verified: stored.verified,
        listed_bytes: stored.bytes,
        all_verified: stored.all_verified,
        objects: stored.objects,
        registered,
        per_server,
        cpu,
        failures,
        server_log_lines,
    })
}

/// What the servers stored: files of the batch's name recorded verified, their bytes,
/// verified files of any name, and the objects in the contents store.
struct Stored {
    verified: usize,
    bytes: u64,
    all_verified: usize,
    objects: usize,
}

/// Read from the server's folder: `server list-files --json`, and its `objects/`.
fn list_files(bins: &Bins, dir: &Path, name: &str) -> anyhow::Result<Stored> {
    let out = Command::new(&bins.server)
        .args(["list-files", "--json"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .context("running server list-files")?;
    if !out.status.success() {
        bail!(
            "server list-files failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let json: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("reading list-files --json")?;
    let files = json["files"]
        .as_array()
        .context("list-files --json has no files")?;
    let all: Vec<&serde_json::Value> = files
        .iter()
        .filter(|f| f["verified"].as_bool() == Some(true))
        .collect();
    let verified: Vec<&&serde_json::Value> = all
        .iter()
        .filter(|f| f["file"].as_str() == Some(name))
        .collect();
    let bytes = verified.iter().filter_map(|f| f["size"].as_u64()).sum();
    let objects = LocalContents::open_existing(dir).objects()?.len();
    Ok(Stored {
        verified: verified.len(),
        bytes,
        all_verified: all.len(),
        objects,
    })
}

/// Read from PostgreSQL and S3 through the server's own storage code (`server
/// list-files` reads a folder's SQLite only).
fn stored_in_fleet(
    url: &str,
    files_url: &str,
    env: &[(String, String)],
    name: &str,
) -> anyhow::Result<Stored> {
    let meta = PostgresMetadata::connect(url)?;
    let files = meta.files(None)?;
    let all: Vec<_> = files.iter().filter(|f| f.verified).collect();
    let verified: Vec<_> = all.iter().filter(|f| f.file_name == name).collect();
    let var = |key: &str| {
        env.iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let builder = AmazonS3Builder::new()
        .with_endpoint(var("AWS_ENDPOINT_URL"))
        .with_allow_http(true)
        .with_region(var("AWS_REGION"))
        .with_access_key_id(var("AWS_ACCESS_KEY_ID"))
        .with_secret_access_key(var("AWS_SECRET_ACCESS_KEY"));
    let contents = S3Contents::open_with(files_url, builder, S3Options::default())?;
    Ok(Stored {
        verified: verified.len(),
        bytes: verified.iter().map(|f| f.size).sum(),
        all_verified: all.len(),
        objects: contents.objects()?.len(),
    })
}
