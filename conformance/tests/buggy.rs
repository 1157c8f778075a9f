//! Fixture servers with one deliberate bug each get FAIL on exactly the cases
//! that vouch for the property the bug breaks (the cases tagged with its `Check`),
//! and on no other.

mod common;

use std::collections::BTreeSet;

use common::fixture_server::{start, Bug, Fixture};
use conformance::cases::server_cases;
use conformance::model::{Check, Outcome};
use conformance::runner::{run_server, RunOptions};

fn check(bug: Bug, property: Check) {
    let addr = start(Fixture { bug: Some(bug), ..Fixture::default() });
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
    assert!(!tagged.is_empty());
    let details: Vec<String> = report
        .results
        .iter()
        .filter(|r| failed.symmetric_difference(&tagged).any(|id| *id == r.meta.id))
        .map(|r| format!("{} {} {}: {}", r.meta.id, r.outcome.label(), r.meta.title, r.detail))
        .collect();
    assert_eq!(failed, tagged, "FAIL set differs from the {property:?} cases: {details:#?}");
    let not_run: Vec<&str> = report
        .results
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Error | Outcome::Skipped))
        .map(|r| r.meta.id.as_str())
        .collect();
    assert!(not_run.is_empty(), "{not_run:?}");
}

#[test]
fn wrong_checksum_fails_the_checksum_cases() {
    check(Bug::WrongChecksum, Check::Checksum);
}

#[test]
fn early_1603_fails_the_last_packet_cases() {
    check(Bug::EarlyFileReceived, Check::LastPacketOnly);
}

#[test]
fn close_after_1602_fails_the_open_connection_case() {
    check(Bug::CloseAfterKey, Check::OpenAfterKey);
}
