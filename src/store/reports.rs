//! `scheduled_reports`, the host's report rows, as send-reports reads and
//! keeps them: the pending rows, each row's status following the deliveries
//! made for it, a recurring row's next occurrence (written once, guarded by
//! `rappel_report_recurrences`), and an operator's reopening of a row.
//! `query` runs a report definition's own read-only query.
//!
//! A report row is named by its id together with its `scheduled_at` in
//! rappel's format (`db::identity`): the deliveries made for it carry both
//! (`source_table = 'scheduled_reports'`, `source_id`, `source_at`), and a
//! new row under a deleted one's id is another row.

pub mod query;

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::{Conn, Dialect, Result, ToParam, Tx};
use crate::db::loose::text;
use crate::params;

/// The host table of report rows, as the deliveries' `source_table` names it.
pub const TABLE: &str = "scheduled_reports";

/// A pending report row as the host wrote it: every column but `id` read as
/// text whatever its type (`db::loose::text`: `None` for NULL), for the job
/// to parse and judge.
#[derive(Debug)]
pub struct Pending {
    pub id: i64,
    pub title: Option<String>,
    pub recipients: Option<String>,
    pub scheduled_at: Option<String>,
    pub attachment_path: Option<String>,
    pub report: Option<String>,
    pub timezone: Option<String>,
    pub next_attempt_at: Option<String>,
    pub recurrence: Option<String>,
}

/// Every `pending` report row, by id, due or not (whether it is due depends
/// on its zone, which the job reads); planning and `config check` read them. Errors: an `id` that is not an
/// integer, and `StoreError`.
pub fn pending(conn: &Conn) -> Result<Vec<Pending>> {
    conn.query_map(
        "SELECT id, title, recipients, scheduled_at, attachment_path, report, timezone, next_attempt_at, recurrence
         FROM scheduled_reports WHERE status = 'pending' ORDER BY id",
        params![],
        |r| {
            Ok(Pending {
                id: r.get(0)?,
                title: text(r.cell(1)?),
                recipients: text(r.cell(2)?),
                scheduled_at: text(r.cell(3)?),
                attachment_path: text(r.cell(4)?),
                report: text(r.cell(5)?),
                timezone: text(r.cell(6)?),
                next_attempt_at: text(r.cell(7)?),
                recurrence: text(r.cell(8)?),
            })
        },
    )
}

/// The `scheduled_at` of report row `id` as it is now, the instant that
/// names the row with its id (UTC): `None` when the row is gone,
/// `Some(None)` when the value is empty or not a timestamp. Errors: `StoreError`.
pub fn scheduled_at(conn: &Conn, id: i64) -> Result<Option<Option<DateTime<Utc>>>> {
    crate::db::identity::instant_of(conn, TABLE, id)
}

/// The deliveries made for report row `id` scheduled at `source_at` (not
/// for an earlier row with its id), by lower-cased recipient: each one's
/// status, or `withdrawn` for one cancelled by the operator (`rappel
/// cancel`). Errors: `StoreError`.
pub fn deliveries_by_recipient(conn: &Conn, id: i64, source_at: DateTime<Utc>) -> Result<HashMap<String, String>> {
    // Lower-cased here, as the dedupe key is: SQLite's lower() knows only ASCII.
    Ok(conn
        .query_map(
            "SELECT recipient, CASE WHEN status = 'cancelled' AND error_class = 'operator' THEN 'withdrawn' ELSE status END
             FROM rappel_deliveries WHERE source_table = ?1 AND source_id = ?2 AND source_at = ?3",
            params![TABLE, id, source_at],
            |r| Ok((r.get::<String>(0)?.to_lowercase(), r.get(1)?)),
        )?
        .into_iter()
        .collect())
}

/// One delivery made for a report row, as the row's status is worked out
/// from it.
#[derive(Debug)]
pub struct RowDelivery {
    pub recipient: String,
    /// Its status, or `withdrawn` when the operator cancelled it.
    pub status: String,
    pub attempts: i64,
    /// When it is tried again, as stored (rappel's format, UTC).
    pub next_attempt_at: Option<String>,
    pub last_error: Option<String>,
}

