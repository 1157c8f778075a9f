//! `secure_bench`: the secure mode against its references, in one run, over loopback:
//!
//! 1. the secure upload of `BENCH_UPLOAD_MIB` (1024) MiB, real `server` and `client`
//!    (TLS 1.3, SHA-256 of the whole file on both ends);
//! 2. a bare TLS 1.3 stream of as many bytes (TLS13_AES_256_GCM_SHA384, rustls with
//!    aws-lc-rs), a sender and a receiver thread in this process;
//! 3. raw loopback TCP of as many bytes, likewise;
//! 4. the legacy upload (`client --legacy`);
//! 5. the secure download (`client get`) of the file uploaded in 1.
//!
//! Each round runs them all, in an order that rotates from round to round, and each
//! figure is also given as a ratio to the bare TLS stream of the same round; the
//! table gives the median and the range over `BENCH_REPEATS` (3) rounds. Then: the
//! CPU time of every thread of the client and the server during the secure upload
//! and download of the median round, the servers' peak resident memory, and
//! single-core hash throughput (SHA-256 and BLAKE3). Nothing is asserted.
//!
//! `BENCH_TRANSPORT` (`std`) is the server's `--transport`.
#![forbid(unsafe_code)]

#[path = "../bench_common/mod.rs"]
mod bench_common;
mod hashes;
mod streams;
mod threads;

use std::collections::BTreeMap;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bench_common::{client_folder, env_usize, write_pattern_file, Bins, TempDir, MIB};
use threads::{Sampler, Times};

const ROWS: [&str; 5] = [
    "secure upload (client put)",
    "bare TLS 1.3 stream, AES-256-GCM",
    "raw loopback TCP",
    "legacy upload (client --legacy)",
    "secure download (client get)",
];
const UP: usize = 0;
const TLS: usize = 1;
const TCP: usize = 2;
const LEGACY: usize = 3;
const DOWN: usize = 4;

/// A transfer through the real programs: wall seconds, the server's peak memory,
/// and the CPU of each thread.
struct Transfer {
    seconds: f64,
    server_peak_kib: u64,
    cpu: Vec<(threads::ThreadKey, Times)>,
    /// What the client printed.
    said: String,
}

