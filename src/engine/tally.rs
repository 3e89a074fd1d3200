//! What a run did: counts per outcome, the exit code they imply, and the
//! `job_runs` row that records it.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};
use serde::Serialize;

use crate::exit::Exit;
use crate::instant;

#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Counts {
    pub planned: u64,
    pub sent: u64,
    pub failed: u64,
    pub skipped: u64,
    pub retrying: u64,
    /// Not sent: the source no longer wanted the message (not a failure).
    pub cancelled: u64,
}

impl Counts {
    pub fn add(&mut self, other: Counts) {
        self.planned += other.planned;
        self.sent += other.sent;
        self.failed += other.failed;
        self.skipped += other.skipped;
        self.retrying += other.retrying;
        self.cancelled += other.cancelled;
    }

    pub fn is_empty(&self) -> bool {
        self.planned + self.sent + self.failed + self.skipped + self.retrying + self.cancelled == 0
    }
}

/// Counts and the most serious exit code seen.
#[derive(Clone, Copy, Debug)]
pub struct Tally {
    pub counts: Counts,
    pub exit: Exit,
}

impl Default for Tally {
    fn default() -> Self {
        Tally {
            counts: Counts::default(),
            exit: Exit::Ok,
        }
    }
}

impl Tally {
    pub fn merge(&mut self, other: Tally) {
        self.counts.add(other.counts);
        self.exit = self.exit.max(other.exit);
    }

    pub fn raise(&mut self, exit: Exit) {
        self.exit = self.exit.max(exit);
    }
}

/// Opens the run's `job_runs` row (a run that dies leaves `finished_at` NULL).
pub fn start_run(conn: &Connection, job: &str, now: DateTime<Utc>) -> rusqlite::Result<i64> {
    conn.query_row(
        "INSERT INTO job_runs (job, started_at) VALUES (?1, ?2) RETURNING id",
        params![job, instant::format(now)],
        |r| r.get(0),
    )
}

pub fn finish_run(
    conn: &Connection,
    id: i64,
    finished: DateTime<Utc>,
    tally: &Tally,
    error: Option<&str>,
) -> rusqlite::Result<()> {
    let c = &tally.counts;
    conn.execute(
        "UPDATE job_runs SET finished_at = ?2, planned = ?3, sent = ?4, failed = ?5, skipped = ?6,
                retrying = ?7, exit_code = ?8, error = ?9, cancelled = ?10
         WHERE id = ?1",
        params![
            id,
            instant::format(finished),
            c.planned as i64,
            c.sent as i64,
            c.failed as i64,
            c.skipped as i64,
            c.retrying as i64,
            tally.exit.code(),
            error.map(crate::mask::mask),
            c.cancelled as i64
        ],
    )?;
    Ok(())
}
