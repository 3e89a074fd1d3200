//! What the Prometheus metrics count (`rappel metrics`): deliveries by final
//! status, channel and kind over the whole of `rappel_deliveries`, and what
//! waits now.

use super::{Conn, Result};
use crate::params;

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
    /// When the oldest of them was planned (as stored, UTC), if any.
    pub oldest: Option<String>,
}

/// What waits (pending, or being sent). Errors: `StoreError`.
pub fn waiting(conn: &Conn) -> Result<Waiting> {
    let by_channel = conn.query_map(
        "SELECT channel, count(*) FROM rappel_deliveries WHERE status IN ('pending', 'sending')
         GROUP BY 1 ORDER BY 1",
        params![],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let oldest = conn
        .query_opt(
            "SELECT min(created_at) FROM rappel_deliveries WHERE status IN ('pending', 'sending')",
            params![],
            |r| r.get::<Option<String>>(0),
        )?
        .flatten();
    Ok(Waiting { by_channel, oldest })
}
