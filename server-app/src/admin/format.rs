//! How operator commands show ids, sizes, ages and JSON, and read durations.

use std::time::Duration;

use protocol_core::ClientId;

use super::AdminError;

/// An id as tables and logs show it: the first 8 hex digits.
pub fn short(id: &ClientId) -> String {
    crate::storage::short_id(id)
}

/// Bytes for people: exact below 1 KiB, else one decimal and a binary unit.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// An age in the largest whole unit that fits: `45s`, `12m`, `5h`, `3d`.
pub fn age(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

/// Reads `30d`, `12h`, `90m`, `45s` or a plain number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, AdminError> {
    let t = text.trim();
    let (digits, unit) = match t.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => t.split_at(i),
        None => (t, "s"),
    };
    let n: u64 = digits.parse().map_err(|_| bad_duration(text))?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        "w" => 7 * 86400,
        _ => return Err(bad_duration(text)),
    };
    n.checked_mul(scale)
        .map(Duration::from_secs)
        .ok_or_else(|| bad_duration(text))
}

fn bad_duration(text: &str) -> AdminError {
    AdminError::Usage(format!(
        "{text:?} is not a duration: a number with s, m, h, d or w (for example 7d)"
    ))
}

/// A JSON string literal.
pub fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A JSON value for an optional string.
pub fn json_opt(s: Option<&str>) -> String {
    s.map(json_str).unwrap_or_else(|| "null".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_with_units() {
        assert_eq!(parse_duration("45").unwrap(), Duration::from_secs(45));
        assert_eq!(parse_duration("90m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("2d").unwrap(), Duration::from_secs(172_800));
        assert!(parse_duration("d").is_err());
        assert!(parse_duration("3 days").is_err());
        assert!(parse_duration("-1h").is_err());
        assert!(parse_duration("99999999999999999999w").is_err());
    }

    #[test]
    fn sizes_and_ages_read_plainly() {
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(5 * 1024 * 1024), "5.0 MiB");
        assert_eq!(age(59), "59s");
        assert_eq!(age(3600 * 5), "5h");
        assert_eq!(age(86400 * 3 + 5), "3d");
    }

    #[test]
    fn json_strings_escape_quotes_and_controls() {
        assert_eq!(json_str("a\"b\\c\n\u{1}"), "\"a\\\"b\\\\c\\n\\u0001\"");
    }
}
