//! Reminders about a student rather than one session, for students with an
//! active subscription: `inactivity` once a day after `inactivity_days` local
//! days without activity, and `weekly_digest` once a week (last week's
//! sessions done and missed, next week's with their objectives). Both are
//! valid until local midnight.

use crate::domain::Kind;
use chrono::{DateTime, Datelike, Days, NaiveDate, NaiveTime, Utc, Weekday};
use chrono_tz::Tz;
use serde::Serialize;

use super::contact::Contact;
use super::emit::{Due, Emitter};
use super::{ContactCtx, absolute_link};
use crate::config::{Locale, RemindersConfig};
use crate::instant::{self, local_to_utc};
use crate::templates::{local_date, local_day, local_time};

/// Today's inactivity slot, when the student has been away long enough:
/// `(at, valid_until, days away)`.
pub fn inactivity_slot(
    now: DateTime<Utc>,
    last_seen: DateTime<Utc>,
    zone: Tz,
    cfg: &RemindersConfig,
) -> Option<(DateTime<Utc>, DateTime<Utc>, i64)> {
    let today = now.with_timezone(&zone).date_naive();
    let days = (today - last_seen.with_timezone(&zone).date_naive()).num_days();
    if days < i64::from(cfg.inactivity_days) {
        return None;
    }
    let at = local_to_utc(today.and_time(cfg.inactivity_at), zone);
    Some((at, midnight_after(today, zone)?, days))
}

/// The latest weekly slot at or before `now`, and the two weeks its digest covers.
#[derive(Debug, PartialEq)]
pub struct Week {
    pub at: DateTime<Utc>,
    pub valid_until: DateTime<Utc>,
    /// `at` a week earlier: the digest looks back over [from, at).
    pub from: DateTime<Utc>,
    /// `at` a week later: the digest looks ahead over [at, to).
    pub to: DateTime<Utc>,
}

pub fn weekly_slot(now: DateTime<Utc>, zone: Tz, (day, time): (Weekday, NaiveTime)) -> Option<Week> {
    let local = |date: NaiveDate| local_to_utc(date.and_time(time), zone);
    let today = now.with_timezone(&zone).date_naive();
    let back = (7 + today.weekday().num_days_from_monday() - day.num_days_from_monday()) % 7;
    let mut date = today.checked_sub_days(Days::new(u64::from(back)))?;
    if local(date) > now {
        date = date.checked_sub_days(Days::new(7))?;
    }
    Some(Week {
        at: local(date),
        valid_until: midnight_after(date, zone)?,
        from: local(date.checked_sub_days(Days::new(7))?),
        to: local(date.checked_add_days(Days::new(7))?),
    })
}

fn midnight_after(date: NaiveDate, zone: Tz) -> Option<DateTime<Utc>> {
    Some(local_to_utc(date.succ_opt()?.and_time(NaiveTime::MIN), zone))
}

#[derive(Serialize)]
struct InactivityCtx<'a> {
    kind: Kind,
    contact: ContactCtx<'a>,
    days_inactive: i64,
    /// The local date of the last activity, or of the subscription when
    /// that is later (or the student was never active).
    last_active_local: String,
    /// Whether `last_active_local` is an activity, not the subscription.
    ever_active: bool,
    site_url: Option<&'a str>,
}

#[derive(Serialize)]
struct DigestItem {
    subject: String,
    day_local: String,
    time_local: String,
    objective: Option<String>,
    link: Option<String>,
    /// Past sessions: `completed_at` is set.
    done: bool,
}

#[derive(Serialize)]
struct DigestCtx<'a> {
    kind: Kind,
    contact: ContactCtx<'a>,
    /// The week looked back on, as dates.
    week_from_local: String,
    week_to_local: String,
    past: Vec<DigestItem>,
    coming: Vec<DigestItem>,
    done_count: usize,
    missed_count: usize,
    site_url: Option<&'a str>,
}

/// A student whose digest is due and not yet planned.
struct Digest {
    student_id: i64,
    subscribed: Option<DateTime<Utc>>,
    contact: Contact,
    week: Week,
}

