//! `bench`: measures the system against the hardware limit, in one run, and prints a
//! table. Run: `cargo run --release -p bench --bin bench` (builds the client too).
//!
//! Figures, all measured in the same run on the same machine:
//! - the reference: `openssl speed -evp aes-256-cbc` (16 KiB blocks);
//! - this project's AES-256-CBC encryption and decryption and cksum, in memory;
//! - a 1 GiB upload over loopback from the real client to the real server, per
//!   transport (std, tokio, and smol through the futures-io transport), in MB/s and as a ratio to the openssl reference, with the server's
//!   peak resident memory (VmHWM) over the whole run;
//! - 200 clients uploading 1 MiB each at once: total time, all verified, server peak;
//! - 1,000 idle connections: server resident memory per connection.
//!
//! Environment: `BENCH_UPLOAD_MIB` (default 1024), `BENCH_CLIENTS` (200),
//! `BENCH_IDLE` (1000), `BENCH_TRANSPORTS` (`std,tokio,smol`), `BENCH_REPEATS` (5).
//! Nothing here asserts a speed; it prints what it saw.
#![forbid(unsafe_code)]

mod bench_common;

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bench_common::{
    client_folder, env_usize, run_clients_at_once, write_pattern_file, Bins, TempDir, MIB,
};
use bytes::BytesMut;
use protocol_core::crypto::{AesKey, CbcDecryptor, CbcEncryptor, Checksum, ChecksumAlgorithm};

fn main() -> anyhow::Result<()> {
    let upload_mib = env_usize("BENCH_UPLOAD_MIB", 1024);
    let n_clients = env_usize("BENCH_CLIENTS", 200);
    let n_idle = env_usize("BENCH_IDLE", 1000);
    let bins = Bins::locate()?;
    let tmp = TempDir::new("fs-bench")?;
    let mut rows: Vec<(String, String)> = Vec::new();

    let openssl = openssl_aes_gbs().unwrap_or(f64::NAN);
    rows.push((
        "openssl speed -evp aes-256-cbc (16 KiB)".into(),
        gbs(openssl),
    ));
    let (enc, dec, ck) = crypto_gbs();
    rows.push((
        "this project: AES-256-CBC encrypt".into(),
        format!("{} ({:.0}% of openssl)", gbs(enc), 100.0 * enc / openssl),
    ));
    rows.push(("this project: AES-256-CBC decrypt".into(), gbs(dec)));
    rows.push(("this project: cksum".into(), gbs(ck)));

    let file = tmp.path().join("upload.bin");
    write_pattern_file(&file, upload_mib * MIB)?;
    let order: Vec<String> = std::env::var("BENCH_TRANSPORTS")
        .unwrap_or_else(|_| "std,tokio,smol".into())
        .split(',')
        .map(str::to_string)
        .collect();
    let repeats = env_usize("BENCH_REPEATS", 5).max(1);
    for transport in order.iter().map(String::as_str) {
        // The page cache makes single runs vary by 2x here: report the best and the worst.
        let mut runs = Vec::new();
        for i in 0..repeats {
            let dir = tmp.path().join(format!("up-{transport}-{i}"));
            runs.push(upload_once(&bins, &dir, transport, &file)?);
            let _ = std::fs::remove_dir_all(&dir);
        }
        let mut secs: Vec<f64> = runs.iter().map(|r| r.seconds).collect();
        secs.sort_by(f64::total_cmp);
        let (best, median, worst) = (secs[0], secs[secs.len() / 2], secs[secs.len() - 1]);
        let peak = runs.iter().map(|r| r.server_peak_kib).max().unwrap_or(0);
        let mbs = |secs: f64| (upload_mib * MIB) as f64 / secs / 1e6;
        rows.push((
            format!("{upload_mib} MiB upload, {transport} transport ({repeats} runs)"),
            format!(
                "{:.0} MB/s in {best:.2} s = {:.0}% of openssl (median {:.0} MB/s = {:.0}%, worst {:.0} MB/s); server peak RSS {:.1} MiB",
                mbs(best),
                100.0 * mbs(best) / (openssl * 1000.0),
                mbs(median),
                100.0 * mbs(median) / (openssl * 1000.0),
                mbs(worst),
                peak as f64 / 1024.0
            ),
        ));
    }

    let r = many_clients(&bins, &tmp.path().join("many"), n_clients)?;
    rows.push((
        format!("{n_clients} clients x 1 MiB at once (tokio)"),
        format!(
            "{:.2} s, {}/{n_clients} verified; server peak RSS {:.1} MiB",
            r.seconds,
            r.verified,
            r.server_peak_kib as f64 / 1024.0
        ),
    ));

    for transport in ["tokio", "std", "smol"] {
        let (total_kib, per_conn) = idle_connections(
            &bins,
            &tmp.path().join(format!("idle-{transport}")),
            transport,
            n_idle,
        )?;
        rows.push((
            format!("{n_idle} idle connections ({transport})"),
            format!(
                "server RSS {:.1} MiB in all, {:.1} KiB per connection",
                total_kib as f64 / 1024.0,
                per_conn
            ),
        ));
    }

    let width = rows.iter().map(|r| r.0.len()).max().unwrap_or(10);
    println!("| {:<width$} | result |", "measurement");
    println!("|{}|---|", "-".repeat(width + 2));
    for (k, v) in rows {
        println!("| {k:<width$} | {v} |");
    }
    Ok(())
}

