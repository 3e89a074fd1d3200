//! Revision-session reminders: `session_eve` the evening before and
//! `session_day` the morning of, on the student's local clock, each valid
//! until the session starts. Cancelled and completed sessions get nothing; a
//! moved session gets the slots of its new time.

use chrono::{DateTime, Duration, NaiveTime, Utc};
use chrono_tz::Tz;
use rusqlite::params;
use serde::Serialize;

use super::contact::{Contact, flag};
use super::emit::{Due, Emitter};
use super::{ContactCtx, absolute_link};
use crate::config::{Locale, RemindersConfig};
use crate::instant::{self, local_to_utc};
use crate::jobs::column_text;
use crate::templates::{local_day, local_time};

pub const KINDS: [&str; 2] = ["session_eve", "session_day"];

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
    kind: &'a str,
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

/// The slots of a session starting at `start`: `(kind, at)`, each valid until `start`.
pub fn slots(start: DateTime<Utc>, zone: Tz, cfg: &RemindersConfig) -> Vec<(&'static str, DateTime<Utc>)> {
    let day = start.with_timezone(&zone).date_naive();
    let at = |date: chrono::NaiveDate, time: NaiveTime| local_to_utc(date.and_time(time), zone);
    let mut out = Vec::with_capacity(2);
    if let Some(eve) = day.pred_opt() {
        out.push(("session_eve", at(eve, cfg.session_eve_at)));
    }
    // Only when the morning reminder comes before the session.
    out.push(("session_day", at(day, cfg.session_day_at)));
    out.retain(|(_, when)| *when < start);
    out
}

/// Julian day number of an instant, as SQLite's `julianday()` gives it.
pub fn julian(t: DateTime<Utc>) -> f64 {
    t.timestamp() as f64 / 86_400.0 + 2_440_587.5
}

pub fn plan(em: &mut Emitter<'_>) -> anyhow::Result<()> {
    if !KINDS.iter().any(|k| em.r.wanted(k)) {
        return Ok(());
    }
    let (conn, ctx, cfg) = (em.conn, em.ctx, em.r.cfg);
    // A session's slots are at most two days before it and valid until it
    // starts: sessions starting after the last run (to count the expired ones)
    // and within the next 49 hours. Start times that do not parse are read too,
    // to be reported.
    let mut stmt = conn.prepare(
        "SELECT r.id, r.subject, r.starts_at, r.objective, r.link, r.cancelled, r.completed_at,
                c.id, c.name, c.email, c.phone, c.locale, c.timezone, c.email_enabled, c.whatsapp_enabled,
                c.sms_enabled, c.muted_kinds
         FROM revision_sessions r JOIN students s ON s.id = r.student_id JOIN contacts c ON c.id = s.contact_id
         WHERE julianday(r.starts_at) > ?1 AND julianday(r.starts_at) <= ?2 OR julianday(r.starts_at) IS NULL
         ORDER BY julianday(r.starts_at), r.id",
    )?;
    let from = em.since().min(ctx.now);
    let mut rows = stmt.query(params![julian(from), julian(ctx.now + Duration::hours(49))])?;
    while let Some(row) = rows.next()? {
        let id: i64 = row.get(0)?;
        let raw = column_text(row.get_ref(2)?);
        let Some(start) = raw.as_deref().and_then(instant::parse) else {
            em.bad_instant("revision_sessions", id, "starts_at", raw.as_deref(), "session skipped");
            continue;
        };
        if flag(row.get_ref(5)?, false) || column_text(row.get_ref(6)?).is_some_and(|c| !c.trim().is_empty()) {
            continue;
        }
        let Some(contact) = Contact::from_row(row, 7, ctx, &mut em.report)? else {
            continue;
        };
        let subject = column_text(row.get_ref(1)?).unwrap_or_default();
        let objective = column_text(row.get_ref(3)?);
        let link = column_text(row.get_ref(4)?);
        let local_date = |t: DateTime<Utc>| t.with_timezone(&contact.zone).date_naive();
        let days_ahead = (local_date(start) - local_date(ctx.now)).num_days();
        for (kind, at) in slots(start, contact.zone, cfg) {
            let due = Due {
                kind,
                source_table: "revision_sessions",
                source_id: id,
                at,
                valid_until: start,
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
pub fn sample(kind: &str, optional_present: bool) -> serde_json::Value {
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
                ("session_eve", utc("2026-03-29T16:30:00Z")), // Sunday 18:30 CEST
                ("session_day", utc("2026-03-30T06:00:00Z")), // Monday 08:00 CEST
            ]
        );
    }

    #[test]
    fn an_early_session_gets_no_morning_reminder() {
        // 07:30 local: the 08:00 reminder would come after it began.
        let s = slots(
            utc("2026-11-10T06:30:00Z"),
            PARIS,
            &crate::config::reminders_for_tests(),
        );
        assert_eq!(s, vec![("session_eve", utc("2026-11-09T17:30:00Z"))]);
    }

    #[test]
    #[allow(clippy::disallowed_methods)] // a scratch database, only to ask SQLite's julianday()
    fn julian_matches_sqlite() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let t = utc("2026-03-29T01:30:00Z");
        let jd: f64 = conn
            .query_row("SELECT julianday('2026-03-29 03:30:00+02:00')", [], |r| r.get(0))
            .unwrap();
        assert!((julian(t) - jd).abs() < 1e-6, "{} vs {jd}", julian(t));
    }
}
