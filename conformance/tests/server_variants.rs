//! Fixture servers built from protocol-core's dialect options, one per variant of
//! PROTOCOL.md section 8 that a server shows: the suite names each VARIANT, and
//! the client options of section 9 that talk to it, with no FAIL.

mod common;

use std::collections::BTreeSet;

use common::fixture_server::{start, Fixture};
use conformance::model::Outcome;
use conformance::runner::{run_server, RunOptions};
use protocol_core::crypto::{AesKeySize, ChecksumAlgorithm};
use protocol_core::{ByteOrder, EncryptionMode, ResponseOrder, ServerDialect};

fn check(f: Fixture, variants: &[u8], command: &str) {
    let addr = start(f);
    let report = run_server(&addr.to_string(), &RunOptions::default(), &mut |_| {}).unwrap();
    let seen: BTreeSet<u8> = report.verdict.variants.iter().map(|v| v.variant).collect();
    let bad: Vec<String> = report
        .results
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Fail | Outcome::Error | Outcome::Skipped))
        .map(|r| format!("{} {} {}: {}", r.meta.id, r.outcome.label(), r.meta.title, r.detail))
        .collect();
    assert!(bad.is_empty(), "cases that failed or did not run: {bad:#?}");
    assert_eq!(seen, variants.iter().copied().collect(), "variants named: {:#?}", report.verdict);
    assert_eq!(report.verdict.command, command);
}

#[test]
fn v1_big_endian_responses() {
    let dialect = ServerDialect { response_order: ResponseOrder::Fixed(ByteOrder::Big), ..ServerDialect::default() };
    check(Fixture { dialect, ..Fixture::default() }, &[1], "client --big-endian");
}

#[test]
fn v6_empty_ack() {
    let dialect = ServerDialect { empty_ack: true, ..ServerDialect::default() };
    check(Fixture { dialect, ..Fixture::default() }, &[6], "client --dialect spec");
}

#[test]
fn v7_a_connection_per_request() {
    check(Fixture { close_after_answer: true, ..Fixture::default() }, &[7], "client --dialect per-connection");
}

#[test]
fn v8_crc32() {
    let dialect = ServerDialect { checksum: ChecksumAlgorithm::Crc32, ..ServerDialect::default() };
    check(Fixture { dialect, ..Fixture::default() }, &[8], "client --checksum crc32");
}

#[test]
fn v8_aes128() {
    let dialect = ServerDialect { aes_key_size: AesKeySize::Aes128, ..ServerDialect::default() };
    check(Fixture { dialect, ..Fixture::default() }, &[8], "client --dialect spec");
}

#[test]
fn v9_v13_one_recv() {
    check(Fixture { one_recv: true, ..Fixture::default() }, &[9, 13], "client --dialect one-recv");
}

#[test]
fn v11_plaintext_size() {
    check(Fixture { plain_size: true, ..Fixture::default() }, &[11], "client --dialect spec");
}

#[test]
fn v2_v4_total_first_per_packet() {
    let dialect = ServerDialect { encryption: EncryptionMode::PerPacket, ..ServerDialect::default() };
    check(Fixture { dialect, total_first: true, ..Fixture::default() }, &[2], "client --dialect total-first-per-packet");
}

#[test]
fn v12_padded() {
    check(Fixture { padded_only: true, ..Fixture::default() }, &[12], "client --dialect padded");
}
