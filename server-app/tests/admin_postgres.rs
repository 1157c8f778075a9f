//! Operator commands on a fleet's PostgreSQL database: they create and migrate
//! nothing, as on SQLite.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test harness: a failure is a panic

mod common;

use std::process::Command;

use common::postgres::TestDatabase;
use common::server_bin;
use tokio_postgres::NoTls;

/// The tables in the database's public schema.
fn tables(url: &str) -> Vec<String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(url, NoTls).await.unwrap();
        let conn = tokio::spawn(conn);
        let rows = client
            .query(
                "SELECT table_name::text FROM information_schema.tables \
                 WHERE table_schema = 'public' ORDER BY 1",
                &[],
            )
            .await
            .unwrap();
        drop(client);
        let _ = conn.await;
        rows.iter().map(|r| r.get(0)).collect()
    })
}

fn server(url: &str, args: &[&str]) -> std::process::Output {
    let tmp = tempfile::tempdir().unwrap();
    Command::new(server_bin())
        .args(["--database", url])
        .args(args)
        .current_dir(tmp.path())
        .output()
        .unwrap()
}

#[test]
fn operator_commands_on_an_empty_database_create_nothing() {
    let db = TestDatabase::new();
    for args in [
        &["list-files"][..],
        &["list-clients", "--json"],
        &["remove-client", "someone", "--yes"],
    ] {
        let out = server(&db.url, args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("not a server's database"), "{args:?}: {err}");
        assert!(!err.contains("NOTICE"), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: one line: {err}");
        assert!(tables(&db.url).is_empty(), "{args:?} created tables");
    }
}

#[test]
fn operator_commands_work_once_a_server_set_the_database_up() {
    let db = TestDatabase::new();
    // What a server does at start: create the schema.
    drop(server_app::storage::postgres::PostgresMetadata::connect(&db.url).unwrap());
    let out = server(&db.url, &["list-files"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
