//! `rappel_delay_alert_log`: which stage entries were alerted, when, and by which
//! delivery; what re-arming counts from. An entry is its event's id and its
//! `entered_at` as written: a new event under a deleted one's id is a new
//! entry (rows from before schema 5 have no `entered_at`).

use super::{Conn, Result};
use crate::params;
use chrono::{DateTime, Utc};

/// One stage entry a digest alerted.
#[derive(Debug)]
pub struct Alerted<'a> {
    pub event_id: i64,
    pub ticket_id: i64,
    pub stage: &'a str,
    pub days_in_stage: i64,
    /// `entered_at` as the entry's name (`instant::parse` of the value as written).
    pub entered_id: DateTime<Utc>,
}

/// Records that `entry` was alerted at `at` (the run's clock) by delivery
/// `delivery_id`, in the planning transaction. Errors: `StoreError`.
pub fn record(conn: &Conn, entry: &Alerted<'_>, at: DateTime<Utc>, delivery_id: i64) -> Result<()> {
    conn.execute(
        "INSERT INTO rappel_delay_alert_log (event_id, ticket_id, stage, days_in_stage, alerted_at, delivery_id, entered_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            entry.event_id,
            entry.ticket_id,
            entry.stage,
            entry.days_in_stage,
            at,
            delivery_id,
            entry.entered_id
        ],
    )?;
    Ok(())
}

/// Whether event `event_id`'s entry named `entered_id` was alerted at or
/// after `since` (UTC). Errors: `StoreError`.
pub fn answered(conn: &Conn, event_id: i64, entered_id: DateTime<Utc>, since: DateTime<Utc>) -> Result<bool> {
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM rappel_delay_alert_log WHERE event_id = ?1 AND alerted_at >= ?2
                        AND (entered_at IS NULL OR entered_at = ?3))",
        params![event_id, since, entered_id],
        |r| r.get(0),
    )
}

/// A stage entry a delivery alerted, as recorded.
#[derive(Debug)]
pub struct Recorded {
    pub event_id: i64,
    pub ticket_id: i64,
    /// `entered_at` as recorded (`None` for rows from before schema 5).
    pub entered_at: Option<String>,
    pub stage: String,
}

/// The stage entries delivery `delivery_id` alerted. Errors: `StoreError`.
pub fn entries_of(conn: &Conn, delivery_id: i64) -> Result<Vec<Recorded>> {
    conn.query_map(
        "SELECT event_id, ticket_id, entered_at, stage FROM rappel_delay_alert_log WHERE delivery_id = ?1",
        params![delivery_id],
        |r| {
            Ok(Recorded {
                event_id: r.get(0)?,
                ticket_id: r.get(1)?,
                entered_at: r.get(2)?,
                stage: crate::db::loose::text(r.cell(3)?).unwrap_or_default(),
            })
        },
    )
}
