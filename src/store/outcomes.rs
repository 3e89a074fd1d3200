//! A claimed delivery's outcome, written only while this run still holds
//! it (`claimed_by` is ours and `status` is still `sending`): a row whose
//! lease passed to another run is left alone.

use super::{Conn, Dialect, Result};
use crate::params;
use chrono::{DateTime, Utc};

use crate::domain::ErrorClass;

/// What becomes of a claimed row. Reasons are stored as given: the caller
/// masks what a provider echoed.
#[derive(Debug)]
pub enum Change {
    /// Sent at `at` (the run's clock); the provider's id when it gave one.
    Sent {
        at: DateTime<Utc>,
        provider_ref: Option<String>,
    },
    /// Failed for good (`permanent`), or temporarily with attempts spent.
    Failed { class: ErrorClass, reason: String },
    /// Back to `pending`, tried again at `next`. `claimed_by` stays: it
    /// tells a `--force` run that it already tried this row.
    Retry { reason: String, next: DateTime<Utc> },
    /// Not sent: its source no longer wants it; the attempt is not counted.
    Cancelled { reason: String },
    /// Not tried (its transport asked to wait): back to `pending`, due at
    /// `until`, the attempt not counted. `claimed_by` stays, as for `Retry`,
    /// so a `--force` run does not take it again.
    Postponed { until: DateTime<Utc>, reason: String },
    /// Not tried (quiet hours or its kind's send window hold it): back to
    /// `pending`, due at `until`, the attempt not counted, `reason` (which
    /// names the end of the hold) in `last_error` whatever was there.
    /// `claimed_by` stays: a `--force` run, which ignores `next_attempt_at`,
    /// took it again and again, holding it each time.
    Held { until: DateTime<Utc>, reason: String },
    /// Given back to `pending` without counting the attempt, with a class
    /// and reason when there is one (`credentials`).
    Released {
        class: Option<&'static str>,
        reason: Option<String>,
    },
}

/// The row `?1`, if run `?2` still holds it. `coalesce` (status is never
/// NULL) hides the status from PostgreSQL's planner, which would otherwise
/// look the row up through the partial index of `sending` rows rather than
/// the primary key: that index's statistics, gathered when nothing was
/// being sent, call it empty, and each outcome then read every row sent in
/// the run so far (350 µs an outcome over 10,000, `bench/run.sh
/// postgres_send`).
const HELD: &str = "WHERE id = ?1 AND claimed_by = ?2 AND coalesce(status, '') = 'sending'";

/// Writes `change` on delivery `id` if run `run_id` still holds it.
/// Returns whether it did. Errors: `StoreError`.
pub fn record(conn: &Conn, id: i64, run_id: &str, change: &Change) -> Result<bool> {
    // The larger of two values: SQLite's two-argument max, PostgreSQL's GREATEST.
    let greatest = match conn.dialect() {
        Dialect::Sqlite => "max",
        Dialect::Postgres => "GREATEST",
    };
    let changed = match change {
        Change::Sent { at, provider_ref } => conn.execute(
            &format!(
                "UPDATE rappel_deliveries SET status = 'sent', sent_at = ?3, provider_ref = ?4, error_class = NULL,
                 last_error = NULL, next_attempt_at = NULL, lease_until = NULL {HELD}"
            ),
            params![id, run_id, at, provider_ref],
        )?,
        Change::Failed { class, reason } => conn.execute(
            &format!(
                "UPDATE rappel_deliveries SET status = 'failed', error_class = ?3, last_error = ?4, lease_until = NULL,
                 next_attempt_at = NULL {HELD}"
            ),
            params![id, run_id, class, reason],
        )?,
        Change::Retry { reason, next } => conn.execute(
            &format!(
                "UPDATE rappel_deliveries SET status = 'pending', error_class = 'temporary', last_error = ?3,
                 next_attempt_at = ?4, lease_until = NULL {HELD}"
            ),
            params![id, run_id, reason, next],
        )?,
        Change::Cancelled { reason } => conn.execute(
            &format!(
                "UPDATE rappel_deliveries SET status = 'cancelled', attempts = {greatest}(attempts - 1, 0), error_class = NULL,
                 last_error = ?3, next_attempt_at = NULL, lease_until = NULL {HELD}"
            ),
            params![id, run_id, reason],
        )?,
        Change::Postponed { until, reason } => conn.execute(
            &format!(
                "UPDATE rappel_deliveries SET status = 'pending', attempts = {greatest}(attempts - 1, 0),
                 lease_until = NULL, next_attempt_at = ?3, last_error = coalesce(last_error, ?4) {HELD}"
            ),
            params![id, run_id, until, reason],
        )?,
        Change::Held { until, reason } => conn.execute(
            &format!(
                "UPDATE rappel_deliveries SET status = 'pending', attempts = {greatest}(attempts - 1, 0),
                 lease_until = NULL, next_attempt_at = ?3, last_error = ?4 {HELD}"
            ),
            params![id, run_id, until, reason],
        )?,
        Change::Released { class, reason } => conn.execute(
            &format!(
                "UPDATE rappel_deliveries SET status = 'pending', attempts = {greatest}(attempts - 1, 0), claimed_by = NULL,
                 lease_until = NULL, error_class = coalesce(?3, error_class),
                 last_error = coalesce(?4, last_error) {HELD}"
            ),
            params![id, run_id, class, reason],
        )?,
    };
    Ok(changed > 0)
}

