//! The three reports: a terminal table, JSON, one self-contained HTML page.

pub mod html;
pub mod json;
pub mod terminal;

use std::path::{Path, PathBuf};

use crate::model::Report;

/// Writes `report.json` and `report.html` into `dir` (created if missing); returns
/// their paths.
pub fn write_all(report: &Report, dir: &Path) -> std::io::Result<(PathBuf, PathBuf)> {
    std::fs::create_dir_all(dir)?;
    let json_path = dir.join("report.json");
    let html_path = dir.join("report.html");
    std::fs::write(&json_path, json::render(report)?)?;
    std::fs::write(&html_path, html::render(report))?;
    Ok((json_path, html_path))
}
