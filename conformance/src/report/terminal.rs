//! The terminal report: one line per case, the summary, the verdict.

use std::fmt::Write;

use crate::model::{CaseResult, Report};

/// One case as a table row: id, outcome, section, title, detail.
pub fn row(r: &CaseResult) -> String {
    let mut title = r.meta.title.clone();
    if title.len() > 70 {
        title.truncate(67);
        title.push_str("...");
    }
    format!(
        "{:<7} {:<11} {:<13} {:<70}  {}",
        r.meta.id,
        r.outcome.label(),
        r.meta.section,
        title,
        r.detail
    )
}

/// The whole report as text.
pub fn render(report: &Report, evidence_of_failures: bool) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<7} {:<11} {:<13} {:<70}  detail",
        "case", "outcome", "section", "title"
    );
    for r in &report.results {
        let _ = writeln!(s, "{}", row(r));
        if evidence_of_failures
            && matches!(
                r.outcome,
                crate::model::Outcome::Fail | crate::model::Outcome::Error
            )
        {
            for l in r.evidence.lines() {
                let _ = writeln!(s, "          {l}");
            }
        }
    }
    s.push_str(&summary(report));
    s
}

/// The summary, notes, names and verdict.
pub fn summary(report: &Report) -> String {
    let mut s = String::new();
    let c = report.summary();
    let _ = writeln!(
        s,
        "\n{} cases against {} in {:.1} s: {} PASS, {} VARIANT, {} FAIL, {} INFO, {} ERROR, {} SKIPPED",
        report.results.len(),
        report.target,
        report.millis as f64 / 1000.0,
        c.pass,
        c.variant,
        c.fail,
        c.info,
        c.error,
        c.skipped
    );
    for n in &report.notes {
        let _ = writeln!(s, "note: {n}");
    }
    if !report.registered_names.is_empty() {
        let _ = writeln!(
            s,
            "names registered (or tried) by this run: {} (prefix {}...)",
            report.registered_names.len(),
            report
                .registered_names
                .first()
                .map(|n| n.split('-').next().unwrap_or(n))
                .unwrap_or("")
        );
    }
    let v = &report.verdict;
    if v.variants.is_empty() {
        let _ = writeln!(s, "variants: none");
    }
    for f in &v.variants {
        let _ = writeln!(
            s,
            "variant {}: {} ({})",
            f.variant,
            f.name,
            f.cases.join(", ")
        );
    }
    for a in &v.advice {
        let _ = writeln!(s, "  {a}");
    }
    let _ = writeln!(s, "verdict: use `{}`", v.command);
    s
}
