//! The secure mode end to end with the real binaries: a file's round trip (put, the
//! default `client FILE`, list, get of the current content and of a version, rm,
//! versions, restore) on SQLite with a local folder and on PostgreSQL with S3
//! (SeaweedFS), an unverified file refused unless asked for, and the deployed
//! peers' legacy dialects served by the same running server as a secure client.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test harness: a failure is a panic

mod common;
mod secure_kit;

use std::path::Path;

use common::postgres::TestDatabase;
use common::{data, Server};
use secure_kit::*;

/// The whole round trip of one client's file against `server`.
fn round_trip(root: &Path, server: &Server) {
    let dir = folder(root, "rita", &server.addr(), "f.bin");
    let (v1, v2) = (data(300_000, 1), data(1_200_017, 2));
    std::fs::write(dir.join("v1.keep"), &v1).unwrap();
    std::fs::write(dir.join("v2.keep"), &v2).unwrap();

    // First version with `put`: registered in the secure mode, the server pinned.
    std::fs::write(dir.join("f.bin"), &v1).unwrap();
    let out = client(&dir, &["put", "f.bin"]);
    ok(&out, "client put");
    assert!(stderr(&out).contains("pinned"), "{}", said(&out));
    assert!(pinned(&dir, &server.addr()).is_some());
    assert!(dir.join("secure.key").exists());
    // The second with the default command.
    std::fs::write(dir.join("f.bin"), &v2).unwrap();
    let out = client(&dir, &["f.bin"]);
    ok(&out, "client FILE");
    let sha2 = sha256sum(&dir.join("v2.keep"));
    assert!(said(&out).contains(&sha2), "{}", said(&out));

    // Listed once, verified, its SHA-256 the second upload's, one version kept.
    let out = client(&dir, &["list", "--json"]);
    ok(&out, "list");
    let listed = stdout(&out);
    assert!(listed.contains("\"name\":\"f.bin\""), "{listed}");
    assert!(listed.contains("\"verified\":true"), "{listed}");
    assert!(
        listed.contains(&format!("\"sha256\":\"{sha2}\"")),
        "{listed}"
    );
    assert_eq!(json_numbers(&listed, "versions"), vec![1], "{listed}");
    assert_eq!(json_numbers(&listed, "size"), vec![v2.len() as u64]);
    let out = client(&dir, &["versions", "f.bin", "--json"]);
    ok(&out, "versions");
    let kept = stdout(&out);
    let ids = json_numbers(&kept, "version");
    assert_eq!(ids.len(), 1, "{kept}");
    let sha1 = sha256sum(&dir.join("v1.keep"));
    assert!(kept.contains(&sha1), "{kept}");

    // The current content and the version, byte for byte (the real `cmp`).
    ok(&client(&dir, &["get", "f.bin", "-o", "got2"]), "get");
    assert!(same_bytes(&dir.join("got2"), &dir.join("v2.keep")));
    let v = ids[0].to_string();
    ok(
        &client(&dir, &["get", "f.bin", "--version", &v, "-o", "got1"]),
        "get --version",
    );
    assert!(same_bytes(&dir.join("got1"), &dir.join("v1.keep")));
    // Never over an existing file without --force.
    fails(
        &client(&dir, &["get", "f.bin", "-o", "got1"]),
        2,
        "get over a file",
    );
    assert!(same_bytes(&dir.join("got1"), &dir.join("v1.keep")));

    // rm: no longer listed, kept as a version; restore brings it back.
    ok(&client(&dir, &["rm", "f.bin"]), "rm");
    let out = client(&dir, &["list", "--json"]);
    ok(&out, "list after rm");
    assert_eq!(stdout(&out).trim(), "[]", "{}", said(&out));
    fails(
        &client(&dir, &["get", "f.bin", "-o", "gone"]),
        4,
        "get removed",
    );
    let out = client(&dir, &["versions", "f.bin", "--json"]);
    ok(&out, "versions after rm");
    let kept = stdout(&out);
    let ids = json_numbers(&kept, "version");
    assert_eq!(ids.len(), 2, "{kept}");
    // Newest first: the removed content.
    assert!(
        kept.find(&sha2).unwrap() < kept.find(&sha1).unwrap(),
        "{kept}"
    );
    let newest = ids[0].to_string();
    ok(&client(&dir, &["restore", "f.bin", &newest]), "restore");
    let out = client(&dir, &["list", "--json"]);
    assert!(stdout(&out).contains(&format!("\"sha256\":\"{sha2}\"")));
    ok(
        &client(&dir, &["get", "f.bin", "-o", "back"]),
        "get restored",
    );
    assert!(same_bytes(&dir.join("back"), &dir.join("v2.keep")));
    // And the older version is still there to restore.
    ok(
        &client(&dir, &["restore", "f.bin", &ids[1].to_string()]),
        "restore v1",
    );
    ok(&client(&dir, &["get", "f.bin", "-o", "back1"]), "get v1");
    assert!(same_bytes(&dir.join("back1"), &dir.join("v1.keep")));
}

