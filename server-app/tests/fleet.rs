//! Two real `server` processes sharing one PostgreSQL database (started by
//! `.ci/postgres.sh`, or `FLEET_DATABASE_URL`) and one contents store: a folder behind
//! a round-robin TCP relay, and SeaweedFS's S3 (started by `.ci/seaweedfs.sh`) behind a
//! real HAProxy. A client with a connection per request (variant 7) has its packets
//! land on both servers, which continue the upload from the shared table; the same
//! on a database that takes TLS connections only (`.ci/postgres.sh start --tls`).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test harness: a failure is a panic

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::haproxy::{Backend, HaProxy, PROXY_FROM_LB};
use common::postgres::TestDatabase;
use common::{assert_ok, client_dir, data, run_client, run_clients_at_once, Server};
use server_app::storage::s3::S3Options;
use server_app::storage::Contents;

/// A TCP relay that sends each new connection to the next of `targets` in turn (what
/// a balancer in round-robin mode does); returns its port.
fn round_robin(targets: Vec<u16>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let next = Arc::new(AtomicUsize::new(0));
    std::thread::spawn(move || {
        for inbound in listener.incoming().flatten() {
            let i = next.fetch_add(1, Ordering::Relaxed) % targets.len();
            let Ok(outbound) = TcpStream::connect(("127.0.0.1", targets[i])) else {
                continue;
            };
            let (Ok(a), Ok(b)) = (inbound.try_clone(), outbound.try_clone()) else {
                continue;
            };
            std::thread::spawn(move || pipe(inbound, outbound));
            std::thread::spawn(move || pipe(b, a));
        }
    });
    port
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 64 * 1024];
    while let Ok(n) = from.read(&mut buf) {
        if n == 0 || to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

/// Every committed object in the shared folder.
fn objects(files: &Path) -> Vec<Vec<u8>> {
    let mut found = Vec::new();
    let Ok(clients) = std::fs::read_dir(files.join("objects")) else {
        return found;
    };
    for client in clients.flatten() {
        for object in std::fs::read_dir(client.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            found.push(std::fs::read(object.path()).unwrap());
        }
    }
    found
}

#[test]
fn a_connection_per_request_client_alternating_two_servers_completes() {
    alternating_two_servers(&TestDatabase::new());
}

/// The same fleet on a PostgreSQL that takes TLS connections only, both servers
/// checking its certificate (sslmode=verify-full, sslrootcert).
#[test]
fn a_fleet_on_a_database_that_requires_tls_completes() {
    let db = TestDatabase::with_tls();
    assert!(db.url.contains("sslmode=verify-full"), "{}", db.url);
    alternating_two_servers(&db);
}

fn alternating_two_servers(db: &TestDatabase) {
    let root = tempfile::tempdir().unwrap();
    let url = db.url.clone();
    let files = root.path().join("files");
    std::fs::create_dir_all(&files).unwrap();
    let files_arg = files.to_str().unwrap().to_string();
    let args = ["--database", &url, "--files", &files_arg];
    let a = Server::start(&root.path().join("a"), 0, &args);
    let b = Server::start(&root.path().join("b"), 0, &args);
    let relay = round_robin(vec![a.port, b.port]);
    // 30 packets of 1 KiB: each on a connection of its own, alternately on a and b.
    let contents = data(30 * 1024 - 100, 3);
    let dir = client_dir(root.path(), "alice", relay, "f.bin", &contents);
    let out = run_client(&dir, &["--connection-per-request", "--packet-size", "1024"]);
    assert_ok(&out, "the client");
    // Both servers served its connections.
    for s in [&a, &b] {
        let log = std::fs::read_to_string(s.dir.join("server.log")).unwrap();
        assert!(log.contains("dialect seen"), "{log}");
        assert!(!log.contains("could not resume"), "{log}");
    }
    // The stored bytes are the client's.
    assert_eq!(objects(&files), vec![contents]);
    assert!(
        std::fs::read_dir(files.join("uploads"))
            .unwrap()
            .next()
            .is_none(),
        "no upload left behind"
    );
    a.stop();
    b.stop();
}

#[test]
fn clients_through_haproxy_to_two_servers_on_postgres_and_s3_are_all_verified() {
    let s3 = common::s3::s3_server();
    // The servers read the endpoint and credentials from the usual AWS variables (the
    // same values for every test of this process).
    for (k, v) in [
        ("AWS_ENDPOINT_URL", s3.endpoint.as_str()),
        ("AWS_ACCESS_KEY_ID", s3.key.as_str()),
        ("AWS_SECRET_ACCESS_KEY", s3.secret.as_str()),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ALLOW_HTTP", "true"),
    ] {
        std::env::set_var(k, v);
    }
    let prefix = common::s3::fresh_prefix("fleet");
    let files = format!("s3://{}/{prefix}", s3.bucket);
    let root = tempfile::tempdir().unwrap();
    let db = TestDatabase::new();
    let url = db.url.clone();
    let args = [
        "--database",
        &url,
        "--files",
        &files,
        "--metrics",
        "127.0.0.1:0",
        // HAProxy sends each client's address in a PROXY v2 header.
        PROXY_FROM_LB[0],
        PROXY_FROM_LB[1],
    ];
    let a = Server::start(&root.path().join("a"), 0, &args);
    let b = Server::start(&root.path().join("b"), 0, &args);
    let lb = HaProxy::start(
        &root.path().join("lb"),
        &[Backend::proxied("a", &a), Backend::proxied("b", &b)],
    );

    // Several clients at once through the balancer.
    let mut expected = Vec::new();
    let mut dirs = Vec::new();
    for i in 0..6u8 {
        let contents = data(150_000 + 7_000 * i as usize, 40 + i);
        let name = format!("c{i}");
        dirs.push(client_dir(root.path(), &name, lb.port, "f.bin", &contents));
        expected.push(contents);
    }
    for (i, out) in run_clients_at_once(&dirs).iter().enumerate() {
        assert_ok(out, &format!("client {i}"));
    }
    // And one with a connection per request: its packets alternate between the servers.
    let contents = data(24 * 1024 - 50, 9);
    let dir = client_dir(root.path(), "perreq", lb.port, "g.bin", &contents);
    let out = run_client(&dir, &["--connection-per-request", "--packet-size", "1024"]);
    assert_ok(&out, "the connection-per-request client");
    expected.push(contents);

    for s in [&a, &b] {
        let log = std::fs::read_to_string(s.dir.join("server.log")).unwrap();
        assert!(
            log.contains("dialect seen"),
            "each server served clients: {log}"
        );
        assert!(!log.contains("could not resume"), "{log}");
    }
    // The object store holds exactly the clients' bytes, and no upload is left.
    let store = s3.contents(&prefix, S3Options::default());
    let mut stored: Vec<Vec<u8>> = store
        .objects()
        .unwrap()
        .iter()
        .map(|o| store.read_object(o).unwrap())
        .collect();
    stored.sort();
    expected.sort();
    assert_eq!(stored.len(), expected.len());
    assert!(
        stored == expected,
        "the stored bytes are the clients' bytes"
    );
    assert_eq!(
        store.uploads().unwrap(),
        Vec::<String>::new(),
        "no upload left"
    );

    // The operator commands work on the fleet's stores, given the same options.
    let admin = |args: &[&str]| {
        Command::new(common::server_bin())
            .args(["--database", &url, "--files", &files])
            .args(args)
            .current_dir(root.path())
            .output()
            .unwrap()
    };
    let out = admin(&["list-files", "--json"]);
    assert_ok(&out, "list-files");
    let listed = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(listed.matches("\"verified\":true").count(), 7, "{listed}");
    assert!(listed.contains("\"client_name\":\"perreq\""), "{listed}");
    let out = admin(&["delete-file", "perreq", "g.bin", "--yes"]);
    assert_ok(&out, "delete-file");
    assert_eq!(
        store.objects().unwrap().len(),
        6,
        "the object went with the record"
    );
    let out = admin(&["list-clients"]);
    assert_ok(&out, "list-clients");
    assert!(String::from_utf8_lossy(&out.stdout).contains("perreq"));
    let out = admin(&["status"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/metrics"));
    drop(lb);
    a.stop();
    b.stop();
}
