//! The pinning options as the real `client` takes them: `--legacy` and
//! `--server-fingerprint` are documented, parsed and checked before any network
//! traffic. (The policy itself, over real sockets against rustls servers and legacy
//! listeners, is tested beside it: `client-app/src/secure_connect/tests.rs`.)
#![allow(clippy::unwrap_used, clippy::expect_used)] // test harness: a failure is a panic

mod common;

use common::*;

/// A fingerprint in the form people paste.
const SOME_FINGERPRINT: &str =
    "SHA256:3f1c0e5e2b0d6f4a9c8b7a6f5e4d3c2b1a09f8e7d6c5b4a3928170f6e5d4c3b2";

#[test]
fn help_documents_the_pinning_options() {
    let tmp = tempfile::tempdir().unwrap();
    let help = client(tmp.path(), &["--help"]).ok().stdout.clone();
    for word in ["--legacy", "--server-fingerprint", "known_servers"] {
        assert!(help.contains(word), "{word:?} missing from {help}");
    }
}

#[test]
fn legacy_and_a_fingerprint_cannot_be_combined() {
    let tmp = tempfile::tempdir().unwrap();
    let args = [
        "--legacy",
        "--server-fingerprint",
        SOME_FINGERPRINT,
        "--server",
        "127.0.0.1:1",
        "--name",
        "a",
        "f",
    ];
    let run = client(tmp.path(), &args);
    assert_eq!(run.code, 2, "{run:#?}");
    assert!(run.stderr.contains("cannot be used with"), "{run:#?}");
}

#[test]
fn a_malformed_fingerprint_is_a_usage_error() {
    let tmp = tempfile::tempdir().unwrap();
    for bad in ["SHA256:abc", "MD5:00", "not a fingerprint"] {
        let run = client(tmp.path(), &["--server-fingerprint", bad]);
        assert_eq!(run.code, 2, "{bad}: {run:#?}");
        assert!(run.stderr.contains("SHA256:"), "{bad}: {run:#?}");
    }
}

#[test]
fn the_options_parse_and_a_pin_is_required() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("f"), "x").unwrap();
    let server = format!("127.0.0.1:{}", free_port());
    let args = ["--server", &server, "--name", "a", "f"];
    // With nothing listening, a run that got past the options fails as unreachable
    // (3), not as a usage error (2).
    let mut legacy = vec!["--legacy"];
    legacy.extend(args);
    client(tmp.path(), &legacy).fails(3, "refused the connection");
    // A pin is parsed (OpenSSL's colon form too) and then required: with nothing
    // listening the run fails as unreachable, never as a legacy attempt.
    let colons = SOME_FINGERPRINT.as_bytes()[7..]
        .chunks(2)
        .map(|pair| std::str::from_utf8(pair).unwrap().to_uppercase())
        .collect::<Vec<_>>()
        .join(":");
    for given in [SOME_FINGERPRINT, &colons] {
        let mut pinned = vec!["--server-fingerprint", given];
        pinned.extend(args);
        client(tmp.path(), &pinned).fails(3, "cannot reach");
    }
}

/// Single dialect options (a deployed peer's shape) skip TLS only for a server with
/// no pin: a server pinned in known_servers, named by transfer.info, is reached over
/// TLS or not at all, and one that now speaks only legacy gets nothing.
#[test]
fn dialect_options_never_take_a_pinned_server_from_transfer_info_to_legacy() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("s"), 0, &["--no-tls"]);
    let dir = folder(tmp.path(), "c", "f.bin", &data(5_000, 3));
    std::fs::write(
        dir.join("transfer.info"),
        format!("{}\ncarl\nf.bin\n", server.addr()),
    )
    .unwrap();
    std::fs::write(
        dir.join("known_servers"),
        format!("{} {SOME_FINGERPRINT}\n", server.addr()),
    )
    .unwrap();
    let run = secure_client(&dir, &["--packet-size", "1024"]);
    run.fails(3, "does not fall back");
    assert!(!server.log().contains("825"), "{}", server.log());
}
