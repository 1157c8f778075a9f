//! What the benchmark programs (`bench`, `load`, `fleet_bench`) share: finding (or
//! building) the release `server` and `client`, their environment knobs, a temporary
//! folder removed on drop, the upload file, and a batch of real clients started at
//! once. Each program uses part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context};

pub const MIB: usize = 1 << 20;

/// The value of environment variable `name` as a number, or `default`.
pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The `server` and `client` programs beside the running benchmark.
pub struct Bins {
    pub server: PathBuf,
    pub client: PathBuf,
}

impl Bins {
    /// Finds them beside this program; builds them (release) when missing.
    pub fn locate() -> anyhow::Result<Bins> {
        let me = std::env::current_exe()?;
        let dir = me.parent().context("no folder for the benchmark binary")?;
        let (server, client) = (dir.join("server"), dir.join("client"));
        // The server with the fleet's backends: fleet_bench runs it on PostgreSQL + S3.
        let build = [
            (
                &server,
                &["-p", "server-app", "--bin", "server", "--features", "fleet"][..],
            ),
            (&client, &["-p", "client-app"][..]),
        ];
        for (bin, package) in build {
            if !bin.exists() {
                let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
                let status = Command::new(cargo)
                    .args(["build", "--release"])
                    .args(package)
                    .status()
                    .context("building the binaries")?;
                if !status.success() {
                    bail!("building {} failed", package.join(" "));
                }
            }
        }
        Ok(Bins { server, client })
    }
}

/// A folder under the system's temporary folder, removed with everything in it on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    /// `<tmp>/<prefix>-<pid>`.
    pub fn new(prefix: &str) -> anyhow::Result<TempDir> {
        let p = std::env::temp_dir().join(format!("{prefix}-{}", std::process::id()));
        std::fs::create_dir_all(&p)?;
        Ok(TempDir(p))
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes `size` bytes (a whole number of MiB) of not-compressible-looking data.
pub fn write_pattern_file(path: &Path, size: usize) -> anyhow::Result<()> {
    use std::io::Write;
    let mut f = std::io::BufWriter::with_capacity(4 * MIB, std::fs::File::create(path)?);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut block = vec![0u8; MIB];
    for _ in 0..size / MIB {
        for chunk in block.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
        }
        f.write_all(&block)?;
    }
    // Written back before anything is timed, so the upload does not compete with
    // writeback of its own input.
    f.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    Ok(())
}

/// A client folder `dir/name` whose `transfer.info` sends `file` to 127.0.0.1:`port`
/// under the client name `name`.
pub fn client_folder(dir: &Path, name: &str, port: u16, file: &Path) -> anyhow::Result<PathBuf> {
    let c = dir.join(name);
    std::fs::create_dir_all(&c)?;
    std::fs::write(
        c.join("transfer.info"),
        format!("127.0.0.1:{port}\n{name}\n{}\n", file.display()),
    )?;
    Ok(c)
}

/// What a batch of clients started at once did.
pub struct Batch {
    /// From the first start to the last exit.
    pub seconds: f64,
    /// How many exited 0 (the client exits 0 only once the server confirmed its file).
    pub succeeded: usize,
    /// The folders of those that did not; each has the client's output in `client.err`.
    pub failed: Vec<PathBuf>,
}

/// Starts the `client` with `args` in each of `folders` at once and waits for all of
/// them. Each one's standard error goes to `client.err` in its folder.
pub fn run_clients_at_once(
    client: &Path,
    folders: &[PathBuf],
    args: &[&str],
) -> anyhow::Result<Batch> {
    let errs: Vec<std::fs::File> = folders
        .iter()
        .map(|f| std::fs::File::create(f.join("client.err")))
        .collect::<Result<_, _>>()?;
    let t = Instant::now();
    let mut children: Vec<Child> = Vec::with_capacity(folders.len());
    for (f, err) in folders.iter().zip(errs) {
        match Command::new(client)
            .args(args)
            .current_dir(f)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
        {
            Ok(c) => children.push(c),
            Err(e) => {
                // None left running behind an error.
                for mut c in children {
                    let _ = c.kill();
                    let _ = c.wait();
                }
                return Err(e).context("starting a client");
            }
        }
    }
    let mut succeeded = 0;
    let mut failed = Vec::new();
    for (mut c, f) in children.into_iter().zip(folders) {
        if c.wait().is_ok_and(|s| s.success()) {
            succeeded += 1;
        } else {
            failed.push(f.clone());
        }
    }
    Ok(Batch {
        seconds: t.elapsed().as_secs_f64(),
        succeeded,
        failed,
    })
}
