//! sync-attendance's tables: `terminals` and `attendance_logs` (the host's),
//! read as they are; `attendance_logs`' sync columns and
//! `rappel_attendance_batches` as the job's ledger (`ledger`); the users
//! pulled from each HR service and the sync times (`users`).

/// A punch's instant as SQLite reads it, as a Julian day number with its
/// fraction (`YYYY-MM-DD HH:MM:SS`, `...T...Z` and offsets alike), or
/// `punch::UNREADABLE_AT`: the expression `rappel_attendance_logs_unsent`
/// indexes, which queries must repeat word for word to use it. (In
/// PostgreSQL, an expression index on the parsed instant, repeated the same
/// way.)
macro_rules! punched {
    () => {
        "coalesce(julianday(l.punched_at), -1)"
    };
}

/// The logs that may still go: the partial index's own condition, which a
/// query must repeat word for word for SQLite to use the index.
macro_rules! unsent {
    () => {
        "(l.sync_status IN ('pending', 'sending') OR (l.sync_status = 'failed' AND l.next_attempt_at IS NOT NULL))"
    };
}

pub mod ledger;
mod punch;
pub mod users;

pub use punch::{Item, Read};

use super::{Conn, Result};

/// A row of `terminals`.
#[derive(Clone, Debug)]
pub struct Terminal {
    pub id: i64,
    /// Its serial as text (empty when NULL).
    pub serial: String,
}

/// Every terminal, by serial. Errors: `StoreError` (SQLite's).
pub fn terminals(conn: &Conn) -> Result<Vec<Terminal>> {
    let mut stmt = conn.prepare("SELECT id, serial FROM terminals ORDER BY serial")?;
    let rows = stmt.query_map([], |r| {
        Ok(Terminal {
            id: r.get(0)?,
            serial: crate::db::loose::text(r.get_ref(1)?).unwrap_or_default(),
        })
    })?;
    super::collect(rows)
}
