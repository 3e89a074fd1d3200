//! A report row follows its deliveries: `pending` while any is pending or
//! sending, `sent` when every recipient got it, else `failed` naming each
//! failed address. A recurring row that leaves `pending` gets its next
//! occurrence, once.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::TABLE;
use super::recurrence::Recurrence;
use crate::config::ReportsConfig;
use crate::engine::record::{Outcome, SourceHook};
use crate::instant;
use crate::store::reports::{self, Settled};
use crate::store::{self, Conn, Tx};

/// `last_error` is kept readable: at most this many characters.
const MAX_ERROR: usize = 20_000;

/// What recurrence needs to know.
pub struct Recur<'a> {
    pub cfg: &'a ReportsConfig,
    /// The configured zone, for rows without their own.
    pub zone: Tz,
    /// `naive_timezone`: where a `scheduled_at` without an offset is read
    /// when the row names no zone of its own.
    pub naive: Tz,
}

/// How a row ends when planning sends nothing.
pub enum Done {
    /// No content, no recipient...: the row fails with the reason.
    Failed(String),
    /// `skip_if_empty` and no rows: done, nothing sent.
    Empty,
    /// Every recipient was already served: bring the row up to date.
    Refresh,
}

/// A report row as its deliveries name it: id and `scheduled_at` in rappel's format.
pub type Source<'a> = (i64, &'a str);

/// Whether `scheduled_reports` row `id` is still the row scheduled at `at`
/// (not deleted, nor replaced by a new row under the same id).
fn is_row(tx: &Tx<'_>, (id, at): Source<'_>) -> store::Result<bool> {
    Ok(reports::scheduled_at(tx, id)?.flatten().map(instant::format).as_deref() == Some(at))
}

pub fn finish(tx: &Tx<'_>, source: Source<'_>, now: DateTime<Utc>, done: Done, recur: &Recur<'_>) -> store::Result<()> {
    if !is_row(tx, source)? {
        return Ok(());
    }
    let id = source.0;
    let changed = match done {
        Done::Failed(reason) => reports::fail(tx, id, &bounded(&reason))?,
        Done::Empty => reports::mark_empty(tx, id)?,
        Done::Refresh => return refresh(tx, source, now, recur),
    };
    if changed {
        schedule_next(tx, source, now, recur);
    }
    Ok(())
}

/// Recomputes the row from the deliveries made for it (not those of an
/// earlier row that had its id), counting only its current recipients: an
/// address taken out of the list after it failed no longer fails the row.
/// `pending` while any is pending or sending; then `sent` (with `sent_at`)
/// when none to a current recipient failed, else `failed` naming each. A
/// row taken out of `pending` by hand is not finished again here.
pub fn refresh(tx: &Tx<'_>, source: Source<'_>, now: DateTime<Utc>, recur: &Recur<'_>) -> store::Result<()> {
    if !is_row(tx, source)? {
        return Ok(());
    }
    let (id, at) = source;
    let recipients = reports::recipients(tx, id)?;
    let current: HashSet<String> = super::addresses(&recipients)
        .iter()
        .map(|(a, _)| a.to_lowercase())
        .collect();
    let (mut total, mut open, mut attempts) = (0, 0, 0_i64);
    let mut next_attempt: Option<String> = None;
    let mut errors: Vec<String> = Vec::new();
    // Current addresses with a message that went or failed: any other (added
    // to the list since, or whose message was cancelled) is still to serve.
    let mut served: HashSet<String> = HashSet::new();
    for d in reports::row_deliveries(tx, id, at)? {
        let status = d.status.as_str();
        let is_open = status == "pending" || status == "sending";
        let lower = d.recipient.to_lowercase();
        // In flight, whoever it is for, until the engine has had its say.
        if !is_open && !current.contains(&lower) {
            continue;
        }
        // A message cancelled by hand (`rappel cancel`) counts as served.
        if status == "sent" || status == "failed" || status == "withdrawn" {
            served.insert(lower);
        }
        total += 1;
        attempts = attempts.max(d.attempts);
        if is_open {
            open += 1;
            if status == "pending"
                && let Some(next) = d.next_attempt_at
                && next_attempt.as_ref().is_none_or(|n| next < *n)
            {
                next_attempt = Some(next);
            }
        } else if status == "failed" {
            errors.push(format!(
                "{}: {}",
                d.recipient,
                d.last_error.as_deref().unwrap_or("failed")
            ));
        }
    }
    if total == 0 {
        return Ok(());
    }
    let errors = (!errors.is_empty()).then(|| bounded(&errors.join("; ")));
    if open > 0 || served.len() < current.len() {
        // Still under way, or an address to serve at the next run. A row the
        // operator took out of `pending` by hand stays as they left it (a
        // failed one comes back when --force re-arms its deliveries).
        reports::keep_pending(tx, id, attempts, next_attempt.as_deref(), errors.as_deref())?;
        return Ok(());
    }
    let end = match errors.as_deref() {
        None => Settled::Sent { at: now },
        Some(errors) => Settled::Failed { errors },
    };
    if reports::settle(tx, id, attempts, end)? {
        schedule_next(tx, source, now, recur);
    }
    Ok(())
}

