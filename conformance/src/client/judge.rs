//! Judging a client run from what the scripted server received.

use crate::cases::{fail, info, pass, variant, Judged};
use crate::client::server::Transcript;

/// What one case observed.
pub struct Observed<'a> {
    /// The requests.
    pub t: &'a Transcript,
    /// The exit code: `None` still running at the case's end (it was stopped),
    /// `Some(None)` exited without one or unknown.
    pub exit: Option<Option<i32>>,
    /// The file given to the client.
    pub file: &'a [u8],
    /// The client name in transfer.info.
    pub name: &'a str,
    /// The file name in transfer.info.
    pub file_name: &'a str,
    /// What the client printed.
    pub output: &'a str,
    /// Whether exit codes are known (`--run`).
    pub knows_exit: bool,
}

impl Observed<'_> {
    /// Exited with 0 (or exit codes are not known).
    pub fn exit_ok(&self) -> bool {
        !self.knows_exit || self.exit == Some(Some(0))
    }

    /// Exited with a code other than 0.
    pub fn exit_failed(&self) -> bool {
        matches!(self.exit, Some(Some(c)) if c != 0)
    }

    /// The exit as text.
    pub fn exit_text(&self) -> String {
        if !self.knows_exit {
            return "exit code unknown".into();
        }
        match self.exit {
            None => "still running (stopped)".into(),
            Some(None) if self.knows_exit => "exited without a code".into(),
            Some(None) => "exit code unknown".into(),
            Some(Some(c)) => format!("exit {c}"),
        }
    }
}

/// The properties of a normal run that show variants or faults: the layout of
/// every upload, the decrypted content, the verdict request, the exit.
pub fn normal_run(o: &Observed<'_>) -> Judged {
    let t = o.t;
    if t.requests.is_empty() {
        return Judged {
            outcome: crate::model::Outcome::Error,
            detail: format!("the client sent nothing ({})", o.exit_text()),
        };
    }
    let Some(up) = t.uploads.last() else {
        return fail(format!(
            "no whole upload arrived ({}; codes {:?})",
            o.exit_text(),
            t.codes()
        ));
    };
    if !up.numbering.is_empty() {
        return fail(format!("packet numbering: {}", up.numbering.join("; ")));
    }
    match &up.plaintext {
        None => return fail("the upload does not decrypt under the key issued"),
        Some(p) if p != o.file => {
            return fail(format!(
                "the decrypted upload ({} bytes) differs from the file ({} bytes)",
                p.len(),
                o.file.len()
            ))
        }
        Some(_) => {}
    }
    if let Some(p) = up
        .packets
        .iter()
        .find(|p| p.original_size as usize != o.file.len())
    {
        return fail(format!(
            "original size field {} for a {}-byte file",
            p.original_size,
            o.file.len()
        ));
    }
    if let Some(p) = up
        .packets
        .iter()
        .find(|p| p.file_name != o.file_name.as_bytes())
    {
        return fail(format!(
            "file name field {:?}",
            String::from_utf8_lossy(&p.file_name)
        ));
    }
    let mut variants: Vec<(u8, &str)> = Vec::new();
    if t.requests
        .iter()
        .any(|r| r.order == protocol_core::ByteOrder::Big)
    {
        variants.push((1, "big-endian requests"));
    }
    if up.total_first {
        variants.push((2, "total packets first"));
    }
    if up.per_packet_size {
        variants.push((3, "content size per packet"));
    }
    if up.per_packet_encryption {
        variants.push((4, "each packet encrypted on its own"));
    }
    if up.padded {
        variants.push((12, "a zero-filled fixed content field"));
    }
    if let Some(v) = t
        .requests
        .iter()
        .rev()
        .find(|r| matches!(r.code, 900..=902))
    {
        let n = v.field(0).map(|f| f.0).unwrap_or_default();
        if n == o.name.as_bytes() && o.name != o.file_name {
            variants.push((5, "the client name in 900/901/902"));
        } else if n != o.file_name.as_bytes() {
            return fail(format!(
                "{} names {:?}",
                v.code,
                String::from_utf8_lossy(&n)
            ));
        }
    } else {
        return fail(format!("no 900 after the 1603 ({})", o.exit_text()));
    }
    if t.connections > 1 {
        variants.push((7, "a connection per request"));
    }
    if !o.exit_ok() {
        return fail(format!(
            "the run verified its file but ended with {}",
            o.exit_text()
        ));
    }
    match variants.first() {
        Some((n, _)) => variant(
            *n,
            variants
                .iter()
                .map(|(n, w)| format!("{w} ({n})"))
                .collect::<Vec<_>>()
                .join(", "),
        ),
        None => pass(format!(
            "{} packet(s), decrypted equal to the file, 900, {}",
            up.packets.len(),
            o.exit_text()
        )),
    }
}

/// A run against a server that misbehaves: the client must stop with a failure,
/// and not claim success.
pub fn gives_up(o: &Observed<'_>, what: &str) -> Judged {
    if o.output.contains("panicked") {
        return fail(format!("{what}: the client panicked"));
    }
    if !o.knows_exit {
        return info(format!("{what}: exit code unknown (no --run)"));
    }
    match o.exit {
        Some(Some(0)) => fail(format!("{what}: the client exited 0")),
        Some(_) => pass(format!("{what}: {}", o.exit_text())),
        None => info(format!("{what}: still waiting at the case's end (stopped)")),
    }
}