/// A session row read for digests.
struct SessionRow {
    student_id: i64,
    subject: String,
    start: Option<DateTime<Utc>>,
    objective: Option<String>,
    link: Option<String>,
    cancelled: bool,
    done: bool,
}

pub fn plan(em: &mut Emitter<'_>) -> anyhow::Result<()> {
    let (inactivity, weekly) = (em.r.wanted(Kind::Inactivity), em.r.wanted(Kind::WeeklyDigest));
    if !inactivity && !weekly {
        return Ok(());
    }
    let (conn, ctx, cfg) = (em.conn, em.ctx, em.r.cfg);
    let Some(only) = em.only("students") else {
        return Ok(());
    };
    let mut digests = Vec::new();
    let mut students = crate::store::reminders::students(conn, only)?;
    for row in students.iter()? {
        let row = row?;
        let id = row.id;
        if !row.subscription_active {
            continue;
        }
        let Some(contact) = Contact::from_row(row.contact, (("students", id), "contact_id"), ctx, &mut em.report)
        else {
            continue;
        };
        // Names the student row with its id (db::identity).
        let subscribed = row.subscribed_at.as_deref().and_then(instant::parse);
        if inactivity && em.wants(Kind::Inactivity, &contact) {
            // The later of the last activity and the subscription: a student
            // who subscribes again starts afresh.
            let mut seen: Option<(DateTime<Utc>, bool)> = None;
            let mut readable = true;
            for (v, column, active) in [
                (&row.last_active_at, "last_active_at", true),
                (&row.subscribed_at, "subscribed_at", false),
            ] {
                let Some(v) = v.as_deref().filter(|v| !v.trim().is_empty()) else {
                    continue;
                };
                match instant::parse_in(v, ctx.naive_zone) {
                    Some(t) if seen.is_none_or(|(s, _)| t > s) => seen = Some((t, active)),
                    Some(_) => {}
                    None => {
                        em.bad_instant("students", id, column, Some(v), "no inactivity reminder");
                        readable = false;
                    }
                }
            }
            if readable
                && let Some((seen, ever_active)) = seen
                && let Some((at, valid_until, days)) = inactivity_slot(ctx.now, seen, contact.zone, cfg)
            {
                let due = Due {
                    kind: Kind::Inactivity,
                    source_table: "students",
                    source_id: id,
                    source_at: subscribed,
                    about: None,
                    at,
                    valid_until,
                };
                em.emit(&due, &contact, |locale| InactivityCtx {
                    kind: Kind::Inactivity,
                    contact: ContactCtx { name: &contact.name },
                    days_inactive: days,
                    last_active_local: local_date(seen, contact.zone, locale),
                    ever_active,
                    site_url: ctx.site_url,
                })?;
            }
        }
        if weekly && let Some(week) = weekly_slot(ctx.now, contact.zone, cfg.weekly_digest_at) {
            let due = digest_due(id, subscribed, &week);
            if em.would_emit(&due, &contact)? {
                digests.push(Digest {
                    student_id: id,
                    subscribed,
                    contact,
                    week,
                });
            } else {
                // Not due, already planned, or expired: nothing to gather;
                // `emit` counts an expired digest and renders nothing.
                em.emit(&due, &contact, |_| ())?;
            }
        }
    }
    drop(students);
    plan_digests(em, digests)
}

fn digest_due(student_id: i64, subscribed: Option<DateTime<Utc>>, week: &Week) -> Due {
    Due {
        kind: Kind::WeeklyDigest,
        source_table: "students",
        source_id: student_id,
        source_at: subscribed,
        about: None,
        at: week.at,
        valid_until: week.valid_until,
    }
}

/// Due digests planned per read of their sessions, when the sessions are read
/// by student: each read is a statement of its own, so the planning writer's
/// commits can be checkpointed between them, where one read over every
/// student would hold the WAL for the whole of planning and leave its
/// checkpoint (all that was written) to the end.
const DIGESTS_PER_READ: usize = 1000;