/// After one delivery's outcome: while others of the row are still in
/// flight, only that delivery's attempts and retry time are folded into the
/// row (constant work, so a report to N addresses costs O(N), not O(N²));
/// the last outcome recomputes the row.
fn after_delivery(
    tx: &Tx<'_>,
    source: Source<'_>,
    delivery_id: i64,
    now: DateTime<Utc>,
    recur: &Recur<'_>,
) -> store::Result<()> {
    let (id, at) = source;
    if !reports::in_flight(tx, id, at)? {
        return refresh(tx, source, now, recur);
    }
    if !is_row(tx, source)? {
        return Ok(());
    }
    reports::fold_delivery(tx, id, delivery_id)
}

/// Inserts the next occurrence of a recurring row (once): the first cron time
/// after max(now, scheduled_at), so a machine that was off sends one catch-up
/// mailing. Problems are logged, never allowed to undo the outcome being recorded.
fn schedule_next(tx: &Tx<'_>, source: Source<'_>, now: DateTime<Utc>, recur: &Recur<'_>) {
    let id = source.0;
    if let Err(e) = try_schedule_next(tx, source, now, recur) {
        // An error, not a warning: a recurring mailing that stops must be seen,
        // under -q too, and stay written on its row.
        log::error!("scheduled_reports id {id}: no next occurrence: {e}");
        let noted = reports::append_error(tx, id, &bounded(&format!("no next occurrence: {e}")));
        if let Err(e) = noted {
            log::error!("scheduled_reports id {id}: cannot note it on the row: {e}");
        }
    }
}

fn try_schedule_next(tx: &Tx<'_>, (id, at): Source<'_>, now: DateTime<Utc>, recur: &Recur<'_>) -> anyhow::Result<()> {
    let Some(row) = reports::row_to_repeat(tx, id)? else {
        return Ok(());
    };
    let Some(expr) = row.recurrence.as_deref().map(str::trim).filter(|r| !r.is_empty()) else {
        return Ok(());
    };
    if reports::next_made(tx, id, at)? {
        return Ok(());
    }
    let rule = Recurrence::parse(expr).map_err(|e| anyhow::anyhow!("recurrence: {e}"))?;
    let (zone, naive) = match row.timezone.as_deref().map(str::trim).filter(|z| !z.is_empty()) {
        Some(z) => {
            let zone = crate::config::parse_zone(z).map_err(|e| anyhow::anyhow!("timezone: {e}"))?;
            (zone, zone)
        }
        None => (recur.zone, recur.naive),
    };
    let scheduled_at = &row.scheduled_at;
    let scheduled = instant::parse_in(scheduled_at, naive)
        .ok_or_else(|| anyhow::anyhow!("scheduled_at {scheduled_at:?} is not a timestamp"))?;
    let next = rule
        .next_after(now.max(scheduled), zone)
        .ok_or_else(|| anyhow::anyhow!("recurrence {expr:?} has no next time"))?;
    let keep = row
        .report
        .as_deref()
        .and_then(|r| recur.cfg.definitions.get(r))
        .is_some_and(|d| d.keep_attachment);
    let next_id = reports::insert_next(tx, (id, at), &row, next, keep, now)?;
    log::info!(
        "scheduled_reports id {id}: next occurrence is id {next_id} at {}",
        instant::format(next)
    );
    Ok(())
}

