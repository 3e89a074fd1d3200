//! `rappel_delay_alert_log`: which stage entries were alerted, when, and by which
//! delivery; what re-arming counts from. An entry is its event's id and its
//! `entered_at` as written: a new event under a deleted one's id is a new
//! entry (rows from before schema 5 have no `entered_at`).

use super::{Conn, Result, ToParam};
use crate::params;
use std::collections::HashMap;

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

/// Records that `entries` were alerted at `at` (the run's clock) by
/// delivery `delivery_id`, in the planning transaction: up to `ROWS` rows
/// per `INSERT` (one round trip each to a server). Errors: `StoreError`.
pub fn record(conn: &Conn, entries: &[Alerted<'_>], at: DateTime<Utc>, delivery_id: i64) -> Result<()> {
    /// Rows per statement (7 parameters each, under SQLite's 32,766).
    const ROWS: usize = 500;
    let at = crate::instant::format(at);
    for chunk in entries.chunks(ROWS) {
        let entered: Vec<String> = chunk.iter().map(|e| crate::instant::format(e.entered_id)).collect();
        let mut values: Vec<&dyn ToParam> = Vec::with_capacity(chunk.len() * 7);
        let mut groups = Vec::with_capacity(chunk.len());
        for (i, (e, entered)) in chunk.iter().zip(&entered).enumerate() {
            let n = i * 7;
            groups.push(format!(
                "(?{}, ?{}, ?{}, ?{}, ?{}, ?{}, ?{})",
                n + 1,
                n + 2,
                n + 3,
                n + 4,
                n + 5,
                n + 6,
                n + 7
            ));
            values.extend(params![
                e.event_id,
                e.ticket_id,
                e.stage,
                e.days_in_stage,
                at,
                delivery_id,
                *entered
            ]);
        }
        conn.execute(
            &format!(
                "INSERT INTO rappel_delay_alert_log (event_id, ticket_id, stage, days_in_stage, alerted_at, delivery_id, entered_at)
                 VALUES {}",
                groups.join(", ")
            ),
            &values,
        )?;
    }
    Ok(())
}

/// An event's alerted entries: each `entered_at` as recorded (`None` for
/// any entry) with when it was last alerted (its digest's `sent_at` when
/// that came later than `alerted_at`: held by a send window, or retried),
/// and whether a digest that
/// alerted it has yet to go (pending or being sent: held by a send window,
/// or retrying).
pub type EventAlerts = Vec<(Option<String>, String, bool)>;

/// The alerts recorded for `event_ids`: per event, each entry's
/// `entered_at` as recorded (`None` for rows from before schema 5, which
/// stand for any entry) with the latest `alerted_at` of that entry. One
/// query for a whole run's due entries, where one per entry would be needed.
/// Errors: `StoreError`.
pub fn latest_alerts(conn: &Conn, event_ids: &[i64]) -> Result<HashMap<i64, EventAlerts>> {
    let ids = serde_json::to_string(event_ids).unwrap_or_else(|_| "[]".into());
    // On SQLite, each digest's status and sent_at read once
    // (`MATERIALIZED`), not once per entry it alerted: a row's columns
    // after its body are reached through the body's overflow pages, and a
    // digest of 26,000 entries, some megabytes, was walked 26,000 times (a
    // run an hour after the first over a million tickets took 12.8 s
    // instead of 0.4). PostgreSQL keeps a large body apart (TOAST): the
    // join reads each row's status as it is, and reading the log once
    // more cost a run with nothing due 10 ms over 100,000 tickets.
    let list = super::json_list(conn.dialect(), 1, "bigint");
    let (with, deliveries) = match conn.dialect() {
        super::Dialect::Sqlite => (
            format!(
                "WITH d AS MATERIALIZED (
                     SELECT id, status, sent_at FROM rappel_deliveries
                     WHERE id IN (SELECT delivery_id FROM rappel_delay_alert_log WHERE event_id IN ({list})))"
            ),
            "d",
        ),
        super::Dialect::Postgres => (String::new(), "rappel_deliveries"),
    };
    let rows = conn.query_map(
        &format!(
            "{with}
             SELECT l.event_id, l.entered_at,
                    max(CASE WHEN d.sent_at > l.alerted_at THEN d.sent_at ELSE l.alerted_at END),
                    max(CASE WHEN d.status IN ('pending', 'sending') THEN 1 ELSE 0 END)
             FROM rappel_delay_alert_log l LEFT JOIN {deliveries} d ON d.id = l.delivery_id
             WHERE l.event_id IN ({list}) GROUP BY l.event_id, l.entered_at"
        ),
        params![ids],
        |r| {
            Ok((
                r.get::<i64>(0)?,
                r.get::<Option<String>>(1)?,
                r.get::<String>(2)?,
                r.get::<i64>(3)? != 0,
            ))
        },
    )?;
    let mut by_event: HashMap<i64, EventAlerts> = HashMap::new();
    for (event, entered, alerted, waiting) in rows {
        by_event.entry(event).or_default().push((entered, alerted, waiting));
    }
    Ok(by_event)
}

/// Whether `latest` (an event's entries, from `latest_alerts`) holds an
/// alert of the entry named `entered_id` that `answers` (given its instant,
/// UTC; one that does not read answers nothing), or one whose digest has
/// yet to go: a re-arm does not add a second digest of an entry to one
/// still waiting.
pub fn answered_by(
    latest: Option<&EventAlerts>,
    entered_id: DateTime<Utc>,
    answers: impl Fn(DateTime<Utc>) -> bool,
) -> bool {
    let entered = crate::instant::format(entered_id);
    latest.is_some_and(|entries| {
        entries.iter().any(|(e, alerted, waiting)| {
            e.as_deref().is_none_or(|e| e == entered)
                && (*waiting || crate::instant::parse(alerted).is_some_and(&answers))
        })
    })
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

/// The stage entries each delivery of `delivery_ids` alerted, as recorded,
/// each delivery's in ticket order; a delivery that alerted nothing has no
/// key. One statement for them all, on `rappel_delay_alert_log` alone (the
/// last look before digests go reads their tickets after,
/// `tickets::open_events`, as many as it needs). Errors: `StoreError`.
pub fn alerted_entries(conn: &Conn, delivery_ids: &[i64]) -> Result<HashMap<i64, Vec<Recorded>>> {
    let mut entries: HashMap<i64, Vec<Recorded>> = HashMap::new();
    let list = serde_json::to_string(delivery_ids).unwrap_or_else(|_| "[]".into());
    conn.query_each(
        &format!(
            "SELECT delivery_id, event_id, ticket_id, entered_at, stage FROM rappel_delay_alert_log
             WHERE delivery_id {}
             ORDER BY delivery_id, ticket_id, event_id",
            super::any_id(conn.dialect(), 1)
        ),
        params![list],
        |r| {
            entries.entry(r.get(0)?).or_default().push(Recorded {
                event_id: r.get(1)?,
                ticket_id: r.get(2)?,
                entered_at: r.get(3)?,
                stage: crate::db::loose::text(r.cell(4)?).unwrap_or_default(),
            });
            Ok(())
        },
    )?;
    Ok(entries)
}
