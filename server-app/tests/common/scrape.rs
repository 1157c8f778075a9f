//! Reads what `/metrics` serves: the Prometheus / OpenMetrics text format, strictly
//! enough that a malformed line fails the test.
#![allow(dead_code)]

use std::collections::BTreeMap;

/// One sample: `name{labels} value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Every sample of a scrape, and the declared type of each family.
#[derive(Debug, Clone, Default)]
pub struct Scrape {
    pub samples: Vec<Sample>,
    pub types: BTreeMap<String, String>,
}

fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// `a="x",b="y\"z"` (without the braces).
fn parse_labels(mut s: &str) -> Result<BTreeMap<String, String>, String> {
    let mut labels = BTreeMap::new();
    while !s.is_empty() {
        let (key, rest) = s.split_once("=\"").ok_or(format!("no =\" in {s:?}"))?;
        if !is_name(key) {
            return Err(format!("bad label name {key:?}"));
        }
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next() {
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c @ ('\\' | '"'))) => value.push(c),
                    other => return Err(format!("bad escape {other:?}")),
                },
                Some((_, c)) => value.push(c),
                None => return Err(format!("unterminated label value in {s:?}")),
            }
        };
        labels.insert(key.to_string(), value);
        s = &rest[end + 1..];
        s = s.strip_prefix(',').unwrap_or(s);
    }
    Ok(labels)
}

fn parse_value(s: &str) -> Result<f64, String> {
    match s {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => s.parse().map_err(|_| format!("bad value {s:?}")),
    }
}

impl Scrape {
    /// Parses a whole scrape; the error names the first line that is not the format.
    pub fn parse(text: &str) -> Result<Scrape, String> {
        let mut scrape = Scrape::default();
        let mut eof = false;
        for line in text.lines() {
            if eof {
                return Err(format!("a line after # EOF: {line:?}"));
            }
            if line == "# EOF" {
                eof = true;
                continue;
            }
            if let Some(rest) = line.strip_prefix("# ") {
                let mut parts = rest.splitn(3, ' ');
                let (kind, name) = (parts.next(), parts.next());
                match (kind, name) {
                    (Some("TYPE"), Some(name)) if is_name(name) => {
                        let t = parts.next().unwrap_or_default();
                        let known = [
                            "counter",
                            "gauge",
                            "histogram",
                            "summary",
                            "info",
                            "stateset",
                            "unknown",
                        ];
                        if !known.contains(&t) {
                            return Err(format!("unknown type in {line:?}"));
                        }
                        scrape.types.insert(name.to_string(), t.to_string());
                    }
                    (Some("HELP" | "UNIT"), Some(name)) if is_name(name) => {}
                    _ => return Err(format!("bad comment line {line:?}")),
                }
                continue;
            }
            let (series, value) = line
                .rsplit_once(' ')
                .ok_or(format!("no value in {line:?}"))?;
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => {
                    let inner = rest
                        .strip_suffix('}')
                        .ok_or(format!("no closing brace in {line:?}"))?;
                    (name, parse_labels(inner)?)
                }
                None => (series, BTreeMap::new()),
            };
            if !is_name(name) {
                return Err(format!("bad metric name in {line:?}"));
            }
            scrape.samples.push(Sample {
                name: name.to_string(),
                labels,
                value: parse_value(value)?,
            });
        }
        Ok(scrape)
    }

    /// The value of the sample `name` whose labels include every pair of `labels`;
    /// `None` when there is no such sample, and a panic when several match.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let matching: Vec<&Sample> = self
            .samples
            .iter()
            .filter(|s| {
                s.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .collect();
        assert!(
            matching.len() <= 1,
            "{name} {labels:?} matches several samples: {matching:?}"
        );
        matching.first().map(|s| s.value)
    }

    /// The sum of every sample `name` whose labels include every pair of `labels`
    /// (0 when there is none).
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|s| {
                s.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|s| s.value)
            .sum()
    }
}

/// `GET /metrics` from 127.0.0.1:`port`, parsed; panics on a status other than 200 or
/// on a line that is not the text format.
pub fn scrape(port: u16) -> Scrape {
    let (status, body) = super::http_get(port, "/metrics");
    assert_eq!(status, 200, "GET /metrics: {body}");
    Scrape::parse(&body).unwrap_or_else(|e| panic!("/metrics does not parse: {e}\n{body}"))
}
