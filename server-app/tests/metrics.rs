//! `/metrics` and `/healthz`: the series after a real upload, and the health answer
//! through every phase of a server and a failing store.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test harness: a failure is a panic

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::faulty::{Fault, FaultyMeta, Plan};
use common::scrape::{scrape, Scrape};
use common::*;
use server_app::metrics::http::{MetricsServer, Observed};
use server_app::metrics::{Metrics, Phase};
use server_app::storage::sqlite::SqliteMetadata;

#[test]
fn metrics_parse_and_count_an_upload() {
    let root = tempfile::tempdir().unwrap();
    let server = Server::start(&root.path().join("s"), 0, &["--metrics", "127.0.0.1:0"]);
    let port = server.metrics_port().expect("a metrics listening line");
    let before = scrape(port);
    assert_eq!(before.value("fileserver_uploads_total", &[]), None);
    assert_eq!(
        before.value("fileserver_received_bytes_total", &[]),
        Some(0.0)
    );

    let contents = data(300_000, 7);
    let client = client_dir(root.path(), "alice", server.port, "f.bin", &contents);
    assert_ok(&run_client(&client, &[]), "client");

    // The connection's end is counted when the server has closed it.
    let deadline = Instant::now() + Duration::from_secs(20);
    let after = loop {
        let s = scrape(port);
        if s.value("fileserver_connections_open", &[]) == Some(0.0) {
            break s;
        }
        assert!(Instant::now() < deadline, "a connection stays open: {s:?}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let v = |name: &str, labels: &[(&str, &str)]| after.value(name, labels);
    assert_eq!(
        v("fileserver_uploads_total", &[("result", "verified")]),
        Some(1.0)
    );
    assert_eq!(v("fileserver_uploads_total", &[("result", "failed")]), None);
    assert_eq!(
        v("fileserver_received_bytes_total", &[]),
        Some(contents.len() as f64)
    );
    for code in ["825", "826", "828", "900"] {
        assert_eq!(
            v(
                "fileserver_requests_total",
                &[("code", code), ("outcome", "ok")]
            ),
            Some(1.0),
            "request {code}"
        );
    }
    // The client's connection, and the test's own probe when the server started.
    assert!(v("fileserver_connections_accepted_total", &[]) >= Some(1.0));
    assert_eq!(v("fileserver_connections_refused_total", &[]), Some(0.0));
    assert_eq!(
        after.types["fileserver_storage_duration_seconds"],
        "histogram"
    );
    for (store, op) in [
        ("metadata", "register"),
        ("metadata", "switch"),
        ("contents", "write"),
        ("contents", "publish"),
    ] {
        let count = v(
            "fileserver_storage_duration_seconds_count",
            &[("store", store), ("op", op)],
        )
        .unwrap_or(0.0);
        assert!(count > 0.0, "no {store} {op} timed: {after:?}");
        let inf = v(
            "fileserver_storage_duration_seconds_bucket",
            &[("store", store), ("op", op), ("le", "+Inf")],
        );
        assert_eq!(inf, Some(count), "{store} {op}: +Inf bucket is the count");
    }
    server.stop();
}

#[test]
fn every_transport_counts_refusals_and_reports_health() {
    let root = tempfile::tempdir().unwrap();
    for transport in ["tokio", "std", "smol"] {
        let server = Server::start(
            &root.path().join(transport),
            0,
            &[
                "--metrics",
                "127.0.0.1:0",
                "--max-connections",
                "1",
                "--transport",
                transport,
            ],
        );
        assert_eq!(
            server.http_get("/healthz"),
            (200, "ok\n".to_string()),
            "{transport}"
        );
        let port = server.metrics_port().unwrap();
        // One connection holds the only place, registered so that it is busy (an
        // idle one would be shed for a newcomer); the next ones are refused.
        let held = loop {
            use std::io::{Read, Write};
            let mut s = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
            let mut req = vec![0u8; 16];
            req.push(3);
            req.extend_from_slice(&825u16.to_le_bytes());
            req.extend_from_slice(&255u32.to_le_bytes());
            let mut name = format!("holder-{transport}").into_bytes();
            name.resize(255, 0);
            req.extend_from_slice(&name);
            s.write_all(&req).unwrap();
            let mut head = [0u8; 7];
            if s.read_exact(&mut head).is_ok() && u16::from_le_bytes([head[1], head[2]]) == 1600 {
                break s;
            }
            // The start-up probe still held the place (this one was refused).
            std::thread::sleep(Duration::from_millis(20));
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let _more = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
            let s = scrape(port);
            if s.value("fileserver_connections_refused_total", &[]) >= Some(1.0) {
                assert!(s.value("fileserver_connections_accepted_total", &[]) >= Some(1.0));
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{transport}: no refusal counted: {s:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        drop(held);
        server.stop();
    }
}

#[test]
fn a_server_without_the_option_opens_no_metrics_listener() {
    let root = tempfile::tempdir().unwrap();
    let server = Server::start(&root.path().join("s"), 0, &[]);
    assert_eq!(server.metrics_port(), None);
    let log = std::fs::read_to_string(server.dir.join("server.log")).unwrap();
    assert!(!log.contains("metrics"), "{log}");
    server.stop();
}

#[test]
fn a_taken_metrics_port_stops_the_start() {
    let root = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let at = taken.local_addr().unwrap().to_string();
    let dir = root.path().join("s");
    std::fs::create_dir_all(&dir).unwrap();
    let out = std::process::Command::new(server_bin())
        .args(["--bind", "127.0.0.1", "--port", "0", "--metrics", &at])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot serve metrics on"), "{err}");
}

#[test]
fn healthz_follows_the_phase_and_the_store() {
    let root = tempfile::tempdir().unwrap();
    let metrics = Arc::new(Metrics::new());
    // The store's first health query fails; later ones answer.
    let plan = Plan::at(1, Fault::Fail);
    let meta = FaultyMeta {
        inner: SqliteMetadata::open(&root.path().join("defensive.db")).unwrap(),
        plan: plan.clone(),
    };
    let server = MetricsServer::start(
        "127.0.0.1:0".parse().unwrap(),
        Observed {
            metrics: metrics.clone(),
            metadata: Arc::new(meta),
        },
    )
    .unwrap();
    let port = server.local_addr().port();

    assert_eq!(http_get(port, "/healthz"), (503, "starting\n".into()));
    assert_eq!(plan.steps(), 0, "no store query before serving");
    metrics.set_phase(Phase::Serving);
    let (status, body) = http_get(port, "/healthz");
    assert_eq!(status, 503, "a failing store is unhealthy: {body}");
    // The backend's message is for the log, not for whoever asks.
    assert_eq!(body, "storage unavailable\n");
    // Asked again within the interval: the last answer, and no second query.
    assert_eq!(http_get(port, "/healthz").0, 503);
    assert_eq!(plan.steps(), 1, "one store query per interval");
    std::thread::sleep(server_app::metrics::http::HEALTH_INTERVAL + Duration::from_millis(100));
    assert_eq!(http_get(port, "/healthz"), (200, "ok\n".into()));
    metrics.set_phase(Phase::Stopping);
    assert_eq!(http_get(port, "/healthz"), (503, "stopping\n".into()));
    assert_eq!(http_get(port, "/nope").0, 404);
    let body = http_get(port, "/metrics").1;
    Scrape::parse(&body).unwrap();
    assert!(body.ends_with("# EOF\n"), "{body}");
    server.stop();
}

/// The versions kept and their bytes, counted from the metadata at start and at each
/// housekeeping round.
#[test]
fn metrics_count_the_versions_kept() {
    let root = tempfile::tempdir().unwrap();
    // A short registration hold: housekeeping runs every quarter of a second.
    let args = ["--metrics", "127.0.0.1:0", "--registration-hold", "1"];
    let server = Server::start(&root.path().join("s"), 0, &args);
    let port = server.metrics_port().expect("a metrics listening line");
    assert_eq!(scrape(port).value("fileserver_versions", &[]), Some(0.0));
    let first = data(12_345, 8);
    let client = client_dir(root.path(), "alice", server.port, "f.bin", &first);
    assert_ok(&run_client(&client, &[]), "first");
    std::fs::write(client.join("f.bin"), data(999, 9)).unwrap();
    assert_ok(&run_client(&client, &[]), "second");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = scrape(port);
        if s.value("fileserver_versions", &[]) == Some(1.0) {
            assert_eq!(s.value("fileserver_version_bytes", &[]), Some(12_345.0));
            break;
        }
        assert!(Instant::now() < deadline, "no version counted: {s:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    server.stop();
}

/// 400 idle connections to the metrics port of a server limited to 256 descriptors:
/// the listener keeps a handful and closes the rest at once, so the protocol port
/// still serves a real client; the metrics answer again once the idle ones time out.
#[test]
fn idle_metrics_connections_leave_the_protocol_port_serving() {
    let tmp = tempfile::tempdir().unwrap();
    let sdir = tmp.path().join("server");
    let Some(server) = Server::start_limited(&sdir, 256, &["--metrics", "127.0.0.1:0"]) else {
        eprintln!("skipped: no prlimit to lower the descriptor limit");
        return;
    };
    let port = server.port;
    let mport = server.metrics_port().expect("metrics port");
    let idle: Vec<std::net::TcpStream> = (0..400)
        .filter_map(|_| std::net::TcpStream::connect(("127.0.0.1", mport)).ok())
        .collect();
    assert!(idle.len() >= 300, "{} connected", idle.len());
    let c = client_dir(tmp.path(), "alice", port, "a.bin", &data(200_000, 3));
    assert_ok(
        &run_client(&c, &[]),
        "a client while 400 idle metrics connections wait",
    );
    // prlimit runs the server in its own process: the descriptors it holds now.
    let fds = std::fs::read_dir(format!("/proc/{}/fd", server.child.id()))
        .map(|d| d.count())
        .unwrap_or(0);
    assert!(
        fds < 100,
        "the server holds {fds} descriptors for 400 idle connections"
    );
    drop(idle);
    // The idle ones the listener kept end at its header timeout; then it answers.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answered = std::panic::catch_unwind(|| http_get(mport, "/healthz"));
        if let Ok((200, _)) = answered {
            break;
        }
        assert!(Instant::now() < deadline, "metrics never answered again");
        std::thread::sleep(Duration::from_millis(200));
    }
    server.stop();
}
