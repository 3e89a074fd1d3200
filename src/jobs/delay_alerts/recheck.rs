//! The last look at a delay digest before it goes: it is cancelled when none
//! of its tickets is still in the stage entry it was alerted for (closed,
//! moved on, deleted), or when its recipient stopped receiving delay alerts.

use chrono::{DateTime, Utc};

use super::{JOB, KIND, digest};
use crate::config::DelayAlertsConfig;
use crate::engine::recheck::{Recheck, Verdict};
use crate::instant;
use crate::jobs::PlanReport;
use crate::store::claims::Claimed;
use crate::store::{self, Conn as Connection, alerts, tickets};
use std::collections::HashMap;

/// check-delay-alerts' [`Recheck`].
pub struct DelayAlertsRecheck<'a> {
    pub cfg: &'a DelayAlertsConfig,
}

impl Recheck for DelayAlertsRecheck<'_> {
    fn job(&self) -> crate::domain::Job {
        JOB
    }

    fn recheck(&self, conn: &Connection, row: &Claimed, now: DateTime<Utc>) -> store::Result<Verdict> {
        let mut verdicts = self.recheck_all(conn, std::slice::from_ref(row), now)?;
        Ok(verdicts.pop().unwrap_or(Verdict::Send))
    }

    /// A few statements whatever the number of digests: their entries,
    /// their contacts' settings, then their tickets in rounds
    /// ([`tickets_in_rounds`]).
    fn recheck_all(&self, conn: &Connection, rows: &[Claimed], _now: DateTime<Utc>) -> store::Result<Vec<Verdict>> {
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        let mut alerted = alerts::alerted_entries(conn, &ids)?;
        let entries: Vec<Vec<alerts::Recorded>> = rows
            .iter()
            .map(|row| alerted.remove(&row.id).unwrap_or_default())
            .collect();
        let contacts: Vec<i64> = rows
            .iter()
            .filter(|r| !configured(self.cfg, r))
            .filter_map(|r| r.contact_id)
            .collect();
        let settings = if contacts.is_empty() {
            HashMap::new()
        } else {
            tickets::recipients_now(conn, &contacts)?
        };
        // The recipient first: a digest it no longer gets reads no ticket.
        // The planner merges recipients by address: when the digest's own
        // contact no longer gets it, another with the same address, or the
        // configuration, may. The recipients as the planner lists them now
        // are read then, once for the look.
        let mut listed = None;
        let mut verdicts = Vec::with_capacity(rows.len());
        for (row, entries) in rows.iter().zip(&entries) {
            // Two digests to one contact read the same settings.
            let recipient = row.contact_id.and_then(|id| settings.get(&id));
            let left = match recipient_left(self.cfg, row, entries, recipient) {
                Some(why) => {
                    let stages: Vec<&str> = entries.iter().map(|e| e.stage.as_str()).collect();
                    let now = match &mut listed {
                        Some(now) => now,
                        None => listed.insert(planned_recipients(conn, self.cfg)?),
                    };
                    (!digest::still_gets(now, &row.recipient, &stages)).then_some(why)
                }
                None => None,
            };
            verdicts.push(match left {
                Some(why) => Some(Verdict::Cancel(why)),
                None if entries.is_empty() => Some(Verdict::Send),
                None => None,
            });
        }
        tickets_in_rounds(conn, &entries, &mut verdicts)?;
        Ok(verdicts.into_iter().map(|v| v.unwrap_or(Verdict::Send)).collect())
    }

    fn reads_together(&self) -> bool {
        true
    }
}

/// The recipients of delay alerts as the planner lists them now
/// (`digest::recipients`). Errors: `StoreError`.
fn planned_recipients(conn: &Connection, cfg: &DelayAlertsConfig) -> store::Result<Vec<digest::Recipient>> {
    digest::recipients(conn, cfg, &mut PlanReport::default(), false).map_err(|e| {
        match e.downcast::<store::StoreError>() {
            Ok(e) => e,
            Err(e) => store::StoreError::Column {
                column: "alert_recipients".into(),
                why: format!("{e:#}"),
            },
        }
    })
}

/// Whether the digest's address is in `[delay_alerts] recipients`.
fn configured(cfg: &DelayAlertsConfig, row: &Claimed) -> bool {
    cfg.recipients
        .iter()
        .any(|a| digest::same_address(a.as_ref(), &row.recipient))
}

/// Entries whose tickets the first round reads per digest; each round
/// reads this many times more.
const FIRST_ROUND: usize = 8;
const GROWTH: usize = 8;

