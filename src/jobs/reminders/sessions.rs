//! Revision-session reminders: `session_eve` the evening before and
//! `session_day` the morning of, on the student's local clock, each valid
//! until the session starts. Cancelled and completed sessions get nothing; a
//! moved session gets the slots of its new time.

use crate::domain::Kind;
use chrono::{DateTime, Duration, NaiveTime, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use super::contact::Contact;
use super::emit::{Due, Emitter};
use super::{ContactCtx, absolute_link};
use crate::config::{Locale, RemindersConfig};
use crate::instant::{self, local_to_utc};
use crate::templates::{local_day, local_time};

/// A session as its reminders show it.
#[derive(Serialize)]
pub struct SessionInfo<'a> {
    pub id: i64,
    pub subject: &'a str,
    /// `none` when empty.
    pub objective: Option<&'a str>,
    /// Absolute, or `none` when the session has no link (or a relative one and no `site_url`).
    pub link: Option<String>,
}

#[derive(Serialize)]
struct SessionCtx<'a> {
    kind: Kind,
    contact: ContactCtx<'a>,
    session: SessionInfo<'a>,
    /// "mardi 10 mars", "Tuesday 10 March"
    day_local: String,
    /// "14:00"
    time_local: String,
    /// Whether the session is today, or tomorrow, on the student's clock when
    /// the message is written (a late eve reminder must not say "tomorrow").
    today: bool,
    tomorrow: bool,
    site_url: Option<&'a str>,
}

/// The slots of a session starting at `start`: `(kind, at, valid_until)`.
/// The morning reminder comes only when it is before the start; the eve
/// reminder is valid until the morning one (or the start): a run after a
/// night off sends one reminder, not two saying the same.
pub fn slots(start: DateTime<Utc>, zone: Tz, cfg: &RemindersConfig) -> Vec<(Kind, DateTime<Utc>, DateTime<Utc>)> {
    let day = start.with_timezone(&zone).date_naive();
    let at = |date: chrono::NaiveDate, time: NaiveTime| local_to_utc(date.and_time(time), zone);
    let morning = Some(at(day, cfg.session_day_at)).filter(|m| *m < start);
    let mut out = Vec::with_capacity(2);
    if let Some(eve) = day.pred_opt().map(|d| at(d, cfg.session_eve_at)) {
        let until = morning.filter(|m| *m > eve).unwrap_or(start);
        if eve < until {
            out.push((Kind::SessionEve, eve, until));
        }
    }
    if let Some(morning) = morning {
        out.push((Kind::SessionDay, morning, start));
    }
    out
}

/// How far ahead a session can have a due reminder: its earliest slot, the
/// eve one, is at `session_eve_at` on the local day before, so at most 48
/// hours less `session_eve_at` before the start (a session at 23:59 with
/// eve reminders at 18:30: 29 hours 29 minutes), plus 3 hours for a DST
/// change between the two (2 hours at most, in some zones). With the 51
/// hours of any `session_eve_at`, Sunday 20:00's run read a third more
/// sessions than could be due.
fn look_ahead(cfg: &RemindersConfig) -> Duration {
    let eve = cfg.session_eve_at.signed_duration_since(NaiveTime::MIN);
    Duration::hours(48) - eve + Duration::hours(3)
}

pub fn plan(em: &mut Emitter<'_>) -> anyhow::Result<()> {
    if !crate::domain::Kind::SESSIONS.iter().any(|k| em.r.wanted(*k)) {
        return Ok(());
    }
    let (conn, ctx, cfg) = (em.conn, em.ctx, em.r.cfg);
    let Some(only) = em.only("revision_sessions") else {
        return Ok(());
    };
    // A session's slots are before it (`look_ahead`), and valid at most
    // until it starts: sessions starting after the last run (to count the
    // expired ones) and within `look_ahead`, found by date through the
    // index, then compared as instants.
    let (from, to) = (em.since().min(ctx.now), ctx.now + look_ahead(cfg));
    let mut sessions = crate::store::reminders::sessions(conn, from, to, only)?;
    for row in sessions.iter()? {
        let row = row?;
        let id = row.id;
        let raw = row.starts_at;
        let Some(start) = raw.as_deref().and_then(|s| instant::parse_in(s, ctx.naive_zone)) else {
            em.bad_instant("revision_sessions", id, "starts_at", raw.as_deref(), "session skipped");
            continue;
        };
        // The row's name in keys, whatever naive_timezone says (db::identity).
        let source_at = raw.as_deref().and_then(instant::parse);
        // The date prefilter's margin: outside the window, nothing to do.
        if start <= from || start > to {
            continue;
        }
        if row.cancelled || row.completed {
            continue;
        }
        let Some(contact) = Contact::from_row(
            row.contact,
            (("revision_sessions", id), "student_id (or its student's contact_id)"),
            ctx,
            &mut em.report,
        ) else {
            continue;
        };
        let subject = row.subject.unwrap_or_default();
        let objective = row.objective;
        let link = row.link;
        let local_date = |t: DateTime<Utc>| t.with_timezone(&contact.zone).date_naive();
        let days_ahead = (local_date(start) - local_date(ctx.now)).num_days();
        for (kind, at, valid_until) in slots(start, contact.zone, cfg) {
            let due = Due {
                kind,
                source_table: "revision_sessions",
                source_id: id,
                source_at,
                about: None,
                at,
                valid_until,
            };
            em.emit(&due, &contact, |locale| SessionCtx {
                kind,
                contact: ContactCtx { name: &contact.name },
                session: SessionInfo {
                    id,
                    subject: &subject,
                    objective: objective.as_deref().map(str::trim).filter(|o| !o.is_empty()),
                    link: absolute_link(link.as_deref(), ctx.site_url),
                },
                day_local: local_day(start, contact.zone, locale),
                time_local: local_time(start, contact.zone),
                today: days_ahead == 0,
                tomorrow: days_ahead == 1,
                site_url: ctx.site_url,
            })?;
        }
    }
    Ok(())
}

