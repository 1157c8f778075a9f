//! The client's key files against a folder someone else can write to: planted
//! temporary files and symlinks, and key files left readable by others. The real
//! `server` and `client` binaries on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test harness: a failure is a panic

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use common::*;

/// Every entry of a folder: name -> (is a symlink, mode, contents or link target).
fn snapshot(dir: &Path) -> BTreeMap<String, (bool, u32, Vec<u8>)> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let meta = fs::symlink_metadata(e.path()).unwrap();
            let link = meta.file_type().is_symlink();
            let body = if link {
                fs::read_link(e.path())
                    .unwrap()
                    .to_string_lossy()
                    .into_owned()
                    .into_bytes()
            } else {
                fs::read(e.path()).unwrap()
            };
            (
                e.file_name().to_string_lossy().into_owned(),
                (link, meta.mode() & 0o7777, body),
            )
        })
        .collect()
}

fn write_mode(path: &Path, contents: &str, mode: u32) {
    fs::write(path, contents).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// Runs the client in `dir` and checks that exactly `me.info` and `priv.key` (and
/// `me.server`) were added, the key files regular 0600 files, and that nothing
/// already there changed.
fn register_and_check(dir: &Path) {
    let before = snapshot(dir);
    assert_ok(&run_client(dir, &[]), "client");
    let mut after = snapshot(dir);
    for name in ["me.info", "priv.key"] {
        let (link, mode, _) = after.remove(name).unwrap_or_else(|| panic!("{name}"));
        assert!(!link, "{name} is a symlink");
        assert!(fs::symlink_metadata(dir.join(name)).unwrap().is_file());
        assert_eq!(mode, 0o600, "{name} mode {mode:o}");
    }
    // The client's note of which server me.info belongs to (not secret).
    if let Some((link, _, _)) = after.remove("me.server") {
        assert!(!link, "me.server is a symlink");
    }
    assert_eq!(after, before, "no other file written or changed");
}

#[test]
fn planted_temporary_files_do_not_make_the_key_files_readable() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("server"), 0, &[]);
    let c = client_dir(tmp.path(), "ivan", server.port, "f.bin", &data(5000, 3));
    write_mode(&c.join("me.tmp"), "planted", 0o644);
    write_mode(&c.join("priv.tmp"), "planted", 0o644);
    register_and_check(&c);
}

#[test]
fn a_planted_symlink_is_not_written_through() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("server"), 0, &[]);
    let c = client_dir(tmp.path(), "judy", server.port, "f.bin", &data(5000, 4));
    write_mode(&c.join("elsewhere.txt"), "untouched", 0o644);
    std::os::unix::fs::symlink("elsewhere.txt", c.join("priv.tmp")).unwrap();
    std::os::unix::fs::symlink("elsewhere.txt", c.join("me.tmp")).unwrap();
    register_and_check(&c);
    assert_eq!(
        fs::read_to_string(c.join("elsewhere.txt")).unwrap(),
        "untouched"
    );
}

#[test]
fn key_files_readable_by_others_or_linked_are_refused_with_the_fix() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("server"), 0, &[]);
    let c = client_dir(tmp.path(), "kate", server.port, "f.bin", &data(5000, 5));
    assert_ok(&run_client(&c, &[]), "registration");
    let me = c.join("me.info");
    let refused = |expect: &[&str]| {
        let out = run_client(&c, &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "accepted: {err}");
        for e in expect {
            assert!(err.contains(e), "{err:?} should say {e:?}");
        }
    };

    fs::set_permissions(&me, fs::Permissions::from_mode(0o644)).unwrap();
    refused(&[
        "me.info is readable by group and others (mode 0644)",
        "chmod 600",
    ]);
    fs::set_permissions(&me, fs::Permissions::from_mode(0o600)).unwrap();
    assert_ok(&run_client(&c, &[]), "reconnect once the mode is fixed");

    // me.info as a link to a private file elsewhere: refused, not followed.
    fs::rename(&me, c.join("real.info")).unwrap();
    std::os::unix::fs::symlink("real.info", &me).unwrap();
    refused(&["me.info is a symbolic link"]);
    fs::remove_file(&me).unwrap();
    fs::rename(c.join("real.info"), &me).unwrap();

    // A me.info without its key lines falls back to priv.key, under the same rules.
    let text = fs::read_to_string(&me).unwrap();
    let head: String = text.lines().take(2).map(|l| format!("{l}\n")).collect();
    write_mode(&me, &head, 0o600);
    fs::set_permissions(c.join("priv.key"), fs::Permissions::from_mode(0o640)).unwrap();
    refused(&["priv.key is readable by group (mode 0640)"]);
    fs::set_permissions(c.join("priv.key"), fs::Permissions::from_mode(0o600)).unwrap();
    assert_ok(&run_client(&c, &[]), "reconnect with the key in priv.key");
}
