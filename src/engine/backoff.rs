//! When a temporarily failed message is tried again: `base * 2^(attempt-1)`,
//! +-10 % jitter, capped, and never before the server's `Retry-After`.

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

pub fn delay(attempt: u32, base: Duration, cap: Duration, retry_after: Option<Duration>) -> Duration {
    let exp = attempt.saturating_sub(1).min(30);
    let raw = base.saturating_mul(1u32 << exp).min(cap);
    let jittered = raw.mul_f64(0.9 + 0.2 * unit_random()).min(cap);
    match retry_after {
        Some(ra) => jittered.max(ra),
        None => jittered,
    }
}

/// When the next attempt may go: `now + wait`, the wait rounded up to whole
/// seconds and at least one (instants are stored to the second: a jittered
/// 0.95 s would be stored as `now` and the retry be due in the same run), or
/// the latest instant that can be stored when that would pass year 9999.
pub fn next_at(now: chrono::DateTime<chrono::Utc>, wait: Duration) -> chrono::DateTime<chrono::Utc> {
    let last = chrono::NaiveDate::from_ymd_opt(9999, 12, 31)
        .and_then(|d| d.and_hms_opt(23, 59, 59))
        .map_or(now, |t| t.and_utc());
    let whole = Duration::from_secs(wait.as_secs().saturating_add(u64::from(wait.subsec_nanos() > 0)))
        .max(Duration::from_secs(1));
    chrono::Duration::from_std(whole)
        .ok()
        .and_then(|w| now.checked_add_signed(w))
        .map_or(last, |t| t.min(last))
}

/// A number in [0, 1): the hasher's random keys are enough for jitter.
fn unit_random() -> f64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jittered_retry_is_never_due_in_the_same_run() {
        let now = crate::instant::parse("2026-03-10T07:00:00.700Z").unwrap();
        for wait in [Duration::ZERO, Duration::from_millis(950), Duration::from_millis(1_200)] {
            let next = next_at(now, wait);
            let stored = crate::instant::parse(&crate::instant::format(next)).unwrap();
            assert!(stored > now, "{wait:?}: stored {stored} not after {now}");
        }
    }

    const BASE: Duration = Duration::from_secs(60);
    const CAP: Duration = Duration::from_secs(21_600);

    #[test]
    fn doubles_within_jitter() {
        for (attempt, nominal) in [(1, 60.0), (2, 120.0), (3, 240.0), (5, 960.0)] {
            for _ in 0..50 {
                let d = delay(attempt, BASE, CAP, None).as_secs_f64();
                assert!(
                    d >= nominal * 0.9 - 1e-9 && d <= nominal * 1.1 + 1e-9,
                    "attempt {attempt}: {d}"
                );
            }
        }
    }

    #[test]
    fn never_exceeds_the_cap() {
        for attempt in [10, 20, 31, 100, u32::MAX] {
            assert!(delay(attempt, BASE, CAP, None) <= CAP);
        }
    }

    #[test]
    fn next_at_never_overflows_nor_passes_year_9999() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-03-10T07:00:00Z")
            .unwrap()
            .to_utc();
        assert_eq!(next_at(now, BASE).to_rfc3339(), "2026-03-10T07:01:00+00:00");
        for wait in [
            Duration::MAX,
            Duration::from_secs(9_000_000_000_000),
            Duration::from_secs(u64::MAX / 2),
        ] {
            assert_eq!(next_at(now, wait).to_rfc3339(), "9999-12-31T23:59:59+00:00");
        }
    }

    #[test]
    fn honours_retry_after() {
        let ra = Duration::from_secs(3_600);
        assert!(delay(1, BASE, CAP, Some(ra)) >= ra);
    }
}