/// Reads the sessions of the due digests' fortnights, in student order, and
/// plans each digest as its student's sessions are read: by ranges of
/// `DIGESTS_PER_READ` students when the `(student_id, starts_at)` index is
/// there, else in one pass.
fn plan_digests(em: &mut Emitter<'_>, digests: Vec<Digest>) -> anyhow::Result<()> {
    let (Some(from), Some(to)) = (
        digests.iter().map(|d| d.week.from).min(),
        digests.iter().map(|d| d.week.to).max(),
    ) else {
        return Ok(());
    };
    let conn = em.conn;
    if !crate::store::reminders::by_student(conn)? {
        let mut sessions = crate::store::reminders::digest_sessions(conn, from, to, None)?;
        let rows = sessions.iter()?;
        return plan_read(em, digests, rows);
    }
    let mut digests = digests.into_iter().peekable();
    while digests.peek().is_some() {
        let group: Vec<Digest> = digests.by_ref().take(DIGESTS_PER_READ).collect();
        let (Some(first), Some(last)) = (group.first(), group.last()) else {
            break;
        };
        let range = (first.student_id, last.student_id);
        // Read whole, and the statement reset, before any is planned.
        let rows: Vec<_> = crate::store::reminders::digest_sessions(conn, from, to, Some(range))?
            .iter()?
            .collect();
        plan_read(em, group, rows.into_iter())?;
    }
    Ok(())
}

/// Plans `digests` (in student order) with their sessions from `rows` (in
/// student order; a student's sessions are compared as instants here, and
/// start times that are not dates are reported by the session kinds).
fn plan_read(
    em: &mut Emitter<'_>,
    digests: Vec<Digest>,
    rows: impl Iterator<Item = crate::store::Result<crate::store::reminders::DigestSession>>,
) -> anyhow::Result<()> {
    let ctx = em.ctx;
    let naive = ctx.naive_zone;
    let mut rows = rows
        .map(|r| {
            r.map(|r| SessionRow {
                // Not an id (a host's loose column): matches no student.
                student_id: r.student_id.unwrap_or(i64::MIN),
                subject: r.subject.unwrap_or_default(),
                start: r.starts_at.as_deref().and_then(|s| instant::parse_in(s, naive)),
                objective: r.objective.map(|o| o.trim().to_string()).filter(|o| !o.is_empty()),
                link: r.link,
                cancelled: r.cancelled,
                done: r.completed,
            })
        })
        .peekable();
    for digest in digests {
        let mut mine = Vec::new();
        loop {
            match rows.peek() {
                Some(Ok(r)) if r.student_id < digest.student_id => {
                    rows.next();
                }
                Some(Ok(r)) if r.student_id == digest.student_id => {
                    if let Some(Ok(r)) = rows.next() {
                        mine.push(r);
                    }
                }
                Some(Err(_)) => {
                    if let Some(Err(e)) = rows.next() {
                        return Err(e.into());
                    }
                }
                _ => break,
            }
        }
        // In time order, whatever form each start was written in.
        mine.sort_by_key(|s| s.start);
        let Digest { contact, week, .. } = &digest;
        let zone = contact.zone;
        em.emit(
            &digest_due(digest.student_id, digest.subscribed, week),
            contact,
            // The sessions move into the items, not copied.
            move |locale| {
                let item = |s: SessionRow, start: DateTime<Utc>| DigestItem {
                    day_local: local_day(start, zone, locale),
                    time_local: local_time(start, zone),
                    link: absolute_link(s.link.as_deref(), ctx.site_url),
                    subject: s.subject,
                    objective: s.objective,
                    done: s.done,
                };
                let (mut past, mut coming) = (Vec::new(), Vec::new());
                for s in mine.into_iter().filter(|s| !s.cancelled) {
                    match s.start {
                        Some(t) if t >= week.from && t < week.at => past.push(item(s, t)),
                        Some(t) if t >= week.at && t < week.to => coming.push(item(s, t)),
                        _ => {}
                    }
                }
                let done_count = past.iter().filter(|i| i.done).count();
                DigestCtx {
                    kind: Kind::WeeklyDigest,
                    contact: ContactCtx { name: &contact.name },
                    week_from_local: local_date(week.from, zone, locale),
                    week_to_local: local_date(week.at, zone, locale),
                    missed_count: past.len() - done_count,
                    done_count,
                    past,
                    coming,
                    site_url: ctx.site_url,
                }
            },
        )?;
    }
    Ok(())
}