/// The deliveries made for report row `id` named by `source_at` (its
/// `scheduled_at` as the deliveries store it), by id. Errors: `StoreError`.
pub fn row_deliveries(conn: &Conn, id: i64, source_at: &str) -> Result<Vec<RowDelivery>> {
    conn.query_map(
        "SELECT recipient, CASE WHEN status = 'cancelled' AND error_class = 'operator' THEN 'withdrawn' ELSE status END,
                attempts, next_attempt_at, last_error
         FROM rappel_deliveries WHERE source_table = ?1 AND source_id = ?2 AND source_at = ?3 ORDER BY id",
        params![TABLE, id, source_at],
        |r| {
            Ok(RowDelivery {
                recipient: r.get(0)?,
                status: r.get(1)?,
                attempts: r.get(2)?,
                next_attempt_at: r.get(3)?,
                last_error: r.get(4)?,
            })
        },
    )
}

/// Whether any delivery made for report row `id` named by `source_at` (as
/// stored) is still pending or being sent. Errors: `StoreError`.
pub fn in_flight(conn: &Conn, id: i64, source_at: &str) -> Result<bool> {
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM rappel_deliveries
                        WHERE source_table IS NOT NULL AND status IN ('pending', 'sending')
                          AND source_table = ?1 AND source_id = ?2 AND source_at = ?3)",
        params![TABLE, id, source_at],
        |r| r.get(0),
    )
}

/// Report row `id`'s `recipients` as written (`db::loose::text`; empty for
/// NULL). Errors: no such row (`StoreError::NoRow`), and `StoreError`.
pub fn recipients(conn: &Conn, id: i64) -> Result<String> {
    conn.query_row(
        "SELECT recipients FROM scheduled_reports WHERE id = ?1",
        params![id],
        |r| Ok(text(r.cell(0)?).unwrap_or_default()),
    )
}

/// What the last look before a send reads of a report row, as written
/// (`db::loose::text`: `None` for NULL).
#[derive(Debug)]
pub struct State {
    pub status: Option<String>,
    pub recipients: Option<String>,
}

/// Report row `id`'s status and recipients now; `None` when the row is
/// gone. Errors: `StoreError`.
pub fn state(conn: &Conn, id: i64) -> Result<Option<State>> {
    conn.query_opt(
        "SELECT status, recipients FROM scheduled_reports WHERE id = ?1",
        params![id],
        |r| {
            Ok(State {
                status: text(r.cell(0)?),
                recipients: text(r.cell(1)?),
            })
        },
    )
}

/// Report row `id`'s status now; `None` when the row is gone. Errors: a
/// status that is NULL or not text, and `StoreError`.
pub fn status(conn: &Conn, id: i64) -> Result<Option<String>> {
    conn.query_opt("SELECT status FROM scheduled_reports WHERE id = ?1", params![id], |r| {
        r.get(0)
    })
}

/// Pending report row `id` fails with `reason` (one more attempt, no retry
/// time). Returns whether it changed (it was still pending). Errors: `StoreError`.
pub fn fail(tx: &Tx<'_>, id: i64, reason: &str) -> Result<bool> {
    updated(
        tx,
        "UPDATE scheduled_reports SET status = 'failed', attempts = attempts + 1, last_error = ?2,
                    next_attempt_at = NULL
             WHERE id = ?1 AND status = 'pending'
             RETURNING id",
        params![id, reason],
    )
}

/// Pending report row `id` is done without a mailing: its definition
/// returned no rows and says `skip_if_empty` (`sent`, with that said in
/// `last_error`). Returns whether it changed. Errors: `StoreError`.
pub fn mark_empty(tx: &Tx<'_>, id: i64) -> Result<bool> {
    updated(
        tx,
        "UPDATE scheduled_reports SET status = 'sent', next_attempt_at = NULL,
                    last_error = 'not sent: the report had no rows (skip_if_empty)'
             WHERE id = ?1 AND status = 'pending'
             RETURNING id",
        params![id],
    )
}

/// Report row `id` stays (or is again) `pending` while its deliveries are
/// under way: their highest `attempts`, their earliest retry time (as
/// stored) and their errors so far. A row the operator took out of
/// `pending` other than to `failed` is left as it is. Errors: `StoreError`.
pub fn keep_pending(
    tx: &Tx<'_>,
    id: i64,
    attempts: i64,
    next_attempt_at: Option<&str>,
    last_error: Option<&str>,
) -> Result<()> {
    tx.execute(
        "UPDATE scheduled_reports SET status = 'pending', attempts = ?2, next_attempt_at = ?3, last_error = ?4
             WHERE id = ?1 AND status IN ('pending', 'failed')",
        params![id, attempts, next_attempt_at, last_error],
    )?;
    Ok(())
}

