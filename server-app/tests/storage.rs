//! The storage promises, one case each, against the real binaries: names that clean
//! up alike, two connections of one client, a verified `.part` file, a stop during an
//! upload, a second server, an abandoned upload, a key takeover, a held name, a broken
//! database and listings where there is none.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test harness: a failure is a panic

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use common::*;
use protocol_core::crypto::PrivateKey;
use protocol_core::{wire, ClientId, FieldString, Request, Response};

/// Polls `cond` for up to a minute (a deadline for a hung test, not a timing claim).
fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn log_of(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
}

/// One request on a connection of its own, and its response.
fn ask(port: u16, id: ClientId, request: &Request) -> Response {
    let mut out = BytesMut::new();
    wire::encode_request(&mut out, id, request, Default::default());
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(&out).unwrap();
    let mut input = BytesMut::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(r) = wire::decode_response(&mut input).unwrap() {
            return r;
        }
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "the server closed without a response");
        input.extend_from_slice(&buf[..n]);
    }
}

fn register(port: u16, name: &str) -> Response {
    let name = FieldString::new(name).unwrap();
    ask(port, ClientId::ZERO, &Request::Register { name })
}

fn send_key(port: u16, id: ClientId, name: &str, key: &PrivateKey) -> Response {
    let name = FieldString::new(name).unwrap();
    let public_key = bytes::Bytes::copy_from_slice(&key.public_key().to_field().unwrap());
    ask(port, id, &Request::SendPublicKey { name, public_key })
}

fn new_key() -> PrivateKey {
    PrivateKey::generate(&mut rand_core::OsRng).unwrap()
}

#[test]
fn names_that_clean_up_alike_never_share_a_file() {
    let tmp = tempfile::tempdir().unwrap();
    let sdir = tmp.path().join("server");
    let server = Server::start(&sdir, 0, &[]);
    let port = server.port;
    let kept = data(20_000, 1);
    let c = client_dir(tmp.path(), "nina", port, "b_.txt", &kept);
    assert_ok(&run_client(&c, &[]), "b_.txt");
    server.stop();
    // `b$.txt` cleans up to `b_.txt` too. Its checksum never matches here (the
    // server answers CRC-32), so it ends in 902: stored unverified, beside b_.txt.
    let server = Server::start(&sdir, port, &["--checksum", "crc32"]);
    std::fs::write(c.join("b$.txt"), data(7_000, 2)).unwrap();
    write_transfer(&c, port, "nina", "b$.txt");
    assert!(!run_client(&c, &[]).status.success());
    let id = client_id(&c);
    assert_eq!(
        std::fs::read(stored_path(&sdir, &id, "b_.txt")).unwrap(),
        kept
    );
    let rows = records(&sdir);
    let row = |n: &str| rows.iter().find(|r| r.file_name == n).unwrap().clone();
    assert!(row("b_.txt").verified);
    assert!(!row("b$.txt").verified);
    assert_ne!(row("b_.txt").object, row("b$.txt").object);
    assert_eq!(
        std::fs::read(sdir.join(row("b$.txt").object)).unwrap(),
        data(7_000, 2)
    );
    drop(server);
}

#[test]
fn two_connections_of_one_client_each_commit_their_own_upload() {
    // One client id, two folders (copies of me.info and priv.key), the same file
    // name with different contents, both sent at once, several rounds.
    let tmp = tempfile::tempdir().unwrap();
    let sdir = tmp.path().join("server");
    let server = Server::start(&sdir, 0, &[]);
    let a = client_dir(tmp.path(), "olga", server.port, "f.bin", &data(1000, 3));
    assert_ok(&run_client(&a, &[]), "register");
    let b = tmp.path().join("olga2");
    std::fs::create_dir_all(&b).unwrap();
    for f in ["me.info", "priv.key", "transfer.info"] {
        std::fs::copy(a.join(f), b.join(f)).unwrap();
    }
    let id = client_id(&a);
    for round in 0..4u8 {
        let ca = data(2_000_000 + round as usize * 1000, 10 + round);
        let cb = data(1_500_000 + round as usize * 777, 50 + round);
        std::fs::write(a.join("f.bin"), &ca).unwrap();
        std::fs::write(b.join("f.bin"), &cb).unwrap();
        let outs = run_clients_at_once(&[a.clone(), b.clone()]);
        let ok: Vec<&[u8]> = [(&outs[0], &ca), (&outs[1], &cb)]
            .into_iter()
            .filter(|(o, _)| o.status.success())
            .map(|(_, c)| c.as_slice())
            .collect();
        assert!(!ok.is_empty(), "round {round}: neither client succeeded");
        let stored = std::fs::read(stored_path(&sdir, &id, "f.bin")).unwrap();
        assert!(
            ok.contains(&stored.as_slice()),
            "round {round}: stored bytes are not what a client confirmed"
        );
        let r = records(&sdir);
        assert!(r[0].verified && r[0].size == stored.len() as u64);
    }
    assert!(part_files_settled(&sdir).is_empty());
}