/// Records each of `sent` (delivery id, when, the provider's id) sent, in
/// one statement, where run `run_id` still holds it: what
/// [`record`] does for each `Change::Sent`, one round trip and one plan for
/// a writer's whole group. Returns the ids it wrote (a row whose lease
/// passed to another run is left alone and not among them). Errors:
/// `StoreError`.
pub fn record_sent(conn: &Conn, run_id: &str, sent: &[(i64, DateTime<Utc>, Option<&str>)]) -> Result<Vec<i64>> {
    if sent.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<serde_json::Value> = sent
        .iter()
        .map(|(id, at, provider_ref)| serde_json::json!([id, crate::instant::format(*at), provider_ref]))
        .collect();
    let rows = serde_json::Value::from(rows).to_string();
    let sql = match conn.dialect() {
        Dialect::Sqlite => {
            "UPDATE rappel_deliveries SET status = 'sent', sent_at = j.at, provider_ref = j.provider_ref,
                    error_class = NULL, last_error = NULL, next_attempt_at = NULL, lease_until = NULL
             FROM (SELECT value ->> 0 AS id, value ->> 1 AS at, value ->> 2 AS provider_ref FROM json_each(?2)) AS j
             WHERE rappel_deliveries.id = j.id AND claimed_by = ?1 AND coalesce(status, '') = 'sending'
             RETURNING rappel_deliveries.id"
        }
        Dialect::Postgres => {
            "UPDATE rappel_deliveries AS d SET status = 'sent', sent_at = j.at, provider_ref = j.provider_ref,
                    error_class = NULL, last_error = NULL, next_attempt_at = NULL, lease_until = NULL
             FROM (SELECT (value ->> 0)::bigint AS id, value ->> 1 AS at, value ->> 2 AS provider_ref
                   FROM json_array_elements(CAST(?2 AS json))) AS j
             WHERE d.id = j.id AND d.claimed_by = ?1 AND coalesce(d.status, '') = 'sending'
             RETURNING d.id"
        }
    };
    conn.query_map(sql, params![run_id, rows], |r| r.get(0))
}

/// Points delivery `id` at `to` (the address its person has now) if run
/// `run_id` still holds it; returns whether it did.
pub fn readdress(conn: &Conn, id: i64, run_id: &str, to: &str) -> Result<bool> {
    let changed = conn.execute(
        &format!("UPDATE rappel_deliveries SET recipient = ?3 {HELD}"),
        params![id, run_id, to],
    )?;
    Ok(changed > 0)
}
