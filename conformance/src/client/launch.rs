//! Starting the client under test for a case: a shell command in the case's folder,
//! or (without `--run`) whoever starts it by hand.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use thiserror::Error;

/// Why a client could not be started.
#[derive(Debug, Error)]
pub enum LaunchError {
    /// The command could not be spawned.
    #[error("cannot start `{command}`: {err}")]
    Spawn {
        /// The command.
        command: String,
        /// Why.
        err: std::io::Error,
    },
}

/// A started client.
pub trait Running: Send {
    /// Its exit code once it has exited (`Some(None)`: exited without a code, or not
    /// ours to know), `None` while it runs.
    fn try_exit(&mut self) -> Option<Option<i32>>;
    /// Stops it (a case over its time).
    fn stop(&mut self);
    /// What it printed (stdout and stderr), if known.
    fn output(&self) -> String;
}

/// Starts the client under test.
pub trait Launcher: Sync {
    /// Starts it for one case in `dir`, which holds the case's `transfer.info`.
    fn launch(&self, dir: &Path, case_id: &str) -> Result<Box<dyn Running>, LaunchError>;
    /// What is tested, for the report.
    fn describe(&self) -> String;
    /// Whether exit codes are known (a client started by hand has none).
    fn knows_exit(&self) -> bool;
}

/// `--run COMMAND` (`sh -c`, in the case's folder), or by hand when `None`.
pub struct CommandLauncher {
    /// The command.
    pub command: Option<String>,
}

struct ChildRun {
    child: Child,
    dir: std::path::PathBuf,
}

impl Running for ChildRun {
    fn try_exit(&mut self) -> Option<Option<i32>> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(status.code()),
            Ok(None) => None,
            Err(_) => Some(None),
        }
    }

    fn stop(&mut self) {
        // The command runs in a process group of its own: stop all of it.
        let pid = self.child.id();
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{pid}")])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn output(&self) -> String {
        std::fs::read_to_string(self.dir.join("client.log")).unwrap_or_default()
    }
}

struct ByHand;

impl Running for ByHand {
    fn try_exit(&mut self) -> Option<Option<i32>> {
        None
    }
    fn stop(&mut self) {}
    fn output(&self) -> String {
        String::new()
    }
}

impl Launcher for CommandLauncher {
    fn launch(&self, dir: &Path, case_id: &str) -> Result<Box<dyn Running>, LaunchError> {
        let Some(command) = &self.command else {
            eprintln!(
                "case {case_id}: start the client in {} (its transfer.info is there)",
                dir.display()
            );
            return Ok(Box::new(ByHand));
        };
        let log =
            std::fs::File::create(dir.join("client.log")).map_err(|err| LaunchError::Spawn {
                command: command.clone(),
                err,
            })?;
        let log2 = log.try_clone().map_err(|err| LaunchError::Spawn {
            command: command.clone(),
            err,
        })?;
        use std::os::unix::process::CommandExt;
        let child = Command::new("sh")
            .arg("-c")
            .arg(command)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .process_group(0)
            .spawn()
            .map_err(|err| LaunchError::Spawn {
                command: command.clone(),
                err,
            })?;
        Ok(Box::new(ChildRun {
            child,
            dir: dir.to_path_buf(),
        }))
    }

    fn describe(&self) -> String {
        self.command
            .clone()
            .unwrap_or_else(|| "a client started by hand".into())
    }

    fn knows_exit(&self) -> bool {
        self.command.is_some()
    }
}

/// Waits up to `t` for `run` to exit.
pub fn wait_exit(run: &mut dyn Running, t: Duration) -> Option<Option<i32>> {
    let deadline = std::time::Instant::now() + t;
    loop {
        if let Some(code) = run.try_exit() {
            return Some(code);
        }
        if std::time::Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
