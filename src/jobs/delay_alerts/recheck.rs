//! The last look at a delay digest before it goes: it is cancelled when none
//! of its tickets is still in the stage entry it was alerted for (closed,
//! moved on, deleted), or when its recipient stopped receiving delay alerts.

use chrono::{DateTime, Utc};

use super::{JOB, KIND};
use crate::config::DelayAlertsConfig;
use crate::engine::recheck::{Recheck, Verdict};
use crate::instant;
use crate::store::claims::Claimed;
use crate::store::{self, Conn as Connection, alerts, tickets};

/// check-delay-alerts' [`Recheck`].
pub struct DelayAlertsRecheck<'a> {
    pub cfg: &'a DelayAlertsConfig,
}

impl Recheck for DelayAlertsRecheck<'_> {
    fn job(&self) -> crate::domain::Job {
        JOB
    }

    fn recheck(&self, conn: &Connection, row: &Claimed, _now: DateTime<Utc>) -> store::Result<Verdict> {
        Ok(match why_not(conn, self.cfg, row)? {
            Some(reason) => Verdict::Cancel(reason),
            None => Verdict::Send,
        })
    }
}

/// Why the digest should not go, if so.
fn why_not(conn: &Connection, cfg: &DelayAlertsConfig, row: &Claimed) -> store::Result<Option<String>> {
    let read = alerts::entries_with_events(conn, row.id)?;
    let entries: Vec<&alerts::Recorded> = read.iter().map(|(e, _)| e).collect();
    if let Some(why) = recipient_left(conn, cfg, row, &entries)? {
        return Ok(Some(why));
    }
    if entries.is_empty() {
        return Ok(None);
    }
    if read.iter().any(|(e, events)| {
        events
            .as_deref()
            .is_some_and(|ev| still_current(ev, e.event_id, e.entered_at.as_deref()))
    }) {
        return Ok(None);
    }
    Ok(Some(if entries.len() == 1 {
        "its ticket was closed or moved on to another stage".to_string()
    } else {
        format!("its {} tickets were closed or moved on to other stages", entries.len())
    }))
}

/// Whether the current stage entry among an open ticket's `events` (latest
/// `entered_at`, then id, compared as instants) is still this event.
fn still_current(events: &[(i64, String)], event_id: i64, entered_at: Option<&str>) -> bool {
    let mut current: Option<(DateTime<Utc>, i64)> = None;
    for (id, entered) in events {
        let Some(at) = instant::parse(entered) else {
            continue;
        };
        if current.is_none_or(|c| (at, *id) > c) {
            current = Some((at, *id));
        }
    }
    // To the second, as the entry was named when alerted (`instant::format`):
    // a host writing fractions of a second (`08:00:00.12345`) names the same entry.
    let named = |t: DateTime<Utc>| instant::format(t);
    current.is_some_and(|(at, id)| {
        id == event_id && entered_at.is_none_or(|e| instant::parse(e).map(named) == Some(named(at)))
    })
}

/// Why the recipient no longer receives this digest, if so: taken out of
/// `[delay_alerts] recipients`, or a contact no longer an active recipient,
/// opted out, without email, or whose `stages` no longer cover any of the
/// digest's. An address also in `[delay_alerts] recipients` gets every stage.
fn recipient_left(
    conn: &Connection,
    cfg: &DelayAlertsConfig,
    row: &Claimed,
    entries: &[&alerts::Recorded],
) -> store::Result<Option<String>> {
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
    let now = tickets::recipient_now(conn, contact_id)?;
    let stages: Vec<Option<String>> = now
        .stages
        .into_iter()
        .filter_map(|(list, on)| on.then_some(list))
        .collect();
    let covered = |stage: &str| {
        stages.iter().any(|s| {
            s.as_deref()
                .is_none_or(|list| list.split(',').any(|st| st.trim() == stage))
        })
    };
    if !stages.is_empty() && !entries.is_empty() && !entries.iter().any(|e| covered(&e.stage)) {
        return Ok(Some(format!(
            "contact {contact_id} no longer receives alerts for these stages"
        )));
    }
    let found: Option<(bool, String)> = if stages.is_empty() { None } else { now.email };
    Ok(match found {
        None => Some(format!("contact {contact_id} is no longer an active alert recipient")),
        Some((false, _)) => Some(format!("contact {contact_id} has email disabled")),
        Some((_, muted)) if crate::config::kind_list(&muted).0.contains(&KIND) => {
            Some(format!("contact {contact_id} opted out of {KIND} (muted_kinds)"))
        }
        Some(_) => None,
    })
}