/// Template data for `config check`.
pub fn sample(kind: Kind, optional_present: bool) -> serde_json::Value {
    let start = instant::parse("2026-03-10T13:00:00Z").unwrap_or_default();
    let zone = chrono_tz::Europe::Paris;
    let ctx = SessionCtx {
        kind,
        contact: ContactCtx { name: "Léa <Mba>" },
        session: SessionInfo {
            id: 12,
            subject: "Maths & \"physique\"",
            objective: optional_present.then_some("Fractions: exercices 4 à 9"),
            link: optional_present.then(|| "https://example.com/sessions/12?a=1&b=2".to_string()),
        },
        day_local: local_day(start, zone, Locale::Fr),
        time_local: local_time(start, zone),
        today: !optional_present,
        tomorrow: optional_present,
        site_url: optional_present.then_some("https://example.com"),
    };
    serde_json::to_value(ctx).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        instant::parse(s).unwrap()
    }

    const PARIS: Tz = chrono_tz::Europe::Paris;

    #[test]
    fn eve_and_morning_on_local_time_across_spring_forward() {
        // Monday 30 March 2026 14:00 in Paris (summer time since Sunday 02:00).
        let s = slots(
            utc("2026-03-30T12:00:00Z"),
            PARIS,
            &crate::config::reminders_for_tests(),
        );
        assert_eq!(
            s,
            vec![
                // Sunday 18:30 CEST, until Monday 08:00 CEST
                (
                    Kind::SessionEve,
                    utc("2026-03-29T16:30:00Z"),
                    utc("2026-03-30T06:00:00Z")
                ),
                (
                    Kind::SessionDay,
                    utc("2026-03-30T06:00:00Z"),
                    utc("2026-03-30T12:00:00Z")
                ),
            ]
        );
    }

    /// Every slot of a session is within `look_ahead` of its start, for
    /// any eve time, across the DST changes of zones that shift by 30
    /// minutes (Lord Howe), an hour (Paris, Santiago) and two (Troll).
    #[test]
    fn every_slot_is_within_the_look_ahead_of_its_session() {
        let zones = [
            PARIS,
            chrono_tz::Australia::Lord_Howe,
            chrono_tz::America::Santiago,
            chrono_tz::Antarctica::Troll,
        ];
        let mut cfg = crate::config::reminders_for_tests();
        for eve in ["00:00", "06:15", "18:30", "23:59"] {
            cfg.session_eve_at = NaiveTime::parse_from_str(eve, "%H:%M").unwrap();
            let ahead = look_ahead(&cfg);
            for zone in zones {
                // Every 20 minutes, through both of the year's changes.
                let mut start = utc("2026-03-20T00:00:00Z");
                while start < utc("2026-11-10T00:00:00Z") {
                    for (kind, at, _) in slots(start, zone, &cfg) {
                        assert!(start - at <= ahead, "{kind} of {start} in {zone} at {at}, eve {eve}");
                    }
                    start += Duration::minutes(20);
                }
            }
        }
    }

    #[test]
    fn an_early_session_gets_no_morning_reminder() {
        // 07:30 local: the 08:00 reminder would come after it began.
        let s = slots(
            utc("2026-11-10T06:30:00Z"),
            PARIS,
            &crate::config::reminders_for_tests(),
        );
        let start = utc("2026-11-10T06:30:00Z");
        assert_eq!(s, vec![(Kind::SessionEve, utc("2026-11-09T17:30:00Z"), start)]);
    }
}
