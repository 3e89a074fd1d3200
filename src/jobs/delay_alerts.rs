//! check-delay-alerts: a ticket's current stage entry is due when it has lasted
//! longer than its threshold and its current re-arm slot (`rearm.rs`) has no
//! alert yet; each recipient gets one digest of its due entries, longest in
//! stage first.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

mod digest;
mod rearm;
mod recheck;

use super::{PlanCtx, PlanReport};
use crate::config::DelayAlertsConfig;
use crate::instant;
use crate::store::{self, Conn, alerts, tickets};
pub use digest::sample_context;
use digest::{each_digest, recipients};
use rearm::Rearm;
pub use recheck::DelayAlertsRecheck;

pub const JOB: crate::domain::Job = crate::domain::Job::CheckDelayAlerts;
pub const KIND: crate::domain::Kind = crate::domain::Kind::DelayAlert;

/// A stage entry that has lasted past its threshold.
#[derive(Clone, Debug, Serialize)]
pub(super) struct Entry {
    #[serde(skip)]
    pub(super) event_id: i64,
    #[serde(skip)]
    pub(super) ticket_id: i64,
    /// When the stage was entered (`entered_at`, a value without an offset
    /// read in `naive_timezone`): what the days in stage count from.
    #[serde(skip)]
    pub(super) entered: DateTime<Utc>,
    /// The entry's name in the alert history (`entered_at` read as
    /// `instant::parse` does, whatever `naive_timezone` says).
    #[serde(skip)]
    pub(super) entered_id: DateTime<Utc>,
    /// The re-arm slot this alert answers (`rearm.rs`); `None` with `--force`.
    #[serde(skip)]
    pub(super) slot: Option<DateTime<Utc>>,
    pub(super) reference: String,
    pub(super) device: String,
    pub(super) customer: String,
    pub(super) stage: String,
    pub(super) days: i64,
    pub(super) threshold: u32,
}

pub fn plan(conn: &mut Conn, cfg: &DelayAlertsConfig, ctx: &PlanCtx<'_>) -> anyhow::Result<PlanReport> {
    let mut report = PlanReport::default();
    let mut due = overdue_entries(conn, cfg, ctx, &mut report)?;
    if due.is_empty() {
        return Ok(report);
    }
    let recipients = recipients(conn, cfg, &mut report, true)?;
    let mut skipped = Vec::new();
    if ctx.dry_run {
        retain_unalerted(conn, cfg, ctx, &mut due)?;
        fill_details(conn, &mut due)?;
        each_digest(&recipients, &due, ctx, &mut skipped, |message, _| {
            match &message.failed {
                Some(why) => report
                    .failures
                    .push(format!("delay digest to {}: {why}", message.recipient)),
                None => report.messages.push(message),
            }
            Ok(())
        })?;
        report.planned = report.messages.len() as u64;
        report.skipped.append(&mut skipped);
        return Ok(report);
    }
    // The rearm check and the writes share one write transaction, so two runs
    // that overlap can never both alert the same entry.
    let tx = store::begin(conn)?;
    retain_unalerted(&tx, cfg, ctx, &mut due)?;
    fill_details(&tx, &mut due)?;
    each_digest(&recipients, &due, ctx, &mut skipped, |message, entries| {
        let Some(delivery_id) = crate::store::deliveries::insert(&tx, &message, ctx.now)? else {
            return Ok(());
        };
        let alerted: Vec<alerts::Alerted<'_>> = entries
            .iter()
            .map(|e| alerts::Alerted {
                event_id: e.event_id,
                ticket_id: e.ticket_id,
                stage: &e.stage,
                days_in_stage: e.days,
                entered_id: e.entered_id,
            })
            .collect();
        alerts::record(&tx, &alerted, ctx.now, delivery_id)?;
        match &message.failed {
            Some(why) => {
                let failure = format!("delay digest to {}: {why}", message.recipient);
                log::warn!("{failure}");
                report.failures.push(failure);
            }
            None => report.planned += 1,
        }
        Ok(())
    })?;
    tx.commit()?;
    report.skipped.append(&mut skipped);
    Ok(report)
}

/// Current stage entries of active tickets past their threshold. A ticket with
/// an unreadable `entered_at` is skipped with a warning naming it.
fn overdue_entries(
    conn: &Conn,
    cfg: &DelayAlertsConfig,
    ctx: &PlanCtx<'_>,
    report: &mut PlanReport,
) -> anyhow::Result<Vec<Entry>> {
    let mut due = Vec::new();
    let mut current: Option<Current> = None;
    tickets::each_open_stage_event(conn, |ev| {
        let ticket_id = ev.ticket_id;
        if current.as_ref().is_some_and(|c| c.ticket_id != ticket_id) {
            finish_ticket(current.take(), cfg, ctx, &mut due, report);
        }
        let cur = current.get_or_insert(Current {
            ticket_id,
            best: None,
            bad: None,
        });
        let event_id = ev.event_id;
        let Some(stage) = ev.stage else {
            cur.bad.get_or_insert((event_id, "stage is not text".into()));
            return;
        };
        let parsed = match ev.entered_at {
            Ok(s) => instant::parse(&s)
                .zip(instant::parse_in(&s, ctx.naive_zone))
                .ok_or_else(|| format!("entered_at {s:?} is not a timestamp")),
            Err(kind) => Err(format!("entered_at is {kind}, not a timestamp")),
        };
        match parsed {
            Ok((id_at, at)) => {
                // The current entry by the value as written (as the recheck
                // before sending finds it).
                if cur
                    .best
                    .as_ref()
                    .is_none_or(|b| (id_at, event_id) > (b.id_at, b.event_id))
                {
                    cur.best = Some(Best {
                        id_at,
                        at,
                        event_id,
                        stage,
                    });
                }
            }
            Err(why) => {
                cur.bad.get_or_insert((event_id, why));
            }
        }
    })?;
    finish_ticket(current, cfg, ctx, &mut due, report);
    Ok(due)
}

