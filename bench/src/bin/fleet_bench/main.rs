//! `fleet_bench`: many real clients at once against one server and against a fleet
//! behind HAProxy, per storage backend, in one run on one machine; prints a markdown
//! table. Run: `cargo run --release -p bench --bin fleet_bench` (builds the
//! server and the client if they are missing).
//!
//! Rows (`FLEET_ROWS`, default `a,b,c,d`):
//! - (a) SQLite + folder (the defaults), one server, clients direct;
//! - (b) SQLite + folder, one server behind HAProxy: what the balancer itself costs.
//!   There is no two-server SQLite row: SQLite and the folder are one server's own
//!   (a lock on its folder; uploads in progress live in the process), and only
//!   PostgreSQL holds what several servers must share;
//! - (c) PostgreSQL + S3 (SeaweedFS), one server, clients direct;
//! - (d) PostgreSQL + S3, two servers behind HAProxy (TCP mode, round robin).
//!
//! Each run of a row starts from nothing: a new server folder, or a new database and
//! S3 prefix; its servers are started one after the other (and `--metrics` on a free
//! port where HAProxy checks `/healthz`), then `FLEET_CLIENTS` (200) `client`
//! processes are started at once, each registering and uploading one file of
//! `FLEET_UPLOAD_MIB` (1) MiB, and the time from the first start to the last exit is
//! the row's time. With `FLEET_REGISTERED=1` the clients first register and send a
//! small file, untimed, so that the batch is reconnections and uploads only (without
//! each client's RSA key generation). An upload counts as verified when its client exited 0 (it does once
//! the server confirmed the checksum) and `server list-files` reports that many files
//! verified; every failure is counted and shown. Rows run interleaved, `FLEET_REPEATS`
//! (3) rounds of a, b, c, d, so that load from elsewhere on the machine falls on all
//! rows alike; the table gives the median.
//!
//! PostgreSQL (`.ci/postgres.sh`, `FLEET_PG_FSYNC=off` to run it without fsync),
//! SeaweedFS (`.ci/seaweedfs.sh`) and HAProxy are started here on free loopback ports
//! and stopped on exit, on an error, and on Ctrl-C or SIGTERM. Nothing here asserts a
//! speed: it prints what it saw.
#![forbid(unsafe_code)]

#[path = "../bench_common/mod.rs"]
mod bench_common;

mod cpu;
mod rows;
mod services;

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::bail;

use bench_common::{env_usize, write_pattern_file, Bins, TempDir, MIB};
use rows::{run_row, Backends, Files, RowSpec, RunResult, Shared};
use services::{Postgres, SeaweedFs};

/// Set by Ctrl-C or SIGTERM: stop after the current batch, cleaning up.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

fn all_rows() -> Vec<RowSpec> {
    let row = |key, backends, servers, balancer| RowSpec {
        key,
        backends,
        servers,
        balancer,
    };
    vec![
        row('a', Backends::SqliteDisk, 1, false),
        row('b', Backends::SqliteDisk, 1, true),
        row('c', Backends::PostgresS3, 1, false),
        row('d', Backends::PostgresS3, 2, true),
    ]
}

