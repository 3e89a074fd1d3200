//! When each loan reminder is due and until when it is worth sending
//! (DESIGN §6), computed on the local clock of the borrower's zone.

use chrono::{DateTime, Days, Duration, NaiveDate, NaiveTime, Utc};
use chrono_tz::Tz;

use crate::config::RemindersConfig;
use crate::instant::local_to_utc;

/// A loan as the slots need it.
pub struct Loan<'a> {
    pub term: &'a str,
    pub lent_at: DateTime<Utc>,
    pub due_at: DateTime<Utc>,
    pub returned_at: Option<DateTime<Utc>>,
}

/// One reminder of a loan: due at `at`, not sent at or after `valid_until`.
#[derive(Clone, Debug, PartialEq)]
pub struct Slot {
    pub kind: &'static str,
    pub at: DateTime<Utc>,
    pub valid_until: DateTime<Utc>,
    /// For `loan_overdue`: the how-manyth day late (1-based).
    pub overdue_day: Option<u32>,
}

fn at(date: NaiveDate, time: NaiveTime, zone: Tz) -> DateTime<Utc> {
    local_to_utc(date.and_time(time), zone)
}

/// Every slot of the loan, in time order.
pub fn slots(loan: &Loan<'_>, zone: Tz, cfg: &RemindersConfig) -> Vec<Slot> {
    if let Some(returned) = loan.returned_at {
        return vec![Slot {
            kind: "loan_returned",
            at: returned,
            valid_until: returned + Duration::days(7),
            overdue_day: None,
        }];
    }
    let due_date = loan.due_at.with_timezone(&zone).date_naive();
    let day = |offset: i64| {
        if offset < 0 {
            due_date.checked_sub_days(Days::new(offset.unsigned_abs()))
        } else {
            due_date.checked_add_days(Days::new(offset as u64))
        }
    };
    // The schedule: each slot is valid until the next one.
    let mut timeline: Vec<(&'static str, DateTime<Utc>, Option<u32>)> = Vec::new();
    if let Some(d) = day(-2) {
        timeline.push(("loan_d2", at(d, cfg.loan_d2_at, zone), None));
    }
    if let Some(d) = day(-1) {
        timeline.push(("loan_d1", at(d, cfg.loan_d1_at, zone), None));
    }
    timeline.push(("loan_due", at(due_date, cfg.loan_due_at, zone), None));
    if cfg.loan_short_notice_terms.iter().any(|t| t == loan.term) {
        timeline.push((
            "loan_short_notice",
            loan.due_at - Duration::hours(i64::from(cfg.loan_short_notice_hours)),
            None,
        ));
    }
    // Overdue: the first loan_overdue_at after due_at, then daily; one more
    // computed than sent, as the validity end of the last.
    let mut first = at(due_date, cfg.loan_overdue_at, zone);
    if first <= loan.due_at {
        first = day(1).map_or(first, |d| at(d, cfg.loan_overdue_at, zone));
    }
    let first_date = first.with_timezone(&zone).date_naive();
    let overdue: Vec<DateTime<Utc>> = (0..=cfg.loan_overdue_max)
        .filter_map(|n| first_date.checked_add_days(Days::new(u64::from(n))))
        .map(|d| at(d, cfg.loan_overdue_at, zone))
        .collect();
    for (n, when) in overdue.iter().take(cfg.loan_overdue_max as usize).enumerate() {
        timeline.push(("loan_overdue", *when, Some(n as u32 + 1)));
    }
    timeline.sort_by_key(|(_, when, _)| *when);

    let mut out = vec![Slot {
        kind: "loan_created",
        at: loan.lent_at,
        valid_until: loan.lent_at + Duration::days(1),
        overdue_day: None,
    }];
    for (i, (kind, when, overdue_day)) in timeline.iter().enumerate() {
        // A reminder never has a slot before the loan began.
        if *when < loan.lent_at {
            continue;
        }
        let next = timeline[i + 1..].iter().map(|(_, t, _)| *t).find(|t| t > when);
        let valid_until = match *kind {
            "loan_short_notice" => loan.due_at,
            "loan_due" => next.map_or(loan.due_at, |n| n.min(loan.due_at)),
            "loan_overdue" => overdue_day
                .and_then(|d| overdue.get(d as usize).copied())
                .unwrap_or(*when + Duration::days(1)),
            _ => next.unwrap_or(loan.due_at),
        };
        out.push(Slot {
            kind,
            at: *when,
            valid_until,
            overdue_day: *overdue_day,
        });
    }
    out.sort_by_key(|s| s.at);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn cfg() -> RemindersConfig {
        crate::config::reminders_for_tests()
    }

    const LBV: Tz = chrono_tz::Africa::Libreville; // UTC+1, no DST

    fn find<'a>(slots: &'a [Slot], kind: &str) -> Vec<&'a Slot> {
        slots.iter().filter(|s| s.kind == kind).collect()
    }

    #[test]
    fn the_schedule_of_a_loan_due_friday_evening() {
        let loan = Loan {
            term: "long",
            lent_at: utc("2026-03-02T10:00:00Z"),
            due_at: utc("2026-03-13T17:00:00Z"), // Friday 18:00 local
            returned_at: None,
        };
        let s = slots(&loan, LBV, &cfg());
        let d2 = find(&s, "loan_d2")[0];
        assert_eq!(
            (d2.at, d2.valid_until),
            (utc("2026-03-11T08:00:00Z"), utc("2026-03-12T08:00:00Z"))
        );
        let d1 = find(&s, "loan_d1")[0];
        assert_eq!(
            (d1.at, d1.valid_until),
            (utc("2026-03-12T08:00:00Z"), utc("2026-03-13T07:00:00Z"))
        );
        let due = find(&s, "loan_due")[0];
        assert_eq!(
            (due.at, due.valid_until),
            (utc("2026-03-13T07:00:00Z"), utc("2026-03-13T17:00:00Z"))
        );
        assert!(find(&s, "loan_short_notice").is_empty(), "long loans get none");
        let overdue = find(&s, "loan_overdue");
        assert_eq!(overdue.len(), 14);
        assert_eq!(
            (overdue[0].at, overdue[0].valid_until),
            (utc("2026-03-14T09:00:00Z"), utc("2026-03-15T09:00:00Z"))
        );
        assert_eq!(overdue[13].overdue_day, Some(14));
        let created = find(&s, "loan_created")[0];
        assert_eq!(created.valid_until, utc("2026-03-03T10:00:00Z"));
    }

    #[test]
    fn short_loans_get_a_short_notice_and_no_slot_before_lending() {
        let loan = Loan {
            term: "short",
            lent_at: utc("2026-03-13T09:30:00Z"), // lent the morning it is due
            due_at: utc("2026-03-13T15:00:00Z"),
            returned_at: None,
        };
        let s = slots(&loan, LBV, &cfg());
        assert!(
            find(&s, "loan_d2").is_empty() && find(&s, "loan_d1").is_empty(),
            "before lent_at"
        );
        assert!(find(&s, "loan_due").is_empty(), "08:00 local is before lent_at");
        let short = find(&s, "loan_short_notice")[0];
        assert_eq!(
            (short.at, short.valid_until),
            (utc("2026-03-13T13:00:00Z"), utc("2026-03-13T15:00:00Z"))
        );
    }

    #[test]
    fn a_returned_loan_gets_only_its_return() {
        let loan = Loan {
            term: "long",
            lent_at: utc("2026-03-02T10:00:00Z"),
            due_at: utc("2026-03-13T17:00:00Z"),
            returned_at: Some(utc("2026-03-05T16:00:00Z")),
        };
        let s = slots(&loan, LBV, &cfg());
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].kind, "loan_returned");
        assert_eq!(s[0].valid_until, utc("2026-03-12T16:00:00Z"));
    }

    #[test]
    fn d1_at_nine_the_day_after_spring_forward() {
        let paris: Tz = chrono_tz::Europe::Paris;
        let loan = Loan {
            term: "long",
            lent_at: utc("2026-03-20T10:00:00Z"),
            due_at: utc("2026-03-31T16:00:00Z"),
            returned_at: None,
        };
        let s = slots(&loan, paris, &cfg());
        // D-1 is Monday 30 March, after the change: 09:00 is 07:00 UTC.
        assert_eq!(find(&s, "loan_d1")[0].at, utc("2026-03-30T07:00:00Z"));
        // D-2 is Sunday 29 March itself, already summer time.
        assert_eq!(find(&s, "loan_d2")[0].at, utc("2026-03-29T07:00:00Z"));
    }

    #[test]
    fn a_slot_in_the_repeated_hour_is_one_instant() {
        let paris: Tz = chrono_tz::Europe::Paris;
        let mut c = cfg();
        c.loan_overdue_at = NaiveTime::from_hms_opt(2, 30, 0).unwrap();
        let loan = Loan {
            term: "long",
            lent_at: utc("2026-10-01T10:00:00Z"),
            due_at: utc("2026-10-24T16:00:00Z"),
            returned_at: None,
        };
        let s = slots(&loan, paris, &c);
        let first = find(&s, "loan_overdue")[0];
        // 02:30 on 25 October happens twice: the earlier one, summer time.
        assert_eq!(first.at, utc("2026-10-25T00:30:00Z"));
        assert_eq!(first.valid_until, utc("2026-10-26T01:30:00Z"));
    }
}