/// How a report row ends once none of its deliveries is in flight.
#[derive(Clone, Copy, Debug)]
pub enum Settled<'a> {
    /// Every current recipient got it, at this instant (UTC).
    Sent { at: DateTime<Utc> },
    /// At least one failed: each failed address and why.
    Failed { errors: &'a str },
}

/// Pending report row `id` ends as `end` says, with its deliveries' highest
/// `attempts` (a row that was sent before keeps its `sent_at` when it now
/// fails). Returns whether it changed (it was still pending). Errors: `StoreError`.
pub fn settle(tx: &Tx<'_>, id: i64, attempts: i64, end: Settled<'_>) -> Result<bool> {
    let (status, errors, sent_at) = match end {
        Settled::Sent { at } => ("sent", None, Some(at)),
        Settled::Failed { errors } => ("failed", Some(errors), None),
    };
    updated(
        tx,
        "UPDATE scheduled_reports
         SET status = ?2, attempts = ?3, next_attempt_at = NULL, last_error = ?4,
             sent_at = coalesce(?5, sent_at)
         WHERE id = ?1 AND status = 'pending'
         RETURNING id",
        params![id, status, attempts, errors, sent_at],
    )
}

/// Folds delivery `delivery_id`'s attempts and retry time into pending
/// report row `id` (its highest attempts, its earliest retry), in constant
/// work while other deliveries of the row are in flight. Errors: `StoreError`.
/// PostgreSQL runs the same `UPDATE … FROM`, with `GREATEST` for `max`.
pub fn fold_delivery(tx: &Tx<'_>, id: i64, delivery_id: i64) -> Result<()> {
    let greatest = match tx.dialect() {
        Dialect::Sqlite => "max",
        Dialect::Postgres => "GREATEST",
    };
    tx.execute(
        &format!(
            "UPDATE scheduled_reports
         SET status = 'pending', attempts = {greatest}(scheduled_reports.attempts, d.attempts),
             next_attempt_at = CASE WHEN d.status = 'pending' AND d.next_attempt_at IS NOT NULL
                                     AND (scheduled_reports.next_attempt_at IS NULL
                                          OR d.next_attempt_at < scheduled_reports.next_attempt_at)
                                    THEN d.next_attempt_at ELSE scheduled_reports.next_attempt_at END
         FROM (SELECT attempts, status, next_attempt_at FROM rappel_deliveries WHERE id = ?2) AS d
         WHERE scheduled_reports.id = ?1 AND scheduled_reports.status = 'pending'"
        ),
        params![id, delivery_id],
    )?;
    Ok(())
}

/// The columns a recurring report row's next occurrence is copied from.
#[derive(Debug)]
pub struct ToRepeat {
    pub title: String,
    pub recipients: String,
    /// As written (a value without an offset is read in the row's zone).
    pub scheduled_at: String,
    pub attachment_path: Option<String>,
    pub report: Option<String>,
    pub recurrence: Option<String>,
    pub timezone: Option<String>,
}

/// Report row `id`'s columns a next occurrence copies; `None` when the row
/// is gone. Errors: a title, recipients or `scheduled_at` that is NULL or
/// not text, and `StoreError`.
pub fn row_to_repeat(conn: &Conn, id: i64) -> Result<Option<ToRepeat>> {
    conn.query_opt(
        "SELECT title, recipients, scheduled_at, attachment_path, report, recurrence, timezone
             FROM scheduled_reports WHERE id = ?1",
        params![id],
        |r| {
            Ok(ToRepeat {
                title: r.get(0)?,
                recipients: r.get(1)?,
                scheduled_at: r.get(2)?,
                attachment_path: r.get(3)?,
                report: r.get(4)?,
                recurrence: r.get(5)?,
                timezone: r.get(6)?,
            })
        },
    )
}

/// Whether report row `id` named by `source_at` (as stored) has had its
/// next occurrence made already. Errors: `StoreError`.
pub fn next_made(conn: &Conn, id: i64, source_at: &str) -> Result<bool> {
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM rappel_report_recurrences WHERE report_id = ?1 AND scheduled_at = ?2)",
        params![id, source_at],
        |r| r.get(0),
    )
}