fn bounded(s: &str) -> String {
    match s.char_indices().nth(MAX_ERROR) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// The engine's hook: after each delivery outcome of a report, refresh its
/// row, and remember the row for the run's summary.
pub struct ReportsHook<'a> {
    recur: Recur<'a>,
    touched: std::sync::Mutex<Vec<(i64, String)>>,
}

impl<'a> ReportsHook<'a> {
    /// `zone`: the configured `timezone`; `naive`: `naive_timezone`.
    pub fn new(cfg: &'a ReportsConfig, zone: Tz, naive: Tz) -> Self {
        ReportsHook {
            recur: Recur { cfg, zone, naive },
            touched: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// The rows (id, `scheduled_at`) a delivery outcome was recorded for
    /// since this hook was made.
    pub fn touched(&self) -> Vec<(i64, String)> {
        self.touched.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// A run's reports, each counted once whatever its number of addresses,
/// by the state its row is in at the end of the run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReportCounts {
    /// Distinct report rows the run planned, finished or delivered for.
    pub reports: u64,
    /// Rows now `sent`: every address got it (or `skip_if_empty`).
    pub sent: u64,
    /// Rows now `failed`: at least one address failed, or no content.
    pub failed: u64,
    /// Rows still `pending`: an address is retrying or not yet sent.
    pub pending: u64,
}

impl ReportCounts {
    /// `rows` (id, `scheduled_at` in rappel's format) counted as reports,
    /// each once however often it is named; by status, nothing yet.
    pub fn of_rows(rows: &[(i64, String)]) -> ReportCounts {
        ReportCounts {
            reports: distinct(rows).len() as u64,
            ..ReportCounts::default()
        }
    }
}

/// Each row named once.
fn distinct(rows: &[(i64, String)]) -> std::collections::BTreeSet<&(i64, String)> {
    rows.iter().collect()
}

/// Counts `rows` (id, `scheduled_at` in rappel's format; repeats counted
/// once) by their row's status now. A row deleted or replaced under its id
/// since counts as a report but in no status. Errors: SQLite's.
pub fn count(conn: &Conn, rows: &[(i64, String)]) -> store::Result<ReportCounts> {
    let distinct = distinct(rows);
    let mut counts = ReportCounts {
        reports: distinct.len() as u64,
        ..ReportCounts::default()
    };
    for (id, at) in distinct {
        let current = reports::scheduled_at(conn, *id)?.flatten().map(instant::format);
        if current.as_deref() != Some(at.as_str()) {
            continue;
        }
        match reports::status(conn, *id)?.as_deref() {
            Some("sent") => counts.sent += 1,
            Some("failed") => counts.failed += 1,
            Some("pending") => counts.pending += 1,
            _ => {}
        }
    }
    Ok(counts)
}

impl SourceHook for ReportsHook<'_> {
    fn table(&self) -> &'static str {
        TABLE
    }

    fn after_outcome(&self, tx: &Tx<'_>, outcome: &Outcome<'_>, now: DateTime<Utc>) -> store::Result<()> {
        // Without an instant: made before rows were named by one, for a row gone since.
        let Some(at) = outcome.source_at else {
            return Ok(());
        };
        let source = (outcome.source_id, at);
        self.touched
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((outcome.source_id, at.to_string()));
        match outcome.delivery_id {
            Some(delivery_id) => after_delivery(tx, source, delivery_id, now, &self.recur)?,
            None => refresh(tx, source, now, &self.recur)?,
        }
        Ok(())
    }
}