#[test]
fn a_verified_file_named_part_survives_restarts() {
    let tmp = tempfile::tempdir().unwrap();
    let sdir = tmp.path().join("server");
    let server = Server::start(&sdir, 0, &[]);
    let port = server.port;
    let body = data(12_345, 4);
    let c = client_dir(tmp.path(), "pia", port, "notes.part", &body);
    assert_ok(&run_client(&c, &[]), "upload");
    server.stop();
    let server = Server::start(&sdir, port, &[]);
    server.stop();
    let _server = Server::start(&sdir, port, &[]);
    let id = client_id(&c);
    assert_eq!(
        std::fs::read(stored_path(&sdir, &id, "notes.part")).unwrap(),
        body
    );
}

/// Forwards one connection; the client's bytes stop at `at` until `release` is set.
fn pausing_proxy(target: u16, at: usize) -> (u16, Arc<AtomicBool>, Arc<AtomicBool>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let reached = Arc::new(AtomicBool::new(false));
    let release = Arc::new(AtomicBool::new(false));
    let (r2, l2) = (reached.clone(), release.clone());
    std::thread::spawn(move || {
        let Ok((client, _)) = listener.accept() else {
            return;
        };
        let server = TcpStream::connect(("127.0.0.1", target)).unwrap();
        let (mut c_rd, mut s_wr) = (client.try_clone().unwrap(), server.try_clone().unwrap());
        let (mut s_rd, mut c_wr) = (server, client);
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut s_rd, &mut c_wr);
            let _ = c_wr.shutdown(std::net::Shutdown::Write);
        });
        let mut seen = 0usize;
        let mut buf = [0u8; 65536];
        loop {
            let want = if seen < at {
                (at - seen).min(buf.len())
            } else {
                buf.len()
            };
            let n = match c_rd.read(&mut buf[..want]) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if s_wr.write_all(&buf[..n]).is_err() {
                break;
            }
            seen += n;
            if seen == at {
                r2.store(true, Ordering::SeqCst);
                while !l2.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        }
        let _ = s_wr.shutdown(std::net::Shutdown::Write);
    });
    (port, reached, release)
}

fn a_stop_during_an_upload_waits_for_the_verdict(transport: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let sdir = tmp.path().join("server");
    let mut server = Server::start(&sdir, 0, &["--transport", transport]);
    let body = data(3_000_000, 5);
    let (proxy, reached, release) = pausing_proxy(server.port, 1_500_000);
    let c = client_dir(tmp.path(), "quinn", proxy, "big.bin", &body);
    let client = Command::new(client_bin())
        .arg("--legacy")
        .current_dir(&c)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    eventually("the upload got halfway", || reached.load(Ordering::SeqCst));
    Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    eventually("the server began to stop", || {
        log_of(&sdir).contains("shutting down")
    });
    release.store(true, Ordering::SeqCst);
    let out = client.wait_with_output().unwrap();
    assert_ok(&out, "the client whose upload was under way at the stop");
    let status = server.child.wait().unwrap();
    assert!(status.success(), "server exit: {status}");
    let id = client_id(&c);
    assert_eq!(
        std::fs::read(stored_path(&sdir, &id, "big.bin")).unwrap(),
        body
    );
    assert!(part_files(&sdir).is_empty(), "{:?}", part_files(&sdir));
}

#[test]
fn tokio_a_stop_during_an_upload_waits_for_the_verdict() {
    a_stop_during_an_upload_waits_for_the_verdict("tokio");
}

#[test]
fn std_a_stop_during_an_upload_waits_for_the_verdict() {
    a_stop_during_an_upload_waits_for_the_verdict("std");
}

