//! Fixture clients built from protocol-core's `Dialect` options, one per variant of
//! section 8 that a client shows: the client suite names each VARIANT, and the
//! plain specification client gets none.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::fixture_client::FixtureLauncher;
use conformance::client::cases::run_client;
use conformance::model::Outcome;
use conformance::runner::RunOptions;
use protocol_core::crypto::ChecksumAlgorithm;
use protocol_core::{ByteOrder, Dialect, PacketFieldOrder};

fn check(dialect: Dialect, variants: &[u8]) {
    let tmp = tempfile::tempdir().unwrap();
    let launcher = FixtureLauncher { dialect };
    let report = run_client("127.0.0.1:0", &launcher, tmp.path(), Duration::from_secs(8), &RunOptions::default(), &mut |_| {}).unwrap();
    let seen: BTreeSet<u8> = report.verdict.variants.iter().map(|v| v.variant).collect();
    assert!(report.results.len() >= 40);
    let odd: Vec<String> = report
        .results
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Error | Outcome::Skipped))
        .map(|r| format!("{} {}: {}", r.meta.id, r.meta.title, r.detail))
        .collect();
    assert!(odd.is_empty(), "{odd:#?}");
    assert_eq!(seen, variants.iter().copied().collect(), "{:#?}", report.verdict);
}

#[test]
fn spec_client_shows_no_variant() {
    check(Dialect::default(), &[]);
}

#[test]
fn v1_big_endian() {
    check(Dialect { byte_order: ByteOrder::Big, ..Dialect::default() }, &[1]);
}

#[test]
fn v2_total_first() {
    check(Dialect { packet_fields: PacketFieldOrder::TotalFirst, packet_size: 1024, ..Dialect::default() }, &[2]);
}

#[test]
fn v3_per_packet_size() {
    check(Dialect { per_packet_content_size: true, packet_size: 1024, ..Dialect::default() }, &[3]);
}

#[test]
fn v4_per_packet_encryption() {
    check(Dialect { per_packet_encryption: true, packet_size: 1024, ..Dialect::default() }, &[4]);
}

#[test]
fn v5_client_name_in_verdicts() {
    check(Dialect { crc_carries_client_name: true, ..Dialect::default() }, &[5]);
}

#[test]
fn v7_connection_per_request() {
    check(Dialect { connection_per_request: true, packet_size: 1024, one_request_per_write: true, ..Dialect::default() }, &[7]);
}

#[test]
fn v8_crc32() {
    check(Dialect { checksum: ChecksumAlgorithm::Crc32, ..Dialect::default() }, &[8]);
}

#[test]
fn v12_padded() {
    check(Dialect { pad_packets: true, packet_size: 1024, one_request_per_write: true, ..Dialect::default() }, &[12]);
}
