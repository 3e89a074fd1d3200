//! Where the punch ledger's columns are (`sync_status` ... `sync_error`): in
//! a contract `attendance_logs` itself, or, for one mapped onto the host's
//! own table, in `rappel_punch_state`, into which each run first takes the
//! host's punches rappel has no record of yet. Either is read through its
//! index of unsent punches, with the same words.

use super::unsent;
use crate::store::sources::{Found, found};
use crate::store::{Conn, Result};

/// Where the ledger reads a punch's sync columns: its queries name that
/// row `k`, beside `l`, the punch as the jobs read it (`attendance_logs`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Rows {
    /// In `attendance_logs` itself: a contract table, through its index of
    /// unsent punches; or a mapped source's view read whole, every host row
    /// looked at by each query (a dry run, which writes nothing, so takes
    /// no punch in).
    Table,
    /// In `rappel_punch_state` beside a mapped `attendance_logs`, through its
    /// index of unsent punches; punches new to rappel are taken in first
    /// (`take_in`).
    State,
}

impl Rows {
    /// Where the ledger of `conn`'s `attendance_logs` is: `State` when it is
    /// mapped onto the host's table and the run `writes` (it takes new
    /// punches in), else `Table`. Errors: `StoreError` (SQLite's).
    pub fn of(conn: &Conn, writes: bool) -> Result<Rows> {
        Ok(if writes && found(conn, "attendance_logs")? == Found::Mapped {
            Rows::State
        } else {
            Rows::Table
        })
    }

    /// The `FROM` of a ledger query: the ledger's row as `k`, the punch as `l`.
    pub(super) fn from(self) -> &'static str {
        match self {
            Rows::Table => "attendance_logs AS k JOIN attendance_logs AS l ON l.id = k.id",
            Rows::State => {
                "rappel_punch_state AS k JOIN attendance_logs AS l ON l.id = k.log_id AND l.punched_at = k.punched_at"
            }
        }
    }

    /// The punch's id on the ledger's row, which its index orders by.
    pub(super) fn id(self) -> &'static str {
        match self {
            Rows::Table => "k.id",
            Rows::State => "k.log_id",
        }
    }
}

/// Takes into `rappel_punch_state` (with `rows` = `State`) each punch of
/// the host's that rappel has no record of under its id and `punched_at`
/// and that the host's own columns say is still to send: `sync_status`
/// (your column, an expression over yours, else `pending`) `pending`, or
/// `failed` with a retry time, as a contract row would be; `sending` (a
/// claim rappel no longer holds) as `pending`. A punch the host calls
/// `sent`, or failed for good, is never taken in, so never pushed. The
/// host's columns are tested first, so a host that says `sent` costs no
/// look-up in rappel's record. One write transaction (`BEGIN IMMEDIATE`);
/// returns how many punches were taken in (0 with `Table`). Errors:
/// `StoreError` (SQLite's).
pub fn take_in(conn: &mut Conn, rows: Rows) -> Result<usize> {
    if rows == Rows::Table {
        return Ok(0);
    }
    let dialect = conn.dialect();
    let raw = crate::db::sources::raw_view("attendance_logs");
    let usable = crate::db::sources::usable("attendance_logs", "i", dialect);
    let temp = crate::db::sources::temp(dialect);
    let tx = crate::store::begin(conn)?;
    let taken = tx.execute(
        &format!(
            "INSERT INTO rappel_punch_state
                 (log_id, punched_at, sync_status, sync_attempts, next_attempt_at, synced_at, sync_error)
             SELECT i.id, i.punched_at, CASE i.sync_status WHEN 'sending' THEN 'pending' ELSE i.sync_status END,
                    coalesce(i.sync_attempts, 0), i.next_attempt_at, i.synced_at, i.sync_error
             FROM {temp}.\"{raw}\" AS i
             WHERE {} AND {usable}
               AND NOT EXISTS (SELECT 1 FROM rappel_punch_state AS k
                               WHERE k.log_id = i.id AND k.punched_at = i.punched_at)
             ON CONFLICT DO NOTHING",
            unsent!(i)
        ),
        crate::params![],
    )?;
    tx.commit()?;
    Ok(taken)
}