#[test]
fn a_second_server_on_the_same_folder_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let sdir = tmp.path().join("server");
    let server = Server::start(&sdir, 0, &[]);
    let out = Command::new(server_bin())
        .args(["--bind", "127.0.0.1", "--port", &free_port().to_string()])
        .current_dir(&sdir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let pid = server.child.id().to_string();
    assert!(
        err.contains(&format!("another server (pid {pid})")) && err.contains("is using"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    // The first server still serves.
    let c = client_dir(tmp.path(), "rita", server.port, "r.bin", &data(100, 6));
    assert_ok(&run_client(&c, &[]), "client of the first server");
}

#[test]
fn an_abandoned_upload_is_removed_while_the_server_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let sdir = tmp.path().join("server");
    let server = Server::start(&sdir, 0, &["--abandoned-upload-timeout", "1"]);
    let (proxy, _) = proxy(server.port, Tamper::Cut(1_000_000));
    let c = client_dir(tmp.path(), "sven", proxy, "s.bin", &data(3_000_000, 7));
    assert!(!run_client(&c, &[]).status.success());
    eventually("the abandoned upload's disk is freed", || {
        part_files(&sdir).is_empty() && log_of(&sdir).contains("abandoned upload removed")
    });
    drop(server);
}

#[test]
fn a_public_key_on_file_is_never_replaced() {
    let tmp = tempfile::tempdir().unwrap();
    let sdir = tmp.path().join("server");
    let server = Server::start(&sdir, 0, &[]);
    let body = data(5_000, 8);
    let c = client_dir(tmp.path(), "tara", server.port, "t.bin", &body);
    assert_ok(&run_client(&c, &[]), "victim's first run");
    let id = ClientId::from_hex(&client_id(&c)).unwrap();
    // Someone who knows the id and the name sends another key.
    let answer = send_key(server.port, id, "tara", &new_key());
    assert!(matches!(answer, Response::GeneralError), "{answer:?}");
    // The victim reconnects with its own key and its file is intact.
    std::fs::write(c.join("t2.bin"), data(10, 9)).unwrap();
    write_transfer(&c, server.port, "tara", "t2.bin");
    let out = run_client(&c, &[]);
    assert_ok(&out, "victim's second run");
    assert!(String::from_utf8_lossy(&out.stdout).contains("reconnect"));
    assert_eq!(
        std::fs::read(stored_path(&sdir, &client_id(&c), "t.bin")).unwrap(),
        body
    );
    // The same key again (a retry of 826) is accepted.
    let Response::Registered { client_id } = register(server.port, "uma") else {
        panic!("825 refused");
    };
    let key = new_key();
    assert!(matches!(
        send_key(server.port, client_id, "uma", &key),
        Response::AesKey { .. }
    ));
    assert!(matches!(
        send_key(server.port, client_id, "uma", &key),
        Response::AesKey { .. }
    ));
    // Ids are credentials: the log never shows one whole.
    assert!(!log_of(&sdir).contains(&client_id.to_hex()));
    assert!(!log_of(&sdir).contains(&id.to_hex()));
}

#[test]
fn a_name_registered_without_a_key_is_held_then_freed() {
    let tmp = tempfile::tempdir().unwrap();
    let sdir = tmp.path().join("server");
    let server = Server::start(&sdir, 0, &["--registration-hold", "2"]);
    let Response::Registered { client_id: first } = register(server.port, "vera") else {
        panic!("825 refused");
    };
    // Held: nobody else gets it in the meantime.
    assert!(matches!(
        register(server.port, "vera"),
        Response::RegistrationFailed
    ));
    eventually("the name is free again", || {
        matches!(register(server.port, "vera"), Response::Registered { .. })
    });
    // The first registration is gone: its key is refused.
    assert!(matches!(
        send_key(server.port, first, "vera", &new_key()),
        Response::GeneralError
    ));
}

fn refuses(sdir: &Path, what: &str) -> String {
    let out = Command::new(server_bin())
        .args(["--bind", "127.0.0.1", "--port", &free_port().to_string()])
        .current_dir(sdir)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{what}: the server started: {err}");
    assert!(err.contains(what), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(!sdir.join("objects").exists() && !sdir.join("uploads").exists());
    err
}

#[test]
fn a_corrupt_or_newer_database_is_refused_before_anything_changes() {
    let tmp = tempfile::tempdir().unwrap();
    // Not a database at all.
    let sdir = tmp.path().join("garbage");
    std::fs::create_dir_all(&sdir).unwrap();
    let garbage = b"this is not a database ".repeat(500);
    std::fs::write(sdir.join("defensive.db"), &garbage).unwrap();
    refuses(&sdir, "is damaged");
    assert_eq!(std::fs::read(sdir.join("defensive.db")).unwrap(), garbage);

    // A real database, partly overwritten.
    let sdir = tmp.path().join("partly");
    Server::start(&sdir, 0, &[]).stop();
    for d in ["objects", "uploads"] {
        std::fs::remove_dir(sdir.join(d)).unwrap();
    }
    let mut db = std::fs::read(sdir.join("defensive.db")).unwrap();
    assert!(db.len() >= 8192);
    for b in &mut db[4096..8192] {
        *b = 0xA5;
    }
    std::fs::write(sdir.join("defensive.db"), &db).unwrap();
    refuses(&sdir, "is damaged");
    assert_eq!(std::fs::read(sdir.join("defensive.db")).unwrap(), db);

    // Written by a newer server.
    let sdir = tmp.path().join("newer");
    Server::start(&sdir, 0, &[]).stop();
    for d in ["objects", "uploads"] {
        std::fs::remove_dir(sdir.join(d)).unwrap();
    }
    rusqlite::Connection::open(sdir.join("defensive.db"))
        .unwrap()
        .pragma_update(None, "user_version", 99)
        .unwrap();
    refuses(&sdir, "schema version 99, newer than this server's");
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

#[test]
fn a_read_only_database_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let sdir = tmp.path().join("ro");
    Server::start(&sdir, 0, &[]).stop();
    for d in ["objects", "uploads"] {
        std::fs::remove_dir(sdir.join(d)).unwrap();
    }
    use std::os::unix::fs::PermissionsExt;
    if is_root() {
        // Permissions do not stop root: a read-only mount does.
        let mnt = tmp.path().join("mnt");
        std::fs::create_dir_all(&mnt).unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
            .arg(&mnt)
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            eprintln!("skipped: cannot mount a tmpfs here");
            return;
        }
        /// Unmounts even when an assertion fails.
        struct Unmount(std::path::PathBuf);
        impl Drop for Unmount {
            fn drop(&mut self) {
                let _ = Command::new("umount").arg(&self.0).status();
            }
        }
        let _unmount = Unmount(mnt.clone());
        for f in ["defensive.db", "server.lock", "port.info"] {
            std::fs::copy(sdir.join(f), mnt.join(f)).unwrap();
        }
        let ro = Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(&mnt)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ro, "remounting read-only failed");
        refuses(&mnt, "cannot be written");
    } else {
        let db = sdir.join("defensive.db");
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o400)).unwrap();
        refuses(&sdir, "cannot be written");
    }
}

