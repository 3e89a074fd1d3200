//! `rappel_job_runs`: one row per run of a job, opened when it starts and closed
//! with its counts, exit code and error (what `stats` and a stopped cron
//! are read from).

use super::{Conn, Result};
use crate::params;
use chrono::{DateTime, Utc};

use crate::domain::Job;
use crate::instant;

/// Opens the run's `rappel_job_runs` row (a run that dies leaves `finished_at` NULL).
pub fn start(conn: &Conn, job: &str, now: DateTime<Utc>) -> Result<i64> {
    conn.query_row(
        "INSERT INTO rappel_job_runs (job, started_at) VALUES (?1, ?2) RETURNING id",
        params![job, now],
        |r| r.get(0),
    )
}

/// Closes run `id`: when it finished (the run's clock), its counts, exit
/// code and, when it stopped, why (secrets masked).
pub fn finish(
    conn: &Conn,
    id: i64,
    finished: DateTime<Utc>,
    tally: &crate::domain::tally::Tally,
    error: Option<&str>,
) -> Result<()> {
    let c = &tally.counts;
    conn.execute(
        "UPDATE rappel_job_runs SET finished_at = ?2, planned = ?3, sent = ?4, failed = ?5, skipped = ?6,
                retrying = ?7, exit_code = ?8, error = ?9, cancelled = ?10
         WHERE id = ?1",
        params![
            id,
            finished,
            c.planned,
            c.sent,
            c.failed,
            c.skipped,
            c.retrying,
            tally.exit.code(),
            error.map(crate::mask::mask),
            c.cancelled
        ],
    )?;
    Ok(())
}

/// When `job`'s latest run that finished started, at or before `now`;
/// `None` if it never finished one (or the value does not parse).
pub fn last_finished(conn: &Conn, job: Job, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>> {
    let last: Option<String> = conn
        .query_opt(
            "SELECT max(started_at) FROM rappel_job_runs WHERE job = ?1 AND finished_at IS NOT NULL AND started_at <= ?2",
            params![job, now],
            |r| r.get(0),
        )?
        .flatten();
    Ok(last.as_deref().and_then(instant::parse))
}

/// When `job`'s latest run before `now` started, finished or not (a run
/// that died counts: cron did start it); `None` if there was none.
pub fn last_started(conn: &Conn, job: Job, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>> {
    let previous: Option<String> = conn
        .query_opt(
            "SELECT max(started_at) FROM rappel_job_runs WHERE job = ?1 AND started_at < ?2",
            params![job, now],
            |r| r.get(0),
        )?
        .flatten();
    Ok(previous.as_deref().and_then(instant::parse))
}
