//! Fixture servers built from protocol-core's dialect options, one per variant of
//! PROTOCOL.md section 8 that a server shows: the suite names each VARIANT, and
//! the client options of section 9 that talk to it, with no FAIL.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test harness: a failure is a panic

mod common;

use std::collections::BTreeSet;

use common::fixture_server::{start, Fixture};
use conformance::model::Outcome;
use conformance::runner::{run_server, RunOptions};
use protocol_core::crypto::{AesKeySize, ChecksumAlgorithm};
use protocol_core::{ByteOrder, EncryptionMode, ResponseOrder, ServerDialect};

fn check(f: Fixture, variants: &[u8], command: &str) -> Result<(), String> {
    let addr = start(f);
    let report = run_server(&addr.to_string(), &RunOptions::default(), &mut |_| {}).unwrap();
    let seen: BTreeSet<u8> = report.verdict.variants.iter().map(|v| v.variant).collect();
    let bad: Vec<String> = report
        .results
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Fail | Outcome::Error | Outcome::Skipped))
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
    if !bad.is_empty() {
        return Err(format!("cases that failed or did not run: {bad:#?}"));
    }
    if seen != variants.iter().copied().collect() {
        return Err(format!(
            "variants named {seen:?}, expected {variants:?}: {:#?}",
            report.verdict
        ));
    }
    if report.verdict.command != command {
        return Err(format!(
            "verdict `{}`, expected `{command}`",
            report.verdict.command
        ));
    }
    Ok(())
}

/// Every fixture at once (they wait on sockets, not on the CPU); each one's
/// mismatch is reported by name.
#[test]
fn every_server_variant_is_named() {
    let fixtures: Vec<(&str, common::FixtureCheck)> = vec![
        (
            "v1_big_endian_only",
            Box::new(|| {
                let dialect = ServerDialect {
                    response_order: ResponseOrder::Fixed(ByteOrder::Big),
                    ..ServerDialect::default()
                };
                check(
                    Fixture {
                        dialect,
                        big_endian_only: true,
                        ..Fixture::default()
                    },
                    &[1],
                    "client --big-endian",
                )
            }),
        ),
        (
            "v3_content_size_per_packet",
            Box::new(|| {
                check(
                    Fixture {
                        per_packet_size_only: true,
                        ..Fixture::default()
                    },
                    &[3],
                    "client --per-packet-size",
                )
            }),
        ),
        (
            "v5_client_name_in_verdicts",
            Box::new(|| {
                check(
                    Fixture {
                        client_name_in_verdicts: true,
                        ..Fixture::default()
                    },
                    &[5],
                    "client --crc-client-name",
                )
            }),
        ),
        (
            "v1_big_endian_responses",
            Box::new(|| {
                let dialect = ServerDialect {
                    response_order: ResponseOrder::Fixed(ByteOrder::Big),
                    ..ServerDialect::default()
                };
                check(
                    Fixture {
                        dialect,
                        ..Fixture::default()
                    },
                    &[1],
                    "client --big-endian",
                )
            }),
        ),
        (
            "v6_empty_ack",
            Box::new(|| {
                let dialect = ServerDialect {
                    empty_ack: true,
                    ..ServerDialect::default()
                };
                check(
                    Fixture {
                        dialect,
                        ..Fixture::default()
                    },
                    &[6],
                    "client --dialect spec",
                )
            }),
        ),
        (
            "v7_a_connection_per_request",
            Box::new(|| {
                check(
                    Fixture {
                        close_after_answer: true,
                        ..Fixture::default()
                    },
                    &[7],
                    "client --dialect per-connection",
                )
            }),
        ),
        (
            "v8_crc32",
            Box::new(|| {
                let dialect = ServerDialect {
                    checksum: ChecksumAlgorithm::Crc32,
                    ..ServerDialect::default()
                };
                check(
                    Fixture {
                        dialect,
                        ..Fixture::default()
                    },
                    &[8],
                    "client --checksum crc32",
                )
            }),
        ),
        (
            "v8_aes128",
            Box::new(|| {
                let dialect = ServerDialect {
                    aes_key_size: AesKeySize::Aes128,
                    ..ServerDialect::default()
                };
                check(
                    Fixture {
                        dialect,
                        ..Fixture::default()
                    },
                    &[8],
                    "client --dialect spec",
                )
            }),
        ),
        (
            "v9_v13_one_recv",
            Box::new(|| {
                check(
                    Fixture {
                        one_recv: true,
                        ..Fixture::default()
                    },
                    &[9, 13],
                    "client --dialect one-recv",
                )
            }),
        ),
        (
            "v11_plaintext_size",
            Box::new(|| {
                check(
                    Fixture {
                        plain_size: true,
                        ..Fixture::default()
                    },
                    &[11],
                    "client --dialect spec",
                )
            }),
        ),
        (
            "v2_v4_total_first_per_packet",
            Box::new(|| {
                let dialect = ServerDialect {
                    encryption: EncryptionMode::PerPacket,
                    ..ServerDialect::default()
                };
                check(
                    Fixture {
                        dialect,
                        total_first: true,
                        ..Fixture::default()
                    },
                    &[2],
                    "client --dialect total-first-per-packet",
                )
            }),
        ),
        (
            "v12_padded",
            Box::new(|| {
                check(
                    Fixture {
                        padded_only: true,
                        ..Fixture::default()
                    },
                    &[12],
                    "client --dialect padded",
                )
            }),
        ),
    ];
    common::run_all(fixtures);
}
