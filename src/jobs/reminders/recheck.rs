//! The last look at a reminder before it goes: it still goes when planning
//! its source row now would give the same message (same dedupe key: same
//! row, kind, slot date and channel), whatever the row's validity or what was
//! planned. Else it is cancelled with the first reason found: row gone or
//! replaced, loan returned, session cancelled or completed, subscription
//! ended, contact gone or opted out, kind disabled, channel off, slot moved.

use chrono::{DateTime, Utc};

use super::contact::Contact;
use super::emit::Emitter;
use super::{JOB, Reminders, loans, manual, sessions, students};
use crate::config::{Locale, RemindersConfig};
use crate::db::Database;
use crate::db::identity;
use crate::engine::recheck::{Recheck, Verdict};
use crate::instant;
use crate::jobs::{PlanCtx, PlanReport};
use crate::store::claims::Claimed;
use crate::store::{self, Conn};
use crate::templates::Templates;

/// send-reminders' [`Recheck`].
pub struct RemindersRecheck<'a> {
    pub cfg: &'a RemindersConfig,
    pub phone_region: Option<crate::recipient::Region>,
    pub zone: chrono_tz::Tz,
    pub naive_zone: chrono_tz::Tz,
    pub locale: Locale,
    pub db: &'a Database,
    pub templates: &'a Templates,
}

impl Recheck for RemindersRecheck<'_> {
    fn job(&self) -> crate::domain::Job {
        JOB
    }

    fn recheck(&self, conn: &Conn, row: &Claimed, now: DateTime<Utc>) -> store::Result<Verdict> {
        let (Some(table), Some(id)) = (row.source_table.as_deref(), row.source_id) else {
            return Ok(Verdict::Send);
        };
        let Some(table) = ["loans", "revision_sessions", "students", manual::TABLE]
            .into_iter()
            .find(|t| *t == table)
        else {
            return Ok(Verdict::Send);
        };
        let r = Reminders {
            cfg: self.cfg,
            whatsapp: None,
            kinds: &[],
        };
        let ctx = PlanCtx {
            now,
            zone: self.zone,
            naive_zone: self.naive_zone,
            locale: self.locale,
            phone_region: self.phone_region,
            site_url: None,
            templates: self.templates,
            db: self.db,
            dry_run: true,
            force: false,
        };
        let mut em = Emitter::probing(conn, &r, &ctx, (table, id));
        let planned = match table {
            "loans" => loans::plan(&mut em),
            "revision_sessions" => sessions::plan(&mut em),
            "students" => students::plan(&mut em),
            _ => manual::plan(&mut em),
        };
        if let Err(e) = planned {
            // A template or data problem is planning's to report; the message
            // made earlier still goes.
            log::warn!("{table} id {id}: cannot check the source of delivery {}: {e:#}", row.id);
            return Ok(Verdict::Send);
        }
        Ok(match em.probed().into_iter().find(|(key, _)| *key == row.dedupe_key) {
            // The person's address or number was corrected meanwhile: theirs now.
            Some((_, Ok(to))) if to != row.recipient => Verdict::SendTo(to),
            Some((_, Ok(_))) => Verdict::Send,
            Some((_, Err(why))) => Verdict::Cancel(format!("its {} cannot be used now: {why}", row.channel)),
            None => match why_not(conn, table, id, row, self, &ctx)? {
                Some(why) => Verdict::Cancel(why),
                // Its contact cannot be read now (a zone that is not one):
                // the message made when it could still goes.
                None => Verdict::Send,
            },
        })
    }
}

/// The first reason the source row no longer gives this message; `None`
/// when its contact cannot be read now (the planners skipped the row for
/// that, with a warning): no reason to hold back a message made when it
/// could be.
fn why_not(
    conn: &Conn,
    table: &str,
    id: i64,
    row: &Claimed,
    check: &RemindersRecheck<'_>,
    ctx: &PlanCtx<'_>,
) -> store::Result<Option<String>> {
    let Some(current) = store::reminders::source_instant(conn, table, id)? else {
        return Ok(Some(format!("{table} id {id} was deleted")));
    };
    if current.map(instant::format) != row.source_at {
        let column = identity::IDENTITY
            .iter()
            .find(|(t, _)| *t == table)
            .map_or("its instant", |(_, c)| c);
        return Ok(Some(match table {
            "revision_sessions" => format!("the session moved (revision_sessions id {id}, {column} changed)"),
            _ => format!("{table} id {id} is another row now ({column} changed)"),
        }));
    }
    let ended: Option<&str> = match table {
        "loans" if row.kind != "loan_returned" => {
            (store::reminders::loan_returned(conn, id)? == Some(true)).then_some("the loan was returned")
        }
        "revision_sessions" => match store::reminders::session_state(conn, id)? {
            Some(s) if s.cancelled => Some("the session was cancelled"),
            Some(s) if s.completed => Some("the session was completed"),
            _ => None,
        },
        "students" => (store::reminders::subscription_active(conn, id)? == Some(false))
            .then_some("the student's subscription ended"),
        _ => None,
    };
    if let Some(why) = ended {
        return Ok(Some(format!("{why} ({table} id {id})")));
    }
    if row.kind.parse().is_ok_and(|k| check.cfg.disabled_kinds.contains(&k)) {
        return Ok(Some(format!(
            "kind {} is disabled ([reminders] disabled_kinds)",
            row.kind
        )));
    }
    if let Some(contact_id) = row.contact_id {
        let Some(found) = store::reminders::contact(conn, contact_id)? else {
            return Ok(Some(format!("contact {contact_id} was deleted")));
        };
        let Some(c) = Contact::from_row(found, (("contacts", contact_id), "id"), ctx, &mut PlanReport::default())
        else {
            return Ok(None);
        };
        if row.kind.parse().is_ok_and(|k| c.muted(k)) {
            return Ok(Some(format!(
                "contact {contact_id} opted out of {} (muted_kinds)",
                row.kind
            )));
        }
        if !c.channels().iter().any(|(ch, _)| *ch == row.channel) {
            return Ok(Some(format!(
                "contact {contact_id} no longer has {} enabled with a usable address",
                row.channel
            )));
        }
    }
    Ok(Some(format!(
        "{table} id {id} no longer has this {} reminder (its date, time or condition changed)",
        row.kind
    )))
}
