//! Pinning the server's identity with the real binaries (docs/SECURITY.md, "Pinning
//! the server's identity"): the first use writes known_servers; another server on
//! the same address is refused with exit 8, both fingerprints named and nothing sent
//! to it; a pinned server replaced by a legacy-only one (`--no-tls`) is unreachable
//! (exit 3), never spoken to in the legacy protocol; a wrong `--server-fingerprint`
//! is exit 8; `--legacy` still reaches the legacy-only server.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test harness: a failure is a panic

mod common;
mod secure_kit;

use common::{data, Server};
use secure_kit::*;

/// What a server's log shows of a client that got past the TLS handshake: none of
/// it may appear on a server the client refused.
const SIGNS_OF_A_CLIENT: [&str; 7] = [
    "registered",
    "registration",
    "signed in",
    "secure upload",
    "download",
    "dialect seen",
    "refused",
];

fn nothing_from_a_client(log: &str) {
    for sign in SIGNS_OF_A_CLIENT {
        assert!(!log.contains(sign), "{sign:?} in the server's log: {log}");
    }
}

#[test]
fn a_pinned_address_refuses_another_identity_and_a_legacy_only_server() {
    let tmp = tempfile::tempdir().unwrap();
    let first = Server::start(&tmp.path().join("first"), 0, &[]);
    let port = first.port;
    let addr = first.addr();
    let fp1 = served_identity(&first.log());
    let dir = folder(tmp.path(), "pia", &addr, "p.bin");
    std::fs::write(dir.join("p.bin"), data(20_000, 1)).unwrap();

    // First use: pinned, said so, and written to known_servers.
    let out = client(&dir, &["put", "p.bin"]);
    ok(&out, "first use");
    assert!(
        stderr(&out).contains(&format!("pinned {addr} as {fp1}")),
        "{}",
        said(&out)
    );
    assert_eq!(pinned(&dir, &addr), Some(fp1));
    first.stop();

    // Another server (its own identity) on the same address.
    let second = Server::start(&tmp.path().join("second"), port, &[]);
    let fp2 = served_identity(&second.log());
    assert_ne!(fp1, fp2);
    for args in [
        &["put", "p.bin"][..],
        &["list"],
        &["get", "p.bin", "-o", "x"],
    ] {
        let out = client(&dir, args);
        fails(&out, 8, &format!("{args:?} against another identity"));
        let err = stderr(&out);
        assert!(
            err.contains(&fp1.to_string()) && err.contains(&fp2.to_string()),
            "{err}"
        );
        assert!(err.contains("IDENTITY HAS CHANGED"), "{err}");
    }
    assert_eq!(pinned(&dir, &addr), Some(fp1), "the pin stays");
    assert!(!dir.join("x").exists() && !dir.join(".x.part").exists());
    // A wrong --server-fingerprint, from a folder that pinned nothing.
    let fresh = folder(tmp.path(), "fred", &addr, "p.bin");
    std::fs::write(fresh.join("p.bin"), data(1_000, 2)).unwrap();
    let wrong = fp1.to_string();
    let out = client(&fresh, &["--server-fingerprint", &wrong, "p.bin"]);
    fails(&out, 8, "a wrong --server-fingerprint");
    assert!(stderr(&out).contains(&fp2.to_string()), "{}", said(&out));
    assert!(!fresh.join("me.info").exists());
    assert!(!fresh.join("known_servers").exists());
    nothing_from_a_client(&second.log());
    // The right one works.
    let right = fp2.to_string();
    ok(
        &client(&fresh, &["--server-fingerprint", &right, "p.bin"]),
        "the right --server-fingerprint",
    );
    second.stop();

    // A legacy-only server on the pinned address: unreachable, nothing sent.
    let legacy_only = Server::start(&tmp.path().join("legacy"), port, &["--no-tls"]);
    for args in [&["put", "p.bin"][..], &["list"]] {
        let out = client(&dir, args);
        fails(&out, 3, &format!("{args:?} against --no-tls"));
        assert!(stderr(&out).contains("without TLS"), "{}", said(&out));
    }
    let log = legacy_only.log();
    // ("825 registered" is the legacy registration's line.)
    assert!(!log.contains("registered"), "{log}");
    assert!(!log.contains("dialect seen"), "{log}");
    assert!(common::records(&legacy_only.dir).is_empty(), "no files");
    // --legacy reaches it (a folder of its own: the pinned one's me.info is the
    // other servers').
    let leg = folder(tmp.path(), "leo", &addr, "p.bin");
    let bytes = data(33_000, 3);
    std::fs::write(leg.join("p.bin"), &bytes).unwrap();
    ok(&client(&leg, &["--legacy", "p.bin"]), "--legacy");
    assert!(legacy_only.log().contains("825 registered"));
    assert!(!leg.join("known_servers").exists());
    let id = common::client_id(&leg);
    let stored = common::stored_path(&legacy_only.dir, &id, "p.bin");
    assert_eq!(std::fs::read(stored).unwrap(), bytes);
    legacy_only.stop();
}