fn gbs(v: f64) -> String {
    format!("{v:.2} GB/s")
}

/// `openssl speed` in GB/s (it prints thousands of bytes per second).
fn openssl_aes_gbs() -> anyhow::Result<f64> {
    let out = Command::new("openssl")
        .args([
            "speed",
            "-elapsed",
            "-evp",
            "aes-256-cbc",
            "-bytes",
            "16384",
            "-seconds",
            "3",
        ])
        .stderr(Stdio::null())
        .output()
        .context("running openssl speed")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .rev()
        .find(|l| l.to_ascii_lowercase().starts_with("aes-256-cbc"))
        .context("no aes-256-cbc line in openssl's output")?;
    let k: f64 = line
        .split_whitespace()
        .last()
        .and_then(|v| v.trim_end_matches('k').parse().ok())
        .context("unreadable openssl figure")?;
    Ok(k * 1000.0 / 1e9)
}

/// Best of five, GB/s: (encrypt, decrypt, cksum).
fn crypto_gbs() -> (f64, f64, f64) {
    let data: Vec<u8> = (0..128 * MIB).map(|i| (i * 131 + (i >> 8)) as u8).collect();
    let key = AesKey::from_slice(&[7u8; 32]).unwrap_or(AesKey::Aes256([7; 32]));
    let best = |f: &mut dyn FnMut()| {
        (0..5)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed()
            })
            .min()
            .unwrap_or(Duration::from_secs(1))
    };
    let mut ct = BytesMut::with_capacity(data.len() + 16);
    let enc = best(&mut || {
        ct.clear();
        let mut e = CbcEncryptor::new(&key);
        for c in data.chunks(MIB) {
            e.update(c, &mut ct);
        }
        e.finish(&mut ct);
    });
    let mut pt = BytesMut::with_capacity(ct.len());
    let dec = best(&mut || {
        pt.clear();
        let mut d = CbcDecryptor::new(&key);
        for c in ct.chunks(MIB) {
            d.update(c, &mut pt);
        }
        let _ = d.finish(&mut pt);
    });
    let ck = best(&mut || {
        let mut c = Checksum::new(ChecksumAlgorithm::Cksum);
        for chunk in data.chunks(MIB) {
            c.update(chunk);
        }
        std::hint::black_box(c.value());
    });
    let rate = |d: Duration| data.len() as f64 / d.as_secs_f64() / 1e9;
    (rate(enc), rate(dec), rate(ck))
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
            .args(["--transport", transport, "--max-connections", "5000"])
            .args(["--max-connections-per-ip", "5000"])
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

    /// (current, peak) resident memory in KiB, from /proc.
    fn memory_kib(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct UploadResult {
    seconds: f64,
    server_peak_kib: u64,
}

fn upload_once(
    bins: &Bins,
    dir: &Path,
    transport: &str,
    file: &Path,
) -> anyhow::Result<UploadResult> {
    // Earlier runs' received files are written back first: each run starts clean.
    let _ = Command::new("sync").status();
    let server = Server::start(bins, &dir.join("server"), transport)?;
    let c = client_folder(dir, "bench", server.port, file)?;
    let t = Instant::now();
    // The legacy protocol (AES-256-CBC), which the openssl figure is the limit of;
    // secure_bench measures the secure mode.
    let out = Command::new(&bins.client)
        .arg("--legacy")
        .current_dir(&c)
        .output()?;
    let seconds = t.elapsed().as_secs_f64();
    if !out.status.success() {
        bail!("upload failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(UploadResult {
        seconds,
        server_peak_kib: server.memory_kib().1,
    })
}

struct ManyResult {
    seconds: f64,
    verified: usize,
    server_peak_kib: u64,
}

fn many_clients(bins: &Bins, dir: &Path, n: usize) -> anyhow::Result<ManyResult> {
    let server = Server::start(bins, &dir.join("server"), "tokio")?;
    let file = dir.join("one-mib.bin");
    write_pattern_file(&file, MIB)?;
    let folders: Vec<PathBuf> = (0..n)
        .map(|i| client_folder(dir, &format!("client{i}"), server.port, &file))
        .collect::<Result<_, _>>()?;
    let batch = run_clients_at_once(&bins.client, &folders, &["--legacy"])?;
    let listed = Command::new(&bins.server)
        .arg("list-files")
        .current_dir(dir.join("server"))
        .output()?;
    let listed_verified = String::from_utf8_lossy(&listed.stdout)
        .matches(" yes ")
        .count();
    Ok(ManyResult {
        seconds: batch.seconds,
        verified: batch.succeeded.min(listed_verified),
        server_peak_kib: server.memory_kib().1,
    })
}

fn idle_connections(
    bins: &Bins,
    dir: &Path,
    transport: &str,
    n: usize,
) -> anyhow::Result<(u64, f64)> {
    let server = Server::start(bins, &dir.join("server"), transport)?;
    std::thread::sleep(Duration::from_millis(300));
    let (before, _) = server.memory_kib();
    let conns: Vec<TcpStream> = (0..n)
        .map(|_| TcpStream::connect(("127.0.0.1", server.port)))
        .collect::<Result<_, _>>()?;
    std::thread::sleep(Duration::from_secs(2));
    let (after, _) = server.memory_kib();
    drop(conns);
    Ok((after, (after.saturating_sub(before)) as f64 / n as f64))
}
