//! Progress: a bar on a terminal (file name, percentage, bytes, rate, ETA), plain
//! lines at every tenth otherwise, and nothing with `-q`.

use std::cell::Cell;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{HumanBytes, HumanDuration, ProgressBar, ProgressStyle};

/// How much to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verbosity {
    Quiet,
    Normal,
    Verbose,
}

pub struct Progress {
    bar: Option<ProgressBar>,
    name: String,
    total: u64,
    verbosity: Verbosity,
    last_tenth: Cell<u64>,
    started: Cell<Option<Instant>>,
    /// When the current send started (the rate of plain lines).
    send_started: Cell<Option<Instant>>,
}

impl Progress {
    pub fn new(name: &str, total: u64, verbosity: Verbosity) -> Progress {
        let bar = (verbosity > Verbosity::Quiet && std::io::stderr().is_terminal()).then(|| {
            let b = ProgressBar::new(total);
            b.set_style(
                ProgressStyle::with_template(
                    "{msg} {percent:>3}% [{bar:30}] {binary_bytes}/{binary_total_bytes} \
                     {binary_bytes_per_sec} eta {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            b.set_message(name.to_string());
            b
        });
        Progress {
            bar,
            name: name.to_string(),
            total,
            verbosity,
            last_tenth: Cell::new(0),
            started: Cell::new(None),
            send_started: Cell::new(None),
        }
    }

    /// A send of the file begins (attempt 1 is the first).
    pub fn start(&self, attempt: u32) {
        let now = Instant::now();
        if self.started.get().is_none() {
            self.started.set(Some(now));
        }
        self.send_started.set(Some(now));
        if attempt > 1 {
            self.note(&format!(
                "sending {} again (attempt {attempt} of 4)",
                self.name
            ));
        }
        self.last_tenth.set(0);
        if let Some(b) = &self.bar {
            b.reset();
            b.set_position(0);
        }
    }

    pub fn update(&self, sent: u64) {
        if self.verbosity == Verbosity::Quiet {
            return;
        }
        match &self.bar {
            Some(b) => b.set_position(sent),
            None => {
                let tenth = (sent * 10).checked_div(self.total).unwrap_or(10);
                if tenth > self.last_tenth.get() {
                    self.last_tenth.set(tenth);
                    let elapsed = self
                        .send_started
                        .get()
                        .map(|t| t.elapsed())
                        .unwrap_or_default();
                    let rate = rate(sent, elapsed);
                    let eta = if sent > 0 && sent < self.total {
                        let left = elapsed.as_secs_f64() * (self.total - sent) as f64 / sent as f64;
                        format!(", eta {}", HumanDuration(Duration::from_secs_f64(left)))
                    } else {
                        String::new()
                    };
                    eprintln!(
                        "{}: {:>3}% {sent} of {} bytes, {}/s{eta}",
                        self.name,
                        tenth * 10,
                        self.total,
                        HumanBytes(rate)
                    );
                }
            }
        }
    }

    /// A message between bar updates (stderr; not with `-q`).
    pub fn note(&self, text: &str) {
        if self.verbosity > Verbosity::Quiet {
            self.suspend(|| eprintln!("{text}"));
        }
    }

    /// A message shown only with `-v`.
    pub fn detail(&self, text: &str) {
        if self.verbosity == Verbosity::Verbose {
            self.suspend(|| eprintln!("{text}"));
        }
    }

    fn suspend(&self, f: impl FnOnce()) {
        match &self.bar {
            Some(b) => b.suspend(f),
            None => f(),
        }
    }

    /// Removes the bar (before the final line or an error message).
    pub fn clear(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }

    /// Time since the first send began.
    pub fn elapsed(&self) -> Duration {
        self.started.get().map(|t| t.elapsed()).unwrap_or_default()
    }
}

/// Bytes per second.
pub fn rate(bytes: u64, elapsed: Duration) -> u64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 {
        (bytes as f64 / secs) as u64
    } else {
        0
    }
}

/// The final line of a verified upload.
pub fn summary_line(name: &str, size: u64, elapsed: Duration, checksum: Option<u32>) -> String {
    let checksum = checksum
        .map(|c| format!(", checksum {c} verified"))
        .unwrap_or_else(|| ", checksum verified".into());
    format!(
        "sent {name}: {size} bytes ({}) in {:.2} s, {}/s average{checksum}",
        HumanBytes(size),
        elapsed.as_secs_f64(),
        HumanBytes(rate(size, elapsed)),
    )
}