/// Template data for `config check`: inactivity.
pub fn inactivity_sample(optional_present: bool) -> serde_json::Value {
    serde_json::to_value(InactivityCtx {
        kind: Kind::Inactivity,
        contact: ContactCtx { name: "Léa <Mba>" },
        days_inactive: 4,
        last_active_local: "06/03/2026".into(),
        ever_active: optional_present,
        site_url: optional_present.then_some("https://example.com"),
    })
    .unwrap_or_default()
}

/// Template data for `config check`: the weekly digest (with sessions, or none at all).
pub fn digest_sample(optional_present: bool) -> serde_json::Value {
    let zone = chrono_tz::Europe::Paris;
    let item = |at: &str, done: bool| {
        let t = instant::parse(at).unwrap_or_default();
        DigestItem {
            subject: "Maths & \"physique\" <1>".into(),
            day_local: local_day(t, zone, Locale::Fr),
            time_local: local_time(t, zone),
            objective: optional_present.then(|| "Fractions <révision>".into()),
            link: optional_present.then(|| "https://example.com/s/1?a=1&b=2".into()),
            done,
        }
    };
    let (past, coming) = if optional_present {
        (
            vec![item("2026-03-02T16:00:00Z", true), item("2026-03-04T16:00:00Z", false)],
            vec![item("2026-03-10T16:00:00Z", false)],
        )
    } else {
        (vec![], vec![])
    };
    serde_json::to_value(DigestCtx {
        kind: Kind::WeeklyDigest,
        contact: ContactCtx { name: "Léa <Mba>" },
        week_from_local: "01/03/2026".into(),
        week_to_local: "08/03/2026".into(),
        done_count: past.iter().filter(|i| i.done).count(),
        missed_count: past.iter().filter(|i| !i.done).count(),
        past,
        coming,
        site_url: optional_present.then_some("https://example.com"),
    })
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        instant::parse(s).unwrap()
    }

    const PARIS: Tz = chrono_tz::Europe::Paris;

    #[test]
    fn inactivity_counts_local_days_not_hours() {
        let cfg = crate::config::reminders_for_tests();
        // Last seen Friday 6 March 23:30 Paris; Monday 9 March is day 3.
        let seen = utc("2026-03-06T22:30:00Z");
        assert_eq!(inactivity_slot(utc("2026-03-08T12:00:00Z"), seen, PARIS, &cfg), None);
        let (at, until, days) = inactivity_slot(utc("2026-03-09T08:00:00Z"), seen, PARIS, &cfg).unwrap();
        assert_eq!(
            (at, until, days),
            (utc("2026-03-09T09:00:00Z"), utc("2026-03-09T23:00:00Z"), 3)
        );
    }

    #[test]
    fn the_weekly_slot_is_the_last_one_passed() {
        let sun_20 = (Weekday::Sun, NaiveTime::from_hms_opt(20, 0, 0).unwrap());
        // Sunday 29 March 2026, 23:00 Paris (summer time since 02:00): tonight's slot.
        let w = weekly_slot(utc("2026-03-29T21:00:00Z"), PARIS, sun_20).unwrap();
        assert_eq!(w.at, utc("2026-03-29T18:00:00Z"));
        assert_eq!(w.valid_until, utc("2026-03-29T22:00:00Z"));
        assert_eq!(w.from, utc("2026-03-22T19:00:00Z"), "a week earlier, winter time");
        assert_eq!(w.to, utc("2026-04-05T18:00:00Z"));
        // Sunday 19:59: still last week's, long expired.
        let w = weekly_slot(utc("2026-03-29T17:59:00Z"), PARIS, sun_20).unwrap();
        assert_eq!(w.at, utc("2026-03-22T19:00:00Z"));
        assert!(w.valid_until < utc("2026-03-29T17:59:00Z"));
        // Monday 00:30: Sunday's digest expired at midnight.
        let w = weekly_slot(utc("2026-03-29T22:30:00Z"), PARIS, sun_20).unwrap();
        assert!(w.valid_until <= utc("2026-03-29T22:30:00Z"));
    }
}
