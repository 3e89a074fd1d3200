//! Which punches one service may push now, walked batch by batch: first the
//! batches still open for a retry (`rappel_attendance_batches`, so a retry
//! goes out whole under the same key), then the oldest due punches, through
//! the ledger's index of unsent punches (`Rows`). Reads only; `ledger`
//! claims what this finds.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, named_params};

use super::Rows;
use super::punch::{self, COLUMNS, Read};
use super::unsent;
use crate::instant;
use crate::store::{Conn, Result};

/// Which logs one service may take now.
#[derive(Debug)]
pub struct Due<'a> {
    /// Where the ledger's columns are read.
    pub rows: Rows,
    /// The service's name, under which its batches are remembered.
    pub service: &'a str,
    /// The ids of the service's terminals.
    pub terminals: Vec<i64>,
    /// The run's clock (UTC), compared with `next_attempt_at`.
    pub now: DateTime<Utc>,
    /// The wall clock (UTC), compared with `sync_lease_until`.
    pub wall: DateTime<Utc>,
    pub max_attempts: u32,
    /// Failed logs are due at once, whatever their attempts.
    pub force: bool,
    pub batch_size: u32,
    /// Where a punch without an offset is read when its terminal has no
    /// `timezone` (`naive_timezone`).
    pub naive: chrono_tz::Tz,
}

/// Due (the ledger's row `k`, the punch `l`): pending; failed for a reason
/// that passes (`next_attempt_at` set) once its time came, attempts left
/// (or `--force`); or held by a claim that expired. The `+` keeps SQLite
/// from walking a terminal's every log instead of the index of unsent ones.
/// (In PostgreSQL the list parameter is `= ANY($1::bigint[])`.)
pub(super) const DUE: &str = concat!(
    unsent!(k),
    " AND (k.sync_status = 'pending'
         OR (k.sync_status = 'failed' AND (:force OR (k.next_attempt_at <= :now AND k.sync_attempts < :max)))
         OR (k.sync_status = 'sending' AND k.sync_lease_until < :wall))
    AND +l.terminal_id IN (SELECT value FROM json_each(:terminals))"
);

/// A list of ids as the JSON array `json_each` reads.
pub(super) fn json_ids(ids: &[i64]) -> String {
    serde_json::to_string(ids).unwrap_or_else(|_| "[]".into())
}

/// Where a run's walk through one service's logs has got to: open batches
/// by key, then fresh logs by punch time. Each log is looked at once a run.
#[derive(Debug, Default)]
pub struct Cursor {
    open_key: String,
    /// No open batch is left: the walk is on fresh logs, never back (so a
    /// batch that failed this run is not tried again this run).
    open_done: bool,
    fresh: Option<(f64, i64)>,
}

/// The next batch `due` gives after `cursor` (which it moves on): an open
/// batch whose logs are due again (so a retry goes out whole, under the same
/// key), else the oldest due logs not in one, at most `due.batch_size`. Each
/// row is read into its item, or why it cannot be sent; empty when nothing
/// is left. Reads only. Errors: `StoreError` (SQLite's). In PostgreSQL the
/// same reads, the terminals bound as `= ANY($1)`.
pub fn next_batch(conn: &Conn, due: &Due<'_>, cursor: &mut Cursor) -> Result<Vec<Read>> {
    let conn = conn.lite()?;
    Ok(next(conn, due, cursor)?)
}

/// `next_batch`, with SQLite's errors (`ledger` reads it in its claim).
pub(super) fn next(conn: &rusqlite::Connection, due: &Due<'_>, cursor: &mut Cursor) -> rusqlite::Result<Vec<Read>> {
    let now = instant::format(due.now);
    let wall = instant::format(due.wall);
    let terminals = json_ids(&due.terminals);
    if !cursor.open_done {
        let rows = next_open(conn, due, cursor, &now, &wall, &terminals)?;
        if !rows.is_empty() {
            return Ok(rows);
        }
        cursor.open_done = true;
    }
    let (after_at, after_id) = cursor.fresh.unwrap_or((f64::MIN, i64::MIN));
    // In time order, whatever form each punch was written in (DESIGN §4:
    // host instants are compared as instants), through the index on it.
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM {from} JOIN terminals t ON t.id = l.terminal_id
         WHERE {DUE} AND {at} >= :after_at AND ({at}, {id}) > (:after_at, :after_id)
           AND NOT EXISTS (SELECT 1 FROM rappel_attendance_batches b
                           WHERE b.log_id = {id} AND b.service = :service)
         ORDER BY {at}, {id} LIMIT :limit",
        from = due.rows.from(),
        id = due.rows.id(),
        // The first bound alone lets SQLite seek the index to the cursor.
        at = punched!(k)
    ))?;
    let rows: Vec<Read> = stmt
        .query_map(
            named_params! {
                ":force": due.force, ":now": now, ":max": due.max_attempts, ":wall": wall,
                ":terminals": terminals, ":service": due.service, ":after_at": after_at,
                ":after_id": after_id, ":limit": due.batch_size,
            },
            |r| punch::read(r, due.naive),
        )?
        .collect::<Result<_, _>>()?;
    if let Some(last) = rows.last() {
        cursor.fresh = Some((last.at, last.id));
    }
    Ok(rows)
}

/// The next open batch (by key, after the cursor) with due logs: those logs,
/// in the order they were first posted.
fn next_open(
    conn: &rusqlite::Connection,
    due: &Due<'_>,
    cursor: &mut Cursor,
    now: &str,
    wall: &str,
    terminals: &str,
) -> rusqlite::Result<Vec<Read>> {
    let (from, id) = (due.rows.from(), due.rows.id());
    let open: Option<String> = conn
        .prepare_cached(&format!(
            "SELECT b.batch_key FROM rappel_attendance_batches b JOIN {from}
             WHERE {id} = b.log_id AND b.service = :service AND b.batch_key > :after AND {DUE}
             ORDER BY b.batch_key LIMIT 1"
        ))?
        .query_row(
            named_params! {
                ":force": due.force, ":now": now, ":max": due.max_attempts, ":wall": wall,
                ":terminals": terminals, ":service": due.service, ":after": cursor.open_key,
            },
            |r| r.get(0),
        )
        .optional()?;
    if let Some(key) = open {
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM rappel_attendance_batches b JOIN {from} JOIN terminals t ON t.id = l.terminal_id
             WHERE {id} = b.log_id AND b.service = :service AND b.batch_key = :key AND {DUE}
             ORDER BY {}, {id} LIMIT :limit",
            punched!(k)
        ))?;
        let rows = stmt
            .query_map(
                named_params! {
                    ":force": due.force, ":now": now, ":max": due.max_attempts, ":wall": wall,
                    ":terminals": terminals, ":service": due.service, ":key": key,
                    ":limit": due.batch_size,
                },
                |r| punch::read(r, due.naive),
            )?
            .collect();
        cursor.open_key = key;
        return rows;
    }
    Ok(Vec::new())
}
