//! How long to wait before retrying a send that failed for a passing reason (a webhook's 429 or 5xx, SES
//! throttling): exponential, capped, with jitter so that many messages failing together do not retry
//! together.

use std::time::Duration;

use jiff::Timestamp;
use rand::Rng;

/// The first retry waits about this long.
pub const BACKOFF_BASE: Duration = Duration::from_secs(2);
/// No retry waits longer than this (also the cap on a server's `Retry-After`).
pub const BACKOFF_CAP: Duration = Duration::from_secs(15 * 60);

/// The ceiling of the delay before retry number `attempt` (1 for the first retry): `base · 2^(attempt-1)`,
/// capped.
pub fn backoff_ceiling(attempt: u32) -> Duration {
    let exponent = attempt.saturating_sub(1).min(30);
    BACKOFF_BASE
        .saturating_mul(1u32 << exponent)
        .min(BACKOFF_CAP)
}

/// The delay before retry number `attempt` (1 for the first retry): "equal jitter", a random point in the
/// upper half of [`backoff_ceiling`], so that the delay still grows with every attempt.
pub fn backoff(attempt: u32) -> Duration {
    let ceiling = backoff_ceiling(attempt);
    let half = ceiling / 2;
    let jitter_millis = rand::rng().random_range(0..=half.as_millis() as u64);
    half + Duration::from_millis(jitter_millis)
}

/// The delay before retry `attempt` when the server may have said how long to wait: at least what it asked
/// (capped at [`BACKOFF_CAP`]), and at least the backoff.
pub fn retry_delay(attempt: u32, retry_after: Option<Duration>) -> Duration {
    let backoff = backoff(attempt);
    match retry_after {
        Some(asked) => asked.min(BACKOFF_CAP).max(backoff),
        None => backoff,
    }
}

/// Reads an HTTP `Retry-After` value: whole seconds, or an HTTP date (then the time until it from `now`, zero
/// when it has passed). `None` when it is neither.
pub fn parse_retry_after(value: &str, now: Timestamp) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = jiff::fmt::rfc2822::parse(value).ok()?.timestamp();
    let until = now.duration_until(when);
    Some(Duration::try_from(until).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ceiling_doubles_then_stops_at_the_cap() {
        assert_eq!(backoff_ceiling(0), BACKOFF_BASE);
        assert_eq!(backoff_ceiling(1), BACKOFF_BASE);
        assert_eq!(backoff_ceiling(2), BACKOFF_BASE * 2);
        assert_eq!(backoff_ceiling(4), BACKOFF_BASE * 8);
        assert_eq!(backoff_ceiling(20), BACKOFF_CAP);
        assert_eq!(backoff_ceiling(u32::MAX), BACKOFF_CAP);
    }

    #[test]
    fn the_delay_lies_in_the_upper_half_of_the_ceiling() {
        for attempt in 1..15 {
            let ceiling = backoff_ceiling(attempt);
            for _ in 0..20 {
                let delay = backoff(attempt);
                assert!(
                    delay >= ceiling / 2 && delay <= ceiling,
                    "{attempt}: {delay:?}"
                );
            }
        }
    }

    #[test]
    fn retry_after_is_honoured_within_the_cap() {
        let asked = Duration::from_secs(120);
        assert_eq!(retry_delay(1, Some(asked)), asked);
        assert_eq!(
            retry_delay(1, Some(Duration::from_secs(86_400))),
            BACKOFF_CAP
        );
        let delay = retry_delay(10, Some(Duration::from_secs(1)));
        assert!(delay >= backoff_ceiling(10) / 2);
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now: Timestamp = "2026-11-23T18:00:00Z".parse().unwrap();
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Mon, 23 Nov 2026 18:01:30 GMT", now),
            Some(Duration::from_secs(90))
        );
        assert_eq!(
            parse_retry_after("Mon, 23 Nov 2026 17:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }
}
