//! When each loan reminder is due and until when it is worth sending
//! (DESIGN §6), computed on the local clock of the borrower's zone.

use crate::domain::Kind;
use chrono::{DateTime, Days, Duration, NaiveDate, NaiveTime, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use super::ContactCtx;
use super::contact::Contact;
use super::emit::{Due, Emitter};
use crate::config::RemindersConfig;
use crate::instant::{self, local_to_utc};
use crate::templates::{local_date, local_datetime};

#[derive(Serialize)]
struct LoanCtx<'a> {
    kind: Kind,
    contact: ContactCtx<'a>,
    loan: LoanInfo<'a>,
    due_local: String,
    due_date_local: String,
    lent_local: String,
    returned_local: Option<String>,
    overdue_days: Option<u32>,
    hours_left: Option<i64>,
    site_url: Option<&'a str>,
}

#[derive(Serialize)]
struct LoanInfo<'a> {
    id: i64,
    item: &'a str,
    term: &'a str,
}

/// Plans the due loan reminders.
pub fn plan(em: &mut Emitter<'_>) -> anyhow::Result<()> {
    if !crate::domain::Kind::LOANS.iter().any(|k| em.r.wanted(*k)) {
        return Ok(());
    }
    let (conn, ctx, cfg) = (em.conn, em.ctx, em.r.cfg);
    let Some(only) = em.only("loans") else {
        return Ok(());
    };
    // Loans returned more than 8 days ago, or overdue past every reminder, have nothing left.
    let returned_horizon = ctx.now - Duration::days(8);
    let due_horizon = ctx.now - Duration::days(i64::from(cfg.loan_overdue_max) + 3);
    let mut loans = crate::store::reminders::loans(conn, returned_horizon, due_horizon, only)?;
    for row in loans.iter()? {
        let row = row?;
        let loan_id = row.id;
        let Some(contact) = Contact::from_row(row.contact, (("loans", loan_id), "contact_id"), ctx, &mut em.report)
        else {
            continue;
        };
        let mut bad = |column: &str, value: Option<String>| {
            em.bad_instant("loans", loan_id, column, value.as_deref(), "loan skipped");
        };
        let lent_raw = row.lent_at;
        let naive = ctx.naive_zone;
        let Some(lent_at) = lent_raw.as_deref().and_then(|s| instant::parse_in(s, naive)) else {
            bad("lent_at", lent_raw);
            continue;
        };
        // The row's name in keys, whatever naive_timezone says (db::identity).
        let source_at = lent_raw.as_deref().and_then(instant::parse);
        let due_raw = row.due_at;
        let Some(due_at) = due_raw
            .as_deref()
            .and_then(|d| instant::parse_due(d, contact.zone, naive))
        else {
            bad("due_at", due_raw);
            continue;
        };
        let returned_raw = row.returned_at;
        let returned_at = match returned_raw.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
            None => None,
            // A host's date column (Django's DateField) gives the day alone.
            Some(v) => match instant::parse_dated(v, contact.zone, naive, chrono::NaiveTime::MIN) {
                Some(t) => Some(t),
                None => {
                    bad("returned_at", returned_raw);
                    continue;
                }
            },
        };
        let item = row.item.unwrap_or_default();
        let term = row.term.unwrap_or_else(|| "long".into());
        let loan = Loan {
            term: &term,
            lent_at,
            due_at,
            returned_at,
        };
        for slot in slots(&loan, contact.zone, cfg) {
            let due = Due {
                kind: slot.kind,
                source_table: "loans",
                source_id: loan_id,
                source_at,
                about: if crate::db::identity::ABOUT_DUE.contains(&slot.kind) {
                    due_raw.as_deref().and_then(crate::db::identity::due_ref)
                } else {
                    None
                },
                at: slot.at,
                valid_until: slot.valid_until,
            };
            let zone = contact.zone;
            em.emit(&due, &contact, |locale| LoanCtx {
                kind: slot.kind,
                contact: ContactCtx { name: &contact.name },
                loan: LoanInfo {
                    id: loan_id,
                    item: &item,
                    term: &term,
                },
                due_local: local_datetime(due_at, zone, locale),
                due_date_local: local_date(due_at, zone, locale),
                lent_local: local_datetime(lent_at, zone, locale),
                returned_local: returned_at.map(|t| local_datetime(t, zone, locale)),
                overdue_days: slot.overdue_day,
                hours_left: (slot.kind == Kind::LoanShortNotice).then(|| (due_at - slot.at).num_hours()),
                site_url: ctx.site_url,
            })?;
        }
    }
    Ok(())
}

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
    pub kind: crate::domain::Kind,
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
            kind: Kind::LoanReturned,
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
    let mut timeline: Vec<(Kind, DateTime<Utc>, Option<u32>)> = Vec::new();
    if let Some(d) = day(-2) {
        timeline.push((Kind::LoanD2, at(d, cfg.loan_d2_at, zone), None));
    }
    if let Some(d) = day(-1) {
        timeline.push((Kind::LoanD1, at(d, cfg.loan_d1_at, zone), None));
    }
    timeline.push((Kind::LoanDue, at(due_date, cfg.loan_due_at, zone), None));
    if cfg.loan_short_notice_terms.iter().any(|t| t == loan.term) {
        timeline.push((
            Kind::LoanShortNotice,
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
        timeline.push((Kind::LoanOverdue, *when, Some(n as u32 + 1)));
    }
    timeline.sort_by_key(|(_, when, _)| *when);

    let mut out = vec![Slot {
        kind: Kind::LoanCreated,
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
            Kind::LoanShortNotice => loan.due_at,
            Kind::LoanDue => next.map_or(loan.due_at, |n| n.min(loan.due_at)),
            Kind::LoanOverdue => overdue_day
                .and_then(|d| overdue.get(d as usize).copied())
                .unwrap_or(*when + Duration::days(1)),
            _ => next.unwrap_or(loan.due_at),
        };
        out.push(Slot {
            kind: *kind,
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

    fn find(slots: &[Slot], kind: Kind) -> Vec<&Slot> {
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
        let d2 = find(&s, Kind::LoanD2)[0];
        assert_eq!(
            (d2.at, d2.valid_until),
            (utc("2026-03-11T08:00:00Z"), utc("2026-03-12T08:00:00Z"))
        );
        let d1 = find(&s, Kind::LoanD1)[0];
        assert_eq!(
            (d1.at, d1.valid_until),
            (utc("2026-03-12T08:00:00Z"), utc("2026-03-13T07:00:00Z"))
        );
        let due = find(&s, Kind::LoanDue)[0];
        assert_eq!(
            (due.at, due.valid_until),
            (utc("2026-03-13T07:00:00Z"), utc("2026-03-13T17:00:00Z"))
        );
        assert!(find(&s, Kind::LoanShortNotice).is_empty(), "long loans get none");
        let overdue = find(&s, Kind::LoanOverdue);
        assert_eq!(overdue.len(), 14);
        assert_eq!(
            (overdue[0].at, overdue[0].valid_until),
            (utc("2026-03-14T09:00:00Z"), utc("2026-03-15T09:00:00Z"))
        );
        assert_eq!(overdue[13].overdue_day, Some(14));
        let created = find(&s, Kind::LoanCreated)[0];
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
            find(&s, Kind::LoanD2).is_empty() && find(&s, Kind::LoanD1).is_empty(),
            "before lent_at"
        );
        assert!(find(&s, Kind::LoanDue).is_empty(), "08:00 local is before lent_at");
        let short = find(&s, Kind::LoanShortNotice)[0];
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
        assert_eq!(s[0].kind, Kind::LoanReturned);
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
        assert_eq!(find(&s, Kind::LoanD1)[0].at, utc("2026-03-30T07:00:00Z"));
        // D-2 is Sunday 29 March itself, already summer time.
        assert_eq!(find(&s, Kind::LoanD2)[0].at, utc("2026-03-29T07:00:00Z"));
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
        let first = find(&s, Kind::LoanOverdue)[0];
        // 02:30 on 25 October happens twice: the earlier one, summer time.
        assert_eq!(first.at, utc("2026-10-25T00:30:00Z"));
        assert_eq!(first.valid_until, utc("2026-10-26T01:30:00Z"));
    }
}
