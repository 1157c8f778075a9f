//! The client's messages for bad input: each a one-line `Fatal:` and a non-zero exit.

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;

fn client(dir: &Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_client"))
        .current_dir(dir)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn fatal(dir: &Path, expect: &str) {
    let (ok, err) = client(dir);
    assert!(!ok, "expected failure, got success: {err}");
    assert!(err.starts_with("Fatal: "), "{err}");
    assert!(err.contains(expect), "{err:?} should mention {expect:?}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn missing_transfer_info() {
    let tmp = tempfile::tempdir().unwrap();
    fatal(tmp.path(), "transfer.info");
}

#[test]
fn malformed_transfer_info() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("transfer.info"),
        "no port here\nname\nfile\n",
    )
    .unwrap();
    fatal(tmp.path(), "host:port");
    std::fs::write(tmp.path().join("transfer.info"), "127.0.0.1:1\n").unwrap();
    fatal(tmp.path(), "line 2");
    let long = "x".repeat(101);
    std::fs::write(
        tmp.path().join("transfer.info"),
        format!("127.0.0.1:1\n{long}\nf\n"),
    )
    .unwrap();
    std::fs::write(tmp.path().join("f"), "data").unwrap();
    fatal(tmp.path(), "at most 100");
}

#[test]
fn unreadable_file_and_refused_connection() {
    let tmp = tempfile::tempdir().unwrap();
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    std::fs::write(
        tmp.path().join("transfer.info"),
        format!("127.0.0.1:{port}\nalice\nmissing.bin\n"),
    )
    .unwrap();
    fatal(tmp.path(), "missing.bin");
    std::fs::write(tmp.path().join("missing.bin"), "now it exists").unwrap();
    fatal(tmp.path(), "cannot connect");
}

#[test]
fn malformed_me_info() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("transfer.info"), "127.0.0.1:1\nalice\nf\n").unwrap();
    std::fs::write(tmp.path().join("f"), "data").unwrap();
    write_private(&tmp.path().join("me.info"), "alice\nnot-hex\nAAAA\n");
    fatal(tmp.path(), "32 hex digits");
    write_private(
        &tmp.path().join("me.info"),
        &format!("alice\n{}\nnot base64!\n", "ab".repeat(16)),
    );
    fatal(tmp.path(), "private key");
}

/// Writes a file as the client expects its key files: mode 0600.
fn write_private(path: &Path, contents: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, contents).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}
