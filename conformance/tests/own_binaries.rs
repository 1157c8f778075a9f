//! Our own `server` and `client` pass every case (issue 21: "our server and our
//! client pass every case"), through the `conformance` binary, reports and all.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test harness: a failure is a panic

mod common;

use std::process::Command;

use common::{client_bin, conformance_bin, Server};
use serde_json::Value;

fn counts(report: &Value) -> (u64, u64, u64, usize) {
    let s = &report["summary"];
    (
        s["pass"].as_u64().unwrap(),
        s["fail"].as_u64().unwrap(),
        s["error"].as_u64().unwrap() + s["skipped"].as_u64().unwrap(),
        report["results"].as_array().unwrap().len(),
    )
}

#[test]
fn our_server_passes_every_server_case() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("server"), 0, &[]);
    let out = Command::new(conformance_bin())
        .args(["server", &server.addr(), "--json", "--report"])
        .arg(tmp.path().join("report"))
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).expect("a JSON report on stdout");
    let (pass, fail, not_run, total) = counts(&report);
    let failed: Vec<&Value> = report["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["outcome"]["kind"] != "Pass" && r["outcome"]["kind"] != "Info")
        .collect();
    assert_eq!(fail, 0, "FAIL against our server: {failed:#?}");
    assert_eq!(not_run, 0, "cases that did not run: {failed:#?}");
    assert!(total >= 120, "{total} server cases");
    assert!(pass as usize >= total * 3 / 4, "{pass} PASS of {total}");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(report["verdict"]["command"], "client --dialect spec");
    assert!(
        tmp.path()
            .join("report/report.html")
            .metadata()
            .unwrap()
            .len()
            > 10_000
    );
    let names = report["registered_names"].as_array().unwrap();
    assert!(names.len() > 100, "the names registered are listed");
}

#[test]
fn our_client_passes_every_client_case() {
    let tmp = tempfile::tempdir().unwrap();
    let run = format!("{} --timeout 3", client_bin().display());
    let out = Command::new(conformance_bin())
        .args([
            "client",
            "--listen",
            "127.0.0.1:0",
            "--run",
            &run,
            "--json",
            "--case-timeout",
            "10",
            "--work",
        ])
        .arg(tmp.path().join("cases"))
        .arg("--report")
        .arg(tmp.path().join("report"))
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).expect("a JSON report on stdout");
    let (_, fail, not_run, total) = counts(&report);
    let bad: Vec<&Value> = report["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["outcome"]["kind"] != "Pass" && r["outcome"]["kind"] != "Info")
        .collect();
    assert_eq!(fail, 0, "FAIL for our client: {bad:#?}");
    assert_eq!(not_run, 0, "{bad:#?}");
    assert!(total >= 40, "{total} client cases");
    assert_eq!(out.status.code(), Some(0));
    assert!(tmp.path().join("report/report.json").exists());
}

#[test]
fn exit_codes_tell_usage_errors_from_failures() {
    let out = Command::new(conformance_bin())
        .args(["server", "127.0.0.1:1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "nothing listens: a setup error");
    let out = Command::new(conformance_bin())
        .args(["bogus"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "usage error");
}
