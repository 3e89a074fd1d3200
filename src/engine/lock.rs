//! One OS file lock per job, released by the kernel when the process dies, so
//! an overlapping run of the same job exits at once. Correctness never depends
//! on it: claims are atomic in the database.

use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};

use anyhow::Context;

pub struct JobLock {
    _file: File,
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

/// `Ok(None)` when another process holds the lock.
pub fn try_lock(database: &Path, job: &str) -> anyhow::Result<Option<JobLock>> {
    let path = path(database, job);
    // Never through a link, nor a FIFO, planted where the lock file goes.
    let file = crate::files::open_regular(
        crate::files::no_follow().create(true).truncate(false).write(true),
        &path,
    )
    .with_context(|| format!("cannot open lock file {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(JobLock { _file: file })),
        Err(TryLockError::WouldBlock) => Ok(None),
        Err(TryLockError::Error(e)) => Err(e).with_context(|| format!("cannot lock {}", path.display())),
    }
}
