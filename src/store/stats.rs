//! The dashboard's figures (`rappel stats`): deliveries by status, channel,
//! kind and reason since an instant, the median time from planned to sent,
//! and the attendance ledger now.

use super::Result;
use crate::params;
use crate::store::{Conn, Dialect};
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::instant;

/// Counts of deliveries by status.
#[derive(Debug, Default, Serialize)]
pub struct Counts {
    pub total: i64,
    pub sent: i64,
    pub failed: i64,
    /// Not sent because its source stopped wanting it (DESIGN §9): not a failure.
    pub cancelled: i64,
    /// Pending or being sent.
    pub open: i64,
}

impl Counts {
    /// Failed among finished, in percent; `None` when nothing finished.
    pub fn failure_rate(&self) -> Option<f64> {
        let finished = self.sent + self.failed;
        (finished > 0).then(|| 100.0 * self.failed as f64 / finished as f64)
    }
}

#[derive(Debug, Serialize)]
pub struct Group {
    pub name: String,
    #[serde(flatten)]
    pub counts: Counts,
}

#[derive(Debug, Serialize)]
pub struct Reason {
    pub reason: String,
    pub count: i64,
}

#[derive(Debug, Serialize)]
pub struct Service {
    pub service: String,
    pub last_attendance_sync: Option<String>,
    pub last_users_sync: Option<String>,
}

#[derive(Debug, Default, Serialize)]
pub struct Attendance {
    pub pending: i64,
    pub sending: i64,
    pub retrying: i64,
    pub failed: i64,
    pub sent: i64,
    pub services: Vec<Service>,
}

/// What `gather` finds.
#[derive(Debug, Serialize)]
pub struct Figures {
    pub since: String,
    pub totals: Counts,
    pub success_rate: Option<f64>,
    pub median_seconds_to_send: Option<f64>,
    pub by_channel: Vec<Group>,
    pub by_kind: Vec<Group>,
    pub failures_by_reason: Vec<Reason>,
    /// Not failures: messages whose source stopped wanting them.
    pub cancellations_by_reason: Vec<Reason>,
    pub attendance: Attendance,
}

/// The reason of a delivery whose `last_error` is NULL (`stats` prints it).
pub const NO_REASON: &str = "no reason recorded";

/// The reason of one whose `last_error` is not text (a blob written by hand).
pub const NOT_TEXT: &str = "(not text)";

/// A message counts once, by the channel that delivered it: a delivery
/// another replaced on the next channel (channel fallback) is left out.
const CURRENT: &str = "id NOT IN (SELECT replaces_id FROM rappel_deliveries WHERE replaces_id IS NOT NULL)";

/// The dashboard's figures over deliveries created since `since` (UTC),
/// and the attendance ledger now. Errors: `StoreError`.
pub fn gather(conn: &Conn, since: DateTime<Utc>) -> Result<Figures> {
    let from = instant::format(since);
    let grouped = |column: &str| -> Result<Vec<Group>> {
        conn.query_map(
            &format!(
                "SELECT {column}, count(*), count(*) FILTER (WHERE status = 'sent'),
                        count(*) FILTER (WHERE status = 'failed'),
                        count(*) FILTER (WHERE status IN ('pending', 'sending')),
                        count(*) FILTER (WHERE status = 'cancelled')
                 FROM rappel_deliveries WHERE created_at >= ?1 AND {CURRENT} GROUP BY 1 ORDER BY 2 DESC, 1"
            ),
            params![from],
            |r| {
                Ok(Group {
                    name: r.get(0)?,
                    counts: Counts {
                        total: r.get(1)?,
                        sent: r.get(2)?,
                        failed: r.get(3)?,
                        open: r.get(4)?,
                        cancelled: r.get(5)?,
                    },
                })
            },
        )
    };
    let by_channel = grouped("channel")?;
    let by_kind = grouped("kind")?;
    let mut totals = Counts::default();
    for g in &by_channel {
        totals.total += g.counts.total;
        totals.sent += g.counts.sent;
        totals.failed += g.counts.failed;
        totals.cancelled += g.counts.cancelled;
        totals.open += g.counts.open;
    }
    let median_seconds_to_send = median_to_send(conn, &from)?;
    let by_reason = |status: &str| -> Result<Vec<Reason>> {
        conn.query_map(
            &format!(
                "SELECT coalesce(substr(last_error, 1, 120), '{NO_REASON}'), count(*) FROM rappel_deliveries
                 WHERE created_at >= ?1 AND status = ?2 AND {CURRENT} GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 10"
            ),
            params![from, status],
            // Loosely: an error written by hand as a blob is a reason too.
            |r| {
                Ok(Reason {
                    reason: crate::db::loose::text(r.cell(0)?).unwrap_or_else(|| NOT_TEXT.into()),
                    count: r.get(1)?,
                })
            },
        )
    };
    let failures_by_reason = by_reason("failed")?;
    let cancellations_by_reason = by_reason("cancelled")?;
    Ok(Figures {
        since: from,
        success_rate: totals.failure_rate().map(|f| 100.0 - f),
        totals,
        median_seconds_to_send,
        by_channel,
        by_kind,
        failures_by_reason,
        cancellations_by_reason,
        attendance: attendance(conn)?,
    })
}

