//! Why a run failed, in the user's terms, and the exit code that goes with it.

use std::fmt;

/// The exit codes, one per kind of failure (the table is in `--help` and the README).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// A bug or an unexpected local failure.
    Internal = 1,
    /// Bad options, `transfer.info`, `me.info`, or a file or folder that cannot be used.
    Usage = 2,
    /// The server cannot be reached, is busy, or did not answer in time.
    Unreachable = 3,
    /// The server refused a request (the name, the file, or a storage error).
    Refused = 4,
    /// The server's checksum differed four times; the upload was abandoned.
    Checksum = 5,
    /// The connection was lost during the run; running again retries.
    ConnectionLost = 6,
    /// The server's answers do not follow the protocol as configured.
    Protocol = 7,
    /// The server showed a certificate other than the one pinned for it; nothing was
    /// sent to it.
    IdentityChanged = 8,
    /// Ctrl-C.
    Interrupted = 130,
}

impl Exit {
    pub fn code(self) -> i32 {
        self as i32
    }

    /// What to do when the message has no more precise advice: every failure ends
    /// with a line saying what to do.
    pub fn default_hint(self) -> &'static str {
        match self {
            Exit::Internal => "run again with -v; if it happens again, report it with that output",
            Exit::Usage => {
                "fix what the message names (client --help lists the options), then run again"
            }
            Exit::Unreachable => "check the address and that the server runs, then run again",
            Exit::Refused => "the server's log says why; ask its operator, then run again",
            Exit::Checksum => "check the network and the --checksum option, then run again",
            Exit::ConnectionLost => "run again to send the file again",
            Exit::Protocol => "check the address and the dialect options (client --help)",
            Exit::IdentityChanged => {
                "ask the server's operator for its fingerprint; if it changed on purpose, \
                 remove the server's line from known_servers in --dir, then run again"
            }
            Exit::Interrupted => "run again to send the file",
        }
    }

    /// A short name for the JSON summary.
    pub fn kind(self) -> &'static str {
        match self {
            Exit::Internal => "internal",
            Exit::Usage => "usage",
            Exit::Unreachable => "unreachable",
            Exit::Refused => "refused",
            Exit::Checksum => "checksum",
            Exit::ConnectionLost => "connection-lost",
            Exit::Protocol => "protocol",
            Exit::IdentityChanged => "identity-changed",
            Exit::Interrupted => "interrupted",
        }
    }
}

/// The table printed by `client --help`.
pub const EXIT_CODE_HELP: &str = "\
Exit codes:
  0    the file is stored and the server confirmed its checksum
  1    internal error (a bug, or an unexpected local failure)
  2    usage or configuration: options, transfer.info, me.info, the file or the folder
  3    cannot reach the server: not running, busy, refused the connection, or no answer
  4    refused by the server: name taken, file refused, or the server could not store it
  5    the checksum differed four times; the upload was abandoned (not verified)
  6    the connection was lost during the run; run again to send the file again
  7    the server's answers do not follow the protocol as configured (dialect options)
  8    the server's identity changed: it showed a certificate other than the pinned one
       (known_servers in --dir, or --server-fingerprint); nothing was sent to it
  130  interrupted (Ctrl-C)";

/// A failed run: what happened, what to do, and the exit code.
#[derive(Debug)]
pub struct Failure {
    pub exit: Exit,
    /// What happened.
    pub message: String,
    /// What to do about it.
    pub hint: Option<String>,
}

impl Failure {
    pub fn new(exit: Exit, message: impl Into<String>) -> Failure {
        Failure {
            exit,
            message: message.into(),
            hint: None,
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Failure {
        self.hint = Some(hint.into());
        self
    }

    pub fn usage(message: impl Into<String>) -> Failure {
        Failure::new(Exit::Usage, message)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.message)?;
        let hint = self.hint.as_deref().unwrap_or(self.exit.default_hint());
        write!(f, "\n  {hint}")
    }
}

/// An error's text without the " (os error N)" that the user cannot act on.
pub fn plain(text: impl std::fmt::Display) -> String {
    let mut s = text.to_string();
    while let Some(at) = s.find(" (os error ") {
        let end = s[at..].find(')').map(|e| at + e + 1).unwrap_or(s.len());
        s.replace_range(at..end, "");
    }
    s
}

/// Turns an `anyhow` error from the `transfer.info`/`me.info` readers into a usage failure.
impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Failure {
        Failure::usage(plain(format!("{e:#}")))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_failure_says_what_to_do() {
        use super::{Exit, Failure};
        for exit in [
            Exit::Internal,
            Exit::Usage,
            Exit::Unreachable,
            Exit::Refused,
            Exit::Checksum,
            Exit::ConnectionLost,
            Exit::Protocol,
            Exit::IdentityChanged,
            Exit::Interrupted,
        ] {
            let shown = Failure::new(exit, "it failed").to_string();
            let hint = shown.lines().nth(1).unwrap_or_default();
            assert!(hint.starts_with("  ") && hint.len() > 10, "{shown:?}");
        }
        let shown = Failure::usage("x").hint("do this").to_string();
        assert_eq!(shown, "x\n  do this");
    }

    #[test]
    fn plain_drops_os_error_numbers() {
        assert_eq!(
            super::plain("cannot read x: Permission denied (os error 13)"),
            "cannot read x: Permission denied"
        );
        assert_eq!(super::plain("a (os error 2): b (os error 21)"), "a: b");
    }
}
