//! Parsing and printing of durations and sizes as they appear in flags, wagate config and nginx
//! keys.

use std::time::Duration;

/// Parses a duration: a plain integer is seconds (`"75"`), anything else is humantime
/// (`"75s"`, `"1m 15s"`, `"500ms"`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(n) = s.parse::<u64>() {
        return Ok(Duration::from_secs(n));
    }
    humantime::parse_duration(s).map_err(|e| format!("invalid duration {s:?}: {e}"))
}

/// Parses a size in bytes: `"4194304"`, `"4MiB"`, `"4m"`/`"4k"`/`"1g"` (nginx style, powers of
/// 1024), `"4MB"`/`"3 MB"` (powers of 1000).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let num: f64 = num.parse().map_err(|_| format!("invalid size {s:?}"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "ki" | "kib" => 1 << 10,
        "m" | "mi" | "mib" => 1 << 20,
        "g" | "gi" | "gib" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        _ => return Err(format!("invalid size unit in {s:?}")),
    };
    Ok((num * mult as f64).round() as u64)
}

/// nginx/ingress-nginx size validation `^(?i)\d+[bkmg]?$`; returns bytes (`0` = unlimited).
/// Source: ingress-nginx `internal/ingress/annotations/parser/validators.go` (`SizeRegex`).
pub fn nginx_size(s: &str) -> Option<u64> {
    let (digits, unit) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&s[..i], Some(c.to_ascii_lowercase())),
        _ => (s, None),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    let mult = match unit {
        None | Some('b') => 1,
        Some('k') => 1 << 10,
        Some('m') => 1 << 20,
        Some('g') => 1 << 30,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// ingress-nginx integer validation (`strconv.Atoi`, `^-?\d+$`).
pub fn nginx_int(s: &str) -> Option<i64> {
    let d = s.strip_prefix('-').unwrap_or(s);
    if d.is_empty() || !d.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `2097152` -> `2 MiB (2097152 bytes)`; exact binary units only, else plain bytes.
pub fn fmt_bytes(n: u64) -> String {
    for (unit, m) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
        if n >= m && n.is_multiple_of(m) {
            return format!("{} {unit} ({n} bytes)", n / m);
        }
    }
    format!("{n} bytes")
}

/// Whole seconds as `75s`, otherwise humantime.
pub fn fmt_dur(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else {
        humantime::format_duration(d).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4MiB").unwrap(), 4 << 20);
        assert_eq!(parse_size("4m").unwrap(), 4 << 20);
        assert_eq!(parse_size("3 MB").unwrap(), 3_000_000);
        assert_eq!(parse_size("2097152").unwrap(), 2_097_152);
        assert!(parse_size("4 parsecs").is_err());
        assert_eq!(nginx_size("4m"), Some(4 << 20));
        assert_eq!(nginx_size("4M"), Some(4 << 20));
        assert_eq!(nginx_size("0"), Some(0));
        assert_eq!(nginx_size("2MB"), None);
        assert_eq!(nginx_size("2.5m"), None);
        assert_eq!(nginx_size("2 m"), None);
    }

    #[test]
    fn ints_and_durations() {
        assert_eq!(nginx_int("30"), Some(30));
        assert_eq!(nginx_int("-1"), Some(-1));
        assert_eq!(nginx_int("120s"), None);
        assert_eq!(parse_duration("75").unwrap(), Duration::from_secs(75));
        assert_eq!(parse_duration("1m 15s").unwrap(), Duration::from_secs(75));
        assert!(parse_duration("soon").is_err());
        assert_eq!(fmt_bytes(4 << 20), "4 MiB (4194304 bytes)");
    }
}
