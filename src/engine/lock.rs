//! One lock per job, released when the process dies, so an overlapping run
//! of the same job exits at once: an OS file lock beside a SQLite database,
//! a PostgreSQL advisory lock held by a session on a server (several
//! machines share it; DESIGN §9), which then serves the run as its
//! connection (`JobLock::take_session`). Correctness never depends on it:
//! claims are atomic in the database.

use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::exit::{Exit, OrExit};

use crate::db::Database;

/// A job's lock, held until dropped.
pub enum JobLock {
    File(File),
    /// The session holding the advisory lock; closing it releases the lock.
    Session(crate::db::postgres::AdvisoryLock),
    /// The session was handed to the run (`take_session`): the lock lasts
    /// as long as the run's connection.
    Lent,
}

impl JobLock {
    /// The session holding an advisory lock, for the run to use as its
    /// connection (`Database::connect_current_on`); `None` for a file lock.
    pub fn take_session(&mut self) -> Option<postgres::Client> {
        match std::mem::replace(self, JobLock::Lent) {
            JobLock::Session(lock) => Some(lock.into_session()),
            other => {
                *self = other;
                None
            }
        }
    }
}

/// The lock file of `job` beside the database.
pub fn path(database: &Path, job: &str) -> PathBuf {
    let mut name = database
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_else(|| "rappel.db".into());
    name.push(format!(".{job}.lock"));
    database.with_file_name(name)
}

/// Takes `job`'s lock on `db`; `Ok(None)` when another process holds it.
/// Errors: the lock file cannot be opened (exit 74), or the server
/// reached or used (`db::postgres::refused`: 78 or 74).
pub fn try_lock(db: &Database, job: &str) -> anyhow::Result<Option<JobLock>> {
    if let Some(server) = db.server() {
        return Ok(crate::db::postgres::try_advisory_lock(server, job)?.map(JobLock::Session));
    }
    let path = path(db.path(), job);
    // Never through a link, nor a FIFO, planted where the lock file goes.
    let file = crate::files::open_regular(
        crate::files::no_follow().create(true).truncate(false).write(true),
        &path,
    )
    .with_context(|| format!("cannot open lock file {}", path.display()))
    .or_exit(Exit::IoErr)?;
    match file.try_lock() {
        Ok(()) => Ok(Some(JobLock::File(file))),
        Err(TryLockError::WouldBlock) => Ok(None),
        Err(TryLockError::Error(e)) => Err(e)
            .with_context(|| format!("cannot lock {}", path.display()))
            .or_exit(Exit::IoErr),
    }
}
