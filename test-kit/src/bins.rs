//! The workspace's binaries, as any crate's tests find them: beside the test
//! executable's `deps/` folder, built by cargo first when missing (a package's tests
//! run alone; `cargo test --workspace` builds every binary anyway).

use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

/// The `server` binary (package `server-app`).
pub fn server() -> PathBuf {
    workspace_bin("server-app", "server")
}

/// The `client` binary (package `client-app`).
pub fn client() -> PathBuf {
    workspace_bin("client-app", "client")
}

/// Binary `bin` of `package`, in the profile folder of the running test (or
/// benchmark) executable; built by cargo first if it is not there. A release
/// executable gets a release build.
///
/// # Panics
/// If cargo cannot build it: the test cannot run without it.
pub fn workspace_bin(package: &str, bin: &str) -> PathBuf {
    // One build at a time: the tests of one process ask at once.
    static BUILD: Mutex<()> = Mutex::new(());
    let exe = std::env::current_exe().expect("the test executable's path");
    let mut folder = exe.parent().expect("a folder").to_path_buf();
    if folder.ends_with("deps") || folder.ends_with("examples") {
        folder.pop();
    }
    let path = folder.join(bin);
    let _one = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    if !path.exists() {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "-p", package, "--bin", bin]);
        if folder.ends_with("release") {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("running cargo build");
        assert!(status.success(), "building {bin} ({package}) failed");
    }
    path
}
