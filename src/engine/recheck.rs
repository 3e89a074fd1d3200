//! The last look before a send: a message waits in the outbox (a retry, a
//! slow queue), and meanwhile its source may stop wanting it: the loan was
//! returned, the session cancelled, the contact opted out. Each job says,
//! for its own messages, whether the source still does (DESIGN §9, status
//! `cancelled`).

use chrono::{DateTime, Utc};
use rusqlite::Connection;

use super::claim::Claimed;

/// A job's check of its claimed messages against their source rows.
pub trait Recheck: Sync {
    /// The `deliveries.job` whose messages this checks.
    fn job(&self) -> &'static str;

    /// Reads the message's source as it is now (`now` is the run's clock).
    /// `Ok(Some(reason))`: the source no longer wants this message; it is not
    /// sent and ends `cancelled` with the reason. `Ok(None)`: send it.
    fn recheck(&self, conn: &Connection, row: &Claimed, now: DateTime<Utc>) -> rusqlite::Result<Option<String>>;
}
