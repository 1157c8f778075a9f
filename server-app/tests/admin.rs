//! Operator commands on the real binary: on a copy of a data folder made by real
//! uploads, while a server runs on the folder, without confirmation, and in a folder
//! that is not a server's (where they must create nothing).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test harness: a failure is a panic

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::*;

/// `server ARGS` in `dir`, stdin not a terminal.
fn admin(dir: &Path, args: &[&str]) -> Output {
    Command::new(server_bin())
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A data folder made by real uploads: alice two verified files, bob one, carol one
/// that ended in 902 (its server answered with another checksum).
fn real_folder(root: &Path) -> std::path::PathBuf {
    let sdir = root.join("server");
    let server = Server::start(&sdir, 0, &[]);
    let a = client_dir(root, "alice", server.port, "a1.bin", &data(70_000, 1));
    std::fs::write(a.join("a2.txt"), b"second file of alice\n").unwrap();
    assert_ok(&run_client(&a, &[]), "alice a1");
    assert_ok(&run_client(&a, &["a2.txt"]), "alice a2");
    let b = client_dir(root, "bob", server.port, "b.bin", &data(5000, 2));
    assert_ok(&run_client(&b, &[]), "bob");
    server.stop();
    let server = Server::start(&sdir, 0, &["--checksum", "crc32"]);
    let c = client_dir(root, "carol", server.port, "c.bin", &data(3000, 3));
    let out = run_client(&c, &[]);
    assert_eq!(out.status.code(), Some(5), "carol: {}", stderr(&out));
    server.stop();
    sdir
}

fn copy_folder(from: &Path, to: &Path) {
    let status = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success());
}

fn json_field<'a>(json: &'a str, key: &str) -> &'a str {
    let at = json
        .find(&format!("\"{key}\":"))
        .unwrap_or_else(|| panic!("{key} in {json}"));
    let rest = &json[at + key.len() + 3..];
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    &rest[..end]
}

