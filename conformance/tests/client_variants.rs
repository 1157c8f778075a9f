//! Fixture clients built from protocol-core's `Dialect` options, one per variant of
//! section 8 that a client shows: the client suite names each VARIANT, and the
//! plain specification client gets none.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test harness: a failure is a panic

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::fixture_client::FixtureLauncher;
use conformance::client::run::run_client;
use conformance::model::Outcome;
use conformance::runner::RunOptions;
use protocol_core::crypto::ChecksumAlgorithm;
use protocol_core::{ByteOrder, Dialect, PacketFieldOrder};

fn check(dialect: Dialect, variants: &[u8]) -> Result<(), String> {
    let tmp = tempfile::tempdir().unwrap();
    let launcher = FixtureLauncher { dialect };
    let report = run_client(
        "127.0.0.1:0",
        &launcher,
        tmp.path(),
        Duration::from_secs(8),
        &RunOptions::default(),
        &mut |_| {},
    )
    .unwrap();
    let seen: BTreeSet<u8> = report.verdict.variants.iter().map(|v| v.variant).collect();
    if report.results.len() < 40 {
        return Err(format!("{} client cases", report.results.len()));
    }
    let odd: Vec<String> = report
        .results
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Error | Outcome::Skipped))
        .map(|r| format!("{} {}: {}", r.meta.id, r.meta.title, r.detail))
        .collect();
    if !odd.is_empty() {
        return Err(format!("{odd:#?}"));
    }
    let expected: BTreeSet<u8> = variants.iter().copied().collect();
    if seen != expected {
        return Err(format!("{:#?}", report.verdict));
    }
    Ok(())
}

/// Every fixture at once (they wait on sockets, not on the CPU); each one's
/// mismatch is reported by name.
#[test]
fn every_client_variant_is_named() {
    let fixtures: Vec<(&str, common::FixtureCheck)> = vec![
        (
            "spec_client_shows_no_variant",
            Box::new(|| check(Dialect::default(), &[])),
        ),
        (
            "v1_big_endian",
            Box::new(|| {
                check(
                    Dialect {
                        byte_order: ByteOrder::Big,
                        ..Dialect::default()
                    },
                    &[1],
                )
            }),
        ),
        (
            "v2_total_first",
            Box::new(|| {
                check(
                    Dialect {
                        packet_fields: PacketFieldOrder::TotalFirst,
                        packet_size: 1024,
                        ..Dialect::default()
                    },
                    &[2],
                )
            }),
        ),
        (
            "v3_per_packet_size",
            Box::new(|| {
                check(
                    Dialect {
                        per_packet_content_size: true,
                        packet_size: 1024,
                        ..Dialect::default()
                    },
                    &[3],
                )
            }),
        ),
        (
            "v4_per_packet_encryption",
            Box::new(|| {
                check(
                    Dialect {
                        per_packet_encryption: true,
                        packet_size: 1024,
                        ..Dialect::default()
                    },
                    &[4],
                )
            }),
        ),
        (
            "v5_client_name_in_verdicts",
            Box::new(|| {
                check(
                    Dialect {
                        crc_carries_client_name: true,
                        ..Dialect::default()
                    },
                    &[5],
                )
            }),
        ),
        (
            "v7_connection_per_request",
            Box::new(|| {
                check(
                    Dialect {
                        connection_per_request: true,
                        packet_size: 1024,
                        one_request_per_write: true,
                        ..Dialect::default()
                    },
                    &[7],
                )
            }),
        ),
        (
            "v8_crc32",
            Box::new(|| {
                check(
                    Dialect {
                        checksum: ChecksumAlgorithm::Crc32,
                        ..Dialect::default()
                    },
                    &[8],
                )
            }),
        ),
        (
            "v12_padded",
            Box::new(|| {
                check(
                    Dialect {
                        pad_packets: true,
                        packet_size: 1024,
                        one_request_per_write: true,
                        ..Dialect::default()
                    },
                    &[12],
                )
            }),
        ),
    ];
    common::run_all(fixtures);
}
