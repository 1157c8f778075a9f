//! What a case is and what running it gives: groups, outcomes, results.

use serde::Serialize;

use crate::evidence::Evidence;

/// The groups cases belong to, in report order. The number is the first part of a
/// case id (`S5.07` is the seventh server case of group 5, upload).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Group {
    /// Headers, sizes, byte orders, segmentation (PROTOCOL.md section 2).
    Framing = 1,
    /// 825 and its answers.
    Registration = 2,
    /// 826, public keys, the AES key exchange.
    Keys = 3,
    /// 827 and its answers.
    Reconnect = 4,
    /// 828 packets and the 1603.
    Upload = 5,
    /// 900/901/902 and their answers.
    Verdicts = 6,
    /// Malformed or hostile input (bounded).
    Hostile = 7,
    /// Connection patterns: one, one per request, concurrent.
    Connections = 8,
}

impl Group {
    /// Lowercase name as the reports print it.
    pub fn name(self) -> &'static str {
        match self {
            Group::Framing => "framing",
            Group::Registration => "registration",
            Group::Keys => "keys",
            Group::Reconnect => "reconnect",
            Group::Upload => "upload",
            Group::Verdicts => "verdicts",
            Group::Hostile => "hostile",
            Group::Connections => "connections",
        }
    }
}

/// What a case concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "kind", content = "variant")]
pub enum Outcome {
    /// The implementation does what the specification (and this project's reading of
    /// it, PROTOCOL.md section 7) says.
    Pass,
    /// It deviates in the way of this variant of PROTOCOL.md section 8.
    Variant(u8),
    /// It does something wrong that no known variant explains.
    Fail,
    /// A fact worth reporting that is neither right nor wrong.
    Info,
    /// The case could not run (an earlier step failed, a timeout, the peer closed):
    /// never a pass.
    Error,
    /// Not run (not selected by the pattern is not listed at all; this is a case
    /// whose precondition the peer does not meet).
    Skipped,
}

impl Outcome {
    /// As the terminal and HTML reports print it: `PASS`, `VARIANT(7)`, ...
    pub fn label(self) -> String {
        match self {
            Outcome::Pass => "PASS".into(),
            Outcome::Variant(n) => format!("VARIANT({n})"),
            Outcome::Fail => "FAIL".into(),
            Outcome::Info => "INFO".into(),
            Outcome::Error => "ERROR".into(),
            Outcome::Skipped => "SKIPPED".into(),
        }
    }

    /// The label without the variant number, for filtering and counting.
    pub fn kind(self) -> &'static str {
        match self {
            Outcome::Pass => "PASS",
            Outcome::Variant(_) => "VARIANT",
            Outcome::Fail => "FAIL",
            Outcome::Info => "INFO",
            Outcome::Error => "ERROR",
            Outcome::Skipped => "SKIPPED",
        }
    }
}

/// What a property a case asserts is about. The deliberately buggy fixtures of the
/// tests break one of these each and must FAIL exactly the cases that carry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Check {
    /// The checksum in a 1603 is the POSIX cksum of the plaintext.
    Checksum,
    /// No 1603 claims the file before its last packet was sent.
    LastPacketOnly,
    /// The connection stays open after the 1602.
    OpenAfterKey,
}

/// A case's fixed description.
#[derive(Debug, Clone, Serialize)]
pub struct CaseMeta {
    /// `S5.07` (server case) or `C2.03` (client case).
    pub id: String,
    /// Its group.
    pub group: Group,
    /// One line.
    pub title: String,
    /// The PROTOCOL.md section (`§2`) or variant (`v13`) it concerns.
    pub section: String,
    /// Properties a PASS of this case vouches for.
    pub checks: Vec<Check>,
}

/// A case's result.
#[derive(Debug, Clone, Serialize)]
pub struct CaseResult {
    /// The case.
    #[serde(flatten)]
    pub meta: CaseMeta,
    /// What it concluded.
    pub outcome: Outcome,
    /// Why, in one or two sentences.
    pub detail: String,
    /// The bytes that show it.
    pub evidence: Evidence,
    /// How long it took.
    pub millis: u64,
}

/// Which side was tested.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// `conformance server`: cases played against a server.
    Server,
    /// `conformance client`: cases played against a client.
    Client,
}

/// A whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Server or client suite.
    pub side: Side,
    /// What was tested (the address, or the command).
    pub target: String,
    /// When the run started (seconds since the Unix epoch).
    pub started_unix: u64,
    /// How long the run took.
    pub millis: u64,
    /// Every case run, in order.
    pub results: Vec<CaseResult>,
    /// Client names this run registered (for an operator to remove).
    pub registered_names: Vec<String>,
    /// What the run found out before its cases (the connection pattern) and any
    /// limit it hit.
    pub notes: Vec<String>,
    /// The dialect verdict.
    pub verdict: Verdict,
}

/// Counts per outcome kind.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Summary {
    /// PASS.
    pub pass: usize,
    /// VARIANT(n), any n.
    pub variant: usize,
    /// FAIL.
    pub fail: usize,
    /// INFO.
    pub info: usize,
    /// ERROR (could not run).
    pub error: usize,
    /// SKIPPED.
    pub skipped: usize,
}

impl Report {
    /// Counts per outcome kind.
    pub fn summary(&self) -> Summary {
        let mut s = Summary::default();
        for r in &self.results {
            match r.outcome {
                Outcome::Pass => s.pass += 1,
                Outcome::Variant(_) => s.variant += 1,
                Outcome::Fail => s.fail += 1,
                Outcome::Info => s.info += 1,
                Outcome::Error => s.error += 1,
                Outcome::Skipped => s.skipped += 1,
            }
        }
        s
    }

    /// Whether any case FAILED.
    pub fn failed(&self) -> bool {
        self.results.iter().any(|r| r.outcome == Outcome::Fail)
    }
}

/// One variant seen, and the cases that showed it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Finding {
    /// The variant number of PROTOCOL.md section 8.
    pub variant: u8,
    /// Its name.
    pub name: String,
    /// The case ids that ended VARIANT(n).
    pub cases: Vec<String>,
}

/// The verdict of a run.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Verdict {
    /// Variants seen, by number.
    pub variants: Vec<Finding>,
    /// What to run: our client's (or server's) options, one line each.
    pub advice: Vec<String>,
    /// The options in one command line (`client --dialect one-recv`).
    pub command: String,
}