/// Decides each digest of `entries` whose verdict is `None` yet: it goes
/// once one of its entries is still its ticket's current stage entry, and
/// is cancelled once none is. The tickets are read in rounds, one
/// statement each, for every undecided digest at once: a digest's first 8
/// entries, then its next 64, 512… A digest's first entries nearly always
/// decide it, so a digest of 11,000 entries of a million tickets no longer
/// reads them all (370 ms on PostgreSQL, `bench/run.sh postgres`), while
/// one whose tickets all closed still reads each. Errors: `StoreError`.
fn tickets_in_rounds(
    conn: &Connection,
    entries: &[Vec<alerts::Recorded>],
    verdicts: &mut [Option<Verdict>],
) -> store::Result<()> {
    let mut read: HashMap<i64, Option<Vec<(i64, String)>>> = HashMap::new();
    let mut from = 0;
    let mut round = FIRST_ROUND;
    loop {
        let undecided: Vec<usize> = (0..entries.len()).filter(|&i| verdicts[i].is_none()).collect();
        if undecided.is_empty() {
            return Ok(());
        }
        let to = from + round;
        let mut wanted: Vec<i64> = undecided
            .iter()
            .flat_map(|&i| entries[i].iter().skip(from).take(round))
            .map(|e| e.ticket_id)
            .filter(|id| !read.contains_key(id))
            .collect();
        wanted.sort_unstable();
        wanted.dedup();
        if !wanted.is_empty() {
            let mut open = tickets::open_events(conn, &wanted)?;
            for id in wanted {
                read.insert(id, open.remove(&id));
            }
        }
        for i in undecided {
            let current = entries[i].iter().skip(from).take(round).any(|e| {
                read.get(&e.ticket_id)
                    .and_then(Option::as_deref)
                    .is_some_and(|events| still_current(events, e.event_id, e.entered_at.as_deref()))
            });
            if current {
                verdicts[i] = Some(Verdict::Send);
            } else if entries[i].len() <= to {
                let n = entries[i].len();
                verdicts[i] = Some(Verdict::Cancel(if n == 1 {
                    "its ticket was closed or moved on to another stage".to_string()
                } else {
                    format!("its {n} tickets were closed or moved on to other stages")
                }));
            }
        }
        from = to;
        round = round.saturating_mul(GROWTH);
    }
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
/// digest's. An address also in `[delay_alerts] recipients` gets every
/// stage. `now`: the contact's settings as read again.
fn recipient_left(
    cfg: &DelayAlertsConfig,
    row: &Claimed,
    entries: &[alerts::Recorded],
    now: Option<&tickets::RecipientNow>,
) -> Option<String> {
    let configured = configured(cfg, row);
    let Some(contact_id) = row.contact_id else {
        return (!configured).then(|| format!("{} is no longer in [delay_alerts] recipients", row.recipient));
    };
    if configured {
        return None;
    }
    let none = tickets::RecipientNow::default();
    let now = now.unwrap_or(&none);
    // As the planner wrote it (`recipient::email`), parsed only when it
    // differs as written.
    let written = now.address.trim();
    let same = digest::same_address(written, &row.recipient)
        || crate::recipient::email(written).is_ok_and(|a| digest::same_address(&a, &row.recipient));
    if now.email.is_some() && !same {
        return Some(if written.is_empty() {
            format!("contact {contact_id} no longer has an email address")
        } else {
            format!("contact {contact_id}'s email address is no longer {}", row.recipient)
        });
    }
    let stages: Vec<Option<&str>> = now
        .stages
        .iter()
        .filter_map(|(list, on)| on.then_some(list.as_deref()))
        .collect();
    let covered = |stage: &str| {
        stages
            .iter()
            .any(|s| s.is_none_or(|list| list.split(',').any(|st| st.trim() == stage)))
    };
    if !stages.is_empty() && !entries.is_empty() && !entries.iter().any(|e| covered(&e.stage)) {
        return Some(format!(
            "contact {contact_id} no longer receives alerts for these stages"
        ));
    }
    let found = if stages.is_empty() { None } else { now.email.as_ref() };
    match found {
        None => Some(format!("contact {contact_id} is no longer an active alert recipient")),
        Some((false, _)) => Some(format!("contact {contact_id} has email disabled")),
        Some((_, muted)) if crate::config::kind_list(muted).0.contains(&KIND) => {
            Some(format!("contact {contact_id} opted out of {KIND} (muted_kinds)"))
        }
        Some(_) => None,
    }
}