#[test]
fn operator_commands_do_what_they_say_on_a_copy_of_a_real_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let original = real_folder(tmp.path());
    let copy = tmp.path().join("copy");
    copy_folder(&original, &copy);
    let alice = client_id(&tmp.path().join("alice"));
    let bob = client_id(&tmp.path().join("bob"));

    // Listings: counts, sizes, totals, the key column explained.
    let out = admin(&copy, &["list-clients"]);
    assert_ok(&out, "list-clients");
    let text = stdout(&out);
    assert!(text.contains("KEY AGE"), "{text}");
    assert!(text.contains("KEY AGE: time since"), "{text}");
    assert!(
        text.contains(&alice[..8]) && !text.contains(&alice),
        "{text}"
    );
    assert!(text.contains("3 clients, 4 files"), "{text}");
    let alice_line = text.lines().find(|l| l.contains("alice")).unwrap();
    let alice_bytes = (70_000 + 21).to_string();
    assert!(alice_line.contains(&alice_bytes), "{alice_line}");
    // The last dialect seen, as the "dialect seen" log line says it.
    assert!(text.contains("DIALECT (LAST SEEN)"), "{text}");
    assert!(
        alice_line.contains("requests little-endian") && alice_line.contains("cksum"),
        "{alice_line}"
    );

    let out = admin(&copy, &["list-clients", "--json"]);
    assert_ok(&out, "list-clients --json");
    let json = stdout(&out);
    assert!(json.contains(&format!("\"id\":\"{alice}\"")), "{json}");
    assert!(
        json.contains("\"dialect\":\"requests little-endian"),
        "{json}"
    );
    assert!(
        json.contains("\"total\":{\"clients\":3,\"files\":4,"),
        "{json}"
    );

    let out = admin(&copy, &["list-files", "--client", "alice", "--json"]);
    assert_ok(&out, "list-files --json");
    let json = stdout(&out);
    let a1 = tmp.path().join("alice").join("a1.bin");
    let sum = cksum_cmd(&a1);
    let sum = sum.split(' ').next().unwrap();
    assert!(json.contains(&format!("\"checksum\":{sum}")), "{json}");
    assert!(json.contains("\"verified\":true"), "{json}");
    assert!(!json.contains("\"uploaded_at\":null"), "{json}");
    assert!(
        json.contains("\"files\":2,\"verified\":2,\"unverified\":0"),
        "{json}"
    );

    let out = admin(&copy, &["list-files"]);
    let text = stdout(&out);
    assert!(text.contains("UPLOADED (UTC)"), "{text}");
    assert!(
        text.contains("4 files (3 verified, 1 unverified)"),
        "{text}"
    );

    let out = admin(&copy, &["status"]);
    assert_ok(&out, "status");
    let text = stdout(&out);
    assert!(text.contains("server:    not running"), "{text}");
    assert!(text.contains("quick_check ok"), "{text}");
    assert!(
        text.contains("3 clients, 4 files (3 verified, 1 unverified)"),
        "{text}"
    );
    assert!(text.contains("4 objects"), "{text}");
    assert!(text.contains("disk:"), "{text}");

    // delete-file: the record and its object go; the other file of alice stays.
    let a2_object = stored_path(&copy, &alice, "a2.txt");
    assert!(a2_object.exists());
    let out = admin(&copy, &["delete-file", &alice[..10], "a2.txt", "--yes"]);
    assert_ok(&out, "delete-file");
    assert!(!a2_object.exists());
    assert!(!stored_path(&copy, &alice, "a1.bin").ends_with("no such record"));
    let out = admin(&copy, &["delete-file", "alice", "a2.txt", "--yes"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));

    // prune: only the unverified file of carol goes.
    let out = admin(&copy, &["prune", "--unverified-older-than", "0s", "--yes"]);
    assert_ok(&out, "prune");
    assert!(
        stdout(&out).contains("1 unverified files deleted"),
        "{}",
        stdout(&out)
    );
    let left: Vec<String> = records(&copy).into_iter().map(|r| r.file_name).collect();
    assert!(!left.contains(&"c.bin".to_string()), "{left:?}");
    assert_eq!(left.len(), 2, "{left:?}");

    // remove-client: its row, its files, their objects.
    let b_object = stored_path(&copy, &bob, "b.bin");
    let out = admin(&copy, &["remove-client", "bob", "--yes"]);
    assert_ok(&out, "remove-client");
    assert!(!b_object.exists());
    let text = stdout(&admin(&copy, &["list-clients"]));
    assert!(!text.contains("bob"), "{text}");
    assert!(text.contains("2 clients, 1 files"), "{text}");
    let out = admin(&copy, &["remove-client", "bob", "--yes"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));

    // Nothing unnamed is left, and the original folder is untouched.
    assert!(part_files(&copy).is_empty(), "{:?}", part_files(&copy));
    assert_eq!(records(&original).len(), 4);

    // A server on the copy starts and serves: bob's name is free again.
    let server = Server::start(&copy, 0, &[]);
    let d = client_dir(tmp.path(), "bob2", server.port, "new.txt", b"new\n");
    write_transfer(&d, server.port, "bob", "new.txt");
    assert_ok(&run_client(&d, &[]), "a new bob");
    server.stop();
}

