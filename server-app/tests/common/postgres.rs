//! A PostgreSQL server for the tests: `FLEET_DATABASE_URL` when set, otherwise a
//! throwaway cluster started once per test process by `.ci/postgres.sh` (stopped and
//! removed by the script's watchdog when the process exits). Each test gets a database
//! of its own. Without PostgreSQL installed, the tests that need it fail and say how
//! to install it.

use std::process::Command;
use std::sync::OnceLock;

use tokio_postgres::NoTls;

/// The URL of a database every test may create databases with.
pub fn admin_url() -> String {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        if let Ok(url) = std::env::var("FLEET_DATABASE_URL") {
            if !url.is_empty() {
                return url;
            }
        }
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../.ci/postgres.sh");
        let out = Command::new("bash")
            .args([script, "start", "--no-fsync", "--owner"])
            .arg(std::process::id().to_string())
            .output()
            .unwrap_or_else(|e| panic!("running {script}: {e}"));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let url = stdout.lines().find_map(|l| l.strip_prefix("URL="));
        match url {
            Some(url) if out.status.success() => url.to_string(),
            _ => panic!(
                "these tests need PostgreSQL and could not start it:\n{}\n\
                 Install it with `.ci/postgres.sh install` (as root: apt-get install \
                 postgresql), or point FLEET_DATABASE_URL at a server where this user \
                 may create databases.",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        }
    })
    .clone()
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

fn admin(sql: &str) -> Result<(), String> {
    let url = admin_url();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(&url, NoTls)
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
    /// Its URL.
    pub url: String,
}

impl TestDatabase {
    /// Creates an empty database.
    pub fn new() -> TestDatabase {
        let name = format!("test_{}", server_app::storage::random_name());
        if let Err(e) = admin(&format!("CREATE DATABASE {name}")) {
            panic!("{e}");
        }
        TestDatabase {
            url: with_database(&admin_url(), &name),
            name,
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Best effort (a throwaway cluster goes away anyway); never a panic in drop.
        let _ = admin(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ));
    }
}
