//! A report row follows its deliveries: `pending` while any is pending or
//! sending, `sent` when every recipient got it, else `failed` naming each
//! failed address. A recurring row that leaves `pending` gets its next
//! occurrence, once.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use rusqlite::{OptionalExtension, Transaction, params};

use super::TABLE;
use super::recurrence::Recurrence;
use crate::config::ReportsConfig;
use crate::engine::record::{Outcome, SourceHook};
use crate::instant;

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
fn is_row(tx: &Transaction<'_>, (id, at): Source<'_>) -> rusqlite::Result<bool> {
    Ok(crate::db::identity::current(tx, TABLE, id)?
        .flatten()
        .map(instant::format)
        .as_deref()
        == Some(at))
}

pub fn finish(
    tx: &Transaction<'_>,
    source: Source<'_>,
    now: DateTime<Utc>,
    done: Done,
    recur: &Recur<'_>,
) -> rusqlite::Result<()> {
    if !is_row(tx, source)? {
        return Ok(());
    }
    let id = source.0;
    let changed = match done {
        Done::Failed(reason) => tx.execute(
            "UPDATE scheduled_reports SET status = 'failed', attempts = attempts + 1, last_error = ?2,
                    next_attempt_at = NULL
             WHERE id = ?1 AND status = 'pending'",
            params![id, bounded(&reason)],
        )?,
        Done::Empty => tx.execute(
            "UPDATE scheduled_reports SET status = 'sent', next_attempt_at = NULL,
                    last_error = 'not sent: the report had no rows (skip_if_empty)'
             WHERE id = ?1 AND status = 'pending'",
            [id],
        )?,
        Done::Refresh => return refresh(tx, source, now, recur),
    };
    if changed > 0 {
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
pub fn refresh(
    tx: &Transaction<'_>,
    source: Source<'_>,
    now: DateTime<Utc>,
    recur: &Recur<'_>,
) -> rusqlite::Result<()> {
    if !is_row(tx, source)? {
        return Ok(());
    }
    let (id, at) = source;
    let recipients: String = tx.query_row("SELECT recipients FROM scheduled_reports WHERE id = ?1", [id], |r| {
        Ok(crate::db::loose::text(r.get_ref(0)?).unwrap_or_default())
    })?;
    let current: HashSet<String> = super::addresses(&recipients)
        .iter()
        .map(|(a, _)| a.to_lowercase())
        .collect();
    let mut stmt = tx.prepare_cached(
        "SELECT recipient, CASE WHEN status = 'cancelled' AND error_class = 'operator' THEN 'withdrawn' ELSE status END,
                attempts, next_attempt_at, last_error
         FROM deliveries WHERE source_table = ?1 AND source_id = ?2 AND source_at = ?3 ORDER BY id",
    )?;
    let mut rows = stmt.query(params![TABLE, id, at])?;
    let (mut total, mut open, mut attempts) = (0, 0, 0_i64);
    let mut next_attempt: Option<String> = None;
    let mut errors: Vec<String> = Vec::new();
    // Current addresses with a message that went or failed: any other (added
    // to the list since, or whose message was cancelled) is still to serve.
    let mut served: HashSet<String> = HashSet::new();
    while let Some(r) = rows.next()? {
        let recipient: String = r.get(0)?;
        let status: String = r.get(1)?;
        let is_open = status == "pending" || status == "sending";
        let lower = recipient.to_lowercase();
        // In flight, whoever it is for, until the engine has had its say.
        if !is_open && !current.contains(&lower) {
            continue;
        }
        // A message cancelled by hand (`rappel cancel`) counts as served.
        if status == "sent" || status == "failed" || status == "withdrawn" {
            served.insert(lower);
        }
        total += 1;
        attempts = attempts.max(r.get(2)?);
        if is_open {
            open += 1;
            if status == "pending"
                && let Some(next) = r.get::<_, Option<String>>(3)?
                && next_attempt.as_ref().is_none_or(|n| next < *n)
            {
                next_attempt = Some(next);
            }
        } else if status == "failed" {
            let why: Option<String> = r.get(4)?;
            errors.push(format!("{recipient}: {}", why.as_deref().unwrap_or("failed")));
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
        tx.execute(
            "UPDATE scheduled_reports SET status = 'pending', attempts = ?2, next_attempt_at = ?3, last_error = ?4
             WHERE id = ?1 AND status IN ('pending', 'failed')",
            params![id, attempts, next_attempt, errors],
        )?;
        return Ok(());
    }
    let (status, sent_at) = if errors.is_none() {
        ("sent", Some(instant::format(now)))
    } else {
        ("failed", None)
    };
    let changed = tx.execute(
        "UPDATE scheduled_reports
         SET status = ?2, attempts = ?3, next_attempt_at = NULL, last_error = ?4,
             sent_at = coalesce(?5, sent_at)
         WHERE id = ?1 AND status = 'pending'",
        params![id, status, attempts, errors, sent_at],
    )?;
    if changed > 0 {
        schedule_next(tx, source, now, recur);
    }
    Ok(())
}

/// After one delivery's outcome: while others of the row are still in
/// flight, only that delivery's attempts and retry time are folded into the
/// row (constant work, so a report to N addresses costs O(N), not O(N²));
/// the last outcome recomputes the row.
fn after_delivery(
    tx: &Transaction<'_>,
    source: Source<'_>,
    delivery_id: i64,
    now: DateTime<Utc>,
    recur: &Recur<'_>,
) -> rusqlite::Result<()> {
    let (id, at) = source;
    let open: bool = tx
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM deliveries
                            WHERE source_table IS NOT NULL AND status IN ('pending', 'sending')
                              AND source_table = ?1 AND source_id = ?2 AND source_at = ?3)",
        )?
        .query_row(params![TABLE, id, at], |r| r.get(0))?;
    if !open {
        return refresh(tx, source, now, recur);
    }
    if !is_row(tx, source)? {
        return Ok(());
    }
    tx.prepare_cached(
        "UPDATE scheduled_reports
         SET status = 'pending', attempts = max(scheduled_reports.attempts, d.attempts),
             next_attempt_at = CASE WHEN d.status = 'pending' AND d.next_attempt_at IS NOT NULL
                                     AND (scheduled_reports.next_attempt_at IS NULL
                                          OR d.next_attempt_at < scheduled_reports.next_attempt_at)
                                    THEN d.next_attempt_at ELSE scheduled_reports.next_attempt_at END
         FROM (SELECT attempts, status, next_attempt_at FROM deliveries WHERE id = ?2) AS d
         WHERE scheduled_reports.id = ?1 AND scheduled_reports.status = 'pending'",
    )?
    .execute(params![id, delivery_id])?;
    Ok(())
}

/// Inserts the next occurrence of a recurring row (once): the first cron time
/// after max(now, scheduled_at), so a machine that was off sends one catch-up
/// mailing. Problems are logged, never allowed to undo the outcome being recorded.
fn schedule_next(tx: &Transaction<'_>, source: Source<'_>, now: DateTime<Utc>, recur: &Recur<'_>) {
    let id = source.0;
    // A savepoint: the new row and its guard are written together or not at all.
    let result = tx
        .execute_batch("SAVEPOINT next_occurrence")
        .map_err(anyhow::Error::from)
        .and_then(|()| match try_schedule_next(tx, source, now, recur) {
            Ok(()) => Ok(tx.execute_batch("RELEASE next_occurrence")?),
            Err(e) => {
                tx.execute_batch("ROLLBACK TO next_occurrence; RELEASE next_occurrence")?;
                Err(e)
            }
        });
    if let Err(e) = result {
        // An error, not a warning: a recurring mailing that stops must be seen,
        // under -q too, and stay written on its row.
        log::error!("scheduled_reports id {id}: no next occurrence: {e}");
        let noted = tx.execute(
            "UPDATE scheduled_reports SET last_error = coalesce(last_error || '; ', '') || ?2 WHERE id = ?1",
            params![id, bounded(&format!("no next occurrence: {e}"))],
        );
        if let Err(e) = noted {
            log::error!("scheduled_reports id {id}: cannot note it on the row: {e}");
        }
    }
}

fn try_schedule_next(
    tx: &Transaction<'_>,
    (id, at): Source<'_>,
    now: DateTime<Utc>,
    recur: &Recur<'_>,
) -> anyhow::Result<()> {
    type Fields = (
        String,
        String,
        String,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
    );
    let row: Option<Fields> = tx
        .query_row(
            "SELECT title, recipients, scheduled_at, attachment_path, report, recurrence, timezone
             FROM scheduled_reports WHERE id = ?1",
            [id],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                ))
            },
        )
        .optional()?;
    let Some((title, recipients, scheduled_at, attachment_path, report, recurrence, timezone)) = row else {
        return Ok(());
    };
    let Some(expr) = recurrence.as_deref().map(str::trim).filter(|r| !r.is_empty()) else {
        return Ok(());
    };
    let done: bool = tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM rappel_report_recurrences WHERE report_id = ?1 AND scheduled_at = ?2)",
        params![id, at],
        |r| r.get(0),
    )?;
    if done {
        return Ok(());
    }
    let rule = Recurrence::parse(expr).map_err(|e| anyhow::anyhow!("recurrence: {e}"))?;
    let (zone, naive) = match timezone.as_deref().map(str::trim).filter(|z| !z.is_empty()) {
        Some(z) => {
            let zone = crate::config::parse_zone(z).map_err(|e| anyhow::anyhow!("timezone: {e}"))?;
            (zone, zone)
        }
        None => (recur.zone, recur.naive),
    };
    let scheduled = instant::parse_in(&scheduled_at, naive)
        .ok_or_else(|| anyhow::anyhow!("scheduled_at {scheduled_at:?} is not a timestamp"))?;
    let next = rule
        .next_after(now.max(scheduled), zone)
        .ok_or_else(|| anyhow::anyhow!("recurrence {expr:?} has no next time"))?;
    let keep = report
        .as_deref()
        .and_then(|r| recur.cfg.definitions.get(r))
        .is_some_and(|d| d.keep_attachment);
    let next_id: i64 = tx.query_row(
        "INSERT INTO scheduled_reports (title, recipients, scheduled_at, attachment_path, report, recurrence, timezone)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING id",
        params![
            title,
            recipients,
            instant::format(next),
            if keep { attachment_path } else { None },
            report,
            recurrence,
            timezone
        ],
        |r| r.get(0),
    )?;
    tx.execute(
        "INSERT INTO rappel_report_recurrences (report_id, scheduled_at, next_report_id, created_at)
         VALUES (?1, ?2, ?3, ?4)",
        params![id, at, next_id, instant::format(now)],
    )?;
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
pub fn count(conn: &rusqlite::Connection, rows: &[(i64, String)]) -> rusqlite::Result<ReportCounts> {
    let distinct = distinct(rows);
    let mut counts = ReportCounts {
        reports: distinct.len() as u64,
        ..ReportCounts::default()
    };
    let mut stmt = conn.prepare_cached("SELECT status FROM scheduled_reports WHERE id = ?1")?;
    for (id, at) in distinct {
        let current = crate::db::identity::current(conn, TABLE, *id)?
            .flatten()
            .map(instant::format);
        if current.as_deref() != Some(at.as_str()) {
            continue;
        }
        let status: Option<String> = stmt.query_row([id], |r| r.get(0)).optional()?;
        match status.as_deref() {
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

    fn after_outcome(
        &self,
        tx: &Transaction<'_>,
        outcome: &Outcome<'_>,
        now: DateTime<Utc>,
    ) -> crate::store::Result<()> {
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