#[test]
fn operator_commands_work_while_the_server_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let sdir = tmp.path().join("server");
    let server = Server::start(&sdir, 0, &[]);
    let a = client_dir(tmp.path(), "alice", server.port, "a.bin", &data(50_000, 4));
    assert_ok(&run_client(&a, &[]), "alice");
    let alice = client_id(&a);

    let out = admin(&sdir, &["status", "--json"]);
    assert_ok(&out, "status");
    let json = stdout(&out);
    assert_eq!(json_field(&json, "server_running"), "true", "{json}");
    assert_eq!(
        json_field(&json, "server_pid"),
        format!("\"{}\"", server.child.id()),
        "{json}"
    );
    assert_eq!(json_field(&json, "healthy"), "true", "{json}");
    assert_eq!(json_field(&json, "files"), "1", "{json}");
    let text = stdout(&admin(&sdir, &["status"]));
    assert!(
        text.contains(&format!("running (pid {})", server.child.id())),
        "{text}"
    );

    // Delete the file while the server runs; the client sends it again.
    let out = admin(&sdir, &["delete-file", "alice", "a.bin", "--yes"]);
    assert_ok(&out, "delete-file");
    assert!(records(&sdir).is_empty());
    assert_ok(&run_client(&a, &[]), "alice again");
    assert_eq!(records(&sdir).len(), 1);

    // Remove the client while the server runs: the server forgets it at once (the
    // client's reconnect is refused and it registers anew under its freed name).
    let out = admin(&sdir, &["remove-client", &alice[..8], "--yes"]);
    assert_ok(&out, "remove-client");
    assert!(records(&sdir).is_empty());
    let out = run_client(&a, &[]);
    assert_ok(&out, "alice after removal");
    assert_ne!(client_id(&a), alice, "registered anew");
    let text = stdout(&admin(&sdir, &["list-files"]));
    assert!(
        text.contains("1 files (1 verified, 0 unverified)"),
        "{text}"
    );
    assert!(part_files_settled(&sdir).is_empty());
    server.stop();
    let text = stdout(&admin(&sdir, &["status"]));
    assert!(text.contains("server:    not running"), "{text}");
}

#[test]
fn changes_without_yes_are_refused_when_stdin_is_not_a_terminal() {
    let tmp = tempfile::tempdir().unwrap();
    let sdir = tmp.path().join("server");
    let server = Server::start(&sdir, 0, &[]);
    let a = client_dir(tmp.path(), "alice", server.port, "a.txt", b"kept\n");
    assert_ok(&run_client(&a, &[]), "alice");
    server.stop();
    for args in [
        vec!["remove-client", "alice"],
        vec!["delete-file", "alice", "a.txt"],
        vec!["prune", "--unverified-older-than", "0s"],
    ] {
        let out = admin(&sdir, &args);
        assert_eq!(out.status.code(), Some(4), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("pass --yes"), "{}", stderr(&out));
    }
    assert_eq!(records(&sdir).len(), 1);
    assert!(stdout(&admin(&sdir, &["list-clients"])).contains("alice"));
}

#[test]
fn an_ambiguous_id_prefix_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let sdir = tmp.path().join("server");
    let server = Server::start(&sdir, 0, &[]);
    let a = client_dir(tmp.path(), "alice", server.port, "a.txt", b"a\n");
    assert_ok(&run_client(&a, &[]), "alice");
    server.stop();
    let alice = client_id(&a);
    // A second client whose id shares alice's first 8 hex digits.
    let mut twin = alice[..8].to_string();
    twin.push_str(&"0".repeat(24));
    if twin == alice {
        twin.replace_range(31..32, "1");
    }
    let db = rusqlite::Connection::open(sdir.join("defensive.db")).unwrap();
    db.execute(
        "INSERT INTO clients (ID, Name, LastSeen, Registered) \
         VALUES (?1, 'twin', datetime('now'), datetime('now'))",
        [protocol_core::ClientId::from_hex(&twin).unwrap().0.to_vec()],
    )
    .unwrap();
    drop(db);
    let out = admin(&sdir, &["remove-client", &alice[..8], "--yes"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("matches 2 clients"),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&admin(&sdir, &["list-clients"])).contains("2 clients"));
    let out = admin(&sdir, &["remove-client", &alice, "--yes"]);
    assert_ok(&out, "remove by whole id");
    let text = stdout(&admin(&sdir, &["list-clients"]));
    assert!(text.contains("twin") && !text.contains("alice"), "{text}");
}

