//! What the Prometheus metrics count (`rappel metrics`): deliveries by final
//! status, channel and kind over the whole of `rappel_deliveries`, and what
//! waits now.

use super::{Conn, Result};
use crate::instant;
use crate::params;
use chrono::{DateTime, Utc};

/// Deliveries that reached a final status (sent, failed, cancelled), by
/// `(status, channel, kind, count)`, every row counted (a message that fell
/// back to another channel counts once per channel tried). Errors:
/// `StoreError`.
pub fn finished(conn: &Conn) -> Result<Vec<(String, String, String, i64)>> {
    conn.query_map(
        "SELECT status, channel, kind, count(*) FROM rappel_deliveries
         WHERE status IN ('sent', 'failed', 'cancelled') GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
        params![],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )
}

/// What waits to be sent now.
pub struct Waiting {
    /// Messages pending or being sent, by channel (those with any).
    pub by_channel: Vec<(String, i64)>,
    /// Since when the longest-waiting message that is due at `now` has been
    /// due (planned, or its retry time; as stored, UTC), if any: a message
    /// held by quiet hours or waiting for its retry is not due yet.
    pub oldest_due: Option<String>,
}

/// What waits (pending, or being sent) at `now` (UTC). Errors: `StoreError`.
pub fn waiting(conn: &Conn, now: DateTime<Utc>) -> Result<Waiting> {
    let by_channel = conn.query_map(
        "SELECT channel, count(*) FROM rappel_deliveries WHERE status IN ('pending', 'sending')
         GROUP BY 1 ORDER BY 1",
        params![],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let oldest_due = conn
        .query_opt(
            "SELECT min(coalesce(next_attempt_at, created_at)) FROM rappel_deliveries
             WHERE status = 'sending' OR (status = 'pending' AND (next_attempt_at IS NULL OR next_attempt_at <= ?1))",
            params![instant::format(now)],
            |r| r.get::<Option<String>>(0),
        )?
        .flatten();
    Ok(Waiting { by_channel, oldest_due })
}
