//! Fixture servers with one deliberate bug each get FAIL on exactly the cases
//! that vouch for the property the bug breaks (the cases tagged with its `Check`),
//! and on no other.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test harness: a failure is a panic

mod common;

use std::collections::BTreeSet;

use common::fixture_server::{start, Bug, Fixture};
use conformance::cases::server_cases;
use conformance::model::{Check, Outcome};
use conformance::runner::{run_server, RunOptions};

fn check(bug: Bug, property: Check) -> Result<(), String> {
    let addr = start(Fixture {
        bug: Some(bug),
        ..Fixture::default()
    });
    let report = run_server(&addr.to_string(), &RunOptions::default(), &mut |_| {}).unwrap();
    let failed: BTreeSet<String> = report
        .results
        .iter()
        .filter(|r| r.outcome == Outcome::Fail)
        .map(|r| r.meta.id.clone())
        .collect();
    let tagged: BTreeSet<String> = server_cases()
        .into_iter()
        .filter(|(m, _)| m.checks.contains(&property))
        .map(|(m, _)| m.id)
        .collect();
    if tagged.is_empty() {
        return Err("no case carries the property".into());
    }
    let details: Vec<String> = report
        .results
        .iter()
        .filter(|r| {
            failed
                .symmetric_difference(&tagged)
                .any(|id| *id == r.meta.id)
        })
        .map(|r| {
            format!(
                "{} {} {}: {}",
                r.meta.id,
                r.outcome.label(),
                r.meta.title,
                r.detail
            )
        })
        .collect();
    if failed != tagged {
        return Err(format!(
            "FAIL set differs from the {property:?} cases: {details:#?}"
        ));
    }
    let not_run: Vec<&str> = report
        .results
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Error | Outcome::Skipped))
        .map(|r| r.meta.id.as_str())
        .collect();
    if !not_run.is_empty() {
        return Err(format!("{not_run:?}"));
    }
    Ok(())
}

/// Every fixture at once (they wait on sockets, not on the CPU); each one's
/// mismatch is reported by name.
#[test]
fn every_bug_fails_exactly_its_cases() {
    let fixtures: Vec<(&str, common::FixtureCheck)> = vec![
        (
            "wrong_checksum_fails_the_checksum_cases",
            Box::new(|| check(Bug::WrongChecksum, Check::Checksum)),
        ),
        (
            "early_1603_fails_the_last_packet_cases",
            Box::new(|| check(Bug::EarlyFileReceived, Check::LastPacketOnly)),
        ),
        (
            "close_after_1602_fails_the_open_connection_case",
            Box::new(|| check(Bug::CloseAfterKey, Check::OpenAfterKey)),
        ),
    ];
    common::run_all(fixtures);
}
