//! What `rappel purge` removes from rappel's own tables: finished
//! deliveries no alert still points at, delay-alert history but each event's
//! latest alert, finished job runs, and (asked for) synced attendance logs,
//! or, mapped onto the host's table, rappel's records of synced punches it
//! no longer has; never a pending or sending row.

use super::{Conn, Dialect, Result};
use crate::params;
use chrono::{DateTime, Utc};

use crate::instant;

/// What goes, and the statement that counts or deletes it (`?1` the cutoff).
/// A delivery goes only when no alert that stays points at it, so a dry run
/// counts exactly what a real one deletes.
const TARGETS: &[(&str, &str)] = &[
    (
        "delay-alert history",
        // Each event keeps its latest alert: it is what re-arming counts from.
        "FROM rappel_delay_alert_log AS a WHERE a.alerted_at < ?1 AND EXISTS (SELECT 1 FROM rappel_delay_alert_log AS n
           WHERE n.event_id = a.event_id AND (n.alerted_at > a.alerted_at OR (n.alerted_at = a.alerted_at AND n.id > a.id)))",
    ),
    (
        "deliveries",
        "FROM rappel_deliveries WHERE status IN ('sent', 'failed') AND created_at < ?1
           AND (sent_at IS NULL OR sent_at < ?1)
           -- An alert that stays points at it.
           AND id NOT IN (SELECT a.delivery_id FROM rappel_delay_alert_log AS a WHERE a.delivery_id IS NOT NULL
                AND NOT (a.alerted_at < ?1 AND EXISTS (SELECT 1 FROM rappel_delay_alert_log AS n
                    WHERE n.event_id = a.event_id
                      AND (n.alerted_at > a.alerted_at OR (n.alerted_at = a.alerted_at AND n.id > a.id)))))
           -- A report not yet sent to all: its sent rows are who not to send it to again.
           AND NOT (source_table IS NOT DISTINCT FROM 'scheduled_reports'
                    AND source_id IN (SELECT id FROM scheduled_reports WHERE status <> 'sent'))",
    ),
    ("job runs", "FROM rappel_job_runs WHERE finished_at IS NOT NULL AND started_at < ?1"),
];

const ATTENDANCE: (&str, &str) = (
    "synced attendance logs",
    "FROM attendance_logs WHERE sync_status = 'sent' AND synced_at < ?1",
);

/// With `attendance_logs` mapped onto the host's own table, whose punches
/// rappel never deletes: rappel's records of synced punches that table no
/// longer has (deleted, or their id reused by a newer punch).
const ATTENDANCE_MAPPED: (&str, &str) = (
    "records of synced punches gone from the host's table",
    "FROM rappel_punch_state AS s WHERE s.sync_status = 'sent' AND s.synced_at < ?1
       AND NOT EXISTS (SELECT 1 FROM attendance_logs AS l WHERE l.id = s.log_id AND l.punched_at = s.punched_at)",
);

/// Deletes (or, in a dry run, counts) what is older than `cutoff` (UTC),
/// in one transaction; returns each target's name and count, in order.
/// Errors: `StoreError`.
pub fn old_rows(
    conn: &mut Conn,
    cutoff: DateTime<Utc>,
    include_attendance: bool,
    dry_run: bool,
) -> Result<Vec<(&'static str, i64)>> {
    let mapped = super::sources::found(conn, "attendance_logs")? == super::sources::Found::Mapped;
    let cutoff = instant::format(cutoff);
    let mut targets: Vec<(&str, &str)> = TARGETS.to_vec();
    if include_attendance {
        targets.push(if mapped { ATTENDANCE_MAPPED } else { ATTENDANCE });
    }
    let tx = if dry_run {
        super::begin_read(conn)?
    } else {
        super::begin(conn)?
    };
    let mut counts = Vec::new();
    for (what, from) in targets {
        let n: i64 = if dry_run {
            tx.query_row(&format!("SELECT count(*) {from}"), params![cutoff], |r| r.get(0))?
        } else {
            i64::try_from(tx.execute(&format!("DELETE {from}"), params![cutoff])?).unwrap_or(i64::MAX)
        };
        counts.push((what, n));
    }
    if !dry_run {
        tx.commit()?;
    }
    Ok(counts)
}

/// The files a delivery that may still be sent attaches (pending or
/// sending, or not sent and created at or after `cutoff`), as stored.
pub fn attachments_in_use(conn: &Conn, cutoff: DateTime<Utc>) -> Result<Vec<String>> {
    conn.query_map(
        "SELECT attachment_path FROM rappel_deliveries WHERE attachment_path IS NOT NULL
           AND (status IN ('pending', 'sending') OR (status <> 'sent' AND created_at >= ?1))",
        params![cutoff],
        |r| r.get::<String>(0),
    )
}

/// Gives the freed pages back (`VACUUM`: the whole file in SQLite; in
/// PostgreSQL the tables purge deletes from).
pub fn vacuum(conn: &Conn) -> Result<()> {
    conn.execute_batch(match conn.dialect() {
        Dialect::Sqlite => "VACUUM",
        Dialect::Postgres => "VACUUM rappel_deliveries, rappel_delay_alert_log, rappel_job_runs, attendance_logs",
    })
}
