//! The last look at a delay digest before it goes: it is cancelled when none
//! of its tickets is still in the stage entry it was alerted for (closed,
//! moved on, deleted), or when its recipient stopped receiving delay alerts.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension};

use super::{JOB, KIND, text};
use crate::config::DelayAlertsConfig;
use crate::engine::recheck::{Recheck, Verdict};
use crate::instant;
use crate::store::claims::Claimed;

/// check-delay-alerts' [`Recheck`].
pub struct DelayAlertsRecheck<'a> {
    pub cfg: &'a DelayAlertsConfig,
}

impl Recheck for DelayAlertsRecheck<'_> {
    fn job(&self) -> crate::domain::Job {
        JOB
    }

    fn recheck(&self, conn: &Connection, row: &Claimed, _now: DateTime<Utc>) -> crate::store::Result<Verdict> {
        Ok(match why_not(conn, self.cfg, row)? {
            Some(reason) => Verdict::Cancel(reason),
            None => Verdict::Send,
        })
    }
}

/// Why the digest should not go, if so.
fn why_not(conn: &Connection, cfg: &DelayAlertsConfig, row: &Claimed) -> rusqlite::Result<Option<String>> {
    let entries: Vec<(i64, i64, Option<String>, String)> = {
        let mut stmt = conn.prepare_cached(
            "SELECT event_id, ticket_id, entered_at, stage FROM delay_alert_log WHERE delivery_id = ?1",
        )?;
        stmt.query_map([row.id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, text(r.get_ref(3)?))))?
            .collect::<rusqlite::Result<_>>()?
    };
    if let Some(why) = recipient_left(conn, cfg, row, &entries)? {
        return Ok(Some(why));
    }
    if entries.is_empty() {
        return Ok(None);
    }
    for (event_id, ticket_id, entered_at, _) in &entries {
        if still_current(conn, *ticket_id, *event_id, entered_at.as_deref())? {
            return Ok(None);
        }
    }
    Ok(Some(if entries.len() == 1 {
        "its ticket was closed or moved on to another stage".to_string()
    } else {
        format!("its {} tickets were closed or moved on to other stages", entries.len())
    }))
}

/// Whether the ticket is active and its current stage entry (latest
/// `entered_at`, then id, compared as instants) is still this event.
fn still_current(conn: &Connection, ticket_id: i64, event_id: i64, entered_at: Option<&str>) -> rusqlite::Result<bool> {
    let active: Option<bool> = conn
        .prepare_cached("SELECT closed_at IS NULL FROM tickets WHERE id = ?1")?
        .query_row([ticket_id], |r| r.get(0))
        .optional()?;
    if active != Some(true) {
        return Ok(false);
    }
    let mut stmt = conn.prepare_cached("SELECT id, entered_at FROM ticket_events WHERE ticket_id = ?1")?;
    let mut rows = stmt.query([ticket_id])?;
    let mut current: Option<(DateTime<Utc>, i64)> = None;
    while let Some(r) = rows.next()? {
        let id: i64 = r.get(0)?;
        let Some(at) = instant::parse(&text(r.get_ref(1)?)) else {
            continue;
        };
        if current.is_none_or(|c| (at, id) > c) {
            current = Some((at, id));
        }
    }
    Ok(current.is_some_and(|(at, id)| id == event_id && entered_at.is_none_or(|e| instant::parse(e) == Some(at))))
}

/// Why the recipient no longer receives this digest, if so: taken out of
/// `[delay_alerts] recipients`, or a contact no longer an active recipient,
/// opted out, without email, or whose `stages` no longer cover any of the
/// digest's. An address also in `[delay_alerts] recipients` gets every stage.
fn recipient_left(
    conn: &Connection,
    cfg: &DelayAlertsConfig,
    row: &Claimed,
    entries: &[(i64, i64, Option<String>, String)],
) -> rusqlite::Result<Option<String>> {
    let configured = cfg
        .recipients
        .iter()
        .any(|a| a.to_string().eq_ignore_ascii_case(&row.recipient));
    let Some(contact_id) = row.contact_id else {
        return Ok((!configured).then(|| format!("{} is no longer in [delay_alerts] recipients", row.recipient)));
    };
    if configured {
        return Ok(None);
    }
    let stages: Vec<Option<String>> = {
        let mut stmt = conn.prepare_cached("SELECT stages, active FROM alert_recipients WHERE contact_id = ?1")?;
        let rows = stmt.query_map([contact_id], |r| {
            Ok((crate::db::loose::text(r.get_ref(0)?), active(r.get_ref(1)?)))
        })?;
        let mut stages = Vec::new();
        for row in rows {
            let (list, on) = row?;
            if on {
                stages.push(list);
            }
        }
        stages
    };
    let covered = |stage: &str| {
        stages.iter().any(|s| {
            s.as_deref()
                .is_none_or(|list| list.split(',').any(|st| st.trim() == stage))
        })
    };
    if !stages.is_empty() && !entries.is_empty() && !entries.iter().any(|(.., stage)| covered(stage)) {
        return Ok(Some(format!(
            "contact {contact_id} no longer receives alerts for these stages"
        )));
    }
    let found: Option<(bool, String)> = if stages.is_empty() {
        None
    } else {
        conn.prepare_cached("SELECT email_enabled, muted_kinds FROM contacts WHERE id = ?1")?
            .query_row([contact_id], |r| {
                Ok((
                    crate::db::loose::flag(r.get_ref(0)?).unwrap_or(true),
                    text(r.get_ref(1)?),
                ))
            })
            .optional()?
    };
    Ok(match found {
        None => Some(format!("contact {contact_id} is no longer an active alert recipient")),
        Some((false, _)) => Some(format!("contact {contact_id} has email disabled")),
        Some((_, muted)) if crate::config::kind_list(&muted).0.contains(&KIND) => {
            Some(format!("contact {contact_id} opted out of {KIND} (muted_kinds)"))
        }
        Some(_) => None,
    })
}

/// `alert_recipients.active` as the host wrote it (0/1, or text such as
/// 'true', 'no'): on only when it reads as true; NULL or other text is off.
pub(super) fn active(v: rusqlite::types::ValueRef<'_>) -> bool {
    crate::db::loose::flag(v).unwrap_or(false)
}
