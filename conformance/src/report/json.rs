//! The JSON report: the whole [`Report`] with its summary counts.

use serde::Serialize;

use crate::model::{Report, Summary};

#[derive(Serialize)]
struct WithSummary<'a> {
    summary: Summary,
    #[serde(flatten)]
    report: &'a Report,
}

/// The report as pretty-printed JSON.
pub fn render(report: &Report) -> std::io::Result<String> {
    serde_json::to_string_pretty(&WithSummary {
        summary: report.summary(),
        report,
    })
    .map_err(std::io::Error::other)
}
