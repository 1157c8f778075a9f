//! The machine-readable summary printed by `--json`: one object on one line.

use std::fmt::Write;

use crate::exit::Failure;

/// What a run did, filled in as it goes.
#[derive(Debug, Default)]
pub struct Summary {
    pub server: Option<String>,
    pub client_name: Option<String>,
    pub client_id: Option<String>,
    pub registered: bool,
    pub file: Option<String>,
    pub bytes: Option<u64>,
    pub seconds: Option<f64>,
    pub checksum: Option<u32>,
    pub sends: u32,
    /// The preset the run used (`options` when single dialect options chose it).
    pub dialect: Option<String>,
    /// `secure` (TLS, signed in) or `legacy`.
    pub mode: Option<String>,
    /// The SHA-256 both ends agreed on (secure mode), in hex.
    pub sha256: Option<String>,
}

/// A JSON string literal of `s` (for listings printed with `--json`).
pub fn json_string(s: &str) -> String {
    let mut o = String::new();
    string(&mut o, s);
    o
}

fn string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn field(out: &mut String, key: &str, value: Option<&dyn Fn(&mut String)>) {
    if out.len() > 1 {
        out.push(',');
    }
    string(out, key);
    out.push(':');
    match value {
        Some(f) => f(out),
        None => out.push_str("null"),
    }
}

impl Summary {
    /// The JSON object for this run, ended by `failure` if it failed.
    pub fn to_json(&self, failure: Option<&Failure>) -> String {
        let mut o = String::from("{");
        let ok = failure.is_none();
        field(
            &mut o,
            "ok",
            Some(&|o| o.push_str(if ok { "true" } else { "false" })),
        );
        let code = failure.map(|f| f.exit.code()).unwrap_or(0);
        field(
            &mut o,
            "exit_code",
            Some(&|o| o.push_str(&code.to_string())),
        );
        let text = |v: &Option<String>| v.clone();
        for (key, value) in [
            ("error", failure.map(|f| f.exit.kind().to_string())),
            ("message", failure.map(|f| f.message.clone())),
            (
                "hint",
                failure.map(|f| {
                    f.hint
                        .clone()
                        .unwrap_or_else(|| f.exit.default_hint().into())
                }),
            ),
            ("server", text(&self.server)),
            ("client_name", text(&self.client_name)),
            ("client_id", text(&self.client_id)),
            ("file", text(&self.file)),
            ("dialect", text(&self.dialect)),
            ("mode", text(&self.mode)),
            ("sha256", text(&self.sha256)),
        ] {
            match value {
                Some(v) => field(&mut o, key, Some(&|o| string(o, &v))),
                None => field(&mut o, key, None),
            }
        }
        let registered = self.registered;
        field(
            &mut o,
            "registered",
            Some(&|o| o.push_str(if registered { "true" } else { "false" })),
        );
        for (key, value) in [
            ("bytes", self.bytes.map(|b| b.to_string())),
            ("seconds", self.seconds.map(|s| format!("{s:.3}"))),
            ("checksum", self.checksum.map(|c| c.to_string())),
            ("file_sends", Some(self.sends.to_string())),
        ] {
            match value {
                Some(v) => field(&mut o, key, Some(&|o| o.push_str(&v))),
                None => field(&mut o, key, None),
            }
        }
        o.push('}');
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::Exit;

    #[test]
    fn escapes_and_nulls() {
        let s = Summary {
            file: Some("a\"b\\c\n".into()),
            ..Summary::default()
        };
        let j = s.to_json(Some(&Failure::new(Exit::Usage, "bad\tthing")));
        assert!(
            j.starts_with("{\"ok\":false,\"exit_code\":2,\"error\":\"usage\""),
            "{j}"
        );
        assert!(j.contains("\"file\":\"a\\\"b\\\\c\\n\""), "{j}");
        assert!(j.contains("\"message\":\"bad\\tthing\""), "{j}");
        assert!(j.contains("\"client_id\":null"), "{j}");
        assert!(j.ends_with("\"file_sends\":0}"), "{j}");
    }
}