fn main() -> anyhow::Result<()> {
    let mib = env_usize("BENCH_UPLOAD_MIB", 1024);
    let repeats = env_usize("BENCH_REPEATS", 3).max(1);
    let transport = std::env::var("BENCH_TRANSPORT").unwrap_or_else(|_| "std".into());
    let total = (mib * MIB) as u64;
    let bins = Bins::locate()?;
    let tmp = TempDir::new("fs-secure-bench")?;
    let file = tmp.path().join("upload.bin");
    write_pattern_file(&file, mib * MIB)?;

    // mbs[row][round], and the secure transfers' details per round.
    let mut mbs: Vec<Vec<f64>> = vec![Vec::new(); ROWS.len()];
    let mut ups: Vec<Transfer> = Vec::new();
    let mut downs: Vec<Transfer> = Vec::new();
    let mut legacy_peak = 0u64;
    let mut suite = None;
    let steps = ["tcp", "tls", "secure", "legacy"];
    for round in 0..repeats {
        let mut order = steps.to_vec();
        order.rotate_left(round % steps.len());
        eprintln!("round {}: {}", round + 1, order.join(", "));
        for step in order {
            let rate = |secs: f64| total as f64 / secs / 1e6;
            match step {
                "tcp" => {
                    let r = streams::raw_tcp(total)?;
                    mbs[TCP].push(rate(r.seconds));
                }
                "tls" => {
                    let r = streams::bare_tls(total)?;
                    suite = r.suite.clone();
                    eprintln!(
                        "  bare TLS: {:.0} MB/s; sender {:.2}+{:.2} s, receiver {:.2}+{:.2} s (user+system)",
                        rate(r.seconds),
                        r.sender.user,
                        r.sender.system,
                        r.receiver.user,
                        r.receiver.system
                    );
                    mbs[TLS].push(rate(r.seconds));
                }
                "secure" => {
                    let dir = tmp.path().join(format!("secure-{round}"));
                    let (up, down) = secure_round(&bins, &dir, &transport, &file)?;
                    mbs[UP].push(rate(up.seconds));
                    mbs[DOWN].push(rate(down.seconds));
                    ups.push(up);
                    downs.push(down);
                    let _ = std::fs::remove_dir_all(&dir);
                }
                _ => {
                    let dir = tmp.path().join(format!("legacy-{round}"));
                    let t = legacy_upload(&bins, &dir, &transport, &file)?;
                    legacy_peak = legacy_peak.max(t.server_peak_kib);
                    mbs[LEGACY].push(rate(t.seconds));
                    let _ = std::fs::remove_dir_all(&dir);
                }
            }
        }
        eprintln!(
            "  MB/s: {}",
            ROWS.iter()
                .zip(&mbs)
                .map(|(n, v)| format!("{n} {:.0}", v.last().copied().unwrap_or(0.0)))
                .collect::<Vec<_>>()
                .join("; ")
        );
    }

    println!(
        "{mib} MiB, {repeats} rounds, server --transport {transport}; bare TLS suite {}",
        suite.as_deref().unwrap_or("?")
    );
    println!();
    println!("| row | MB/s, median (range) | / bare TLS, median (range) |");
    println!("|---|---|---|");
    for (i, name) in ROWS.iter().enumerate() {
        let ratios: Vec<f64> = mbs[i].iter().zip(&mbs[TLS]).map(|(a, b)| a / b).collect();
        println!(
            "| {name} | {} | {} |",
            spread(&mbs[i], 0),
            spread(&ratios, 2)
        );
    }
    let peak = |v: &[Transfer]| v.iter().map(|t| t.server_peak_kib).max().unwrap_or(0);
    println!();
    println!(
        "server peak RSS (VmHWM, largest of the rounds): secure upload {:.1} MiB, secure download {:.1} MiB, legacy upload {:.1} MiB",
        peak(&ups) as f64 / 1024.0,
        peak(&downs) as f64 / 1024.0,
        legacy_peak as f64 / 1024.0
    );

    for (what, runs) in [("secure upload", &ups), ("secure download", &downs)] {
        let mut by_time: Vec<&Transfer> = runs.iter().collect();
        by_time.sort_by(|a, b| a.seconds.total_cmp(&b.seconds));
        if let Some(t) = by_time.get(by_time.len() / 2) {
            println!();
            println!(
                "CPU by thread, {what} (the median round, {:.2} s wall):",
                t.seconds
            );
            print_cpu(&t.cpu);
        }
    }

    println!();
    println!("| hash, one core, {mib} MiB in memory fed 1 MiB at a time (best of 3) | GB/s |");
    println!("|---|---|");
    for (name, gbs) in hashes::measure(mib * MIB) {
        println!("| {name} | {gbs:.2} |");
    }
    Ok(())
}

/// `median (min-max)` with `digits` decimals.
fn spread(v: &[f64], digits: usize) -> String {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    match (s.first(), s.last()) {
        (Some(lo), Some(hi)) => {
            format!("{:.digits$} ({lo:.digits$}-{hi:.digits$})", s[s.len() / 2])
        }
        _ => "-".into(),
    }
}

