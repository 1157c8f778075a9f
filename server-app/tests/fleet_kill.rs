//! The fleet when a server dies: two real `server` processes on one PostgreSQL
//! database and SeaweedFS's S3 behind a real HAProxy. One server is SIGKILLed while
//! clients upload through the balancer; the clients it was serving finish on the
//! other when run again, and the storage invariants hold across both servers: a
//! verified file is never replaced by an upload that was not confirmed (cut, or ended
//! in 902), every record names an object holding exactly the bytes its client sent,
//! no object is left that no record names, and the uploads the dead server held are
//! removed by the survivor once its lease runs out.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test harness: a failure is a panic

mod common;

use common::fleet::{received, set_s3_environment, slow_relay};

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::haproxy::{Backend, HaProxy, PROXY_FROM_LB};
use common::postgres::TestDatabase;
use common::{assert_ok, client_bin, client_dir, client_id, data, run_client, Server};
use protocol_core::ClientId;
use server_app::app::SHARED_LEASE;
use server_app::storage::postgres::PostgresMetadata;
use server_app::storage::s3::{S3Contents, S3Options};
use server_app::storage::{Contents, Metadata};

fn spawn_client(dir: &Path, args: &[&str]) -> Child {
    Command::new(client_bin())
        .arg("--legacy")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting a client")
}

/// Two servers on one PostgreSQL database and one S3 prefix (SeaweedFS), with
/// `--metrics` for the balancer's checks, and the stores as a test reads them.
struct Fleet {
    meta: PostgresMetadata,
    store: S3Contents,
    db: TestDatabase,
    root: tempfile::TempDir,
}

