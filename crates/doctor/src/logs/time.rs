//! Timestamp parsing to epoch seconds (UTC), for correlation windows and first/last times.

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn num(s: &str) -> Option<i64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn epoch(y: i64, mo: i64, d: i64, h: i64, mi: i64, s: i64) -> Option<i64> {
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    Some(days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s)
}

fn month(s: &str) -> Option<i64> {
    const M: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    M.iter().position(|m| *m == s).map(|i| i as i64 + 1)
}

/// nginx error log `2026/03/02 10:15:42`.
pub fn nginx_error(s: &str) -> Option<i64> {
    if s.len() < 19 {
        return None;
    }
    epoch(
        num(&s[0..4])?,
        num(&s[5..7])?,
        num(&s[8..10])?,
        num(&s[11..13])?,
        num(&s[14..16])?,
        num(&s[17..19])?,
    )
}

/// Common log format `02/Mar/2026:10:15:42 +0000` (also HAProxy `02/Mar/2026:10:15:42.101`).
pub fn clf(s: &str) -> Option<i64> {
    if s.len() < 20 {
        return None;
    }
    let t = epoch(
        num(&s[7..11])?,
        month(&s[3..6])?,
        num(&s[0..2])?,
        num(&s[12..14])?,
        num(&s[15..17])?,
        num(&s[18..20])?,
    )?;
    let off = s[20..]
        .trim_start_matches(|c: char| c == '.' || c.is_ascii_digit())
        .trim();
    Some(t - tz_offset(off))
}

fn tz_offset(s: &str) -> i64 {
    let (sign, rest) = match s.as_bytes().first() {
        Some(b'+') => (1, &s[1..]),
        Some(b'-') => (-1, &s[1..]),
        _ => return 0,
    };
    let rest = rest.replace(':', "");
    if rest.len() != 4 {
        return 0;
    }
    let (h, m) = (num(&rest[..2]).unwrap_or(0), num(&rest[2..]).unwrap_or(0));
    sign * (h * 3600 + m * 60)
}

/// ISO 8601 `2026-03-02T10:15:42.101Z` / `+01:00`.
pub fn iso(s: &str) -> Option<i64> {
    if s.len() < 19 {
        return None;
    }
    let t = epoch(
        num(&s[0..4])?,
        num(&s[5..7])?,
        num(&s[8..10])?,
        num(&s[11..13])?,
        num(&s[14..16])?,
        num(&s[17..19])?,
    )?;
    let off = s[19..].trim_start_matches(|c: char| c == '.' || c.is_ascii_digit());
    Some(t - if off == "Z" { 0 } else { tz_offset(off) })
}

/// Epoch seconds back to `2026-03-02T10:15:42Z`.
pub fn format(t: i64) -> String {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_agree() {
        let a = nginx_error("2026/03/02 10:15:42").unwrap();
        assert_eq!(clf("02/Mar/2026:10:15:42 +0000"), Some(a));
        assert_eq!(clf("02/Mar/2026:11:15:42 +0100"), Some(a));
        assert_eq!(clf("02/Mar/2026:10:15:42.101"), Some(a));
        assert_eq!(iso("2026-03-02T10:15:42.101Z"), Some(a));
        assert_eq!(format(a), "2026-03-02T10:15:42Z");
        assert_eq!(format(0), "1970-01-01T00:00:00Z");
    }
}
