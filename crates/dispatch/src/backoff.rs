//! Retry delays: exponential backoff with full jitter, and `Retry-After`.
//!
//! Full jitter (a uniform delay in `[0, min(max, base * 2^(attempt-1))]`) spreads the retries
//! of many failed deliveries instead of sending them back in waves. The delay is turned into
//! a time stored with the delivery, so the schedule survives restarts; a retry library that
//! sleeps in-process does not fit that, hence this small formula.

use std::time::{Duration, SystemTime};

use rand::Rng;

/// Ceiling of the delay after `attempt` (1-based) failed attempts.
pub fn ceiling(base: Duration, max: Duration, attempt: u32) -> Duration {
    let factor = 1u32
        .checked_shl(attempt.saturating_sub(1))
        .unwrap_or(u32::MAX);
    base.checked_mul(factor).map_or(max, |d| d.min(max))
}

/// A random delay in `[0, ceiling]` (full jitter).
pub fn full_jitter(base: Duration, max: Duration, attempt: u32) -> Duration {
    let c = ceiling(base, max, attempt);
    let ms = u64::try_from(c.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(rand::rng().random_range(0..=ms))
}

/// Parses `Retry-After`: delay-seconds or an HTTP date (RFC 9110 §10.2.3). A date in the past
/// is zero; anything else is `None`.
pub fn retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceiling_doubles_and_caps() {
        let (b, m) = (Duration::from_millis(100), Duration::from_secs(1));
        assert_eq!(ceiling(b, m, 1), Duration::from_millis(100));
        assert_eq!(ceiling(b, m, 3), Duration::from_millis(400));
        assert_eq!(ceiling(b, m, 5), m);
        assert_eq!(ceiling(b, m, 200), m);
        for a in 1..40 {
            assert!(full_jitter(b, m, a) <= ceiling(b, m, a));
        }
    }

    #[test]
    fn retry_after_forms() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(
            retry_after("Sun, 06 Nov 1994 08:49:47 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after("soon", now), None);
    }
}