/// Inserts the next occurrence of report row `id` named by `source_at` (as
/// stored): a pending copy of `row` scheduled at `next` (UTC), with its
/// attachment only when `keep_attachment`, and the guard that says it was
/// made (`rappel_report_recurrences`, created at `now`). Returns the new
/// row's id. Both are written or neither is (a savepoint, as in
/// PostgreSQL). Errors: SQLite's, the guard already written among them.
pub fn insert_next(
    tx: &Tx<'_>,
    (id, source_at): (i64, &str),
    row: &ToRepeat,
    next: DateTime<Utc>,
    keep_attachment: bool,
    now: DateTime<Utc>,
) -> Result<i64> {
    // A savepoint: the new row and its guard are written together or not at all.
    tx.execute_batch("SAVEPOINT next_occurrence")?;
    match insert_occurrence(tx, (id, source_at), row, next, keep_attachment, now) {
        Ok(next_id) => {
            tx.execute_batch("RELEASE SAVEPOINT next_occurrence")?;
            Ok(next_id)
        }
        Err(e) => {
            tx.execute_batch("ROLLBACK TO SAVEPOINT next_occurrence; RELEASE SAVEPOINT next_occurrence")?;
            Err(e)
        }
    }
}

/// `insert_next`'s two writes, inside its savepoint.
fn insert_occurrence(
    tx: &Conn,
    (id, source_at): (i64, &str),
    row: &ToRepeat,
    next: DateTime<Utc>,
    keep_attachment: bool,
    now: DateTime<Utc>,
) -> Result<i64> {
    // SQLite gives the next id after the largest. PostgreSQL's identity
    // sequence does not know of ids the application wrote itself: the
    // larger of its next value and the largest id plus one.
    let new_id = match tx.dialect() {
        Dialect::Sqlite => "NULL",
        Dialect::Postgres => {
            "(SELECT GREATEST(nextval(pg_get_serial_sequence('scheduled_reports', 'id')), coalesce(max(id), 0) + 1)
              FROM scheduled_reports)"
        }
    };
    let next_id: i64 = tx.query_row(
        &format!(
            "INSERT INTO scheduled_reports (id, title, recipients, scheduled_at, attachment_path, report, recurrence, timezone)
             VALUES ({new_id}, ?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING id"
        ),
        params![
            row.title,
            row.recipients,
            next,
            if keep_attachment {
                row.attachment_path.as_deref()
            } else {
                None
            },
            row.report,
            row.recurrence,
            row.timezone
        ],
        |r| r.get(0),
    )?;
    tx.execute(
        "INSERT INTO rappel_report_recurrences (report_id, scheduled_at, next_report_id, created_at)
         VALUES (?1, ?2, ?3, ?4)",
        params![id, source_at, next_id, now],
    )?;
    Ok(next_id)
}

/// Appends `note` to report row `id`'s `last_error` (after `; ` when there
/// is one), so a problem stays written on the row. Errors: `StoreError`.
pub fn append_error(tx: &Tx<'_>, id: i64, note: &str) -> Result<()> {
    tx.execute(
        "UPDATE scheduled_reports SET last_error = coalesce(last_error || '; ', '') || ?2 WHERE id = ?1",
        params![id, note],
    )?;
    Ok(())
}

/// Runs `sql`, an `UPDATE ... RETURNING id` of at most one row; returns
/// whether it changed one. Read with RETURNING, not the count of changes:
/// on a source mapped onto the host's table (a view whose trigger records
/// the change) SQLite counts none.
fn updated(tx: &Conn, sql: &str, params: &[&dyn ToParam]) -> Result<bool> {
    Ok(tx.query_opt(sql, params, |r| r.get::<i64>(0))?.is_some())
}

/// `rappel retry`: report row `id` back to `pending` when it is `sent` or
/// `failed` (a row set otherwise by hand stays so). Returns whether it
/// changed. Errors: `StoreError`.
pub fn reopen(tx: &Tx<'_>, id: i64) -> Result<bool> {
    updated(
        tx,
        "UPDATE scheduled_reports SET status = 'pending' WHERE id = ?1 AND status IN ('sent', 'failed')
             RETURNING id",
        params![id],
    )
}
