//! The shared components of a fleet, each a process of this benchmark's own on free
//! loopback ports, stopped when its value is dropped (also on an error or a panic):
//! - [`Postgres`]: a throwaway cluster from `.ci/postgres.sh start --owner <our pid>`
//!   (the script's watchdog also stops it if this process is killed);
//! - [`SeaweedFs`]: `weed mini` from `.ci/seaweedfs.sh run`, which stops the server
//!   when its standard input (a pipe held here) closes, however this process ends;
//!
//! The balancer is the end-to-end tests' own (`test_kit::haproxy`), with a check
//! every second and 8,192 connections (rows.rs).

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// A script of the repository's `.ci` folder.
fn ci_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(".ci")
        .join(name)
}

/// A free port on 127.0.0.1 (free when asked; a caller retries if it is taken).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A running PostgreSQL cluster (stopped and removed on drop).
pub struct Postgres {
    /// `postgres://postgres@127.0.0.1:PORT/postgres`.
    pub admin_url: String,
    dir: PathBuf,
}

impl Postgres {
    /// Starts a cluster; `fsync` off only when asked (`--no-fsync`).
    pub fn start(fsync: bool) -> anyhow::Result<Postgres> {
        let script = ci_script("postgres.sh");
        let mut cmd = Command::new("bash");
        cmd.arg(&script)
            .args(["start", "--owner", &std::process::id().to_string()]);
        if !fsync {
            cmd.arg("--no-fsync");
        }
        // A group of its own: a Ctrl-C at the terminal does not reach its watchdog.
        let out = cmd
            .process_group(0)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running {}", script.display()))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let field = |name: &str| {
            stdout
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(str::to_string)
        };
        match (out.status.success(), field("URL="), field("DIR=")) {
            (true, Some(admin_url), Some(dir)) => Ok(Postgres {
                admin_url,
                dir: PathBuf::from(dir),
            }),
            _ => bail!(
                "PostgreSQL did not start ({}): {}\n(`.ci/postgres.sh install` installs it)",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        }
    }

    /// The postmaster's process id (the first line of `postmaster.pid`).
    pub fn pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.dir.join("data").join("postmaster.pid"))
            .ok()?
            .lines()
            .next()?
            .trim()
            .parse()
            .ok()
    }

    /// Creates the empty database `name`; its URL.
    pub fn create_database(&self, name: &str) -> anyhow::Result<String> {
        let pg = server_app::storage::postgres::Pg::connect(&self.admin_url)
            .context("connecting to the cluster")?;
        let stmt = format!("CREATE DATABASE {name}");
        pg.run("creating a database", move |c| async move {
            c.batch_execute(&stmt).await
        })
        .with_context(|| format!("creating database {name}"))?;
        let (base, _) = self
            .admin_url
            .rsplit_once('/')
            .context("a database URL without a database")?;
        Ok(format!("{base}/{name}"))
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(ci_script("postgres.sh"))
            .arg("stop")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status();
    }
}

/// A running SeaweedFS S3 server (stopped on drop).
pub struct SeaweedFs {
    child: Child,
    stdin: Option<ChildStdin>,
    /// What a server needs to reach it: AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...
    pub env: Vec<(String, String)>,
    /// The bucket the script created.
    pub bucket: String,
    dir: PathBuf,
}

impl SeaweedFs {
    /// Starts `weed mini` with its data in `dir` and waits until S3 answers.
    pub fn start(dir: &Path) -> anyhow::Result<SeaweedFs> {
        let script = ci_script("seaweedfs.sh");
        let bucket = "fleet-bench";
        let mut child = Command::new("bash")
            .arg(&script)
            .arg("run")
            .arg(dir)
            .env("S3_BUCKET", bucket)
            .env("AWS_ACCESS_KEY_ID", "fleet")
            .env("AWS_SECRET_ACCESS_KEY", "fleet-secret")
            // A group of its own: a Ctrl-C at the terminal leaves it to our drop,
            // which stops the server (a script killed by it would not).
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("running {}", script.display()))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().context("no stdout from the script")?;
        let mut s3 = SeaweedFs {
            child,
            stdin,
            env: Vec::new(),
            bucket: bucket.to_string(),
            dir: dir.to_path_buf(),
        };
        // Its output ends with "ready" once S3 answers and the bucket exists.
        for line in BufReader::new(stdout).lines() {
            let line = line?;
            if line == "ready" {
                let has_endpoint = s3.env.iter().any(|(k, _)| k == "AWS_ENDPOINT_URL");
                if !has_endpoint {
                    bail!("seaweedfs.sh printed no endpoint");
                }
                return Ok(s3);
            }
            if let Some((k, v)) = line
                .strip_prefix("export ")
                .and_then(|kv| kv.split_once('='))
            {
                s3.env.push((k.to_string(), v.to_string()));
            }
        }
        bail!("SeaweedFS did not start (see the script's messages above; `.ci/seaweedfs.sh install` installs it)")
    }
}

impl SeaweedFs {
    /// The `weed` process id (the script writes it to `weed.pid`).
    pub fn pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.dir.join("weed.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

impl Drop for SeaweedFs {
    fn drop(&mut self) {
        // Closing its input tells the script to stop the server and remove its data.
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
