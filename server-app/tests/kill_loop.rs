//! A seeded random kill loop against the real binaries: a client uploads and replaces
//! files while the server is killed with SIGKILL at random instants and restarted;
//! after every restart each verified record must hold bytes its client sent and
//! confirmed, a client that was told "verified" (1604) must find its bytes stored, and
//! every content ever told verified must be the current content or a version.
//!
//! `KILL_LOOP_ITERATIONS` (default 6) and `KILL_LOOP_SEED` (default 1) make it longer
//! or different; it prints its figures on stderr (`--nocapture` shows them).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test harness: a failure is a panic

mod common;

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// What a name may hold: the last confirmed bytes, and bytes sent after them whose
/// client never heard back (their commit may or may not have happened).
#[derive(Default)]
struct Expect {
    confirmed: Option<Vec<u8>>,
    maybe: Vec<Vec<u8>>,
}

#[test]
fn a_server_killed_at_random_instants_keeps_every_verified_file_exact() {
    let iterations = env_or("KILL_LOOP_ITERATIONS", 6);
    let seed = env_or("KILL_LOOP_SEED", 1);
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let tmp = tempfile::tempdir().unwrap();
    let sdir = tmp.path().join("server");
    let mut server = Server::start(&sdir, 0, &[]);
    let port = server.port;
    let c = client_dir(tmp.path(), "kim", port, "a.bin", &data(100, 0));
    assert_ok(&run_client(&c, &[]), "registration");
    let names = ["a.bin", "b.bin", "c.bin"];
    let mut expect: HashMap<&str, Expect> = HashMap::new();
    expect.entry("a.bin").or_default().confirmed = Some(data(100, 0));
    let (mut kills, mut confirmed, mut violations) = (0u64, 0u64, Vec::new());
    // Restarts that found a version stored whose client never heard 1604 (killed
    // between the commit point and the answer, or before the client read it).
    let mut unanswered_commits = 0u64;
    // Every content a client was told verified, per name: each stays the current
    // content or a version (the defaults keep every version for 30 days).
    let mut ever_confirmed: HashMap<&str, Vec<Vec<u8>>> = HashMap::new();
    ever_confirmed
        .entry("a.bin")
        .or_default()
        .push(data(100, 0));
    let mut most_versions = 0usize;
    for i in 0..iterations {
        let name = names[rng.below(3) as usize];
        let last_name = name;
        // Half small (the kill often lands around the commit), half up to 12 MB (it
        // lands mid-upload or on a replace of a large file).
        let largest = if rng.below(2) == 0 {
            65_536
        } else {
            12_000_000
        };
        let size = 1 + rng.below(largest) as usize;
        let body = data(size, rng.below(250) as u8);
        std::fs::write(c.join(name), &body).unwrap();
        write_transfer(&c, port, "kim", name);
        let client = Command::new(client_bin())
            .arg("--legacy")
            .current_dir(&c)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(rng.below(150)));
        server.kill9();
        kills += 1;
        let ok = client.wait_with_output().unwrap().status.success();
        let e = expect.entry(name).or_default();
        if ok {
            confirmed += 1;
            ever_confirmed.entry(name).or_default().push(body.clone());
            e.confirmed = Some(body);
            e.maybe.clear();
        } else {
            e.maybe.push(body);
        }
        server = Server::start(&sdir, port, &[]);
        // Start-up reconciliation has run before the server listens.
        let left = part_files(&sdir);
        if !left.is_empty() {
            violations.push(format!("iteration {i}: left behind {left:?}"));
        }
        let rows = records(&sdir);
        let meta =
            server_app::storage::sqlite::SqliteMetadata::open_read_only(&sdir.join("defensive.db"))
                .unwrap();
        for (name, contents) in &ever_confirmed {
            use server_app::storage::Metadata;
            let versions = meta.versions(None, Some(name)).unwrap();
            most_versions = most_versions.max(versions.len());
            let mut kept: Vec<Vec<u8>> = versions
                .iter()
                .filter(|v| v.verified)
                .map(|v| std::fs::read(sdir.join(&v.object)).unwrap_or_default())
                .collect();
            if let Some(r) = rows.iter().find(|r| r.file_name == *name && r.verified) {
                kept.push(std::fs::read(sdir.join(&r.object)).unwrap_or_default());
            }
            for (k, c) in contents.iter().enumerate() {
                if !kept.contains(c) {
                    violations.push(format!(
                        "iteration {i}: {name}: confirmed content #{k} is neither current nor a version"
                    ));
                }
            }
        }
        for (name, e) in &expect {
            let row = rows.iter().find(|r| r.file_name == *name);
            match row {
                None if e.confirmed.is_some() => {
                    violations.push(format!("iteration {i}: {name}: confirmed file lost"))
                }
                None => {}
                Some(r) => {
                    let bytes = std::fs::read(sdir.join(&r.object)).unwrap_or_default();
                    let allowed = e
                        .confirmed
                        .iter()
                        .chain(e.maybe.iter())
                        .any(|b| *b == bytes);
                    if *name == last_name && !ok && e.maybe.last() == Some(&bytes) {
                        unanswered_commits += 1;
                    }
                    if !r.verified || !allowed || bytes.len() as u64 != r.size {
                        violations.push(format!(
                            "iteration {i}: {name}: verified {} size {} bytes {} allowed {allowed}",
                            r.verified,
                            r.size,
                            bytes.len()
                        ));
                    }
                }
            }
        }
    }
    eprintln!(
        "kill loop: seed {seed}, iterations {iterations}, kills {kills}, \
         uploads confirmed {confirmed}, stored without 1604 {unanswered_commits}, \
         most versions of one name {most_versions}, violations {}",
        violations.len()
    );
    assert!(violations.is_empty(), "{violations:#?}");
    server.stop();
}
