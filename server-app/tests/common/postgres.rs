//! A PostgreSQL server for the tests: `FLEET_DATABASE_URL` when set, otherwise a
//! throwaway cluster started once per test process by `.ci/postgres.sh` (stopped and
//! removed by the script's watchdog when the process exits). Each test gets a database
//! of its own. Without PostgreSQL installed, the tests that need it fail and say how
//! to install it.
//!
//! [`TestDatabase::with_tls`] uses a second cluster, started with `--tls`: it takes
//! TCP connections with TLS only, under a certificate from a throwaway CA.

#![allow(dead_code)] // each test file uses its own part

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// The script that starts throwaway clusters.
pub const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../.ci/postgres.sh");

/// Starts a cluster with `.ci/postgres.sh start` and `extra` arguments; its
/// `KEY=value` lines.
fn start_cluster(extra: &[&str]) -> Vec<(String, String)> {
    let out = Command::new("bash")
        .args([SCRIPT, "start", "--no-fsync", "--owner"])
        .arg(std::process::id().to_string())
        .args(extra)
        .output()
        .unwrap_or_else(|e| panic!("running {SCRIPT}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<(String, String)> = stdout
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    if !out.status.success() || !lines.iter().any(|(k, _)| k == "URL") {
        panic!(
            "these tests need PostgreSQL and could not start it:\n{}\n\
             Install it with `.ci/postgres.sh install` (as root: apt-get install \
             postgresql), or point FLEET_DATABASE_URL at a server where this user \
             may create databases.",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    lines
}

fn value(lines: &[(String, String)], key: &str) -> String {
    lines
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| panic!("{SCRIPT} printed no {key}="))
}

/// The URL of a database every test may create databases with.
pub fn admin_url() -> String {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        if let Ok(url) = std::env::var("FLEET_DATABASE_URL") {
            if !url.is_empty() {
                return url;
            }
        }
        value(&start_cluster(&[]), "URL")
    })
    .clone()
}

/// The cluster that takes TLS connections only (`start --tls`): its URL, without
/// TLS parameters, and the CA that issued its certificate.
pub fn tls_cluster() -> &'static (String, PathBuf) {
    static CLUSTER: OnceLock<(String, PathBuf)> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        let lines = start_cluster(&["--tls"]);
        (value(&lines, "URL"), PathBuf::from(value(&lines, "CA")))
    })
}

/// The TLS cluster's admin URL, checked against its CA with the host name.
fn tls_admin_url() -> String {
    let (url, ca) = tls_cluster();
    format!("{url}?sslmode=verify-full&sslrootcert={}", ca.display())
}

/// A second throwaway CA (that issued nothing the clusters show), in `dir`: its
/// certificate.
pub fn other_ca(dir: &std::path::Path) -> PathBuf {
    let out = Command::new("bash")
        .args([SCRIPT, "ca"])
        .arg(dir)
        .output()
        .unwrap_or_else(|e| panic!("running {SCRIPT}: {e}"));
    assert!(
        out.status.success(),
        "{SCRIPT} ca: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir.join("ca.crt")
}

/// `url` with its database name replaced by `db`.
fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let host_part = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    format!("{host_part}/{db}{query}")
}

fn admin(url: &str, sql: &str) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let (config, tls, _) =
            server_app::storage::postgres::connector(url).map_err(|e| e.to_string())?;
        let (client, conn) = config
            .connect(tls)
            .await
            .map_err(|e| format!("connecting to {url}: {e}"))?;
        let conn = tokio::spawn(conn);
        let done = client
            .batch_execute(sql)
            .await
            .map_err(|e| format!("{sql}: {e}"));
        drop(client);
        let _ = conn.await;
        done
    })
}

/// A database of one test's own, dropped with this value.
pub struct TestDatabase {
    name: String,
    admin: String,
    /// Its URL (on the TLS cluster: with sslmode=verify-full and sslrootcert).
    pub url: String,
}

impl TestDatabase {
    /// Creates an empty database.
    pub fn new() -> TestDatabase {
        TestDatabase::create(admin_url())
    }

    /// Creates an empty database on the cluster that takes TLS connections only.
    pub fn with_tls() -> TestDatabase {
        TestDatabase::create(tls_admin_url())
    }

    fn create(admin_url: String) -> TestDatabase {
        let name = format!("test_{}", server_app::storage::random_name());
        if let Err(e) = admin(&admin_url, &format!("CREATE DATABASE {name}")) {
            panic!("{e}");
        }
        TestDatabase {
            url: with_database(&admin_url, &name),
            name,
            admin: admin_url,
        }
    }

    /// Its URL with `query` in place of the TLS parameters.
    pub fn url_with(&self, query: &str) -> String {
        let base = self.url.split_once('?').map_or(&*self.url, |(b, _)| b);
        format!("{base}?{query}")
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Best effort (a throwaway cluster goes away anyway); never a panic in drop.
        let _ = admin(
            &self.admin,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}
