//! A report row follows its deliveries: `pending` while any is pending or
//! sending, `sent` when every recipient got it, else `failed` naming each
//! failed address. A recurring row that leaves `pending` gets its next
//! occurrence, once.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use rusqlite::{OptionalExtension, Transaction, params};

use super::TABLE;
use super::recurrence::Recurrence;
use crate::config::ReportsConfig;
use crate::engine::record::SourceHook;
use crate::instant;

/// `last_error` is kept readable: at most this many characters.
const MAX_ERROR: usize = 20_000;

/// What recurrence needs to know.
pub struct Recur<'a> {
    pub cfg: &'a ReportsConfig,
    /// The configured zone, for rows without their own.
    pub zone: Tz,
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
/// earlier row that had its id).
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
    let summary: (i64, i64, i64, Option<i64>, Option<String>, Option<String>) = tx.query_row(
        "SELECT count(*),
                coalesce(sum(status IN ('pending', 'sending')), 0),
                coalesce(sum(status = 'failed'), 0),
                max(attempts),
                min(CASE WHEN status = 'pending' THEN next_attempt_at END),
                group_concat(CASE WHEN status = 'failed'
                                  THEN recipient || ': ' || coalesce(last_error, 'failed') END, '; ')
         FROM deliveries WHERE source_table = ?1 AND source_id = ?2 AND source_at = ?3",
        params![TABLE, id, at],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
    )?;
    let (total, open, failed, attempts, next_attempt, errors) = summary;
    if total == 0 {
        return Ok(());
    }
    let attempts = attempts.unwrap_or(0);
    let errors = errors.map(|e| bounded(&e));
    if open > 0 {
        tx.execute(
            "UPDATE scheduled_reports SET status = 'pending', attempts = ?2, next_attempt_at = ?3, last_error = ?4
             WHERE id = ?1",
            params![id, attempts, next_attempt, errors],
        )?;
        return Ok(());
    }
    let (status, sent_at) = if failed == 0 {
        ("sent", Some(instant::format(now)))
    } else {
        ("failed", None)
    };
    let changed = tx.execute(
        "UPDATE scheduled_reports
         SET status = ?2, attempts = ?3, next_attempt_at = NULL, last_error = ?4,
             sent_at = coalesce(?5, sent_at)
         WHERE id = ?1 AND (status <> ?2 OR attempts <> ?3 OR last_error IS NOT ?4)",
        params![id, status, attempts, errors, sent_at],
    )?;
    if changed > 0 {
        schedule_next(tx, source, now, recur);
    }
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
        log::warn!("scheduled_reports id {id}: no next occurrence: {e}");
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
    let zone = match timezone.as_deref().map(str::trim).filter(|z| !z.is_empty()) {
        Some(z) => crate::config::parse_zone(z).map_err(|e| anyhow::anyhow!("timezone: {e}"))?,
        None => recur.zone,
    };
    let scheduled = instant::parse(&scheduled_at)
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

/// The engine's hook: after each delivery outcome of a report, refresh its row.
pub struct ReportsHook<'a> {
    recur: Recur<'a>,
}

impl<'a> ReportsHook<'a> {
    pub fn new(cfg: &'a ReportsConfig, zone: Tz) -> Self {
        ReportsHook {
            recur: Recur { cfg, zone },
        }
    }
}

impl SourceHook for ReportsHook<'_> {
    fn table(&self) -> &'static str {
        TABLE
    }

    fn after_outcome(
        &self,
        tx: &Transaction<'_>,
        (id, at): (i64, Option<&str>),
        now: DateTime<Utc>,
    ) -> rusqlite::Result<()> {
        match at {
            Some(at) => refresh(tx, (id, at), now, &self.recur),
            // Made before rows were named by their instant, for a row gone since.
            None => Ok(()),
        }
    }
}
