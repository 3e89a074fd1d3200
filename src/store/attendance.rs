//! sync-attendance's tables: `terminals` and `attendance_logs` (the host's,
//! or mapped onto the host's own), read as they are; the punches' sync
//! columns (in `attendance_logs`, or in `rappel_punch_state` beside a mapped
//! one: `rows`) and `rappel_attendance_batches` as the job's ledger
//! (`due`, `ledger`); the users pulled from each HR service and the sync
//! times (`users`).

/// A punch's instant as the database reads it, or `punch::UNREADABLE_AT`,
/// from the ledger's row `k`: in SQLite a Julian day number with its
/// fraction (`YYYY-MM-DD HH:MM:SS`, `...T...Z` and offsets alike), in
/// PostgreSQL seconds since 1970 (`rappel_instant`, migration 9). The
/// expression `rappel_attendance_logs_unsent` and `rappel_punch_state_unsent`
/// index, which queries must repeat word for word to use them.
fn punched(dialect: Dialect, k: &str) -> String {
    match dialect {
        Dialect::Sqlite => format!("coalesce(julianday({k}.punched_at), -1)"),
        Dialect::Postgres => format!("coalesce(rappel_instant({k}.punched_at), -1)"),
    }
}

// The logs that may still go (`db::sources::unsent`), for the modules below.
pub(crate) use crate::db::sources::unsent;

pub mod due;
pub mod ledger;
mod punch;
pub mod rows;
pub mod users;

pub use punch::{Item, Read};
pub use rows::Rows;

use super::{Conn, Dialect, Result};
use crate::params;

/// A row of `terminals`.
#[derive(Clone, Debug)]
pub struct Terminal {
    pub id: i64,
    /// Its serial as text (empty when NULL).
    pub serial: String,
}

/// Every terminal, by serial. Errors: `StoreError`.
pub fn terminals(conn: &Conn) -> Result<Vec<Terminal>> {
    conn.query_map("SELECT id, serial FROM terminals ORDER BY serial", params![], |r| {
        Ok(Terminal {
            id: r.get(0)?,
            serial: crate::db::loose::text(r.cell(1)?).unwrap_or_default(),
        })
    })
}
