//! The HTML report: one self-contained page (inline CSS and script, no network
//! asset), with the summary, the verdict, and the cases in a table filterable by
//! outcome, each with its evidence.

use std::fmt::Write;

use crate::model::Report;

/// Escapes text for HTML.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:24px;color:#222}\
h1{font-size:22px}table{border-collapse:collapse;width:100%;font-size:13px}\
th,td{border-bottom:1px solid #ddd;padding:4px 6px;text-align:left;vertical-align:top;\
overflow-wrap:anywhere}table{table-layout:fixed}th:nth-child(1){width:70px}\
th:nth-child(2){width:110px}th:nth-child(3){width:110px}th:nth-child(5){width:60px}\
th{background:#f3f3f3}.o{font-weight:bold;white-space:nowrap}\
.PASS{color:#137333}.VARIANT{color:#8a5a00}.FAIL{color:#b3261e}.INFO{color:#1a5fb4}\
.ERROR,.SKIPPED{color:#666}.cards{display:flex;gap:12px;margin:12px 0}\
.card{border:1px solid #ccc;border-radius:6px;padding:8px 14px;min-width:80px}\
.card b{display:block;font-size:22px}pre{margin:4px 0;font-size:11px;white-space:pre-wrap;\
word-break:break-all;background:#fafafa}details summary{cursor:pointer;color:#555}\
.filters label{margin-right:12px}code{background:#f3f3f3;padding:1px 4px}";

const SCRIPT: &str = "function f(){var on={};document.querySelectorAll('.filters input')\
.forEach(function(i){on[i.value]=i.checked});document.querySelectorAll('tr.case')\
.forEach(function(r){r.style.display=on[r.dataset.kind]?'':'none'})}\
document.querySelectorAll('.filters input').forEach(function(i){i.addEventListener('change',f)});";

/// The page.
pub fn render(report: &Report) -> String {
    let c = report.summary();
    let mut s = String::new();
    let _ = write!(
        s,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>conformance: {}</title><style>{STYLE}</style></head><body>",
        esc(&report.target)
    );
    let side = match report.side {
        crate::model::Side::Server => "server",
        crate::model::Side::Client => "client",
    };
    let _ = write!(
        s,
        "<h1>Conformance of the {side} at {}</h1><p>{} cases in {:.1} s.</p>",
        esc(&report.target),
        report.results.len(),
        report.millis as f64 / 1000.0
    );
    s.push_str("<div class=\"cards\" id=\"summary\">");
    for (kind, n) in [
        ("PASS", c.pass),
        ("VARIANT", c.variant),
        ("FAIL", c.fail),
        ("INFO", c.info),
        ("ERROR", c.error),
        ("SKIPPED", c.skipped),
    ] {
        let _ = write!(
            s,
            "<div class=\"card {kind}\" id=\"count-{kind}\"><b>{n}</b>{kind}</div>"
        );
    }
    s.push_str("</div><h2>Verdict</h2><ul>");
    for f in &report.verdict.variants {
        let _ = write!(
            s,
            "<li>variant {}: {} ({})</li>",
            f.variant,
            esc(&f.name),
            esc(&f.cases.join(", "))
        );
    }
    for a in &report.verdict.advice {
        let _ = write!(s, "<li>{}</li>", esc(a));
    }
    let _ = write!(
        s,
        "</ul><p>Use <code>{}</code>.</p>",
        esc(&report.verdict.command)
    );
    for n in &report.notes {
        let _ = write!(s, "<p>Note: {}</p>", esc(n));
    }
    s.push_str("<div class=\"filters\">Show: ");
    for kind in ["PASS", "VARIANT", "FAIL", "INFO", "ERROR", "SKIPPED"] {
        let _ = write!(
            s,
            "<label><input type=\"checkbox\" value=\"{kind}\" checked> {kind}</label>"
        );
    }
    s.push_str("</div><table><thead><tr><th>case</th><th>outcome</th><th>section</th><th>title and evidence</th><th>ms</th></tr></thead><tbody>");
    for r in &report.results {
        let kind = r.outcome.kind();
        let _ = write!(
            s,
            "<tr class=\"case\" data-kind=\"{kind}\"><td>{}</td><td class=\"o {kind}\">{}</td><td>{}</td><td>{}<br><i>{}</i><details><summary>evidence</summary><pre>{}</pre></details></td><td>{}</td></tr>",
            esc(&r.meta.id),
            esc(&r.outcome.label()),
            esc(&r.meta.section),
            esc(&r.meta.title),
            esc(&r.detail),
            esc(&r.evidence.lines().join("\n")),
            r.millis
        );
    }
    s.push_str("</tbody></table><h2>Names registered by this run</h2><p>");
    s.push_str(&esc(&report.registered_names.join(", ")));
    let _ = write!(s, "</p><script>{SCRIPT}</script></body></html>");
    s
}
