//! Where the client's messages go: stdout for the result (stderr when stdout carries
//! JSON), stderr for notes, nothing but errors with `-q`.

use crate::progress::Verbosity;

/// Where messages go.
pub struct Out {
    pub verbosity: Verbosity,
    pub json: bool,
}

impl Out {
    /// A line about the run: stdout, or stderr when stdout carries JSON.
    pub fn say(&self, text: &str) {
        if self.verbosity == Verbosity::Quiet {
            return;
        }
        if self.json {
            eprintln!("{text}");
        } else {
            println!("{text}");
        }
    }

    /// A detail for `-v` (stderr).
    pub fn note_verbose(&self, text: &str) {
        if self.verbosity == Verbosity::Verbose {
            eprintln!("{text}");
        }
    }

    /// A note for the user (stderr), not with `-q`.
    pub fn note(&self, text: &str) {
        if self.verbosity > Verbosity::Quiet {
            eprintln!("{text}");
        }
    }
}
