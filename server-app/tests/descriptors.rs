//! The connection cap fitted to the descriptor limit: with a soft limit of 64 or 1,024,
//! idle connections beyond what the limit holds are shed for a real client, instead
//! of taking every descriptor until they time out.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test harness: a failure is a panic

mod common;

use std::net::TcpStream;

use common::*;

/// Raises this test process's own soft limit (never lowers it) so that it can hold
/// `n` descriptors; false when its hard limit does not allow that many.
fn room_for(n: u64) -> bool {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let Rlimit { current, maximum } = getrlimit(Resource::Nofile);
    if current.is_none_or(|c| c >= n) {
        return true;
    }
    if maximum.is_some_and(|h| h < n) {
        return false;
    }
    let raised = Rlimit {
        current: Some(n),
        maximum,
    };
    setrlimit(Resource::Nofile, raised).is_ok()
}

/// The two tests hold hundreds of sockets each: one at a time.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn idle_connections_are_shed_for_a_client(nofile: u64, idle: usize, lowered_to: usize) {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    if !room_for(idle as u64 + 256) {
        eprintln!("skipped: this process may not hold {idle} sockets");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let sdir = tmp.path().join("server");
    let Some(server) = Server::start_limited(&sdir, nofile, &[]) else {
        eprintln!("skipped: no prlimit");
        return;
    };
    let log = std::fs::read_to_string(sdir.join("server.log")).unwrap();
    assert!(
        log.contains(&format!("--max-connections 1024 lowered to {lowered_to}")),
        "{log}"
    );
    // Connections that never send a byte, more than the limit can hold.
    let held: Vec<TcpStream> = (0..idle)
        .filter_map(|_| TcpStream::connect(("127.0.0.1", server.port)).ok())
        .collect();
    assert!(held.len() >= idle * 9 / 10, "{} connected", held.len());
    // The idle ones would hold their descriptors for the first-header timeout (10 s);
    // a client that waits 8 s at most for each answer is served only if they are
    // shed for it.
    let c = client_dir(tmp.path(), "alice", server.port, "a.bin", &data(50_000, 1));
    let started = std::time::Instant::now();
    let out = run_client(&c, &["--timeout", "8"]);
    // A figure to read (`-- --nocapture`), not a timed assertion: machines are shared.
    eprintln!(
        "descriptor limit {nofile}: a client past {} idle connections served in {:.2} s",
        held.len(),
        started.elapsed().as_secs_f64()
    );
    assert_ok(&out, &format!("a client past {idle} idle connections"));
    drop(held);
    server.stop();
}

#[test]
fn with_64_descriptors_idle_connections_are_shed_for_a_client() {
    idle_connections_are_shed_for_a_client(64, 100, 16);
}

#[test]
fn with_1024_descriptors_idle_connections_are_shed_for_a_client() {
    idle_connections_are_shed_for_a_client(1024, 1100, 464);
}