/// The median of sent_at - created_at over sent deliveries since `from`.
fn median_to_send(conn: &Conn, from: &str) -> Result<Option<f64>> {
    const SENT: &str = "FROM rappel_deliveries WHERE created_at >= ?1 AND status = 'sent' AND sent_at IS NOT NULL";
    let n: i64 = conn.query_row(&format!("SELECT count(*) {SENT}"), params![from], |r| r.get(0))?;
    if n == 0 {
        return Ok(None);
    }
    // Seconds between two instants stored as text.
    let seconds = match conn.dialect() {
        Dialect::Sqlite => "(julianday(sent_at) - julianday(created_at)) * 86400.0",
        Dialect::Postgres => "extract(epoch FROM CAST(sent_at AS timestamptz) - CAST(created_at AS timestamptz))",
    };
    let at = |offset: i64| -> Result<f64> {
        conn.query_row(
            &format!("SELECT {seconds} AS d {SENT} ORDER BY d LIMIT 1 OFFSET ?2"),
            params![from, offset],
            |r| r.get(0),
        )
    };
    Ok(Some((at((n - 1) / 2)? + at(n / 2)?) / 2.0))
}

/// The attendance ledger now (not limited by `--since`: pending is pending).
/// Errors: `StoreError`.
pub fn attendance(conn: &Conn) -> Result<Attendance> {
    let mut a = conn.query_row(
        "SELECT count(*) FILTER (WHERE sync_status = 'pending'), count(*) FILTER (WHERE sync_status = 'sending'),
                count(*) FILTER (WHERE sync_status = 'failed' AND next_attempt_at IS NOT NULL),
                count(*) FILTER (WHERE sync_status = 'failed' AND next_attempt_at IS NULL),
                count(*) FILTER (WHERE sync_status = 'sent')
         FROM attendance_logs",
        params![],
        |r| {
            Ok(Attendance {
                pending: r.get(0)?,
                sending: r.get(1)?,
                retrying: r.get(2)?,
                failed: r.get(3)?,
                sent: r.get(4)?,
                services: Vec::new(),
            })
        },
    )?;
    a.services = conn.query_map(
        "SELECT service, max(last_attendance_sync), max(last_users_sync) FROM rappel_terminal_sync_state
         GROUP BY service ORDER BY service",
        params![],
        |r| {
            Ok(Service {
                service: r.get(0)?,
                last_attendance_sync: r.get(1)?,
                last_users_sync: r.get(2)?,
            })
        },
    )?;
    Ok(a)
}

/// Finished deliveries (sent, failed, cancelled) created since `since`, by
/// the minute they were created (UTC, `YYYY-MM-DDTHH:MM`) and status, each
/// message once as in [`gather`]: what the dashboard sorts into the days of
/// its zone (a minute falls in one local day in every zone, whole-hour or
/// not). Errors: `StoreError`.
pub fn finished_by_minute(conn: &Conn, since: DateTime<Utc>) -> Result<Vec<(String, String, i64)>> {
    conn.query_map(
        &format!(
            "SELECT substr(created_at, 1, 16), status, count(*) FROM rappel_deliveries
             WHERE created_at >= ?1 AND status IN ('sent', 'failed', 'cancelled') AND {CURRENT}
             GROUP BY 1, 2"
        ),
        params![instant::format(since)],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
}

/// Counts of the deliveries created from `from` (included) to `to`
/// (excluded), each message once: the period before the dashboard's, for
/// the success rate's trend. Errors: `StoreError`.
pub fn totals_between(conn: &Conn, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<Counts> {
    conn.query_row(
        &format!(
            "SELECT count(*), count(*) FILTER (WHERE status = 'sent'), count(*) FILTER (WHERE status = 'failed'),
                    count(*) FILTER (WHERE status IN ('pending', 'sending')),
                    count(*) FILTER (WHERE status = 'cancelled')
             FROM rappel_deliveries WHERE created_at >= ?1 AND created_at < ?2 AND {CURRENT}"
        ),
        params![instant::format(from), instant::format(to)],
        |r| {
            Ok(Counts {
                total: r.get(0)?,
                sent: r.get(1)?,
                failed: r.get(2)?,
                open: r.get(3)?,
                cancelled: r.get(4)?,
            })
        },
    )
}

/// Punches by terminal id and sync status now (`attendance_logs`; a
/// failed punch with a next attempt is `retrying`): what the dashboard sums
/// per service. Errors: `StoreError`.
pub fn punches_by_terminal(conn: &Conn) -> Result<Vec<(i64, String, i64)>> {
    conn.query_map(
        "SELECT terminal_id, CASE WHEN sync_status = 'failed' AND next_attempt_at IS NOT NULL THEN 'retrying'
                                  ELSE sync_status END, count(*)
         FROM attendance_logs GROUP BY 1, 2",
        params![],
        |r| {
            Ok((
                crate::db::loose::id(r.cell(0)?).unwrap_or_default(),
                r.get(1)?,
                r.get(2)?,
            ))
        },
    )
}
