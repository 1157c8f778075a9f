//! TLS between the server and PostgreSQL, against a real cluster started with
//! `.ci/postgres.sh start --tls` (TCP connections without TLS refused, certificate
//! from a throwaway CA for 127.0.0.1 and localhost): the sslmode values of the
//! --database URL, sslrootcert and --database-ca-file.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test harness: a failure is a panic

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::postgres::{other_ca, tls_cluster, TestDatabase};
use common::{assert_ok, client_dir, data, free_port, run_client, server_bin, Server};

/// Runs the server on `url` in a fresh folder, expecting it to stop on its own
/// (it cannot use the database); its stderr.
fn refused(url: &str, extra: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("port.info"), format!("{}\n", free_port())).unwrap();
    let mut child = Command::new(server_bin())
        .args(["--bind", "127.0.0.1", "--database", url])
        .args(extra)
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "the server used {url}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `server list-files` on `url`.
fn list_files(url: &str, extra: &[&str]) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    Command::new(server_bin())
        .args(["--database", url])
        .args(extra)
        .arg("list-files")
        .current_dir(dir.path())
        .output()
        .unwrap()
}

fn stored(dir: &Path) -> Vec<Vec<u8>> {
    let mut found = Vec::new();
    for client in std::fs::read_dir(dir.join("objects")).unwrap().flatten() {
        for object in std::fs::read_dir(client.path()).unwrap().flatten() {
            found.push(std::fs::read(object.path()).unwrap());
        }
    }
    found
}

#[test]
fn verify_full_with_the_ca_serves_a_client_end_to_end() {
    let db = TestDatabase::with_tls();
    assert!(
        db.url.contains("sslmode=verify-full&sslrootcert="),
        "{}",
        db.url
    );
    let root = tempfile::tempdir().unwrap();
    let server = Server::start(&root.path().join("server"), 0, &["--database", &db.url]);
    let contents = data(70_000, 7);
    let dir = client_dir(root.path(), "alice", server.port, "f.bin", &contents);
    let out = run_client(&dir, &[]);
    assert_ok(&out, "the client");
    assert_eq!(stored(&server.dir), vec![contents]);

    // Operator commands connect the same way; --database-ca-file stands for
    // sslrootcert, and with a CA file the default sslmode is verify-full.
    let (_, ca) = tls_cluster();
    let ca = ca.to_str().unwrap();
    let with_option = list_files(
        &db.url_with("sslmode=verify-full"),
        &["--database-ca-file", ca],
    );
    assert_ok(&with_option, "list-files with --database-ca-file");
    assert!(String::from_utf8_lossy(&with_option.stdout).contains("f.bin"));
    let default = list_files(
        &db.url_with("application_name=t"),
        &["--database-ca-file", ca],
    );
    assert_ok(&default, "list-files, default sslmode with a CA file");
    // Without a CA file the default is prefer: encrypted, certificate unchecked.
    let prefer = list_files(&db.url_with("application_name=t"), &[]);
    assert_ok(&prefer, "list-files, default sslmode");
    server.stop();
}

#[test]
fn sslmode_disable_against_a_tls_only_database_is_refused_clearly() {
    let db = TestDatabase::with_tls();
    let err = refused(&db.url_with("sslmode=disable"), &[]);
    assert!(err.contains("no encryption"), "{err}");
    assert!(
        err.contains("refused a connection without TLS")
            && err.contains("the --database URL asks sslmode=disable"),
        "{err}"
    );
}

#[test]
fn verify_full_with_another_ca_is_refused() {
    let db = TestDatabase::with_tls();
    let other = tempfile::tempdir().unwrap();
    let wrong = other_ca(other.path());
    let url = db.url_with(&format!(
        "sslmode=verify-full&sslrootcert={}",
        wrong.display()
    ));
    let err = refused(&url, &[]);
    assert!(err.contains("TLS handshake with the database"), "{err}");
    assert!(err.contains("UnknownIssuer"), "{err}");
    assert!(err.contains(&*wrong.to_string_lossy()), "{err}");
    // The same through --database-ca-file, and with verify-ca and require (the chain
    // is wrong too).
    let wrong = wrong.to_str().unwrap();
    let err = refused(
        &db.url_with("sslmode=verify-full"),
        &["--database-ca-file", wrong],
    );
    assert!(err.contains("UnknownIssuer"), "{err}");
    let err = refused(
        &db.url_with("sslmode=verify-ca"),
        &["--database-ca-file", wrong],
    );
    assert!(err.contains("UnknownIssuer"), "{err}");
    // require with a CA file checks the chain, as libpq does.
    let err = refused(
        &db.url_with("sslmode=require"),
        &["--database-ca-file", wrong],
    );
    assert!(err.contains("UnknownIssuer"), "{err}");
    assert!(
        err.contains("asks sslmode=require (in force: verify-ca"),
        "{err}"
    );
}

#[test]
fn verify_full_checks_the_host_name_and_verify_ca_does_not() {
    let db = TestDatabase::with_tls();
    let (_, ca) = tls_cluster();
    // Connect to 127.0.0.1 while naming a host the certificate is not for.
    let url = db
        .url_with(&format!("hostaddr=127.0.0.1&sslrootcert={}", ca.display()))
        .replacen("@127.0.0.1:", "@db.invalid:", 1);
    let err = refused(&format!("{url}&sslmode=verify-full"), &[]);
    assert!(err.contains("not valid for name \"db.invalid\""), "{err}");
    // verify-ca checks the chain only: the server starts and serves.
    let root = tempfile::tempdir().unwrap();
    let url = format!("{url}&sslmode=verify-ca");
    let server = Server::start(&root.path().join("s"), 0, &["--database", &url]);
    server.stop();
}

#[test]
fn sslmode_require_against_a_database_without_tls_is_refused_clearly() {
    let db = TestDatabase::new();
    let err = refused(&db.url_with("sslmode=require"), &[]);
    assert!(
        err.contains("refused TLS, but the --database URL asks sslmode=require"),
        "{err}"
    );
    let err = refused(&db.url_with("sslmode=verify-full"), &[]);
    assert!(err.contains("no CA file is given"), "{err}");
}
