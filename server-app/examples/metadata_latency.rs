//! The metadata side of a commit (record the intent, switch, clear) on each backend:
//! time per commit on one thread, and commits per second from several threads.
//!
//! ```text
//! cargo run -p server-app --release --features fleet --example metadata_latency -- [POSTGRES_URL] [COMMITS] [THREADS]
//! ```
//!
//! SQLite runs on a new file in a temporary folder; PostgreSQL on the URL given (for
//! example one printed by `.ci/postgres.sh start`), in a table set it creates there.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test harness: a failure is a panic

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use protocol_core::ClientId;
use server_app::storage::postgres::PostgresMetadata;
use server_app::storage::sqlite::SqliteMetadata;
use server_app::storage::{new_object_key, new_upload_key, random_name, Intent, Metadata};

fn commits(m: &dyn Metadata, client: &ClientId, n: usize) -> anyhow::Result<()> {
    for k in 0..n {
        let i = Intent {
            id: random_name(),
            client: *client,
            file_name: format!("file{}", k % 8),
            upload: new_upload_key(),
            object: new_object_key(client),
            verified: true,
            size: 1000,
            checksum: 1,
            sha256: None,
            replaced: None,
            switched: false,
        };
        m.record_intent(&i)?;
        m.switch(&i)?;
        m.clear_intent(&i.id)?;
    }
    Ok(())
}

fn measure(label: &str, m: Arc<dyn Metadata>, n: usize, threads: usize) -> anyhow::Result<()> {
    let clients: Vec<ClientId> = (0..threads)
        .map(|t| {
            let id = ClientId::from_hex(&random_name()).unwrap_or(ClientId([0; 16]));
            m.register(&id, &format!("bench{t}-{}", random_name()), Duration::ZERO)
                .map(|_| id)
        })
        .collect::<Result<_, _>>()?;
    let start = Instant::now();
    commits(&*m, &clients[0], n)?;
    let one = start.elapsed();
    let start = Instant::now();
    let handles: Vec<_> = clients
        .into_iter()
        .map(|c| {
            let m = m.clone();
            thread::spawn(move || commits(&*m, &c, n))
        })
        .collect();
    for h in handles {
        h.join()
            .map_err(|_| anyhow::anyhow!("a thread panicked"))??;
    }
    let many = start.elapsed();
    println!(
        "{label:<10} 1 thread: {:>7.0} us/commit   {threads} threads: {:>7.0} commits/s",
        one.as_secs_f64() * 1e6 / n as f64,
        (n * threads) as f64 / many.as_secs_f64()
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: usize = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(500);
    let threads: usize = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(8);
    let dir = tempfile::tempdir()?;
    let sqlite = SqliteMetadata::open(&dir.path().join("defensive.db"))?;
    measure("sqlite", Arc::new(sqlite), n, threads)?;
    if let Some(url) = args.first() {
        measure(
            "postgres",
            Arc::new(PostgresMetadata::connect(url)?),
            n,
            threads,
        )?;
    }
    Ok(())
}