fn print_cpu(cpu: &[(threads::ThreadKey, Times)]) {
    // Threads of the same name (the port is cut from "conn 127.0.0.1:…") together.
    let mut sum: BTreeMap<(String, String), (Times, usize)> = BTreeMap::new();
    for ((label, name, _), t) in cpu {
        let e = sum.entry((label.clone(), name.clone())).or_default();
        e.0.user += t.user;
        e.0.system += t.system;
        e.0.waiting += t.waiting;
        e.1 += 1;
    }
    println!("| process | thread | user s | system s | waiting for a core s |");
    println!("|---|---|---|---|---|");
    let mut total = Times::default();
    for ((label, name), (t, n)) in sum {
        let name = if n > 1 {
            format!("{name} (x{n})")
        } else {
            name
        };
        println!(
            "| {label} | {name} | {:.2} | {:.2} | {:.2} |",
            t.user, t.system, t.waiting
        );
        total.user += t.user;
        total.system += t.system;
        total.waiting += t.waiting;
    }
    println!(
        "| all | | {:.2} | {:.2} | {:.2} |",
        total.user, total.system, total.waiting
    );
}

struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start(bins: &Bins, dir: &Path, transport: &str) -> anyhow::Result<Server> {
        std::fs::create_dir_all(dir)?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let child = Command::new(&bins.server)
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--transport", transport])
            .current_dir(dir)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting the server")?;
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                bail!("the server did not start");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(Server { child, port })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The high-water mark of resident memory (VmHWM), KiB.
    fn peak_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .unwrap_or_default()
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or(0)
    }

    /// Starts the high-water mark again from the present resident memory.
    fn reset_peak(&self) {
        let _ = std::fs::write(format!("/proc/{}/clear_refs", self.pid()), "5");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the client in `folder` with `args`, sampling its threads and the server's.
fn run_client(
    bins: &Bins,
    server: &Server,
    folder: &Path,
    args: &[&str],
) -> anyhow::Result<Transfer> {
    let _ = Command::new("sync").status();
    let sampler = Sampler::start(vec![("server".into(), server.pid())]);
    let t = Instant::now();
    let child = Command::new(&bins.client)
        .args(args)
        .current_dir(folder)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    sampler.add("client", child.id());
    let out = child.wait_with_output()?;
    let seconds = t.elapsed().as_secs_f64();
    let cpu = sampler.finish(&[("server".into(), server.pid())]);
    if !out.status.success() {
        bail!(
            "client {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let said = String::from_utf8_lossy(&out.stdout).trim().to_string();
    eprintln!("  client {args:?}: {said} ({seconds:.2} s)");
    Ok(Transfer {
        seconds,
        server_peak_kib: server.peak_kib(),
        cpu,
        said,
    })
}

/// A secure upload with a fresh server, then the download of that file from it.
fn secure_round(
    bins: &Bins,
    dir: &Path,
    transport: &str,
    file: &Path,
) -> anyhow::Result<(Transfer, Transfer)> {
    let server = Server::start(bins, &dir.join("server"), transport)?;
    let c = client_folder(dir, "bench", server.port, file)?;
    let up = run_client(bins, &server, &c, &[])?;
    if !up.said.contains("(secure mode)") {
        bail!("the upload did not go in the secure mode: {}", up.said);
    }
    // The server wrote the file past the page cache: it is read once so that the
    // download measures the transfer, not the disk.
    warm(&dir.join("server"));
    server.reset_peak();
    let target = dir.join("downloaded.bin");
    let target = target.to_string_lossy();
    let name = file
        .file_name()
        .and_then(|n| n.to_str())
        .context("the upload's name")?;
    let down = run_client(bins, &server, &c, &["get", name, "-o", &target])?;
    Ok((up, down))
}

fn legacy_upload(
    bins: &Bins,
    dir: &Path,
    transport: &str,
    file: &Path,
) -> anyhow::Result<Transfer> {
    let server = Server::start(bins, &dir.join("server"), transport)?;
    let c = client_folder(dir, "bench", server.port, file)?;
    run_client(bins, &server, &c, &["--legacy"])
}

/// Reads every file under `dir` (the server's stored content into the page cache).
fn warm(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            warm(&p);
        } else if let Ok(mut f) = std::fs::File::open(&p) {
            let _ = std::io::copy(&mut f, &mut std::io::sink());
        }
    }
}
