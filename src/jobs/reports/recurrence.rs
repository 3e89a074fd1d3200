//! The next occurrence of a recurring report: a 5-field cron expression
//! evaluated on the local wall clock of the row's zone, then placed in UTC by
//! the same rule as every local time (a time in a spring-forward gap means the
//! first instant after it; an ambiguous one the earlier instant).

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds};

use crate::instant;

/// A parsed `recurrence` column.
pub struct Recurrence(Cron);

impl Recurrence {
    /// A row's `recurrence` column as written: `None` when absent or blank
    /// (the row does not recur), else the rule or why it cannot be one.
    pub fn of(column: Option<&str>) -> Option<Result<Self, String>> {
        column.map(str::trim).filter(|r| !r.is_empty()).map(Recurrence::parse)
    }

    /// A 5-field cron expression. Errors: the expression and what is wrong.
    pub fn parse(expr: &str) -> Result<Self, String> {
        let fields = expr.split_whitespace().count();
        if fields != 5 {
            return Err(format!(
                "{expr:?} has {fields} fields (expected 5: minute hour day-of-month month day-of-week)"
            ));
        }
        CronParser::builder()
            .seconds(Seconds::Disallowed)
            .build()
            .parse(expr)
            .map(Recurrence)
            .map_err(|e| format!("{expr:?} is not a cron expression ({e})"))
    }

    /// The first occurrence strictly after `after`, in `zone`.
    pub fn next_after(&self, after: DateTime<Utc>, zone: Tz) -> Option<DateTime<Utc>> {
        let mut local = after.with_timezone(&zone).naive_local();
        // An occurrence inside a fall-back hour can map to an instant at or
        // before `after`; look further then (an hour of minutes at most).
        for _ in 0..120 {
            let next_local = self.0.find_next_occurrence(&local, false).ok()?;
            let next = instant::local_to_utc(next_local, zone);
            if next > after {
                return Some(next);
            }
            local = next_local;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    const PARIS: Tz = chrono_tz::Europe::Paris;

    #[test]
    fn daily_in_local_time_across_the_spring_change() {
        let r = Recurrence::parse("0 8 * * *").unwrap();
        // 08:00 Paris is 07:00 UTC in winter and 06:00 UTC in summer.
        assert_eq!(
            r.next_after(utc("2026-03-28T07:00:00Z"), PARIS),
            Some(utc("2026-03-29T06:00:00Z"))
        );
    }

    #[test]
    fn a_time_in_the_gap_runs_once_at_the_first_valid_instant() {
        let r = Recurrence::parse("30 2 * * *").unwrap();
        let first = r.next_after(utc("2026-03-28T12:00:00Z"), PARIS).unwrap();
        assert_eq!(first, utc("2026-03-29T01:00:00Z"), "02:30 does not exist: 03:00 local");
        let second = r.next_after(first, PARIS).unwrap();
        assert_eq!(
            second,
            utc("2026-03-30T00:30:00Z"),
            "then 02:30 summer time, once a day"
        );
    }

    #[test]
    fn an_ambiguous_time_runs_once_at_the_earlier_instant() {
        let r = Recurrence::parse("30 2 * * *").unwrap();
        let first = r.next_after(utc("2026-10-24T12:00:00Z"), PARIS).unwrap();
        assert_eq!(first, utc("2026-10-25T00:30:00Z"), "the first 02:30 (summer time)");
        let second = r.next_after(first, PARIS).unwrap();
        assert_eq!(
            second,
            utc("2026-10-26T01:30:00Z"),
            "not the second 02:30 the same night"
        );
    }

    #[test]
    fn a_frequent_schedule_crosses_the_repeated_hour() {
        let r = Recurrence::parse("*/5 * * * *").unwrap();
        // 02:55 summer time, just before the clocks go back to 02:00.
        let next = r.next_after(utc("2026-10-25T00:55:00Z"), PARIS).unwrap();
        assert_eq!(
            next,
            utc("2026-10-25T02:00:00Z"),
            "03:00 winter time, after the repeated hour"
        );
    }

    #[test]
    fn rejects_other_shapes() {
        assert!(Recurrence::parse("0 8 * *").is_err());
        assert!(Recurrence::parse("0 0 8 * * *").is_err());
        assert!(Recurrence::parse("every monday").is_err());
        assert!(Recurrence::parse("0 8 * * MON-FRI").is_ok());
    }
}
