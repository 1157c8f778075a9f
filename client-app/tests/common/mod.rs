//! Helpers for the tests that run the real `client` against the real `server`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

#[allow(unused_imports)]
pub use test_kit::proxy::{gate_proxy, proxy, wait_for, Tamper};
#[allow(unused_imports)]
pub use test_kit::{data, free_port, Server};

pub fn client_bin() -> PathBuf {
    test_kit::bins::client()
}

pub fn server_bin() -> PathBuf {
    test_kit::bins::server()
}

/// A folder with a file to send.
pub fn folder(root: &Path, name: &str, file: &str, contents: &[u8]) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(file), contents).unwrap();
    dir
}

/// Runs the client in `dir` with `args` in the legacy protocol (`--legacy` is added
/// unless the arguments choose a mode themselves): the protocol these tests were
/// written for, which deployed peers speak. [`secure_client`] runs it as a user does
/// by default.
pub fn client(dir: &Path, args: &[&str]) -> Run {
    let chooses = args
        .iter()
        .any(|a| matches!(*a, "--legacy" | "--server-fingerprint" | "--keep-legacy"));
    if chooses {
        return secure_client(dir, args);
    }
    secure_client(dir, &[&["--legacy"], args].concat())
}

/// Runs the client in `dir` with `args` exactly (the secure mode with a server that
/// offers it).
pub fn secure_client(dir: &Path, args: &[&str]) -> Run {
    let out = Command::new(client_bin())
        .args(args)
        .current_dir(dir)
        .output()
        .expect("running the client");
    Run::from(out)
}

/// What a client run printed, and its exit code.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(out: Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl Run {
    /// The run failed with `code`, and its `Fatal:` message says `expect`.
    pub fn fails(&self, code: i32, expect: &str) -> &Run {
        assert_eq!(self.code, code, "exit code; {self:#?}");
        assert!(self.stderr.contains("Fatal: "), "{self:#?}");
        assert!(
            self.stderr.contains(expect),
            "stderr should say {expect:?}: {self:#?}"
        );
        assert!(!self.stderr.contains("panicked"), "{self:#?}");
        // Every failure says what to do, on the line after the message.
        let fatal = &self.stderr[self.stderr.find("Fatal: ").unwrap_or(0)..];
        assert!(
            fatal
                .lines()
                .nth(1)
                .is_some_and(|l| l.starts_with("  ") && l.trim().len() > 10),
            "no 'what to do' line after the Fatal: message: {self:#?}"
        );
        for internal in ["Register", "SendFile", "CrcOk", "GeneralError", "os error"] {
            assert!(
                !self.stderr.contains(internal),
                "internal name {internal:?} in {self:#?}"
            );
        }
        self
    }

    pub fn ok(&self) -> &Run {
        assert_eq!(self.code, 0, "{self:#?}");
        self
    }
}

/// The `cksum` command's checksum of a file.
pub fn cksum(path: &Path) -> String {
    let out = Command::new("cksum").arg(path).output().expect("cksum");
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}