/// Starts the fleet: servers a and b, and HAProxy in front of them, both up.
fn start_fleet(what: &str) -> (Fleet, Server, Server, HaProxy) {
    let s3 = common::s3::s3_server();
    set_s3_environment(s3);
    let prefix = common::s3::fresh_prefix(what);
    let files = format!("s3://{}/{prefix}", s3.bucket);
    let db = TestDatabase::new();
    let root = tempfile::tempdir().unwrap();
    let args = [
        "--database",
        &db.url,
        "--files",
        &files,
        "--metrics",
        "127.0.0.1:0",
        // Short, so that the survivor takes back the dead server's uploads soon.
        "--abandoned-upload-timeout",
        "4",
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
    lb.wait_for("a", "UP");
    lb.wait_for("b", "UP");
    let fleet = Fleet {
        meta: PostgresMetadata::connect(&db.url).unwrap(),
        store: s3.contents(&prefix, S3Options::default()),
        db,
        root,
    };
    (fleet, a, b, lb)
}

impl Fleet {
    /// The bytes the record of `file` of the client in `dir` names, and whether it
    /// is verified.
    fn stored(&self, dir: &Path, file: &str) -> Option<(Vec<u8>, bool)> {
        let id = ClientId::from_hex(&client_id(dir)).expect("a client id in me.info");
        let record = self.meta.file(&id, file).unwrap()?;
        let bytes = self.store.read_object(&record.object).unwrap();
        Some((bytes, record.verified))
    }

    /// Every object is named by exactly one record or version (none left over, none
    /// shared).
    fn objects_match_records(&self) {
        let mut named: Vec<String> = self
            .meta
            .files(None)
            .unwrap()
            .into_iter()
            .map(|r| r.object)
            .chain(
                self.meta
                    .versions(None, None)
                    .unwrap()
                    .into_iter()
                    .map(|v| v.object),
            )
            .collect();
        let mut listed = self.store.objects().unwrap();
        named.sort();
        listed.sort();
        assert_eq!(listed, named, "objects and records");
    }
}

fn says(out: &Output) -> String {
    format!(
        "{}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn a_server_killed_mid_upload_leaves_its_clients_to_finish_on_the_other_and_nothing_verified_changes(
) {
    let (fleet, a, b, lb) = start_fleet("kill");
    let root = &fleet.root;

    // Four clients each store a first version of report.bin, verified.
    let n = 4u8;
    let first: Vec<Vec<u8>> = (0..n).map(|i| data(40_000 + i as usize, i)).collect();
    let dirs: Vec<PathBuf> = (0..n)
        .map(|i| {
            let name = format!("c{i}");
            client_dir(
                root.path(),
                &name,
                lb.port,
                "report.bin",
                &first[i as usize],
            )
        })
        .collect();
    for dir in &dirs {
        assert_ok(&run_client(dir, &[]), "a first version");
    }

    // Then a second version, 6 MiB each, slowly through a relay; server a is killed
    // once it has received 1 MiB of them.
    let relay = slow_relay(lb.port, 4 << 20);
    let second: Vec<Vec<u8>> = (0..n).map(|i| data(6 << 20, 100 + i)).collect();
    for (dir, bytes) in dirs.iter().zip(&second) {
        std::fs::write(dir.join("report.bin"), bytes).unwrap();
        common::write_transfer(dir, relay, &dir_name(dir), "report.bin");
    }
    let before = received(&a);
    // The protocol of the specification, named: with the default (auto), a client cut
    // here would try once more under another dialect, through the balancer to server
    // b, and this test is about the clients that were cut.
    let clients: Vec<Child> = dirs
        .iter()
        .map(|d| spawn_client(d, &["--dialect", "spec"]))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while received(&a) < before + f64::from(1 << 20) {
        assert!(
            Instant::now() < deadline,
            "server a never received the uploads"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    a.kill9();
    let outs: Vec<Output> = clients
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    let cut: Vec<usize> = (0..n as usize)
        .filter(|&i| !outs[i].status.success())
        .collect();
    assert!(!cut.is_empty(), "no client was being served by server a");
    assert!(cut.len() < n as usize, "server b served some: {outs:?}");
    for i in 0..n as usize {
        let (bytes, verified) = fleet.stored(&dirs[i], "report.bin").unwrap();
        assert!(verified);
        if cut.contains(&i) {
            // Cut mid-upload: the verified first version stands, byte for byte.
            assert!(bytes == first[i], "client {i}: the first version changed");
            let said = says(&outs[i]);
            assert!(
                said.contains("run again"),
                "client {i} says what to do: {said}"
            );
        } else {
            assert!(bytes == second[i], "client {i}: {}", says(&outs[i]));
        }
    }

    // The cut clients run again, straight to the balancer: server b finishes them.
    lb.wait_for("a", "DOWN");
    for &i in &cut {
        common::write_transfer(&dirs[i], lb.port, &dir_name(&dirs[i]), "report.bin");
        assert_ok(&run_client(&dirs[i], &[]), "a cut client run again");
        let (bytes, verified) = fleet.stored(&dirs[i], "report.bin").unwrap();
        assert!(verified && bytes == second[i], "client {i} run again");
    }

    // An upload that ends unconfirmed (902: the client's checksum never matches the
    // server's) does not replace the verified file, whichever server gets it.
    std::fs::write(dirs[0].join("report.bin"), data(70_000, 250)).unwrap();
    let out = run_client(&dirs[0], &["--checksum", "crc32"]);
    assert!(!out.status.success(), "{}", says(&out));
    let (bytes, verified) = fleet.stored(&dirs[0], "report.bin").unwrap();
    assert!(verified && bytes == second[0], "the verified file stays");

    // The uploads the dead server held go once its lease runs out (server b's
    // housekeeping); then the store holds exactly what the records name.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !fleet.store.uploads().unwrap().is_empty() {
        assert!(
            Instant::now() < deadline,
            "uploads of the dead server left: {:?}",
            fleet.store.uploads().unwrap()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    fleet.objects_match_records();
    let log = std::fs::read_to_string(b.dir.join("server.log")).unwrap();
    assert!(log.contains("abandoned upload removed"), "{log}");
    drop(lb);
    b.stop();
    drop(fleet);
}

/// A client with a connection per request (variant 7) has its packets spread over
/// both servers; one is killed in the middle. The upload continues on the survivor
/// (a packet the dead server was receiving fails, and the client run again starts
/// the file anew); at the end the verified bytes are the client's, and nothing else
/// is stored.
#[test]
fn a_connection_per_request_client_finishes_when_one_of_its_servers_is_killed() {
    let (fleet, a, b, lb) = start_fleet("kill-per-request");
    let root = &fleet.root;
    let contents = data(200 * 1024 - 33, 77);
    let dir = client_dir(root.path(), "perreq", lb.port, "p.bin", &contents);
    let per_request = ["--connection-per-request", "--packet-size", "1024"];
    let before = received(&a);
    let client = spawn_client(&dir, &per_request);
    let deadline = Instant::now() + Duration::from_secs(60);
    while received(&a) < before + 40_000.0 {
        assert!(Instant::now() < deadline, "server a never received packets");
        std::thread::sleep(Duration::from_millis(5));
    }
    a.kill9();
    let out = client.wait_with_output().unwrap();
    let mut runs = vec![says(&out)];
    if !out.status.success() {
        // Its packet was cut on the dead server, whose row of the upload stays its own
        // until its lease runs out (SHARED_LEASE); then server b removes it and the
        // client, run again as it says, starts the file anew.
        assert!(runs[0].contains("run again"), "{}", runs[0]);
        lb.wait_for("a", "DOWN");
        let deadline = Instant::now() + SHARED_LEASE + Duration::from_secs(30);
        while held_rows(&fleet.db.url) > 0 {
            assert!(Instant::now() < deadline, "the dead server's rows stay");
            std::thread::sleep(Duration::from_millis(200));
        }
        let again = run_client(&dir, &per_request);
        runs.push(says(&again));
        if !again.status.success() {
            let log = std::fs::read_to_string(b.dir.join("server.log")).unwrap_or_default();
            panic!("run again: {runs:?}\nserver b: {log}");
        }
    }
    let (bytes, verified) = fleet.stored(&dir, "p.bin").unwrap();
    assert!(verified && bytes == contents, "the stored bytes: {runs:?}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !fleet.store.uploads().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "uploads left");
        std::thread::sleep(Duration::from_millis(200));
    }
    fleet.objects_match_records();
    eprintln!("client runs: {}", runs.len());
    drop(lb);
    b.stop();
    drop(fleet);
}

/// Rows of the uploads table some server holds (between the client's runs the
/// survivor holds none: those left are the dead server's).
fn held_rows(url: &str) -> i64 {
    let pg = server_app::storage::postgres::Pg::connect(url).unwrap();
    pg.run("counting held rows", |c| async move {
        let row = c
            .query_one(
                "SELECT count(*) FROM uploads WHERE owner_instance IS NOT NULL",
                &[],
            )
            .await?;
        Ok(row.get::<_, i64>(0))
    })
    .unwrap()
}

fn dir_name(dir: &Path) -> String {
    dir.file_name().unwrap().to_string_lossy().into_owned()
}
