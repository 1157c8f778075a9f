//! The HTML report renders in headless Chromium, offline: a screenshot is taken and
//! the summary numbers are on the page.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test harness: a failure is a panic

mod common;

use std::process::Command;

use common::{conformance_bin, Server};

fn chromium() -> String {
    for c in ["chromium", "chromium-browser", "google-chrome"] {
        if Command::new(c)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            return c.to_string();
        }
    }
    panic!("no chromium: install it (apt-get install -y chromium; .ci/test.sh does)");
}

#[test]
fn html_report_renders_in_headless_chromium() {
    let browser = chromium();
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("server"), 0, &[]);
    let dir = tmp.path().join("report");
    let out = Command::new(conformance_bin())
        .args([
            "server",
            &server.addr(),
            "--cases",
            "S1,S7.2*",
            "--json",
            "--report",
        ])
        .arg(&dir)
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let html = dir.join("report.html");
    let text = std::fs::read_to_string(&html).unwrap();
    assert!(
        !text.contains("http://") && !text.contains("https://"),
        "no network assets"
    );
    let url = format!("file://{}", html.display());
    let png = tmp.path().join("shot.png");
    let profile = tmp.path().join("profile");
    let common_args = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
    ];
    let shot = Command::new(&browser)
        .args(common_args)
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg("--window-size=1280,2000")
        .arg(&url)
        .output()
        .unwrap();
    let size = std::fs::metadata(&png).map(|m| m.len()).unwrap_or(0);
    assert!(
        size > 10_000,
        "screenshot of {size} bytes: {}",
        String::from_utf8_lossy(&shot.stderr)
    );
    let dom = Command::new(&browser)
        .args(common_args)
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(&url)
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&dom.stdout);
    for kind in ["PASS", "VARIANT", "FAIL", "INFO", "ERROR", "SKIPPED"] {
        let n = report["summary"][kind.to_lowercase()].as_u64().unwrap();
        let card = format!("id=\"count-{kind}\"><b>{n}</b>{kind}</div>");
        assert!(dom.contains(&card), "{card} not in the rendered page");
    }
    let cases = report["results"].as_array().unwrap().len();
    assert!(
        dom.matches("<tr class=\"case\"").count() == cases,
        "{cases} rows"
    );
}