#[test]
fn listings_where_there_is_no_database_fail_and_create_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    for command in ["list-clients", "list-files"] {
        let out = Command::new(server_bin())
            .arg(command)
            .current_dir(tmp.path())
            .output()
            .unwrap();
        assert!(!out.status.success(), "{command}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("no database at"), "{command}: {err}");
        assert_eq!(
            std::fs::read_dir(tmp.path()).unwrap().count(),
            0,
            "{command}"
        );
    }
}

#[test]
fn a_database_and_folder_of_the_old_layout_are_migrated_in_place() {
    let tmp = tempfile::tempdir().unwrap();
    let sdir = tmp.path().join("old");
    let id = "0123456789abcdef0123456789abcdef";
    let folder = sdir.join("files").join(id);
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("report.part"), b"a verified file named .part").unwrap();
    std::fs::write(
        folder.join(".upload-77-0.part"),
        b"an old upload in progress",
    )
    .unwrap();
    let db = rusqlite::Connection::open(sdir.join("defensive.db")).unwrap();
    db.execute_batch(
        "CREATE TABLE clients (ID BLOB PRIMARY KEY, Name TEXT NOT NULL UNIQUE, PublicKey BLOB,
             LastSeen TEXT NOT NULL, AESKey BLOB, AESKeyIssued TEXT);
         CREATE TABLE files (ID BLOB NOT NULL, FileName TEXT NOT NULL, PathName TEXT NOT NULL,
             Verified INTEGER NOT NULL DEFAULT 0, Size INTEGER NOT NULL DEFAULT 0,
             PRIMARY KEY (ID, FileName));
         PRAGMA user_version = 2;",
    )
    .unwrap();
    let raw = ClientId::from_hex(id).unwrap();
    db.execute(
        "INSERT INTO clients (ID, Name, PublicKey, LastSeen) VALUES (?1, 'old', ?2, datetime('now'))",
        rusqlite::params![&raw.0[..], vec![1u8; 160]],
    )
    .unwrap();
    db.execute(
        "INSERT INTO files VALUES (?1, 'report.part', ?2, 1, 27)",
        rusqlite::params![&raw.0[..], format!("files/{id}/report.part")],
    )
    .unwrap();
    drop(db);
    let server = Server::start(&sdir, 0, &[]);
    assert_eq!(
        std::fs::read(stored_path(&sdir, id, "report.part")).unwrap(),
        b"a verified file named .part"
    );
    assert!(
        !folder.join(".upload-77-0.part").exists(),
        "old temporary kept"
    );
    assert!(server.list_files().contains("report.part"));
    server.stop();
}
