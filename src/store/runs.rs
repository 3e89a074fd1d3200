//! `rappel_job_runs`: one row per run of a job, opened when it starts and closed
//! with its counts, exit code and error (what `stats` and a stopped cron
//! are read from).

use super::{Conn, Result};
use crate::params;
use chrono::{DateTime, Utc};

use crate::db::loose;
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

/// When `job`'s runs before `now` started (finished or not: cron did
/// start them): those at or after `since`, and the `before` latest ones
/// before it (all of them when there are fewer), ascending; a value that
/// does not parse is left out. Errors: `StoreError`.
pub fn starts_since(
    conn: &Conn,
    job: Job,
    since: DateTime<Utc>,
    before: usize,
    now: DateTime<Utc>,
) -> Result<Vec<DateTime<Utc>>> {
    let starts = conn.query_map(
        "SELECT started_at FROM rappel_job_runs
         WHERE job = ?1 AND started_at < ?3
           AND started_at >= coalesce((SELECT started_at FROM rappel_job_runs
                                       WHERE job = ?1 AND started_at < ?2
                                       ORDER BY started_at DESC LIMIT 1 OFFSET ?4), '')
         ORDER BY started_at",
        params![job, since, now, before.saturating_sub(1)],
        |r| r.get::<String>(0),
    )?;
    Ok(starts.iter().filter_map(|s| instant::parse(s)).collect())
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

/// A run's latest `rappel_job_runs` row, as the dashboard and the metrics
/// show it. Instants as stored (UTC, RFC 3339).
#[derive(Debug, Clone, serde::Serialize)]
pub struct LastRun {
    pub job: String,
    pub started_at: String,
    /// `None`: still running, or killed before it could say.
    pub finished_at: Option<String>,
    pub exit_code: Option<i64>,
    pub error: Option<String>,
    pub sent: i64,
    pub failed: i64,
    /// When its latest run that exited 0 started, if any.
    pub last_success: Option<String>,
}

impl LastRun {
    /// How long it took, when it finished and both instants read (whole
    /// seconds: they are stored so).
    pub fn duration(&self) -> Option<chrono::Duration> {
        let end = instant::parse(self.finished_at.as_deref()?)?;
        Some(end - instant::parse(&self.started_at)?)
    }

    /// Its exit code, when it finished and the code reads.
    pub fn exit(&self) -> Option<i64> {
        self.finished_at.as_ref().and(self.exit_code)
    }
}

/// The latest run of each of `runs` that ever ran, in that order, each read
/// by the `(job, started_at)` index (a year of runs every minute costs no
/// more than a day's). Errors: `StoreError`.
pub fn latest(conn: &Conn, runs: &[crate::domain::Run]) -> Result<Vec<LastRun>> {
    let mut out = Vec::new();
    for run in runs {
        let job = run.as_str();
        let last = conn.query_opt(
            "SELECT started_at, finished_at, exit_code, error, sent, failed FROM rappel_job_runs
             WHERE job = ?1 ORDER BY started_at DESC, id DESC LIMIT 1",
            params![job],
            // Read loosely: a row written by hand (an exit code as text)
            // shows as what it holds, and never stops the dashboard.
            |r| {
                Ok(LastRun {
                    job: job.to_string(),
                    started_at: loose::text(r.cell(0)?).unwrap_or_default(),
                    finished_at: loose::text(r.cell(1)?),
                    exit_code: loose::id(r.cell(2)?),
                    error: loose::text(r.cell(3)?),
                    sent: loose::id(r.cell(4)?).unwrap_or(0),
                    failed: loose::id(r.cell(5)?).unwrap_or(0),
                    last_success: None,
                })
            },
        )?;
        let Some(mut last) = last else {
            continue;
        };
        last.last_success = conn
            .query_opt(
                "SELECT started_at FROM rappel_job_runs WHERE job = ?1 AND exit_code = 0
                 ORDER BY started_at DESC, id DESC LIMIT 1",
                params![job],
                |r| Ok(loose::text(r.cell(0)?)),
            )?
            .flatten();
        out.push(last);
    }
    Ok(out)
}