struct Current {
    ticket_id: i64,
    best: Option<Best>,
    bad: Option<(i64, String)>,
}

/// The latest stage entry of a ticket so far.
struct Best {
    /// `entered_at` as named in the history (`Entry::entered_id`).
    id_at: DateTime<Utc>,
    /// `entered_at` as an instant (`Entry::entered`).
    at: DateTime<Utc>,
    event_id: i64,
    stage: String,
}

fn finish_ticket(
    cur: Option<Current>,
    cfg: &DelayAlertsConfig,
    ctx: &PlanCtx<'_>,
    due: &mut Vec<Entry>,
    report: &mut PlanReport,
) {
    let Some(cur) = cur else { return };
    if let Some((event_id, why)) = cur.bad {
        log::warn!(
            "ticket_events id {event_id} (ticket id {}): {why}; ticket skipped",
            cur.ticket_id
        );
        report.data_errors += 1;
        return;
    }
    let Some(Best {
        id_at: entered_id,
        at: entered,
        event_id,
        stage,
    }) = cur.best
    else {
        return;
    };
    let threshold = cfg.threshold_for(&stage);
    let age = ctx.now - entered;
    if age > Duration::days(i64::from(threshold)) {
        due.push(Entry {
            event_id,
            ticket_id: cur.ticket_id,
            entered,
            entered_id,
            slot: None,
            reference: String::new(),
            device: String::new(),
            customer: String::new(),
            stage,
            days: age.num_days(),
            threshold,
        });
    }
}

/// Keeps the entries whose current re-arm slot no alert answered yet
/// (`rearm.rs`); `--force` keeps all.
fn retain_unalerted(
    conn: &Conn,
    cfg: &DelayAlertsConfig,
    ctx: &PlanCtx<'_>,
    due: &mut Vec<Entry>,
) -> anyhow::Result<()> {
    if ctx.force {
        return Ok(());
    }
    // The job's runs since the earliest alert that may answer a slot, and
    // a few before: the last sets the tolerance, and how often they came
    // whether an alert shortly before a slot answers it.
    let since = Rearm::runs_since(ctx.now, cfg.rearm_hours, cfg.alert_at);
    let starts = crate::store::runs::starts_since(conn, JOB, since, rearm::RUNS_BEFORE, ctx.now)?;
    let times = Rearm::times(&starts, ctx.now);
    let rearm = Rearm {
        hours: cfg.rearm_hours,
        alert_at: cfg.alert_at,
        zone: ctx.zone,
        tolerance: Rearm::tolerance(ctx.now, starts.last().copied()),
        runs: &times,
    };
    let mut slotted = Vec::with_capacity(due.len());
    for mut e in due.drain(..) {
        let anchor = e.entered + Duration::days(i64::from(e.threshold));
        let Some(answer) = rearm.slot(anchor, ctx.now) else {
            continue;
        };
        e.slot = Some(answer.slot);
        slotted.push((e, answer));
    }
    // Every entry's alerts in one read, not a query per entry.
    let ids: Vec<i64> = slotted.iter().map(|(e, _)| e.event_id).collect();
    let latest = alerts::latest_alerts(conn, &ids)?;
    *due = slotted
        .into_iter()
        .filter(|(e, answer)| !alerts::answered_by(latest.get(&e.event_id), e.entered_id, |at| answer.by(at, &rearm)))
        .map(|(e, _)| e)
        .collect();
    Ok(())
}

/// Reads reference, device and customer of each due entry; an entry whose
/// ticket was deleted since the scan is dropped.
fn fill_details(conn: &Conn, due: &mut Vec<Entry>) -> anyhow::Result<()> {
    // Every due ticket in one read, not a query per entry.
    let mut ids: Vec<i64> = due.iter().map(|e| e.ticket_id).collect();
    ids.sort_unstable();
    ids.dedup();
    let details = tickets::details_of(conn, &ids)?;
    let mut kept = Vec::with_capacity(due.len());
    for mut e in due.drain(..) {
        match details.get(&e.ticket_id) {
            Some(d) => {
                (e.reference, e.device, e.customer) = (d.reference.clone(), d.device.clone(), d.customer.clone());
                kept.push(e);
            }
            None => log::info!("ticket id {} was deleted during the run; not alerted", e.ticket_id),
        }
    }
    *due = kept;
    Ok(())
}
