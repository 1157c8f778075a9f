//! Two real servers behind a real HAProxy (TCP mode, health checks on `/healthz`):
//! clients reach a server through the balancer, a server stopped by SIGTERM is taken
//! out and its clients go to the other, and each server's counters say who served what.
//! (The PROXY protocol between HAProxy and the servers: tests/proxy_protocol.rs.)
#![allow(clippy::unwrap_used, clippy::expect_used)] // test harness: a failure is a panic

mod common;

use std::path::Path;

use common::haproxy::{Backend, HaProxy, PROXY_FROM_LB};
use common::scrape::{scrape, Scrape};
use common::*;

fn served(s: &Scrape, code: &str) -> f64 {
    s.sum(
        "fileserver_requests_total",
        &[("code", code), ("outcome", "ok")],
    )
}

fn upload_through(root: &Path, lb: &HaProxy, name: &str, seed: u8) {
    let contents = data(100_000 + seed as usize, seed);
    let client = client_dir(root, name, lb.port, "f.bin", &contents);
    assert_ok(&run_client(&client, &[]), name);
}

#[test]
fn two_servers_behind_haproxy_share_clients_and_survive_a_stop() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    // HAProxy sends each client's address in a PROXY v2 header.
    let args = [
        "--metrics",
        "127.0.0.1:0",
        PROXY_FROM_LB[0],
        PROXY_FROM_LB[1],
    ];
    let a = Server::start(&root.join("a"), 0, &args);
    let b = Server::start(&root.join("b"), 0, &args);
    for s in [&a, &b] {
        assert_eq!(s.http_get("/healthz"), (200, "ok\n".to_string()));
    }
    let lb = HaProxy::start(
        &root.join("lb"),
        &[Backend::proxied("a", &a), Backend::proxied("b", &b)],
    );
    // HAProxy's own health checks found both up.
    lb.wait_for("a", "UP");
    lb.wait_for("b", "UP");

    // Round robin over two servers: four clients, each server serves some.
    for (i, name) in ["c0", "c1", "c2", "c3"].iter().enumerate() {
        upload_through(root, &lb, name, i as u8);
    }
    let (sa, sb) = (
        scrape(a.metrics_port().unwrap()),
        scrape(b.metrics_port().unwrap()),
    );
    assert_eq!(
        served(&sa, "825") + served(&sb, "825"),
        4.0,
        "{sa:?}\n{sb:?}"
    );
    assert!(served(&sa, "825") >= 1.0, "a served no client: {sa:?}");
    assert!(served(&sb, "825") >= 1.0, "b served no client: {sb:?}");
    let verified = |s: &Scrape| s.sum("fileserver_uploads_total", &[("result", "verified")]);
    assert_eq!(verified(&sa) + verified(&sb), 4.0);
    let (b_before, b_verified) = (served(&sb, "825"), verified(&sb));

    // SIGTERM: a drains (503) and closes; HAProxy's checks take it out.
    a.stop();
    lb.wait_for("a", "DOWN");
    for (i, name) in ["d0", "d1", "d2"].iter().enumerate() {
        upload_through(root, &lb, name, 10 + i as u8);
    }
    let sb = scrape(b.metrics_port().unwrap());
    assert_eq!(
        served(&sb, "825"),
        b_before + 3.0,
        "b took every new client"
    );
    assert_eq!(verified(&sb), b_verified + 3.0);
    let files = b.list_files();
    for name in ["d0", "d1", "d2"] {
        assert!(files.contains(name), "{name} not stored on b: {files}");
    }
    lb.stop();
    b.stop();
}

#[test]
fn a_stopping_server_reports_503_and_is_taken_out_while_an_upload_finishes() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    let extra = ["--metrics", "127.0.0.1:0", "--shutdown-grace", "60"];
    let mut a = Server::start(&root.join("a"), 0, &extra);
    let b = Server::start(&root.join("b"), 0, &extra);
    let lb = HaProxy::start(
        &root.join("lb"),
        &[Backend::of("a", &a), Backend::of("b", &b)],
    );
    lb.wait_for("a", "UP");
    lb.wait_for("b", "UP");

    // An upload to a that stalls half way: a's stop waits for it (the grace).
    let (via, stalled) = proxy(a.port, Tamper::Stall(1_000_000));
    let client = client_dir(root, "slow", via, "big.bin", &data(4_000_000, 3));
    let mut slow = std::process::Command::new(client_bin())
        .arg("--legacy")
        .current_dir(&client)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    while !stalled.load(std::sync::atomic::Ordering::SeqCst) {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let term = std::process::Command::new("kill")
        .args(["-TERM", &a.child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());

    // Still running (the upload holds it), yet unhealthy: the balancer drains it.
    lb.wait_for("a", "DOWN");
    assert_eq!(a.http_get("/healthz"), (503, "stopping\n".to_string()));
    assert!(a.child.try_wait().unwrap().is_none(), "a exited already");
    upload_through(root, &lb, "meanwhile", 9);
    assert!(b.list_files().contains("meanwhile"));

    let _ = slow.kill();
    let _ = slow.wait();
    lb.stop();
}