#[test]
fn operator_commands_in_a_folder_without_a_database_fail_and_create_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let commands: [&[&str]; 8] = [
        &["list-clients"],
        &["list-clients", "--json"],
        &["list-files"],
        &["status"],
        &["remove-client", "alice", "--yes"],
        &["delete-file", "alice", "a.txt", "--yes"],
        &["prune", "--unverified-older-than", "1d", "--yes"],
        &["status", "--json"],
    ];
    for args in commands {
        let out = admin(tmp.path(), args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("no database at"), "{}", stderr(&out));
        assert_eq!(
            std::fs::read_dir(tmp.path()).unwrap().count(),
            0,
            "{args:?}"
        );
    }
    let missing = tmp.path().join("not-here");
    let out = admin(tmp.path(), &["--dir", missing.to_str().unwrap(), "status"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(!missing.exists());
    let out = admin(tmp.path(), &["prune", "--unverified-older-than", "soon"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[test]
fn list_clients_shows_the_dialect_each_client_last_used() {
    let tmp = tempfile::tempdir().unwrap();
    let sdir = tmp.path().join("server");
    let server = Server::start(&sdir, 0, &[]);
    let big = client_dir(tmp.path(), "bigend", server.port, "b.bin", &data(9000, 4));
    assert_ok(&run_client(&big, &["--big-endian"]), "big-endian client");
    let little = client_dir(tmp.path(), "little", server.port, "l.bin", &data(9000, 5));
    assert_ok(&run_client(&little, &[]), "little-endian client");
    // The same client, now speaking the other byte order: the last one counts.
    assert_ok(&run_client(&little, &["--big-endian"]), "little, now big");
    server.stop();
    let text = stdout(&admin(&sdir, &["list-clients"]));
    let line = |name: &str| {
        text.lines()
            .find(|l| l.contains(name))
            .unwrap_or_else(|| panic!("{name} in {text}"))
            .to_string()
    };
    assert!(line("bigend").contains("requests big-endian"), "{text}");
    assert!(line("little").contains("requests big-endian"), "{text}");
    let json = stdout(&admin(&sdir, &["list-clients", "--json"]));
    assert_eq!(
        json.matches("\"dialect\":\"requests big-endian").count(),
        2,
        "{json}"
    );
}

/// A file sent twice by its client: the first content is kept as a version, listed
/// with its object, restored (the second becoming a version), and survives restarts.
#[test]
fn list_versions_and_restore_on_the_real_binary() {
    let tmp = tempfile::tempdir().unwrap();
    let sdir = tmp.path().join("server");
    let server = Server::start(&sdir, 0, &[]);
    let first = data(20_000, 6);
    let second = data(30_000, 7);
    let a = client_dir(tmp.path(), "alice", server.port, "f.bin", &first);
    assert_ok(&run_client(&a, &[]), "alice, first");
    std::fs::write(a.join("f.bin"), &second).unwrap();
    assert_ok(&run_client(&a, &[]), "alice, second");
    server.stop();
    let alice = client_id(&a);

    let out = admin(&sdir, &["list-versions", "alice", "f.bin"]);
    assert_ok(&out, "list-versions");
    let text = stdout(&out);
    assert!(text.contains("current 30000 bytes, verified"), "{text}");
    assert!(text.contains("REPLACED (UTC)"), "{text}");
    assert!(text.contains("1 versions"), "{text}");
    let kept = versions(&sdir);
    assert_eq!(kept.len(), 1);
    let old = &kept[0];
    assert_eq!((old.size, old.verified), (20_000, true));
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with(&old.id.to_string()))
        .unwrap_or_else(|| panic!("version {} in {text}", old.id));
    assert!(line.contains("20000") && line.contains("yes"), "{line}");

    // --json gives each version's object, which holds the first content.
    let out = admin(&sdir, &["list-versions", &alice[..8], "f.bin", "--json"]);
    assert_ok(&out, "list-versions --json");
    let json = stdout(&out);
    assert!(
        json.contains(&format!("\"object\":\"{}\"", old.object)),
        "{json}"
    );
    assert_eq!(json_field(&json, "version"), old.id.to_string(), "{json}");
    assert!(
        json.contains("\"total\":{\"versions\":1,\"bytes\":20000}"),
        "{json}"
    );
    assert_eq!(std::fs::read(sdir.join(&old.object)).unwrap(), first);

    // status counts them.
    let text = stdout(&admin(&sdir, &["status"]));
    assert!(text.contains("versions:  1 kept"), "{text}");
    let json = stdout(&admin(&sdir, &["status", "--json"]));
    assert_eq!(json_field(&json, "versions"), "1", "{json}");
    assert_eq!(json_field(&json, "version_bytes"), "20000", "{json}");

    // Without --yes and no terminal: refused, nothing changed. Unknown: exit 3.
    let id = old.id.to_string();
    let out = admin(&sdir, &["restore", "alice", "f.bin", &id]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("pass --yes"), "{}", stderr(&out));
    assert_eq!(
        std::fs::read(stored_path(&sdir, &alice, "f.bin")).unwrap(),
        second
    );
    let out = admin(&sdir, &["restore", "alice", "f.bin", "999999", "--yes"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let out = admin(&sdir, &["list-versions", "alice", "nothing.bin"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));

    // Restore: the first content is current, the second a version; no object moved.
    let out = admin(&sdir, &["restore", "alice", "f.bin", &id, "--yes"]);
    assert_ok(&out, "restore");
    assert!(
        stdout(&out).contains("restored version"),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        std::fs::read(stored_path(&sdir, &alice, "f.bin")).unwrap(),
        first
    );
    let kept = versions(&sdir);
    assert_eq!(kept.len(), 1);
    assert_eq!(std::fs::read(sdir.join(&kept[0].object)).unwrap(), second);
    assert!(kept[0].id > old.id);

    // A server start (reconciliation) removes no version object; the client then
    // gets its restored file back as stored.
    let server = Server::start(
        &sdir,
        0,
        &["--keep-versions", "0", "--version-retention", "30d"],
    );
    server.stop();
    assert!(part_files(&sdir).is_empty(), "{:?}", part_files(&sdir));
    assert_eq!(std::fs::read(sdir.join(&kept[0].object)).unwrap(), second);
    // Both limits passed (none kept, no retention): housekeeping removes it.
    let server = Server::start(
        &sdir,
        0,
        &[
            "--keep-versions",
            "0",
            "--version-retention",
            "0s",
            "--registration-hold",
            "1",
        ],
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !versions(&sdir).is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    server.stop();
    assert!(versions(&sdir).is_empty());
    assert!(!sdir.join(&kept[0].object).exists());
    assert_eq!(
        std::fs::read(stored_path(&sdir, &alice, "f.bin")).unwrap(),
        first
    );

    // A bad retention is a bad argument.
    let out = admin(&sdir, &["--version-retention", "soon", "list-files"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[test]
fn a_name_that_is_also_another_clients_id_prefix_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let sdir = tmp.path().join("server");
    let server = Server::start(&sdir, 0, &[]);
    let a = client_dir(tmp.path(), "alice", server.port, "a.txt", b"a\n");
    assert_ok(&run_client(&a, &[]), "alice");
    server.stop();
    let alice = client_id(&a);
    // A client named with the first 8 hex digits of alice's id.
    let prefix = &alice[..8];
    let db = rusqlite::Connection::open(sdir.join("defensive.db")).unwrap();
    db.execute(
        "INSERT INTO clients (ID, Name, LastSeen, Registered) \
         VALUES (?1, ?2, datetime('now'), datetime('now'))",
        rusqlite::params![[0xabu8; 16].to_vec(), prefix],
    )
    .unwrap();
    drop(db);
    for args in [
        &["remove-client", prefix, "--yes"][..],
        &["delete-file", prefix, "a.txt", "--yes"],
        &["list-files", "--client", prefix],
    ] {
        let out = admin(&sdir, args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {err}");
        assert!(
            err.contains("named") && err.contains("alice"),
            "{args:?}: {err}"
        );
    }
    let text = stdout(&admin(&sdir, &["list-clients"]));
    assert!(text.contains("2 clients"), "nothing removed: {text}");
    // The whole id still names the one meant.
    let out = admin(&sdir, &["remove-client", &"ab".repeat(16), "--yes"]);
    assert_ok(&out, "remove by whole id");
    let text = stdout(&admin(&sdir, &["list-clients"]));
    assert!(
        text.contains("alice") && text.contains("1 clients"),
        "{text}"
    );
}
