//! The cases, one file per group, and the helpers they share. Families of cases are
//! generated from tables (sizes at every limit, a request cut at every boundary);
//! each generated case tests its own point.

pub mod connections;
pub mod framing;
pub mod hostile;
pub mod keys;
pub mod reconnect;
pub mod registration;
pub mod upload;
pub mod verdicts;

use crate::model::{CaseMeta, Check, Group, Outcome};
use crate::probe::{CaseError, Ctx};

/// A case's conclusion and why.
#[derive(Debug, Clone)]
pub struct Judged {
    /// The outcome.
    pub outcome: Outcome,
    /// Why.
    pub detail: String,
}

/// PASS because `detail`.
pub fn pass(detail: impl Into<String>) -> Judged {
    Judged {
        outcome: Outcome::Pass,
        detail: detail.into(),
    }
}

/// FAIL because `detail`.
pub fn fail(detail: impl Into<String>) -> Judged {
    Judged {
        outcome: Outcome::Fail,
        detail: detail.into(),
    }
}

/// VARIANT(n) because `detail`.
pub fn variant(n: u8, detail: impl Into<String>) -> Judged {
    Judged {
        outcome: Outcome::Variant(n),
        detail: detail.into(),
    }
}

/// INFO: `detail`.
pub fn info(detail: impl Into<String>) -> Judged {
    Judged {
        outcome: Outcome::Info,
        detail: detail.into(),
    }
}

/// The body of a server case.
pub type CaseFn = Box<dyn Fn(&mut Ctx<'_>) -> Result<Judged, CaseError> + Send + Sync>;

/// A server case before it is numbered.
pub struct ServerCase {
    /// Its group.
    pub group: Group,
    /// One line.
    pub title: String,
    /// PROTOCOL.md section or variant.
    pub section: String,
    /// Properties a PASS vouches for.
    pub checks: Vec<Check>,
    /// What it does.
    pub run: CaseFn,
}

/// A case of `group`.
pub fn case(
    group: Group,
    title: impl Into<String>,
    section: &str,
    run: impl Fn(&mut Ctx<'_>) -> Result<Judged, CaseError> + Send + Sync + 'static,
) -> ServerCase {
    ServerCase {
        group,
        title: title.into(),
        section: section.into(),
        checks: Vec::new(),
        run: Box::new(run),
    }
}

impl ServerCase {
    /// Declares the properties a PASS of this case vouches for.
    pub fn checks(mut self, checks: &[Check]) -> ServerCase {
        self.checks = checks.to_vec();
        self
    }
}

/// Every server case, numbered `S<group>.<nn>` in group order.
pub fn server_cases() -> Vec<(CaseMeta, CaseFn)> {
    let mut all = Vec::new();
    all.extend(framing::cases());
    all.extend(registration::cases());
    all.extend(keys::cases());
    all.extend(reconnect::cases());
    all.extend(upload::cases());
    all.extend(verdicts::cases());
    all.extend(hostile::cases());
    all.extend(connections::cases());
    number("S", all)
}

/// Numbers cases `<prefix><group>.<nn>` within their group, in order.
pub fn number(prefix: &str, cases: Vec<ServerCase>) -> Vec<(CaseMeta, CaseFn)> {
    let mut counts = [0usize; 9];
    let mut out = Vec::with_capacity(cases.len());
    for c in cases {
        let g = c.group as usize;
        counts[g] += 1;
        out.push((
            CaseMeta {
                id: format!("{prefix}{g}.{:02}", counts[g]),
                group: c.group,
                title: c.title,
                section: c.section,
                checks: c.checks,
            },
            c.run,
        ));
    }
    out
}
