//! Which punches one service may push now, walked batch by batch: first the
//! batches still open for a retry (`rappel_attendance_batches`, so a retry
//! goes out whole under the same key), then the oldest due punches, through
//! the ledger's index of unsent punches (`Rows`). Reads only; `ledger`
//! claims what this finds.

use chrono::{DateTime, Utc};

use super::Rows;
use super::punch::{self, Read};
use super::unsent;
use crate::params;
use crate::store::{Conn, Dialect, Result, ToParam};

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
/// (or `--force`); or held by a claim that expired. Its parameters: `?1`
/// force, `?2` now, `?3` max attempts, `?4` wall clock, `?5` the terminals
/// (a JSON array of ids). In SQLite the `+` keeps it from walking a
/// terminal's every log instead of the index of unsent ones.
pub(super) fn due_sql(dialect: Dialect) -> String {
    let plus = if dialect == Dialect::Sqlite { "+" } else { "" };
    format!(
        "{} AND (k.sync_status = 'pending'
             OR (k.sync_status = 'failed' AND (?1 OR (k.next_attempt_at <= ?2 AND k.sync_attempts < ?3)))
             OR (k.sync_status = 'sending' AND k.sync_lease_until < ?4))
        AND {plus}l.terminal_id IN ({})",
        unsent!(k),
        crate::store::json_list(dialect, 5, "bigint")
    )
}

impl Due<'_> {
    /// The parameters every walk's statement starts with: `due_sql`'s `?1`
    /// to `?5`, then `?6` the service; `terminals` is their JSON array.
    fn values<'v>(&'v self, terminals: &'v String) -> Vec<&'v dyn ToParam> {
        params![
            self.force,
            self.now,
            self.max_attempts,
            self.wall,
            *terminals,
            self.service
        ]
        .to_vec()
    }
}

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
/// is left. Reads only. Errors: `StoreError`.
pub fn next_batch(conn: &Conn, due: &Due<'_>, cursor: &mut Cursor) -> Result<Vec<Read>> {
    let dialect = conn.dialect();
    let terminals = json_ids(&due.terminals);
    if !cursor.open_done {
        let rows = next_open(conn, due, cursor, &terminals)?;
        if !rows.is_empty() {
            return Ok(rows);
        }
        cursor.open_done = true;
    }
    let (after_at, after_id) = cursor.fresh.unwrap_or((f64::MIN, i64::MIN));
    // In time order, whatever form each punch was written in (DESIGN §4:
    // host instants are compared as instants), through the index on it.
    let sql = format!(
        "SELECT {columns} FROM {from} JOIN terminals t ON t.id = l.terminal_id
         WHERE {due_sql} AND {at} >= ?7 AND ({at}, {id}) > (?7, ?8)
           AND NOT EXISTS (SELECT 1 FROM rappel_attendance_batches b
                           WHERE b.log_id = {id} AND b.service = ?6)
         ORDER BY {at}, {id} LIMIT ?9",
        columns = punch::columns(dialect),
        from = due.rows.from(),
        id = due.rows.id(),
        due_sql = due_sql(dialect),
        // The first bound alone lets SQLite seek the index to the cursor.
        at = super::punched(dialect, "k")
    );
    let mut values = due.values(&terminals);
    values.extend(params![after_at, after_id, due.batch_size]);
    let rows: Vec<Read> = conn.query_map(&sql, &values, |r| punch::read(r, due.naive))?;
    if let Some(last) = rows.last() {
        cursor.fresh = Some((last.at, last.id));
    }
    Ok(rows)
}

/// The next open batch (by key, after the cursor) with due logs: those logs,
/// in the order they were first posted.
fn next_open(conn: &Conn, due: &Due<'_>, cursor: &mut Cursor, terminals: &String) -> Result<Vec<Read>> {
    let dialect = conn.dialect();
    let (from, id, due_sql) = (due.rows.from(), due.rows.id(), due_sql(dialect));
    // A join without a condition of its own: PostgreSQL says so.
    let join = match dialect {
        Dialect::Sqlite => "JOIN",
        Dialect::Postgres => "CROSS JOIN",
    };
    let open: Option<String> = conn.query_opt(
        &format!(
            "SELECT b.batch_key FROM rappel_attendance_batches b {join} {from}
             WHERE {id} = b.log_id AND b.service = ?6 AND b.batch_key > ?7 AND {due_sql}
             ORDER BY b.batch_key LIMIT 1"
        ),
        &[due.values(terminals).as_slice(), params![cursor.open_key]].concat(),
        |r| r.get(0),
    )?;
    if let Some(key) = open {
        let rows = conn.query_map(
            &format!(
                "SELECT {} FROM rappel_attendance_batches b {join} {from} JOIN terminals t ON t.id = l.terminal_id
                 WHERE {id} = b.log_id AND b.service = ?6 AND b.batch_key = ?7 AND {due_sql}
                 ORDER BY {}, {id} LIMIT ?8",
                punch::columns(dialect),
                super::punched(dialect, "k")
            ),
            &[due.values(terminals).as_slice(), params![key, due.batch_size]].concat(),
            |r| punch::read(r, due.naive),
        );
        cursor.open_key = key;
        return rows;
    }
    Ok(Vec::new())
}