fn main() -> anyhow::Result<()> {
    let n = env_usize("FLEET_CLIENTS", 200).max(1);
    let repeats = env_usize("FLEET_REPEATS", 3).max(1);
    let mib = env_usize("FLEET_UPLOAD_MIB", 1).max(1);
    let chosen = std::env::var("FLEET_ROWS").unwrap_or_else(|_| "a,b,c,d".into());
    let fsync = std::env::var("FLEET_PG_FSYNC").map_or(true, |v| v != "off");
    let registered = env_usize("FLEET_REGISTERED", 0) != 0;
    let specs: Vec<RowSpec> = all_rows()
        .into_iter()
        .filter(|r| chosen.split(',').any(|c| c.trim() == r.key.to_string()))
        .collect();
    if specs.is_empty() {
        bail!("FLEET_ROWS={chosen} names none of the rows a, b, c, d");
    }
    ctrlc::set_handler(|| INTERRUPTED.store(true, Ordering::SeqCst))?;

    let bins = Bins::locate()?;
    // Declared first, dropped last: the services below keep their data in it.
    let tmp = TempDir::new("fs-fleet-bench")?;
    let file = tmp.path().join("upload.bin");
    write_pattern_file(&file, mib * MIB)?;
    let hello = tmp.path().join("hello.txt");
    std::fs::write(&hello, b"registered before the batch\n")?;
    let files = Files {
        upload: &file,
        hello: registered.then_some(hello.as_path()),
    };
    let needs_fleet = specs.iter().any(|r| r.backends == Backends::PostgresS3);
    let shared = if needs_fleet {
        eprintln!("starting PostgreSQL and SeaweedFS ...");
        Shared {
            pg: Some(Postgres::start(fsync)?),
            s3: Some(SeaweedFs::start(&tmp.path().join("seaweedfs"))?),
        }
    } else {
        Shared { pg: None, s3: None }
    };

    let load_before = loadavg();
    let mut results: Vec<Vec<RunResult>> = specs.iter().map(|_| Vec::new()).collect();
    for round in 0..repeats {
        for (spec, runs) in specs.iter().zip(results.iter_mut()) {
            if INTERRUPTED.load(Ordering::SeqCst) {
                bail!("interrupted");
            }
            // Earlier runs' files are written back first: each run starts clean.
            let _ = Command::new("sync").status();
            let name = format!("run_{}_{round}", spec.key);
            let dir = tmp.path().join(&name);
            let r = run_row(&bins, &shared, spec, &dir, n, &files, &name)?;
            eprintln!(
                "{} round {}: {:.2} s, {}/{n} verified",
                spec.label(),
                round + 1,
                r.seconds,
                r.verified()
            );
            for f in r.failures.iter().take(5) {
                eprintln!("  failed: {f}");
            }
            let _ = std::fs::remove_dir_all(&dir);
            runs.push(r);
        }
    }
    let load_after = loadavg();
    drop(shared);

    print_table(&specs, &results, n, mib, repeats);
    println!();
    println!(
        "{} cores; load average (1, 5, 15 min) before: {load_before}, after: {load_after}; \
         PostgreSQL fsync {}; {}",
        std::thread::available_parallelism().map_or(0, |p| p.get()),
        if fsync { "on" } else { "off" },
        if registered {
            "clients registered before the batch (FLEET_REGISTERED=1): the batch is \
             reconnections and uploads"
        } else {
            "each client registers in the batch (RSA key generation included)"
        }
    );
    Ok(())
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The run whose time is the median.
fn median_run(runs: &[RunResult]) -> Option<&RunResult> {
    let m = median(runs.iter().map(|r| r.seconds).collect());
    runs.iter()
        .min_by(|x, y| (x.seconds - m).abs().total_cmp(&(y.seconds - m).abs()))
}

fn print_table(specs: &[RowSpec], results: &[Vec<RunResult>], n: usize, mib: usize, reps: usize) {
    let bytes = (n * mib * MIB) as f64;
    let medians: Vec<f64> = results
        .iter()
        .map(|runs| median(runs.iter().map(|r| r.seconds).collect()))
        .collect();
    let reference = specs.iter().position(|s| s.key == 'a').map(|i| medians[i]);
    println!(
        "| row | clients | verified (all {reps} runs) | failed | wall time, median (s) | \
         runs (s) | MB/s | vs (a) | verified per server (median run) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for ((spec, runs), &m) in specs.iter().zip(results).zip(&medians) {
        let verified: usize = runs.iter().map(RunResult::verified).sum();
        let all: Vec<String> = runs.iter().map(|r| format!("{:.2}", r.seconds)).collect();
        let mbs = bytes / m / 1e6;
        let ratio = reference.map_or("-".into(), |a| format!("{:.2}x", a / m));
        let per_server = match median_run(runs) {
            Some(r) if !r.per_server.is_empty() && spec.balancer => r
                .per_server
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(" + "),
            _ => "-".into(),
        };
        println!(
            "| {} | {n} x {mib} MiB | {verified}/{} | {} | {m:.2} | {} | {mbs:.0} | {ratio} | {per_server} |",
            spec.label(),
            n * runs.len(),
            n * runs.len() - verified,
            all.join(", "),
        );
    }
    println!();
    println!(
        "CPU seconds used during the batch (the median run), by process; the last column \
         is how many cores they kept busy on average:"
    );
    println!();
    println!("| row | clients | servers | HAProxy | PostgreSQL | SeaweedFS | all | cores busy |");
    println!("|---|---|---|---|---|---|---|---|");
    for (spec, runs) in specs.iter().zip(results) {
        let Some(r) = median_run(runs) else { continue };
        let c = &r.cpu;
        let cell = |v: f64, present: bool| {
            if present {
                format!("{v:.1}")
            } else {
                "-".into()
            }
        };
        let fleet = spec.backends == Backends::PostgresS3;
        println!(
            "| ({}) | {} | {} | {} | {} | {} | {:.1} | {:.2} |",
            spec.key,
            cell(c.clients, true),
            cell(c.servers, true),
            cell(c.haproxy, spec.balancer),
            cell(c.postgres, fleet),
            cell(c.seaweedfs, fleet),
            c.total(),
            c.total() / r.seconds
        );
    }
    // What the table cannot show in a cell.
    for (spec, runs) in specs.iter().zip(results) {
        for (i, r) in runs.iter().enumerate() {
            let expected = (r.listed_verified * mib * MIB) as u64;
            let consistent = r.listed_verified == r.succeeded
                && r.listed_bytes == expected
                && r.objects == r.all_verified
                && r.all_verified == r.listed_verified + r.registered;
            if !consistent {
                println!(
                    "\n({}) run {}: {} clients exited 0 ({} registered before); the \
                     servers recorded {} files of the batch verified, {} bytes, {} files \
                     in all; the contents store holds {} objects",
                    spec.key,
                    i + 1,
                    r.succeeded,
                    r.registered,
                    r.listed_verified,
                    r.listed_bytes,
                    r.all_verified,
                    r.objects
                );
            }
            if r.server_log_lines > 0 {
                println!(
                    "\n({}) run {}: the servers logged {} warning or error lines",
                    spec.key,
                    i + 1,
                    r.server_log_lines
                );
            }
        }
    }
}