/// An upload that ends unconfirmed (the legacy protocol's 902: the client's CRC-32
/// never matches the server's cksum) is stored unverified: `get` refuses it unless
/// `--unverified`.
fn unverified(root: &Path, server: &Server) {
    let dir = folder(root, "ulla", &server.addr(), "u.bin");
    let bytes = data(50_000, 7);
    std::fs::write(dir.join("u.bin"), &bytes).unwrap();
    let out = client(&dir, &["--legacy", "--checksum", "crc32", "u.bin"]);
    fails(&out, 5, "a legacy upload ending in 902");
    // The first secure session signs in with the legacy key and upgrades it.
    let out = client(&dir, &["list", "--json"]);
    ok(&out, "list");
    let listed = stdout(&out);
    assert!(listed.contains("\"name\":\"u.bin\""), "{listed}");
    assert!(listed.contains("\"verified\":false"), "{listed}");
    let out = client(&dir, &["get", "u.bin", "-o", "u.out"]);
    fails(&out, 4, "get of an unverified file");
    assert!(stderr(&out).contains("unverified"), "{}", said(&out));
    assert!(!dir.join("u.out").exists() && !dir.join(".u.out.part").exists());
    ok(
        &client(&dir, &["get", "u.bin", "--unverified", "-o", "u.out"]),
        "get --unverified",
    );
    assert!(same_bytes(&dir.join("u.out"), &dir.join("u.bin")));
}

#[test]
fn round_trip_on_sqlite_and_a_local_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("server"), 0, &[]);
    round_trip(tmp.path(), &server);
    unverified(tmp.path(), &server);
    server.stop();
}

#[test]
fn round_trip_on_postgres_and_s3() {
    let s3 = common::s3::s3_server();
    set_s3_environment(s3);
    let files = format!(
        "s3://{}/{}",
        s3.bucket,
        common::s3::fresh_prefix("secure-e2e")
    );
    let db = TestDatabase::new();
    let tmp = tempfile::tempdir().unwrap();
    let args = ["--database", db.url.as_str(), "--files", files.as_str()];
    let server = Server::start(&tmp.path().join("server"), 0, &args);
    round_trip(tmp.path(), &server);
    unverified(tmp.path(), &server);
    server.stop();
}

/// The deployed peers' dialects (docs/PROTOCOL.md section 8) with `--legacy`, on
/// the same running server as a secure client, before and after it.
#[test]
fn legacy_dialects_and_a_secure_client_share_one_running_server() {
    let tmp = tempfile::tempdir().unwrap();
    let sdir = tmp.path().join("server");
    let server = Server::start(&sdir, 0, &[]);
    let sec = folder(tmp.path(), "sam", &server.addr(), "s.bin");
    std::fs::write(sec.join("s.bin"), data(400_000, 11)).unwrap();
    ok(&client(&sec, &["put", "s.bin"]), "secure put");

    let dialects: [(&str, &[&str]); 3] = [
        ("pad", &["--dialect", "padded"]),
        ("percon", &["--dialect", "per-connection"]),
        (
            "bigend",
            &["--big-endian", "--total-first", "--packet-size", "4096"],
        ),
    ];
    for (i, (name, args)) in dialects.iter().enumerate() {
        let dir = folder(tmp.path(), name, &server.addr(), "l.bin");
        let bytes = data(20_000 + 3_001 * i, 20 + i as u8);
        std::fs::write(dir.join("l.bin"), &bytes).unwrap();
        let mut all = vec!["--legacy"];
        all.extend_from_slice(args);
        let out = client(&dir, &all);
        ok(&out, name);
        assert!(
            !dir.join("known_servers").exists(),
            "{name}: nothing pinned"
        );
        let id = common::client_id(&dir);
        let stored = common::stored_path(&sdir, &id, "l.bin");
        assert_eq!(std::fs::read(stored).unwrap(), bytes, "{name}");
        let record = common::records(&sdir)
            .into_iter()
            .find(|r| r.client.to_hex() == id)
            .unwrap();
        assert!(record.verified, "{name}");
    }
    // Logged as each connection closes, which may come after the client's exit.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let log = server.log();
        if log.contains("zero-padded packets") && log.contains("big-endian") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "dialects seen: {log}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }

    // The secure client, after them, on the same server.
    ok(
        &client(&sec, &["get", "s.bin", "-o", "s.out"]),
        "secure get",
    );
    assert!(same_bytes(&sec.join("s.out"), &sec.join("s.bin")));
    std::fs::write(sec.join("s.bin"), data(10_000, 12)).unwrap();
    ok(&client(&sec, &["s.bin"]), "secure put again");
    let out = client(&sec, &["list", "--json"]);
    assert_eq!(json_numbers(&stdout(&out), "versions"), vec![1]);
    server.stop();
}
