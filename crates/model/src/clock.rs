//! Timestamps: unix seconds or milliseconds in, RFC 3339 UTC out.

use std::time::SystemTime;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Above this a unix time is taken as milliseconds: 10^11 seconds is the year 5138, while
/// 10^11 milliseconds is 1973, so no real timestamp of either unit is ambiguous.
const MILLIS_THRESHOLD: i128 = 100_000_000_000;

/// Formats a unix time given as text (seconds or milliseconds, integer or decimal string as
/// sent by Meta and WasenderAPI) as RFC 3339 UTC; `None` when it is not a number in range.
pub fn from_unix_text(text: &str) -> Option<String> {
    let n: i128 = match text.parse::<i128>() {
        Ok(n) => n,
        Err(_) => text
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite() && f.abs() < 1e20)? as i128,
    };
    let nanos = if n.unsigned_abs() >= MILLIS_THRESHOLD as u128 {
        n.checked_mul(1_000_000)?
    } else {
        n.checked_mul(1_000_000_000)?
    };
    let t = OffsetDateTime::from_unix_timestamp_nanos(nanos).ok()?;
    t.format(&Rfc3339).ok()
}

/// Formats a `SystemTime` as RFC 3339 UTC with millisecond precision.
pub fn from_system(t: SystemTime) -> String {
    let t = OffsetDateTime::from(t);
    let t = t
        .replace_nanosecond(t.millisecond() as u32 * 1_000_000)
        .unwrap_or(t);
    t.format(&Rfc3339).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_and_millis_agree() {
        assert_eq!(
            from_unix_text("1767225600").as_deref(),
            Some("2026-01-01T00:00:00Z")
        );
        assert_eq!(
            from_unix_text("1767225600000").as_deref(),
            Some("2026-01-01T00:00:00Z")
        );
        assert_eq!(
            from_unix_text("1767226320467").as_deref(),
            Some("2026-01-01T00:12:00.467Z")
        );
    }

    #[test]
    fn garbage_is_none() {
        assert_eq!(from_unix_text("abc"), None);
        assert_eq!(from_unix_text("99999999999999999999999999"), None);
        assert_eq!(from_unix_text("-1e300"), None);
    }

    #[test]
    fn system_time_has_millis() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_767_225_600_123);
        assert_eq!(from_system(t), "2026-01-01T00:00:00.123Z");
    }
}
